// The element-wise stage shared by conv2d and gemm: M = U V for one packed matrix U (K x C) and
// one output chunk of SW_CHUNK_ROWS rows, vectorised over the columns (tiles) of V.
//
// V: C rows of `row` floats (row = Tb, a power of two: row c starts at V + (c << shift));
// M: the chunk's rows, `row` floats apart; only the first `nvec` vectors of each row are used
// (nvec <= 8: at most 64 tiles).
// Written against a vector policy `Vp` (lanes 8 or 16) with zero, set1, load, store, fmadd.
// Requires (in the enclosing namespace): struct Simd (8 lanes, with half8: 8 fp16 -> fp32),
// and, if SW_HAS_WIDE, struct Wide (16 lanes).
// fp16 weights (w.half) are converted slice by slice / panel by panel into `scratch`
// (scratch_floats(w) floats per thread) and then run through the same fp32 code.

namespace {

inline int imin_p(int a, int b) { return a < b ? a : b; }

// Most vectors of tiles the 4-row slice kernel keeps in registers: 4 rows x NV accumulators
// plus a broadcast and a load must fit the register file (16 or 32 vectors).
template <class Vp>
constexpr int max_slice_vectors() { return Vp::registers >= 32 ? 4 : 3; }

// One sparse slice (4 rows) for NV vectors of tiles: the 4 rows' entries are interleaved, so
// each step issues 4 independent multiply-add chains (enough to hide the FMA latency when a
// row is only one or two vectors long) with no per-row loop, remainder or reduction.
// Entries past a row's length are (column 0, value 0).
template <class Vp, int NV>
inline void sparse_slice(const uint16_t* col, const float* val, int64_t e0, int64_t e1,
                         const float* V, int shift, float* const* out) {
    using vec = typename Vp::vec;
    constexpr int L = Vp::lanes;
    vec acc[SW_SLICE_ROWS][NV];
#pragma GCC unroll 4
    for (int r = 0; r < SW_SLICE_ROWS; ++r)
#pragma GCC unroll 4
        for (int q = 0; q < NV; ++q) acc[r][q] = Vp::zero();
    for (int64_t e = e0; e < e1; e += SW_SLICE_ROWS) {
#pragma GCC unroll 4
        for (int r = 0; r < SW_SLICE_ROWS; ++r) {
            const float* v = V + (static_cast<uint32_t>(col[e + r]) << shift);
            const vec w = Vp::set1(val[e + r]);
#pragma GCC unroll 4
            for (int q = 0; q < NV; ++q) acc[r][q] = Vp::fmadd(w, Vp::load(v + q * L), acc[r][q]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < SW_SLICE_ROWS; ++r) {
        if (!out[r]) continue;
#pragma GCC unroll 4
        for (int q = 0; q < NV; ++q) Vp::store(out[r] + q * L, acc[r][q]);
    }
}

// Long rows (NV >= 4 vectors of tiles): one row (slice lane r) at a time, its NV accumulators
// being independent chains already; the entries are read with a stride of 4.
template <class Vp, int NV>
inline void sparse_lane(const uint16_t* col, const float* val, int64_t e0, int64_t e1,
                        const float* V, int shift, float* out) {
    using vec = typename Vp::vec;
    constexpr int L = Vp::lanes;
    vec acc[NV];
#pragma GCC unroll 8
    for (int q = 0; q < NV; ++q) acc[q] = Vp::zero();
    for (int64_t e = e0; e < e1; e += SW_SLICE_ROWS) {
        const float* v = V + (static_cast<uint32_t>(col[e]) << shift);
        const vec w = Vp::set1(val[e]);
#pragma GCC unroll 8
        for (int q = 0; q < NV; ++q) acc[q] = Vp::fmadd(w, Vp::load(v + q * L), acc[q]);
    }
#pragma GCC unroll 8
    for (int q = 0; q < NV; ++q) Vp::store(out + q * L, acc[q]);
}

template <class Vp, int NV>
void sparse_lanes(const uint16_t* col, const float* val, int64_t e0, int64_t e1,
                  const float* V, int shift, float* const* out) {
    for (int r = 0; r < SW_SLICE_ROWS; ++r)
        if (out[r]) sparse_lane<Vp, NV>(col, val, e0 + r, e1, V, shift, out[r]);
}

template <class Vp>
inline void sparse_slice_any(const uint16_t* col, const float* val, int64_t e0, int64_t e1,
                             const float* V, int shift, int nvec, float* const* out) {
    switch (nvec) {
        case 1: return sparse_slice<Vp, 1>(col, val, e0, e1, V, shift, out);
        case 2: return sparse_slice<Vp, 2>(col, val, e0, e1, V, shift, out);
        case 3:
            if constexpr (max_slice_vectors<Vp>() >= 3)
                return sparse_slice<Vp, 3>(col, val, e0, e1, V, shift, out);
            return sparse_lanes<Vp, 3>(col, val, e0, e1, V, shift, out);
        case 4:
            if constexpr (max_slice_vectors<Vp>() >= 4)
                return sparse_slice<Vp, 4>(col, val, e0, e1, V, shift, out);
            return sparse_lanes<Vp, 4>(col, val, e0, e1, V, shift, out);
        case 5: return sparse_lanes<Vp, 5>(col, val, e0, e1, V, shift, out);
        case 6: return sparse_lanes<Vp, 6>(col, val, e0, e1, V, shift, out);
        case 7: return sparse_lanes<Vp, 7>(col, val, e0, e1, V, shift, out);
        default: return sparse_lanes<Vp, 8>(col, val, e0, e1, V, shift, out);
    }
}

// One dense panel (6 output channels from row k0 of the chunk) times NQ vectors from q0.
template <class Vp, int NQ>
inline void dense_panel(const float* U, const float* V, int64_t row, float* M, int C, int q0,
                        int rows) {
    using vec = typename Vp::vec;
    constexpr int L = Vp::lanes;
    vec acc[SW_DENSE_ROWS][NQ];
#pragma GCC unroll 8
    for (int r = 0; r < SW_DENSE_ROWS; ++r)
#pragma GCC unroll 4
        for (int q = 0; q < NQ; ++q) acc[r][q] = Vp::zero();
    const float* v = V + q0 * L;
    for (int c = 0; c < C; ++c, v += row, U += SW_DENSE_ROWS) {
        vec in[NQ];
#pragma GCC unroll 4
        for (int q = 0; q < NQ; ++q) in[q] = Vp::load(v + q * L);
#pragma GCC unroll 8
        for (int r = 0; r < SW_DENSE_ROWS; ++r) {
            const vec w = Vp::set1(U[r]);
#pragma GCC unroll 4
            for (int q = 0; q < NQ; ++q) acc[r][q] = Vp::fmadd(w, in[q], acc[r][q]);
        }
    }
    for (int r = 0; r < rows; ++r)
#pragma GCC unroll 4
        for (int q = 0; q < NQ; ++q) Vp::store(M + r * row + (q0 + q) * L, acc[r][q]);
}

// fp16 bits -> float, 8 at a time (count floats written, a multiple of 8 covering n).
inline void halves_to_floats(const uint16_t* src, int64_t n, float* dst) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) Simd::half8(src + i, dst + i);
    if (i < n) {
        uint16_t tail[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (int64_t j = i; j < n; ++j) tail[j - i] = src[j];
        Simd::half8(tail, dst + i);
    }
}

// M rows [k0, k1) of matrix p (chunk rows start at M), from V. nvec vectors of Vp::lanes.
template <class Vp>
void chunk_rows(const sw_matrices& w, int p, int chunk, const float* V, int shift, int nvec,
                float* M, float* scratch) {
    constexpr int L = Vp::lanes;
    const int64_t row = int64_t{1} << shift;
    const int k0 = chunk * SW_CHUNK_ROWS;
    const int k1 = imin_p(w.K, k0 + SW_CHUNK_ROWS);
    switch (w.formats[p]) {
        case SW_SPARSE: {
            const int S = (w.K + SW_SLICE_ROWS - 1) / SW_SLICE_ROWS;
            const int32_t* ptr = w.slice_ptr + static_cast<int64_t>(p) * (S + 1);
            const int32_t* rows = w.slice_rows + static_cast<int64_t>(p) * S * SW_SLICE_ROWS;
            const int s0 = chunk * (SW_CHUNK_ROWS / SW_SLICE_ROWS);
            const int s1 = imin_p(S, s0 + SW_CHUNK_ROWS / SW_SLICE_ROWS);
            for (int s = s0; s < s1; ++s) {
                float* out[SW_SLICE_ROWS];
                for (int r = 0; r < SW_SLICE_ROWS; ++r) {
                    const int k = rows[s * SW_SLICE_ROWS + r];
                    out[r] = k >= k0 && k < k1 ? M + (k - k0) * row : nullptr;
                }
                const float* val = static_cast<const float*>(w.val) + ptr[s];
                if (w.half) {
                    halves_to_floats(static_cast<const uint16_t*>(w.val) + ptr[s],
                                     ptr[s + 1] - ptr[s], scratch);
                    val = scratch;
                }
                sparse_slice_any<Vp>(w.col + ptr[s], val, 0, ptr[s + 1] - ptr[s], V, shift,
                                     nvec, out);
            }
            break;
        }
        case SW_DENSE: {
            const int64_t panels = (w.K + SW_DENSE_ROWS - 1) / SW_DENSE_ROWS;
            const int64_t first = (static_cast<int64_t>(w.dense_index[p]) * panels) * w.C *
                                  SW_DENSE_ROWS;
            for (int k = k0; k < k1; k += SW_DENSE_ROWS) {
                const int64_t at = first + static_cast<int64_t>(k / SW_DENSE_ROWS) * w.C *
                                               SW_DENSE_ROWS;
                const float* panel = static_cast<const float*>(w.dense) + at;
                if (w.half) {
                    halves_to_floats(static_cast<const uint16_t*>(w.dense) + at,
                                     int64_t{w.C} * SW_DENSE_ROWS, scratch);
                    panel = scratch;
                }
                const int rows = imin_p(SW_DENSE_ROWS, k1 - k);
                float* Mk = M + (k - k0) * row;
                int q0 = 0;
                for (; q0 + 2 <= nvec; q0 += 2) dense_panel<Vp, 2>(panel, V, row, Mk, w.C, q0, rows);
                if (q0 < nvec) dense_panel<Vp, 1>(panel, V, row, Mk, w.C, q0, rows);
            }
            break;
        }
        default:
            for (int k = k0; k < k1; ++k)
                for (int q = 0; q < nvec; ++q) Vp::store(M + (k - k0) * row + q * L, Vp::zero());
            break;
    }
}

// chunk_rows with the plan's lanes: `groups8` vectors of 8 tiles.
inline void chunk_rows_lanes(int lanes, const sw_matrices& w, int p, int chunk, const float* V,
                             int shift, int groups8, float* M, float* scratch) {
#if SW_HAS_WIDE
    if (lanes == 16) {
        chunk_rows<Wide>(w, p, chunk, V, shift, (groups8 + 1) / 2, M, scratch);
        return;
    }
#endif
    (void)lanes;
    chunk_rows<Simd>(w, p, chunk, V, shift, groups8, M, scratch);
}

}  // namespace
