// Portable build of the kernels: the same algorithms as the AVX2/AVX-512 builds, with 8- and
// 16-lane "vectors" made of plain floats (the compiler may still use SSE2). Its 16-lane
// element-wise stage runs the same code as the AVX-512 build's, so tests check that logic
// on any CPU.
#include <cmath>
#include <cstdint>

#include "sw_plan.h"

#pragma GCC optimize("O2")

namespace sw_portable {

// The low (channel 2j) or high (2j + 1) bf16 halves of N uint32 pairs, as floats.
template <class Vec, int N>
inline Vec bf16_halves(const uint32_t* p, bool high) {
    Vec r;
    for (int i = 0; i < N; ++i) r.v[i] = sw_bits_float(high ? p[i] & 0xffff0000u : p[i] << 16);
    return r;
}

// L plain floats: the arithmetic both portable vector policies share.
template <int L>
struct PlainLanes {
    struct vec {
        float v[L];
    };
    using mask = int32_t;   // bit i set: lane i is loaded
    static constexpr int lanes = L;
    static inline vec zero() {
        vec r;
        for (int i = 0; i < L; ++i) r.v[i] = 0.0f;
        return r;
    }
    static inline vec set1(float s) {
        vec r;
        for (int i = 0; i < L; ++i) r.v[i] = s;
        return r;
    }
    static inline vec load(const float* p) {
        vec r;
        for (int i = 0; i < L; ++i) r.v[i] = p[i];
        return r;
    }
    static inline void store(float* p, const vec& v) {
        for (int i = 0; i < L; ++i) p[i] = v.v[i];
    }
    static inline vec fmadd(const vec& a, const vec& b, const vec& c) {
        vec r;
        for (int i = 0; i < L; ++i) r.v[i] = a.v[i] * b.v[i] + c.v[i];
        return r;
    }
    static inline vec mul(const vec& a, const vec& b) {
        vec r;
        for (int i = 0; i < L; ++i) r.v[i] = a.v[i] * b.v[i];
        return r;
    }
    static inline vec add(const vec& a, const vec& b) {
        vec r;
        for (int i = 0; i < L; ++i) r.v[i] = a.v[i] + b.v[i];
        return r;
    }
    static inline vec sub(const vec& a, const vec& b) {
        vec r;
        for (int i = 0; i < L; ++i) r.v[i] = a.v[i] - b.v[i];
        return r;
    }
    static inline vec max0(const vec& a) {          // NaN stays NaN
        vec r;
        for (int i = 0; i < L; ++i) r.v[i] = a.v[i] < 0.0f ? 0.0f : a.v[i];
        return r;
    }
    static inline vec maxnan(const vec& a, const vec& b) {
        vec r;
        for (int i = 0; i < L; ++i)
            r.v[i] = a.v[i] != a.v[i] ? a.v[i] : (b.v[i] > a.v[i] || b.v[i] != b.v[i] ? b.v[i] : a.v[i]);
        return r;
    }
    static inline mask make_mask(int bits) { return bits; }
    static inline vec maskload(const float* p, mask m) {
        vec r;
        for (int i = 0; i < L; ++i) r.v[i] = (m >> i) & 1 ? p[i] : 0.0f;
        return r;
    }
};

struct Simd : PlainLanes<8> {
    static constexpr int registers = 16;
    // 8 IEEE fp16 values -> 8 floats (exact; subnormals, infinities and NaN included).
    static inline void half8(const uint16_t* src, float* dst) {
        for (int i = 0; i < 8; ++i) dst[i] = half1(src[i]);
    }
    // 8 IEEE fp16 / bf16 values (bits) -> a vector of their exact floats.
    static inline vec load_half8(const uint16_t* p) {
        vec r;
        for (int i = 0; i < 8; ++i) r.v[i] = half1(p[i]);
        return r;
    }
    static inline vec load_bf16_8(const uint16_t* p) {
        vec r;
        for (int i = 0; i < 8; ++i) r.v[i] = sw_bits_float(static_cast<uint32_t>(p[i]) << 16);
        return r;
    }
    // One IEEE fp16 value (bits) -> float, exactly.
    static inline float half1(uint16_t bits16) {
        {
            const uint32_t h = bits16, sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1f,
                           man = h & 0x3ffu;
            uint32_t bits;
            if (exp == 0x1f) {
                bits = sign | 0x7f800000u | (man << 13);            // inf / NaN
            } else if (exp != 0) {
                bits = sign | ((exp + 112) << 23) | (man << 13);    // normal
            } else if (man == 0) {
                bits = sign;                                        // zero
            } else {                                                // subnormal: normalise
                int e = -1;
                uint32_t m = man;
                do { m <<= 1; ++e; } while (!(m & 0x400u));
                bits = sign | ((112 - e) << 23) | ((m & 0x3ffu) << 13);
            }
            return sw_bits_float(bits);
        }
    }
    // bf16 pairs (sw_product_impl.h): the even (low) / odd (high) halves of 8 uint32 as floats.
    static inline vec bf16_even(const uint32_t* p) { return bf16_halves<vec, 8>(p, false); }
    static inline vec bf16_odd(const uint32_t* p) { return bf16_halves<vec, 8>(p, true); }
    static inline void bf16_pairs(const float* even, const float* odd, uint32_t* out) {
        for (int i = 0; i < 8; ++i)
            out[i] = sw_bf16_bits(even[i]) | (odd ? sw_bf16_bits(odd[i]) << 16 : 0u);
    }
    static inline vec load_stride2(const float* p) {
        vec r;
        for (int i = 0; i < 8; ++i) r.v[i] = p[2 * i];
        return r;
    }
    static inline vec load_first(const float* p, int count) {
        vec r;
        for (int i = 0; i < 8; ++i) r.v[i] = i < count ? p[i] : 0.0f;
        return r;
    }
    static inline void transpose8(vec* r) {
        for (int i = 0; i < 8; ++i)
            for (int j = i + 1; j < 8; ++j) {
                const float t = r[i].v[j];
                r[i].v[j] = r[j].v[i];
                r[j].v[i] = t;
            }
    }
    static inline void transpose4x8(const vec* r, vec* u) {
        for (int t = 0; t < 4; ++t)
            for (int j = 0; j < 4; ++j) {
                u[t].v[j] = r[j].v[t];
                u[t].v[4 + j] = r[j].v[4 + t];
            }
    }
    static inline void store_half(float* p, const vec& v, int half, int count) {
        for (int i = 0; i < count; ++i) p[i] = v.v[4 * half + i];
    }
    static inline void store_first(float* p, const vec& v, int count) {
        for (int i = 0; i < count; ++i) p[i] = v.v[i];
    }
};

// 16 plain floats: the element-wise stage and the 2-D transforms with the AVX-512 build's
// lane count.
struct Wide : PlainLanes<16> {
    static constexpr int registers = 32;
    static inline Simd::vec low(const vec& v) { return half_of(v, 0); }
    static inline Simd::vec high(const vec& v) { return half_of(v, 8); }
    static inline vec combine(const Simd::vec& lo, const Simd::vec& hi) {
        vec r;
        for (int i = 0; i < 8; ++i) {
            r.v[i] = lo.v[i];
            r.v[i + 8] = hi.v[i];
        }
        return r;
    }
    static inline Simd::vec half_of(const vec& v, int first) {
        Simd::vec r;
        for (int i = 0; i < 8; ++i) r.v[i] = v.v[first + i];
        return r;
    }
    static inline vec bf16_even(const uint32_t* p) { return bf16_halves<vec, 16>(p, false); }
    static inline vec bf16_odd(const uint32_t* p) { return bf16_halves<vec, 16>(p, true); }
};

// The portable build is the fallback: general transforms only (any matrix), which keeps
// its compile time short; the pattern-specialised ones are in the SIMD builds.
#define SW_SPECIALISE_PATTERNS 0
#define SW_HAS_WIDE 1
#include "sw_product_impl.h"
#include "sw_winograd_impl.h"
#include "sw_conv2d_impl.h"
#include "sw_conv3d_impl.h"
#include "sw_ops_impl.h"
#undef SW_HAS_WIDE
#undef SW_SPECIALISE_PATTERNS

// The adder kernels' 8 lanes of plain floats; the general power uses std::pow.
struct AdderVec {
    float v[8];
    static AdderVec zero() { return set1(0.0f); }
    static AdderVec set1(float x) { AdderVec r; for (int i = 0; i < 8; ++i) r.v[i] = x; return r; }
    static AdderVec load(const float* p) { AdderVec r; for (int i = 0; i < 8; ++i) r.v[i] = p[i]; return r; }
    static void store(float* p, AdderVec a) { for (int i = 0; i < 8; ++i) p[i] = a.v[i]; }
#define SA_LANEWISE(name, expr) \
    static AdderVec name(AdderVec a, AdderVec b) { AdderVec r; for (int i = 0; i < 8; ++i) { const float x = a.v[i], y = b.v[i]; r.v[i] = (expr); } return r; }
    SA_LANEWISE(add, x + y)
    SA_LANEWISE(sub, x - y)
    SA_LANEWISE(mul, x * y)
    SA_LANEWISE(min, y < x ? y : x)
    SA_LANEWISE(max, y > x ? y : x)
    SA_LANEWISE(pow_abs, pow_abs_scalar(x, y))
#undef SA_LANEWISE
    static AdderVec abs(AdderVec a) { AdderVec r; for (int i = 0; i < 8; ++i) r.v[i] = std::fabs(a.v[i]); return r; }
    static AdderVec sign(AdderVec a) {
        AdderVec r;
        for (int i = 0; i < 8; ++i) r.v[i] = a.v[i] > 0.0f ? 1.0f : (a.v[i] < 0.0f ? -1.0f : 0.0f);
        return r;
    }
    static float pow_abs_scalar(float d, float p) {
        const float a = std::fabs(d);
        return a == 0.0f ? 0.0f : std::pow(a, p);
    }
};

#include "sw_adder_impl.h"

SW_DEFINE_ISA_TABLE(Simd::lanes, nullptr)

}  // namespace sw_portable
