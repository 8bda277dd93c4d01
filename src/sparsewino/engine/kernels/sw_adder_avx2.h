// The adder kernels' 8-lane vector for the AVX2 + FMA builds (sw_isa_avx2.cpp and
// sw_isa_avx512.cpp), included inside the build's namespace after the target pragma (see
// sw_adder_impl.h for the interface). The general power |d|^p is exp(p log|d|) with
// Cephes-style polynomial log and exp (relative error ~1e-7).
struct AdderVec {
    __m256 v;
    static AdderVec wrap(__m256 x) { AdderVec r; r.v = x; return r; }
    static AdderVec zero() { return wrap(_mm256_setzero_ps()); }
    static AdderVec set1(float x) { return wrap(_mm256_set1_ps(x)); }
    static AdderVec load(const float* p) { return wrap(_mm256_loadu_ps(p)); }
    static void store(float* p, AdderVec a) { _mm256_storeu_ps(p, a.v); }
    static AdderVec add(AdderVec a, AdderVec b) { return wrap(_mm256_add_ps(a.v, b.v)); }
    static AdderVec sub(AdderVec a, AdderVec b) { return wrap(_mm256_sub_ps(a.v, b.v)); }
    static AdderVec mul(AdderVec a, AdderVec b) { return wrap(_mm256_mul_ps(a.v, b.v)); }
    static AdderVec min(AdderVec a, AdderVec b) { return wrap(_mm256_min_ps(a.v, b.v)); }
    static AdderVec max(AdderVec a, AdderVec b) { return wrap(_mm256_max_ps(a.v, b.v)); }
    static AdderVec abs(AdderVec a) { return wrap(_mm256_andnot_ps(_mm256_set1_ps(-0.0f), a.v)); }
    static AdderVec sign(AdderVec a) {
        const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
        const __m256 pos = _mm256_and_ps(_mm256_cmp_ps(a.v, zero, _CMP_GT_OQ), one);
        const __m256 neg = _mm256_and_ps(_mm256_cmp_ps(a.v, zero, _CMP_LT_OQ), one);
        return wrap(_mm256_sub_ps(pos, neg));
    }
    // natural log of x > 0 (normal numbers)
    static __m256 log_ps(__m256 x) {
        const __m256 one = _mm256_set1_ps(1.0f);
        __m256i bits = _mm256_castps_si256(x);
        __m256 e = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_srli_epi32(bits, 23), _mm256_set1_epi32(127)));
        __m256 m = _mm256_castsi256_ps(_mm256_or_si256(_mm256_and_si256(bits, _mm256_set1_epi32(0x7fffff)),
                                                       _mm256_set1_epi32(0x3f800000)));      // [1, 2)
        const __m256 big = _mm256_cmp_ps(m, _mm256_set1_ps(1.41421356f), _CMP_GT_OQ);
        m = _mm256_blendv_ps(m, _mm256_mul_ps(m, _mm256_set1_ps(0.5f)), big);
        e = _mm256_add_ps(e, _mm256_and_ps(big, one));
        const __m256 f = _mm256_sub_ps(m, one);                                              // [-0.29, 0.41]
        __m256 y = _mm256_set1_ps(7.0376836292e-2f);
        y = _mm256_fmadd_ps(y, f, _mm256_set1_ps(-1.1514610310e-1f));
        y = _mm256_fmadd_ps(y, f, _mm256_set1_ps(1.1676998740e-1f));
        y = _mm256_fmadd_ps(y, f, _mm256_set1_ps(-1.2420140846e-1f));
        y = _mm256_fmadd_ps(y, f, _mm256_set1_ps(1.4249322787e-1f));
        y = _mm256_fmadd_ps(y, f, _mm256_set1_ps(-1.6668057665e-1f));
        y = _mm256_fmadd_ps(y, f, _mm256_set1_ps(2.0000714765e-1f));
        y = _mm256_fmadd_ps(y, f, _mm256_set1_ps(-2.4999993993e-1f));
        y = _mm256_fmadd_ps(y, f, _mm256_set1_ps(3.3333331174e-1f));
        const __m256 f2 = _mm256_mul_ps(f, f);
        y = _mm256_mul_ps(_mm256_mul_ps(y, f), f2);
        y = _mm256_fnmadd_ps(_mm256_set1_ps(0.5f), f2, y);
        const __m256 r = _mm256_add_ps(f, y);
        return _mm256_fmadd_ps(e, _mm256_set1_ps(0.693147180559945f), r);
    }
    // e^x for x in [-87, 88]
    static __m256 exp_ps(__m256 x) {
        x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(88.0f));
        const __m256 fx = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
        x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), x);
        __m256 y = _mm256_set1_ps(1.9875691500e-4f);
        y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507e-3f));
        y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073e-3f));
        y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894e-2f));
        y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459e-1f));
        y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201e-1f));
        y = _mm256_fmadd_ps(y, _mm256_mul_ps(x, x), _mm256_add_ps(x, _mm256_set1_ps(1.0f)));
        const __m256i pow2 = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(fx), _mm256_set1_epi32(127)), 23);
        return _mm256_mul_ps(y, _mm256_castsi256_ps(pow2));
    }
    static AdderVec pow_abs(AdderVec d, AdderVec p) {
        const __m256 a = abs(d).v;
        const __m256 tiny = _mm256_cmp_ps(a, _mm256_set1_ps(1.17549435e-38f), _CMP_LT_OQ);   // 0 and denormals
        const __m256 r = exp_ps(_mm256_mul_ps(p.v, log_ps(_mm256_max_ps(a, _mm256_set1_ps(1.17549435e-38f)))));
        return wrap(_mm256_andnot_ps(tiny, r));
    }
    static float pow_abs_scalar(float d, float p) {
        float out[8];
        _mm256_storeu_ps(out, pow_abs(set1(d), set1(p)).v);
        return out[0];
    }
};
