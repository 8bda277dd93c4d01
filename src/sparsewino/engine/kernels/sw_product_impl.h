// The element-wise stage shared by conv2d, conv3d and gemm: M = U V for one packed matrix U
// (K x C) and one output chunk, per precision of the packed weights (sw_matrices):
//   fp32                 FloatMac: one fp32 multiply-add per weight and vector of tiles;
//   fp16 weights         Fp16WeightMac: each weight widened exactly to fp32 as it is
//                        broadcast (F16C), then the same multiply-add;
//   bf16                 sparse matrices: Bf16WeightMac, bf16 weights times the fp32 tiles;
//                        dense matrices: V first rounded in place to rows of bf16 pairs
//                        (bf16_pairs_in_place), then Bf16Mac: the two exact products of a
//                        pair accumulated in fp32 (odd channel first), or, in the AVX-512 build
//                        on a CPU with AVX512-BF16, vdpbf16ps (sw_isa_avx512.cpp).
// Requires (in the enclosing namespace): struct Simd (8 lanes: half1, bf16_even, bf16_odd,
// bf16_pairs, load_half8, load_bf16_8, transpose8, store_first) and, if SW_HAS_WIDE, struct
// Wide (16 lanes: bf16_even, bf16_odd); with SW_BF16_HARDWARE, bf16hw::dense_rows_lanes and
// bf16hw::available().

#include "sw_product_kernels.h"

namespace {

// fp32 weights and V rows: acc += w * v.
template <class V>
struct FloatMac {
    using Vp = V;
    using value = float;
    using row = float;
    using weight = typename Vp::vec;
    using input = typename Vp::vec;
    static constexpr int columns(int C) { return C; }
    static inline weight broadcast(float v) { return Vp::set1(v); }
    static inline input load(const float* p) { return Vp::load(p); }
    static inline typename Vp::vec mac_loaded(typename Vp::vec acc, const weight& w,
                                              const input& x) {
        return Vp::fmadd(w, x, acc);
    }
    static inline typename Vp::vec mac(typename Vp::vec acc, const weight& w, const float* p) {
        return Vp::fmadd(w, Vp::load(p), acc);
    }
};

// Single bf16 weights (their bits in a uint16) with fp32 tiles: the weight widened exactly to
// fp32, then one fp32 multiply-add (the sparse matrices of bf16 layers).
template <class V>
struct Bf16WeightMac : FloatMac<V> {
    using value = uint16_t;
    static inline typename V::vec broadcast(uint16_t bits) {
        return V::set1(sw_bits_float(static_cast<uint32_t>(bits) << 16));
    }
};

// fp16 weights (their bits in a uint16) widened exactly to fp32 as they are broadcast, then
// one fp32 multiply-add: the fp16 weights of every format.
template <class V>
struct Fp16WeightMac : FloatMac<V> {
    using value = uint16_t;
    static inline typename V::vec broadcast(uint16_t bits) { return V::set1(Simd::half1(bits)); }
};

// bf16 pairs (channel 2j in the low 16 bits, 2j+1 in the high ones) in software: both
// products of bf16 values are exact in fp32, so two multiply-adds, odd channel first, are the
// sum vdpbf16ps defines.
template <class V>
struct Bf16Mac {
    using Vp = V;
    using vec = typename Vp::vec;
    using value = uint32_t;
    using row = uint32_t;
    struct weight {
        vec even, odd;
    };
    struct input {
        vec even, odd;
    };
    static constexpr int columns(int C) { return (C + 1) / 2; }
    static inline weight broadcast(uint32_t pair) {
        return {Vp::set1(sw_bits_float(pair << 16)), Vp::set1(sw_bits_float(pair & 0xffff0000u))};
    }
    static inline input load(const uint32_t* p) { return {Vp::bf16_even(p), Vp::bf16_odd(p)}; }
    static inline vec mac_loaded(vec acc, const weight& w, const input& x) {
        return Vp::fmadd(w.even, x.even, Vp::fmadd(w.odd, x.odd, acc));
    }
    static inline vec mac(vec acc, const weight& w, const uint32_t* p) {
        return mac_loaded(acc, w, load(p));
    }
};

// Rows c of V (floats, c < C) -> rows j of bf16 pairs (rows 2j and 2j + 1; a missing odd row
// reads zero), in place: pair row j occupies fp32 row j, which was read at step j / 2 < j
// (row 0 is read lane group by lane group before it is written). `groups8` groups of 8 tiles.
inline void bf16_pairs_in_place(float* V, int C, int shift, int groups8) {
    uint32_t* out = reinterpret_cast<uint32_t*>(V);
    const int pairs = (C + 1) / 2;
    for (int j = 0; j < pairs; ++j) {
        const float* even = V + (static_cast<int64_t>(2 * j) << shift);
        const float* odd = 2 * j + 1 < C ? V + (static_cast<int64_t>(2 * j + 1) << shift) : nullptr;
        uint32_t* dst = out + (static_cast<int64_t>(j) << shift);
        for (int g = 0; g < groups8; ++g)
            Simd::bf16_pairs(even + 8 * g, odd ? odd + 8 * g : nullptr, dst + 8 * g);
    }
}

// The 8 weights of one block (blocked matrices) as a vector of Simd, per precision: fp32,
// fp16 bits widened exactly (F16C), bf16 bits widened exactly (a shift).
struct BlockFloat {
    using value = float;
    static inline Simd::vec load(const float* p) { return Simd::load(p); }
};
struct BlockFp16 {
    using value = uint16_t;
    static inline Simd::vec load(const uint16_t* p) { return Simd::load_half8(p); }
};
struct BlockBf16 {
    using value = uint16_t;
    static inline Simd::vec load(const uint16_t* p) { return Simd::load_bf16_8(p); }
};

// Fewest tiles at which a 16-lane / an 8-lane plan runs blocked matrices across tiles
// (block_tiles) instead of across output channels (blocked_rows).
constexpr int kBlockTilesWide = 16;
constexpr int kBlockTilesNarrow = 32;

// A blocked matrix's rows with block loader BL: across output channels (blocked_rows), or,
// with enough tiles to fill the plan's vectors, across tiles (blocked_tile_rows).
template <class BL>
inline void blocked_rows_lanes(bool wide, const sw_matrices& w, int p, int chunk,
                               const float* V, int shift, int tiles, int groups8, float* M) {
#if SW_HAS_WIDE
    if (wide && tiles >= kBlockTilesWide)
        return blocked_tile_rows<BL, Wide>(w, p, chunk, V, shift, (groups8 + 1) / 2, M);
#endif
    if (!wide && tiles >= kBlockTilesNarrow)
        return blocked_tile_rows<BL, Simd>(w, p, chunk, V, shift, groups8, M);
    blocked_rows<BL>(w, p, chunk, V, shift, tiles, groups8, M);
}

inline void blocked_rows_precision(bool wide, const sw_matrices& w, int p, int chunk,
                                   const float* V, int shift, int tiles, int groups8, float* M) {
    switch (w.precision) {
        case SW_PRECISION_BF16:
            return blocked_rows_lanes<BlockBf16>(wide, w, p, chunk, V, shift, tiles, groups8, M);
        case SW_PRECISION_FP16:
            return blocked_rows_lanes<BlockFp16>(wide, w, p, chunk, V, shift, tiles, groups8, M);
        default:
            return blocked_rows_lanes<BlockFloat>(wide, w, p, chunk, V, shift, tiles, groups8, M);
    }
}

// The rows of chunk `chunk` of matrix p with Mac over `Vp`'s lanes (nvec vectors).
template <class SparseMac, class DenseMac>
inline void chunk_rows(const sw_matrices& w, int p, int chunk, const float* V, int shift,
                       int nvec, float* M) {
    switch (w.formats[p]) {
        case SW_SPARSE: return sparse_rows<SparseMac>(w, p, chunk, V, shift, nvec, M);
        case SW_DENSE: return dense_rows<DenseMac>(w, p, chunk, V, shift, nvec, M);
        default: return zero_rows<typename SparseMac::Vp>(w, chunk, shift, nvec, M);
    }
}

// chunk_rows with the sparse and dense policies over the plan's lanes (nvec vectors).
template <template <class> class SparseMac, template <class> class DenseMac>
inline void chunk_rows_over(bool wide, const sw_matrices& w, int p, int chunk, const float* V,
                            int shift, int nvec, float* M) {
#if SW_HAS_WIDE
    if (wide) return chunk_rows<SparseMac<Wide>, DenseMac<Wide>>(w, p, chunk, V, shift, nvec, M);
#endif
    (void)wide;
    chunk_rows<SparseMac<Simd>, DenseMac<Simd>>(w, p, chunk, V, shift, nvec, M);
}

// The element-wise rows with the plan's lanes and the weights' precision: `tiles` columns of
// V (groups8 = ceil(tiles / 8) vectors of 8, the lanes past `tiles` being padding). bf16:
// sparse matrices hold single bf16 weights multiplied with the fp32 tiles (Bf16WeightMac: two
// bytes per weight, and no rounding of V); dense ones pairs (Bf16Mac, or vdpbf16ps where the
// CPU has it) with V rounded by bf16_pairs_in_place; blocked ones widen their bf16 blocks.
inline void chunk_rows_lanes(int lanes, const sw_matrices& w, int p, int chunk, const float* V,
                             int shift, int tiles, float* M) {
    const int groups8 = (tiles + 7) / 8;
    const bool wide = SW_HAS_WIDE && lanes == 16;
    if (w.formats[p] == SW_BLOCKED)
        return blocked_rows_precision(wide, w, p, chunk, V, shift, tiles, groups8, M);
    const int nvec = wide ? (groups8 + 1) / 2 : groups8;
    switch (w.precision) {
        case SW_PRECISION_BF16:
#if SW_BF16_HARDWARE
            if (w.formats[p] == SW_DENSE && bf16hw::available())
                return bf16hw::dense_rows_lanes(wide, w, p, chunk, V, shift, nvec, M);
#endif
            return chunk_rows_over<Bf16WeightMac, Bf16Mac>(wide, w, p, chunk, V, shift, nvec, M);
        case SW_PRECISION_FP16:
            return chunk_rows_over<Fp16WeightMac, Fp16WeightMac>(wide, w, p, chunk, V, shift,
                                                                 nvec, M);
        default:
            return chunk_rows_over<FloatMac, FloatMac>(wide, w, p, chunk, V, shift, nvec, M);
    }
}

}  // namespace
