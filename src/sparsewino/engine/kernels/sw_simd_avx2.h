// The AVX2 + FMA vector policy (8 float lanes in a __m256), shared by the AVX2 build and, with
// its masks replaced by AVX-512 mask registers, the AVX-512 build. Included inside each
// build's namespace, after its `#pragma GCC target`, so each build compiles its own copy.
// Requires <immintrin.h>.

struct SimdAvx2 {
    using vec = __m256;
    using mask = __m256i;
    static constexpr int lanes = 8;
    static constexpr int registers = 16;
    static inline vec zero() { return _mm256_setzero_ps(); }
    static inline vec set1(float v) { return _mm256_set1_ps(v); }
    static inline vec load(const float* p) { return _mm256_loadu_ps(p); }
    static inline void store(float* p, vec v) { _mm256_storeu_ps(p, v); }
    static inline vec fmadd(vec a, vec b, vec c) { return _mm256_fmadd_ps(a, b, c); }
    static inline vec mul(vec a, vec b) { return _mm256_mul_ps(a, b); }
    static inline vec add(vec a, vec b) { return _mm256_add_ps(a, b); }
    static inline vec sub(vec a, vec b) { return _mm256_sub_ps(a, b); }
    // max(0, a) that keeps NaN (maxps returns its second operand when either is NaN).
    static inline vec max0(vec a) { return _mm256_max_ps(_mm256_setzero_ps(), a); }
    // max(a, b), NaN if either is NaN (like torch's max pooling).
    static inline vec maxnan(vec a, vec b) {
        return _mm256_blendv_ps(_mm256_max_ps(a, b), a, _mm256_cmp_ps(a, a, _CMP_UNORD_Q));
    }
    static inline mask make_mask(int bits) {
        const __m256i sel = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
        return _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(bits), sel), sel);
    }
    // Masked-off lanes read as zero and are never accessed (no fault past the image edge).
    static inline vec maskload(const float* p, mask m) { return _mm256_maskload_ps(p, m); }
    // Lanes [0, count) from p (count <= 8), the others zero; nothing past them is read.
    // 8 IEEE fp16 values -> 8 floats (F16C).
    static inline void half8(const uint16_t* src, float* dst) {
        _mm256_storeu_ps(dst, _mm256_cvtph_ps(
                                  _mm_loadu_si128(reinterpret_cast<const __m128i*>(src))));
    }
    // 8 IEEE fp16 / bf16 values (bits) -> a vector of their exact floats.
    static inline vec load_half8(const uint16_t* p) {
        return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    }
    static inline vec load_bf16_8(const uint16_t* p) {
        return _mm256_castsi256_ps(_mm256_slli_epi32(
            _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))), 16));
    }
    // One IEEE fp16 value (bits) -> float (F16C).
    static inline float half1(uint16_t h) { return _cvtsh_ss(h); }
    // bf16 pairs (sw_product_impl.h): the even (low) / odd (high) halves of 8 uint32 as floats.
    static inline vec bf16_even(const uint32_t* p) {
        return _mm256_castsi256_ps(
            _mm256_slli_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)), 16));
    }
    static inline vec bf16_odd(const uint32_t* p) {
        return _mm256_castsi256_ps(
            _mm256_and_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)),
                             _mm256_set1_epi32(static_cast<int>(0xffff0000u))));
    }
    // 8 floats -> 8 bf16 bit patterns in the low halves of 32-bit lanes (sw_bf16_bits).
    static inline __m256i bf16_round(vec x) {
        __m256i b = _mm256_castps_si256(x);
        const __m256i magnitude = _mm256_set1_epi32(0x7fffffff);
        const __m256i subnormal =
            _mm256_cmpeq_epi32(_mm256_and_si256(b, _mm256_set1_epi32(0x7f800000)),
                               _mm256_setzero_si256());
        b = _mm256_andnot_si256(_mm256_and_si256(subnormal, magnitude), b);
        const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(b, magnitude),
                                               _mm256_set1_epi32(0x7f800000));
        const __m256i odd = _mm256_and_si256(_mm256_srli_epi32(b, 16), _mm256_set1_epi32(1));
        const __m256i rounded = _mm256_srli_epi32(
            _mm256_add_epi32(b, _mm256_add_epi32(odd, _mm256_set1_epi32(0x7fff))), 16);
        const __m256i quiet = _mm256_or_si256(_mm256_srli_epi32(b, 16), _mm256_set1_epi32(0x40));
        return _mm256_blendv_epi8(rounded, quiet, nan);
    }
    // out[i] = bf16(even[i]) | bf16(odd[i]) << 16 for 8 lanes (odd null: zero).
    static inline void bf16_pairs(const float* even, const float* odd, uint32_t* out) {
        const __m256i lo = bf16_round(_mm256_loadu_ps(even));
        const __m256i hi = odd ? _mm256_slli_epi32(bf16_round(_mm256_loadu_ps(odd)), 16)
                               : _mm256_setzero_si256();
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), _mm256_or_si256(lo, hi));
    }
    // p[0], p[2], ..., p[14] (16 floats read).
    static inline vec load_stride2(const float* p) {
        const __m256 even = _mm256_shuffle_ps(_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8),
                                              _MM_SHUFFLE(2, 0, 2, 0));
        return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(even), 0xD8));
    }
    static inline vec load_first(const float* p, int count) {
        return count >= 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, make_mask((1 << count) - 1));
    }
    static inline void transpose8(vec* r) {
        const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
        const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
        const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
        const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
        const __m256 s0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
        const __m256 s1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
        const __m256 s2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
        const __m256 s3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
        const __m256 s4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0));
        const __m256 s5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
        const __m256 s6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0));
        const __m256 s7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
        r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
        r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
        r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
        r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
        r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
        r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
        r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
        r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
    }
    // Four vectors over 8 tiles -> u[t] holds row values 0..3 of tile t in its low half and
    // of tile t + 4 in its high half (in-lane 4x4 transposes).
    static inline void transpose4x8(const vec* r, vec* u) {
        const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
        const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
        u[0] = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
        u[1] = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
        u[2] = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
        u[3] = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
    }
    // Store lanes [0, count) (count <= 4) of the low (half = 0) or high half of v.
    static inline void store_half(float* p, vec v, int half, int count) {
        const __m128 h = half ? _mm256_extractf128_ps(v, 1) : _mm256_castps256_ps128(v);
        switch (count) {
            case 4: _mm_storeu_ps(p, h); return;
            case 2: _mm_storel_pi(reinterpret_cast<__m64*>(p), h); return;
            default: {
                alignas(16) float tmp[4];
                _mm_store_ps(tmp, h);
                for (int i = 0; i < count; ++i) p[i] = tmp[i];
            }
        }
    }
    // Store lanes [0, count) only.
    static inline void store_first(float* p, vec v, int count) {
        switch (count) {
            case 8: _mm256_storeu_ps(p, v); return;
            case 4: _mm_storeu_ps(p, _mm256_castps256_ps128(v)); return;
            case 2: _mm_storel_pi(reinterpret_cast<__m64*>(p), _mm256_castps256_ps128(v)); return;
            default: {
                alignas(32) float tmp[8];
                _mm256_store_ps(tmp, v);
                for (int i = 0; i < count; ++i) p[i] = tmp[i];
            }
        }
    }
};
