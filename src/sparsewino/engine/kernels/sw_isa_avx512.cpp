// AVX-512 (F/BW/VL/DQ + FMA) build of the kernels, chosen at run time only on CPUs that have
// all of them (and, by default, only after a test has run it on such a CPU: see
// sparsewino/engine/kernels/backends.py).
//
// With blocks of 16 or more tiles the element-wise stage runs 16 tiles per __m512, and so do
// the 2-D transforms unless the CPU splits 512-bit operations (Zen 4; sw_api.cpp); otherwise
// 8 tiles per __m256, with AVX-512VL mask registers for the image borders and 32 registers.
// Standard headers come first, before the target pragma (see sw_isa_avx2.cpp).
#include <cmath>
#include <cstdint>

#include "sw_plan.h"

#if defined(__x86_64__) && (defined(__GNUC__) && (__GNUC__ >= 9 || defined(__clang__)))
#include <immintrin.h>

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")
// GCC 12 implements some AVX-512 intrinsics (the 512 -> 256-bit casts, vmaxps, extracts) with
// an undefined pass-through operand, then warns that it "may be used uninitialized" where Wide
// inlines them (a false positive).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace sw_avx512 {

#include "sw_simd_avx2.h"

// The AVX2 policy with AVX-512VL masks: masked loads and stores that never touch the
// masked-off lanes, and the 32-register file for larger register blocks.
struct Simd : SimdAvx2 {
    using mask = __mmask8;
    static constexpr int registers = 32;
    static inline mask make_mask(int bits) { return static_cast<__mmask8>(bits); }
    static inline vec maskload(const float* p, mask m) { return _mm256_maskz_loadu_ps(m, p); }
    static inline vec load_first(const float* p, int count) {
        return _mm256_maskz_loadu_ps(static_cast<__mmask8>((1u << (count > 8 ? 8 : count)) - 1), p);
    }
    static inline void store_first(float* p, vec v, int count) {
        _mm256_mask_storeu_ps(p, static_cast<__mmask8>((1u << (count > 8 ? 8 : count)) - 1), v);
    }
    static inline void store_half(float* p, vec v, int half, int count) {
        const __m128 h = half ? _mm256_extractf128_ps(v, 1) : _mm256_castps256_ps128(v);
        _mm_mask_storeu_ps(p, static_cast<__mmask8>((1u << count) - 1), h);
    }
};

// 16 lanes for the element-wise stage and the 2-D transforms (16 tiles per vector; the
// tiles' rows are transposed 8 at a time through Simd: low() / high() / combine()).
struct Wide {
    using vec = __m512;
    using mask = __mmask16;
    static constexpr int lanes = 16;
    static constexpr int registers = 32;
    static inline vec zero() { return _mm512_setzero_ps(); }
    static inline vec set1(float v) { return _mm512_set1_ps(v); }
    static inline vec load(const float* p) { return _mm512_loadu_ps(p); }
    static inline void store(float* p, vec v) { _mm512_storeu_ps(p, v); }
    static inline vec fmadd(vec a, vec b, vec c) { return _mm512_fmadd_ps(a, b, c); }
    static inline vec mul(vec a, vec b) { return _mm512_mul_ps(a, b); }
    static inline vec add(vec a, vec b) { return _mm512_add_ps(a, b); }
    static inline vec sub(vec a, vec b) { return _mm512_sub_ps(a, b); }
    // max(0, a) that keeps NaN, and max(a, b) that is NaN if either is (as Simd's).
    static inline vec max0(vec a) { return _mm512_max_ps(_mm512_setzero_ps(), a); }
    static inline vec maxnan(vec a, vec b) {
        return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q), _mm512_max_ps(a, b), a);
    }
    static inline mask make_mask(int bits) { return static_cast<__mmask16>(bits); }
    static inline vec maskload(const float* p, mask m) { return _mm512_maskz_loadu_ps(m, p); }
    static inline Simd::vec low(vec v) { return _mm512_castps512_ps256(v); }
    static inline Simd::vec high(vec v) { return _mm512_extractf32x8_ps(v, 1); }
    static inline vec combine(Simd::vec lo, Simd::vec hi) {
        return _mm512_insertf32x8(_mm512_castps256_ps512(lo), hi, 1);
    }
    // bf16 pairs (sw_product_impl.h): the even (low) / odd (high) halves of 16 uint32 as floats.
    static inline vec bf16_even(const uint32_t* p) {
        return _mm512_castsi512_ps(
            _mm512_maskz_slli_epi32(static_cast<__mmask16>(0xffff), _mm512_loadu_si512(p), 16));
    }
    static inline vec bf16_odd(const uint32_t* p) {
        return _mm512_castsi512_ps(_mm512_and_si512(
            _mm512_loadu_si512(p), _mm512_set1_epi32(static_cast<int>(0xffff0000u))));
    }
};

// bf16 products with AVX512-BF16 (vdpbf16ps: 16 or 8 tiles x 2 channels per instruction, fp32
// accumulation), compiled for that extension only here and run only where the CPU has it
// (available()); elsewhere the build runs sw_product_impl.h's software Bf16Mac.
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c,avx512bf16")
namespace bf16hw {

// The fields every hardware policy shares (the weights' layout: pairs of channels).
struct HwPairs {
    using value = uint32_t;
    using row = uint32_t;
    static constexpr bool reads_fp16 = false;
    static constexpr int columns(int C) { return (C + 1) / 2; }
};

struct Mac8 : HwPairs {
    using Vp = Simd;
    using weight = __m256i;
    using input = __m256i;
    static inline weight broadcast(uint32_t pair) { return _mm256_set1_epi32(static_cast<int>(pair)); }
    static inline input load(const uint32_t* p) {
        return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    }
    static inline __m256 mac_loaded(__m256 acc, const weight& w, const input& x) {
        return _mm256_dpbf16_ps(acc, (__m256bh)x, (__m256bh)w);
    }
    static inline __m256 mac(__m256 acc, const weight& w, const uint32_t* p) {
        return mac_loaded(acc, w, load(p));
    }
};

struct Mac16 : HwPairs {
    using Vp = Wide;
    using weight = __m512i;
    using input = __m512i;
    static inline weight broadcast(uint32_t pair) { return _mm512_set1_epi32(static_cast<int>(pair)); }
    static inline input load(const uint32_t* p) { return _mm512_loadu_si512(p); }
    static inline __m512 mac_loaded(__m512 acc, const weight& w, const input& x) {
        return _mm512_dpbf16_ps(acc, (__m512bh)x, (__m512bh)w);
    }
    static inline __m512 mac(__m512 acc, const weight& w, const uint32_t* p) {
        return mac_loaded(acc, w, load(p));
    }
};

#include "sw_product_kernels.h"

void dense_rows_lanes(bool wide, const sw_matrices& w, int p, int chunk, const float* V,
                      int shift, int nvec, float* M) {
    if (wide)
        dense_rows<Mac16>(w, p, chunk, V, shift, nvec, M);
    else
        dense_rows<Mac8>(w, p, chunk, V, shift, nvec, M);
}

}  // namespace bf16hw
#pragma GCC pop_options

namespace bf16hw {
// Whether this CPU has AVX512-BF16 (checked once).
bool available() {
    static const bool yes = sw_cpu_has_avx512_bf16();
    return yes;
}
}  // namespace bf16hw

#define SW_SPECIALISE_PATTERNS 1
#define SW_BF16_HARDWARE 1
#define SW_HAS_WIDE 1
#include "sw_product_impl.h"
#include "sw_winograd_impl.h"
#include "sw_conv2d_impl.h"
#include "sw_conv3d_impl.h"
#include "sw_ops_impl.h"
#undef SW_BF16_HARDWARE
#undef SW_HAS_WIDE
#undef SW_SPECIALISE_PATTERNS

// The adder product uses the AVX2 vector (compiled with the AVX-512 target: same results).
#include "sw_adder_avx2.h"
#include "sw_adder_impl.h"

SW_DEFINE_ISA_TABLE(Wide::lanes, &bf16hw::available)

}  // namespace sw_avx512

#pragma GCC diagnostic pop
#pragma GCC pop_options

#else  // no AVX-512 build (not x86-64, or a compiler without the target)

namespace sw_avx512 {
const sw_isa_table* const table = nullptr;
}  // namespace sw_avx512

#endif
