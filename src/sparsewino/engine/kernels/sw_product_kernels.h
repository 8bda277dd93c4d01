// The kernels of the element-wise stage, M = U V for one packed matrix U (K x C) and one
// output chunk of SW_CHUNK_ROWS rows, vectorised over the columns (tiles) of V, written once
// against a multiply-add policy `Mac` (sw_product_impl.h) that says what one weight entry
// and one vector of V rows are and how they multiply:
//   Mac::Vp                the vector policy (lanes 8 or 16; zero, store, registers);
//   Mac::value, Mac::row   a weight entry's type and V's element type;
//   Mac::weight, input     a broadcast weight entry and a loaded vector of V;
//   broadcast, load, mac_loaded(acc, weight, input), mac(acc, weight, row pointer);
//   columns(C)             V rows (C, or pairs of channels).
//
// V: rows of `row` elements (row = Tb, a power of two: row c starts at V + (c << shift));
// M: the chunk's rows, `row` floats apart; only the first `nvec` vectors of each row are used
// (nvec <= 8: at most 64 tiles). Blocked matrices (blocked_rows) vectorise across output
// channels instead, with the 8-lane policy `Simd` of the build.
// Included once per build by sw_product_impl.h; the AVX-512 build includes it a second time
// under the AVX512-BF16 target for its hardware bf16 products.

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
template <class Mac, int NV>
inline void sparse_slice(const uint16_t* col, const typename Mac::value* val, int64_t e0,
                         int64_t e1, const typename Mac::row* V, int shift, float* const* out) {
    using Vp = typename Mac::Vp;
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
            const typename Mac::row* v = V + (static_cast<uint32_t>(col[e + r]) << shift);
            const typename Mac::weight w = Mac::broadcast(val[e + r]);
#pragma GCC unroll 4
            for (int q = 0; q < NV; ++q) acc[r][q] = Mac::mac(acc[r][q], w, v + q * L);
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
template <class Mac, int NV>
inline void sparse_lane(const uint16_t* col, const typename Mac::value* val, int64_t e0,
                        int64_t e1, const typename Mac::row* V, int shift, float* out) {
    using Vp = typename Mac::Vp;
    using vec = typename Vp::vec;
    constexpr int L = Vp::lanes;
    vec acc[NV];
#pragma GCC unroll 8
    for (int q = 0; q < NV; ++q) acc[q] = Vp::zero();
    for (int64_t e = e0; e < e1; e += SW_SLICE_ROWS) {
        const typename Mac::row* v = V + (static_cast<uint32_t>(col[e]) << shift);
        const typename Mac::weight w = Mac::broadcast(val[e]);
#pragma GCC unroll 8
        for (int q = 0; q < NV; ++q) acc[q] = Mac::mac(acc[q], w, v + q * L);
    }
#pragma GCC unroll 8
    for (int q = 0; q < NV; ++q) Vp::store(out + q * L, acc[q]);
}

template <class Mac, int NV>
void sparse_lanes(const uint16_t* col, const typename Mac::value* val, int64_t e0, int64_t e1,
                  const typename Mac::row* V, int shift, float* const* out) {
    for (int r = 0; r < SW_SLICE_ROWS; ++r)
        if (out[r]) sparse_lane<Mac, NV>(col, val, e0 + r, e1, V, shift, out[r]);
}

template <class Mac>
inline void sparse_slice_any(const uint16_t* col, const typename Mac::value* val, int64_t e0,
                             int64_t e1, const typename Mac::row* V, int shift, int nvec,
                             float* const* out) {
    using Vp = typename Mac::Vp;
    switch (nvec) {
        case 1: return sparse_slice<Mac, 1>(col, val, e0, e1, V, shift, out);
        case 2: return sparse_slice<Mac, 2>(col, val, e0, e1, V, shift, out);
        case 3:
            if constexpr (max_slice_vectors<Vp>() >= 3)
                return sparse_slice<Mac, 3>(col, val, e0, e1, V, shift, out);
            return sparse_lanes<Mac, 3>(col, val, e0, e1, V, shift, out);
        case 4:
            if constexpr (max_slice_vectors<Vp>() >= 4)
                return sparse_slice<Mac, 4>(col, val, e0, e1, V, shift, out);
            return sparse_lanes<Mac, 4>(col, val, e0, e1, V, shift, out);
        case 5: return sparse_lanes<Mac, 5>(col, val, e0, e1, V, shift, out);
        case 6: return sparse_lanes<Mac, 6>(col, val, e0, e1, V, shift, out);
        case 7: return sparse_lanes<Mac, 7>(col, val, e0, e1, V, shift, out);
        default: return sparse_lanes<Mac, 8>(col, val, e0, e1, V, shift, out);
    }
}

// One dense panel (6 output channels from row k0 of the chunk) times NQ vectors from q0.
template <class Mac, int NQ>
inline void dense_panel(const typename Mac::value* U, const typename Mac::row* V, int64_t row,
                        float* M, int C, int q0, int rows) {
    using Vp = typename Mac::Vp;
    using vec = typename Vp::vec;
    constexpr int L = Vp::lanes;
    vec acc[SW_DENSE_ROWS][NQ];
#pragma GCC unroll 8
    for (int r = 0; r < SW_DENSE_ROWS; ++r)
#pragma GCC unroll 4
        for (int q = 0; q < NQ; ++q) acc[r][q] = Vp::zero();
    const typename Mac::row* v = V + q0 * L;
    for (int c = 0; c < C; ++c, v += row, U += SW_DENSE_ROWS) {
        typename Mac::input in[NQ];
#pragma GCC unroll 4
        for (int q = 0; q < NQ; ++q) in[q] = Mac::load(v + q * L);
#pragma GCC unroll 8
        for (int r = 0; r < SW_DENSE_ROWS; ++r) {
            const typename Mac::weight w = Mac::broadcast(U[r]);
#pragma GCC unroll 4
            for (int q = 0; q < NQ; ++q) acc[r][q] = Mac::mac_loaded(acc[r][q], w, in[q]);
        }
    }
    for (int r = 0; r < rows; ++r)
#pragma GCC unroll 4
        for (int q = 0; q < NQ; ++q) Vp::store(M + r * row + (q0 + q) * L, acc[r][q]);
}

// The output rows [k0, k1) of chunk `chunk` and the distance between M's rows (Tb floats).
struct ChunkRows {
    int64_t row;
    int k0, k1;
    ChunkRows(const sw_matrices& w, int chunk, int shift)
        : row(int64_t{1} << shift), k0(chunk * SW_CHUNK_ROWS),
          k1(imin_p(w.K, chunk * SW_CHUNK_ROWS + SW_CHUNK_ROWS)) {}
};

// Rows [k0, k1) of chunk `chunk` of sparse matrix p (chunk rows start at M), from V; nvec
// vectors of Mac's lanes.
template <class Mac>
void sparse_rows(const sw_matrices& w, int p, int chunk, const float* V_floats, int shift,
                 int nvec, float* M) {
    using value = typename Mac::value;
    const auto* V = reinterpret_cast<const typename Mac::row*>(V_floats);
    const ChunkRows c(w, chunk, shift);
    const int S = (w.K + SW_SLICE_ROWS - 1) / SW_SLICE_ROWS;
    const int32_t* ptr = w.slice_ptr + static_cast<int64_t>(p) * (S + 1);
    const int32_t* rows = w.slice_rows + static_cast<int64_t>(p) * S * SW_SLICE_ROWS;
    const int s0 = chunk * (SW_CHUNK_ROWS / SW_SLICE_ROWS);
    const int s1 = imin_p(S, s0 + SW_CHUNK_ROWS / SW_SLICE_ROWS);
    for (int s = s0; s < s1; ++s) {
        float* out[SW_SLICE_ROWS];
        for (int r = 0; r < SW_SLICE_ROWS; ++r) {
            const int k = rows[s * SW_SLICE_ROWS + r];
            out[r] = k >= c.k0 && k < c.k1 ? M + (k - c.k0) * c.row : nullptr;
        }
        const value* val = static_cast<const value*>(w.val) + ptr[s];
        sparse_slice_any<Mac>(w.col + ptr[s], val, 0, ptr[s + 1] - ptr[s], V, shift, nvec, out);
    }
}

// The same for dense matrix p (panels of SW_DENSE_ROWS rows).
template <class Mac>
void dense_rows(const sw_matrices& w, int p, int chunk, const float* V_floats, int shift,
                int nvec, float* M) {
    using value = typename Mac::value;
    const auto* V = reinterpret_cast<const typename Mac::row*>(V_floats);
    const ChunkRows c(w, chunk, shift);
    const int64_t panels = (w.K + SW_DENSE_ROWS - 1) / SW_DENSE_ROWS;
    const int C = Mac::columns(w.C);
    const int64_t first = (static_cast<int64_t>(w.dense_index[p]) * panels) * C * SW_DENSE_ROWS;
    for (int k = c.k0; k < c.k1; k += SW_DENSE_ROWS) {
        const int64_t at = first + static_cast<int64_t>(k / SW_DENSE_ROWS) * C * SW_DENSE_ROWS;
        const value* panel = static_cast<const value*>(w.dense) + at;
        const int rows = imin_p(SW_DENSE_ROWS, c.k1 - k);
        float* Mk = M + (k - c.k0) * c.row;
        int q0 = 0;
        for (; q0 + 2 <= nvec; q0 += 2) dense_panel<Mac, 2>(panel, V, c.row, Mk, C, q0, rows);
        if (q0 < nvec) dense_panel<Mac, 1>(panel, V, c.row, Mk, C, q0, rows);
    }
}

// One pass of block row entries [e0, e1) over tiles [t0, t0 + TT): acc[t] holds the block's 8
// output channels of tile t0 + t (vectorised across output channels, so a pass does TT
// multiply-adds of 8 useful lanes per block whatever the number of tiles), then an 8x8
// transpose gives each channel's TT tiles, stored to its row of M (rows < `rows` only).
template <class BL, int TT>
inline void block_pass(const uint16_t* col, const typename BL::value* val, int64_t e0,
                       int64_t e1, const float* V, int shift, int t0, float* M, int64_t row,
                       int rows) {
    using vec = typename Simd::vec;
    vec acc[8];
#pragma GCC unroll 8
    for (int t = 0; t < 8; ++t) acc[t] = Simd::zero();
    for (int64_t e = e0; e < e1; ++e) {
        const vec u = BL::load(val + e * SW_BLOCK_ROWS);
        const float* v = V + (static_cast<int64_t>(col[e]) << shift) + t0;
#pragma GCC unroll 8
        for (int t = 0; t < TT; ++t) acc[t] = Simd::fmadd(u, Simd::set1(v[t]), acc[t]);
    }
    Simd::transpose8(acc);                           // acc[l] = row l's tiles t0 .. t0+TT-1
    for (int l = 0; l < rows; ++l) {
        if constexpr (TT == 8)
            Simd::store(M + l * row + t0, acc[l]);
        else
            Simd::store_first(M + l * row + t0, acc[l], TT);
    }
}

// Calls body(e0, e1, rows, Mk) for each block row of chunk `chunk` of blocked matrix p: its
// entries [e0, e1), its output channels inside the chunk (<= 8) and its first row of M.
template <class Body>
inline void each_block_row(const sw_matrices& w, int p, int chunk, int shift, float* M,
                           Body&& body) {
    const ChunkRows c(w, chunk, shift);
    const int B = (w.K + SW_BLOCK_ROWS - 1) / SW_BLOCK_ROWS;
    const int32_t* ptr = w.block_ptr + static_cast<int64_t>(p) * (B + 1);
    for (int k = c.k0; k < c.k1; k += SW_BLOCK_ROWS) {
        const int b = k / SW_BLOCK_ROWS;
        body(int64_t{ptr[b]}, int64_t{ptr[b + 1]}, imin_p(SW_BLOCK_ROWS, c.k1 - k),
             M + (k - c.k0) * c.row);
    }
}

// Rows [k0, k1) of chunk `chunk` of blocked matrix p: block rows of 8 output channels (a chunk
// of 24 holds 3), `tiles` columns of V computed in passes of 8, 4, 2, 1 tiles; M's columns
// from `tiles` up to groups8 * 8 (lanes without a tile) are zeroed.
template <class BL>
void blocked_rows(const sw_matrices& w, int p, int chunk, const float* V, int shift, int tiles,
                  int groups8, float* M) {
    const int64_t row = int64_t{1} << shift;
    const auto* val = static_cast<const typename BL::value*>(w.block_val);
    each_block_row(w, p, chunk, shift, M, [&](int64_t e0, int64_t e1, int rows, float* Mk) {
        int t0 = 0;
        for (; t0 + 8 <= tiles; t0 += 8)
            block_pass<BL, 8>(w.block_col, val, e0, e1, V, shift, t0, Mk, row, rows);
        if (tiles - t0 >= 4) {
            block_pass<BL, 4>(w.block_col, val, e0, e1, V, shift, t0, Mk, row, rows);
            t0 += 4;
        }
        if (tiles - t0 >= 2) {
            block_pass<BL, 2>(w.block_col, val, e0, e1, V, shift, t0, Mk, row, rows);
            t0 += 2;
        }
        if (tiles - t0 >= 1) {
            block_pass<BL, 1>(w.block_col, val, e0, e1, V, shift, t0, Mk, row, rows);
            t0 += 1;
        }
        for (int l = 0; l < rows; ++l)
            for (int t = t0; t < groups8 * 8; ++t) Mk[l * row + t] = 0.0f;
    });
}

// Blocked matrix p vectorised over tiles instead (many tiles on 16 lanes): per block, NQ vectors
// of V's row are loaded once and multiplied by each of the block's 8 weights into 8 x NQ
// accumulators, so every multiply-add is a full vector of tiles and each V load serves 8 rows.
// fp32 weights are broadcast from memory; fp16 / bf16 blocks are widened 8 at a time (BL::load)
// into a small buffer first.
template <class BL, class Vp, int NQ>
inline void block_tiles(const uint16_t* col, const typename BL::value* val, int64_t e0,
                        int64_t e1, const float* V, int shift, int q0, float* M, int64_t row,
                        int rows) {
    using vec = typename Vp::vec;
    constexpr int L = Vp::lanes;
    constexpr bool floats = sizeof(typename BL::value) == sizeof(float);
    vec acc[SW_BLOCK_ROWS][NQ];
#pragma GCC unroll 8
    for (int l = 0; l < SW_BLOCK_ROWS; ++l)
#pragma GCC unroll 4
        for (int q = 0; q < NQ; ++q) acc[l][q] = Vp::zero();
    alignas(32) float widened[SW_BLOCK_ROWS];
    for (int64_t e = e0; e < e1; ++e) {
        const float* v = V + (static_cast<int64_t>(col[e]) << shift) + q0 * L;
        vec in[NQ];
#pragma GCC unroll 4
        for (int q = 0; q < NQ; ++q) in[q] = Vp::load(v + q * L);
        const float* u;
        if constexpr (floats) {
            u = reinterpret_cast<const float*>(val + e * SW_BLOCK_ROWS);
        } else {
            Simd::store(widened, BL::load(val + e * SW_BLOCK_ROWS));
            u = widened;
        }
#pragma GCC unroll 8
        for (int l = 0; l < SW_BLOCK_ROWS; ++l) {
            const vec w = Vp::set1(u[l]);
#pragma GCC unroll 4
            for (int q = 0; q < NQ; ++q) acc[l][q] = Vp::fmadd(w, in[q], acc[l][q]);
        }
    }
    for (int l = 0; l < rows; ++l)
#pragma GCC unroll 4
        for (int q = 0; q < NQ; ++q) Vp::store(M + l * row + (q0 + q) * L, acc[l][q]);
}

// Rows [k0, k1) of chunk `chunk` of blocked matrix p vectorised over tiles (nvec vectors of
// Vp's lanes: pairs where the register file holds 8 x 2 accumulators, then one).
template <class BL, class Vp>
void blocked_tile_rows(const sw_matrices& w, int p, int chunk, const float* V, int shift,
                       int nvec, float* M) {
    const int64_t row = int64_t{1} << shift;
    const auto* val = static_cast<const typename BL::value*>(w.block_val);
    constexpr int NQ = Vp::registers >= 32 ? 2 : 1;
    each_block_row(w, p, chunk, shift, M, [&](int64_t e0, int64_t e1, int rows, float* Mk) {
        int q0 = 0;
        for (; q0 + NQ <= nvec; q0 += NQ)
            block_tiles<BL, Vp, NQ>(w.block_col, val, e0, e1, V, shift, q0, Mk, row, rows);
        for (; q0 < nvec; ++q0)
            block_tiles<BL, Vp, 1>(w.block_col, val, e0, e1, V, shift, q0, Mk, row, rows);
    });
}

// The rows of an all-zero matrix: zeros (gemm reads them; conv2d/conv3d skip such positions).
template <class Vp>
void zero_rows(const sw_matrices& w, int chunk, int shift, int nvec, float* M) {
    const ChunkRows c(w, chunk, shift);
    for (int k = c.k0; k < c.k1; ++k)
        for (int q = 0; q < nvec; ++q)
            Vp::store(M + (k - c.k0) * c.row + q * Vp::lanes, Vp::zero());
}

}  // namespace
