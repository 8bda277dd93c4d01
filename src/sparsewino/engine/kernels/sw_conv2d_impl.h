// Fused sparse Winograd 2-D convolution: the 2-D geometry (Geometry2d) of the generic
// convolution of sw_winograd_impl.h, written once against a SIMD policy `Simd`.
//
// Included by each sw_isa_*.cpp inside its own namespace, so the builds never share a symbol.
//
// Data layout of one block of Tb tiles (the transforms' vectors hold 8 tiles, or 16 in the
// AVX-512 and portable builds when the plan's transform_lanes is 16):
//   V[p][c][Tb]  transformed input   (p = Winograd position, c = input channel)
//   M[p][k][Tb]  element-wise stage  (k = output channel)
// Stages per block:
//   input transform, per input channel: B^T along H on the block's bands (the n image rows
//     under one tile row, 8 or 16 contiguous columns per vector, masked loads at the image edges,
//     rows outside the image are zero padding), then per 8 tiles: each tile's n-column window,
//     8x8 transpose, B^T along W, optional ReLU;
//   element-wise stage, per position (V[p] stays in L1/L2 while all its output channels are
//     computed): sparse slices x V or dense 6-row panels x V (sw_product_impl.h); all-zero
//     positions are skipped and read as zeros by the output transform;
//   output transform, per 8 tiles and output channel: A^T along H then W, bias, residual,
//     optional ReLU and 2x2 max-pool, transpose back, store the m x m (or pooled) tile
//     clipped at the border.
// Every output element belongs to exactly one tile and every tile to exactly one block, so
// the output is fully written.
//
// ReLU and max-pool propagate NaN like PyTorch (max0 / maxnan).
// Requires before inclusion: <cstdint>, "sw_plan.h" (OpenMP or its stub),
// "sw_product_impl.h", "sw_winograd_impl.h", and in the enclosing namespace a struct Simd with: vec, mask, zero,
// set1, load, store, fmadd, add, sub, maxnan, max0, make_mask(bits), maskload(ptr, mask),
// transpose8(vec[8]), transpose4x8(vec[4], vec[4]), store_first(ptr, vec, count),
// store_half(ptr, vec, half, count), load_first(ptr, count).

namespace {

// Per-call constants.
struct Ctx2 {
    const sw_conv2d_args* a;
    const sw_plan* p;
    int64_t plane_in, plane_out;   // H*W and the output plane (Ho*Wo, or pooled)
    int32_t out_h, out_w, out_m;   // output plane and per-tile output size (pooled if pool)
    bool any_zero;                 // some position is all zero (skipped, read as zeros)
};

// Description of the tiles of the block a slot is working on. The input transform works on
// "bands": the n image rows under one row of tiles (one image, one tile row), restricted to
// the block's tiles in that row.
struct Block2 {
    int64_t first;                 // global index of the first tile
    int count;                     // tiles in this block (<= Tb)
    int groups;                    // ceil(count / 8)
    int bands;                     // bands touched by the block
    int64_t* band_base;            // [bands] offset of the band's image in x (channel 0)
    int32_t* band_y0;              // [bands] first image row (may be < 0: zero padding)
    int32_t* band_x0;              // [bands] image column of the band buffer's first column
    int32_t* band_len;             // [bands] row length of the band buffer (multiple of 8)
    int32_t* band_off;             // [bands] offset of the band in the band buffer
    int32_t* tile_src;             // [Tb] offset of the tile's first column in the band buffer
    int32_t* tile_len;             // [Tb] row length of its band buffer
    int64_t* out_off;              // [Tb] offset of the tile's top-left output (channel 0)
    int32_t* out_rows;             // [Tb] output rows of the tile inside the image
    int32_t* out_cols;             // [Tb] output columns of the tile inside the image
    int32_t* group_full;           // [Tb/8] 1: the 8 tiles' outputs are whole m x m tiles
    float* V;
    float* M;
};

Block2 slot_block2(const Ctx2& cx, float* slot) {
    const sw_plan& p = *cx.p;
    Block2 b;
    b.first = 0;
    b.count = b.groups = b.bands = 0;
    b.V = slot + p.off_v;
    b.M = slot + p.off_m;
    b.band_base = reinterpret_cast<int64_t*>(slot + p.off_band_base);
    int32_t* ints = reinterpret_cast<int32_t*>(slot + p.off_ints);
    b.band_y0 = ints;
    b.band_x0 = ints + p.Tb;
    b.band_len = ints + 2 * p.Tb;
    b.band_off = ints + 3 * p.Tb;
    b.tile_src = ints + 4 * p.Tb;
    b.tile_len = ints + 5 * p.Tb;
    b.out_rows = ints + 6 * p.Tb;
    b.out_cols = ints + 7 * p.Tb;
    b.group_full = ints + 8 * p.Tb;
    b.out_off = reinterpret_cast<int64_t*>(slot + p.off_out_off);
    return b;
}

// lanes: the transforms' tiles per vector (a constant: the band lengths divide by it).
template <int lanes>
void setup_block2(const Ctx2& cx, int64_t block, Block2& b) {
    const sw_conv2d_args& a = *cx.a;
    const int N = a.n;
    const sw_plan& p = *cx.p;
    b.first = block * p.Tb;
    b.count = static_cast<int>(lmin(p.Tb, p.T - b.first));
    b.groups = (b.count + lanes - 1) / lanes;
    b.bands = 0;
    const int64_t per_image = static_cast<int64_t>(p.th) * p.tw;
    int64_t band_key = -1;
    int band_tx0 = 0, offset = 0;
    for (int t = 0; t < b.count; ++t) {
        const int64_t idx = b.first + t;
        const int64_t img = idx / per_image;
        const int64_t rem = idx - img * per_image;
        const int ty = static_cast<int>(rem / p.tw);
        const int tx = static_cast<int>(rem - static_cast<int64_t>(ty) * p.tw);
        const int64_t key = idx / p.tw;                      // (image, tile row)
        if (key != band_key) {                                 // a new band starts here
            if (b.bands > 0) offset += N * b.band_len[b.bands - 1];
            band_key = key;
            band_tx0 = tx;
            b.band_base[b.bands] = img * a.C * cx.plane_in;
            b.band_y0[b.bands] = ty * a.m - a.pad_top;
            b.band_x0[b.bands] = tx * a.m - a.pad_left;
            b.band_off[b.bands] = offset;
            b.band_len[b.bands] = lanes;
            ++b.bands;
        }
        // The tile reads 8 floats (n used) from its first column; the band pass runs `lanes`
        // columns at a time.
        const int start = (tx - band_tx0) * a.m;
        b.band_len[b.bands - 1] = (start + 8 + lanes - 1) / lanes * lanes;
        b.tile_src[t] = start;                                 // + band offset below
        b.tile_len[t] = b.bands - 1;                           // band index for now
        const int oy = ty * cx.out_m, ox = tx * cx.out_m;     // pooled coordinates if pool
        b.out_off[t] = img * a.K * cx.plane_out + static_cast<int64_t>(oy) * cx.out_w + ox;
        b.out_rows[t] = imax(0, imin(cx.out_m, cx.out_h - oy));
        b.out_cols[t] = imax(0, imin(cx.out_m, cx.out_w - ox));
    }
    for (int t = 0; t < b.count; ++t) {
        const int band = b.tile_len[t];
        b.tile_src[t] += b.band_off[band];
        b.tile_len[t] = b.band_len[band];
    }
    for (int t = b.count; t < b.groups * lanes; ++t) {         // lanes without a tile
        b.tile_src[t] = b.tile_src[0];
        b.tile_len[t] = b.tile_len[0];
        b.out_off[t] = 0;
        b.out_rows[t] = b.out_cols[t] = 0;
    }
    for (int g = 0; g < b.groups; ++g) {
        int full = 1;
        for (int t = g * lanes; t < (g + 1) * lanes; ++t)
            if (b.out_rows[t] != cx.out_m || b.out_cols[t] != cx.out_m) full = 0;
        b.group_full[g] = full;
    }
}

// The columns of L = S::lanes tile windows: r[j] = column j (j < 8) over the tiles, from the
// 8 floats at src[t] + aa * len[t] of each tile t (8x8 transposes, 8 tiles at a time).
template <class S>
SW_INLINE void window_columns(const float* const* src, const int64_t* len, int aa,
                              typename S::vec* r) {
    auto columns8 = [&](int t0, vec* out) {
#pragma GCC unroll 8
        for (int t = 0; t < 8; ++t) out[t] = Simd::load(src[t0 + t] + aa * len[t0 + t]);
        Simd::transpose8(out);
    };
    if constexpr (S::lanes == 8) {
        columns8(0, r);
    } else {
        vec lo[8], hi[8];
        columns8(0, lo);
        columns8(8, hi);
#pragma GCC unroll 8
        for (int j = 0; j < 8; ++j) r[j] = S::combine(lo[j], hi[j]);
    }
}

// Input transform of channel c = item for every tile of the block: V[p][c][0 .. groups*L],
// L = S::lanes tiles per vector (8; 16 in the AVX-512 build when the plan's lanes are 16).
// 1. B^T along H on each band, L image columns at a time (contiguous loads, no transposes,
//    the columns shared by neighbouring tiles done once): band[a][x].
// 2. Per group of L tiles: each tile's n-column window of band row a, 8x8 transposes,
//    B^T along W, optional ReLU, store to V.
template <class S, int N, uint64_t NZ, uint64_t ONE, uint64_t NEG>
void input_channel(const Ctx2& cx, const Block2& b, const CoeffsT<S>& k, float* buf,
                   int64_t item) {
    using V = typename S::vec;
    constexpr int L = S::lanes;
    const sw_conv2d_args& a = *cx.a;
    const int c = static_cast<int>(item);
    const int64_t w = a.W;
    for (int bi = 0; bi < b.bands; ++bi) {
        const float* xc = a.x + b.band_base[bi] + static_cast<int64_t>(c) * cx.plane_in;
        const int y0 = b.band_y0[bi], x0 = b.band_x0[bi], len = b.band_len[bi];
        float* out = buf + b.band_off[bi];
        if (y0 >= 0 && y0 + N <= a.H) {                   // all n rows inside the image
            const float* row = xc + static_cast<int64_t>(y0) * w;
            for (int q = 0; q < len; q += L) {
                const int x = x0 + q;
                V in[N], res[N];
                if (x >= 0 && x + L <= a.W) {
#pragma GCC unroll 8
                    for (int i = 0; i < N; ++i) in[i] = S::load(row + i * w + x);
                } else {
                    const auto mk = S::make_mask(column_bits(x, a.W, L));
#pragma GCC unroll 8
                    for (int i = 0; i < N; ++i) in[i] = S::maskload(row + i * w + x, mk);
                }
                apply_matrix<N, N, NZ, ONE, NEG, S>(k.bt, in, res);
#pragma GCC unroll 8
                for (int aa = 0; aa < N; ++aa) S::store(out + aa * len + q, res[aa]);
            }
            continue;
        }
        // Top or bottom band: rows outside the image are zero padding.
        const float* row[N];
        bool inside[N];
        for (int i = 0; i < N; ++i) {
            inside[i] = y0 + i >= 0 && y0 + i < a.H;
            row[i] = xc + (inside[i] ? y0 + i : 0) * w;
        }
        for (int q = 0; q < len; q += L) {
            const auto mk = S::make_mask(column_bits(x0 + q, a.W, L));
            V in[N], res[N];
            for (int i = 0; i < N; ++i)
                in[i] = inside[i] ? S::maskload(row[i] + x0 + q, mk) : S::zero();
            apply_matrix<N, N, NZ, ONE, NEG, S>(k.bt, in, res);
#pragma GCC unroll 8
            for (int aa = 0; aa < N; ++aa) S::store(out + aa * len + q, res[aa]);
        }
    }
    const int64_t pstride = cx.p->v_pstride;
    const bool relu = a.relu_input != 0;
    for (int grp = 0; grp < b.groups; ++grp) {
        const float* src[L];
        int64_t len[L];
#pragma GCC unroll 16
        for (int t = 0; t < L; ++t) {
            src[t] = buf + b.tile_src[grp * L + t];
            len[t] = b.tile_len[grp * L + t];
        }
        float* out = b.V + static_cast<int64_t>(c) * cx.p->Tb + grp * L;
#pragma GCC unroll 8
        for (int aa = 0; aa < N; ++aa) {
            V r[8], res[N];
            window_columns<S>(src, len, aa, r);        // r[j] = column j of the L windows
            apply_matrix<N, N, NZ, ONE, NEG, S>(k.bt, r, res);
#pragma GCC unroll 8
            for (int bb = 0; bb < N; ++bb)
                S::store(out + (aa * N + bb) * pstride, relu ? S::max0(res[bb]) : res[bb]);
        }
    }
}

// Row `row` of 8 output tiles, r[j] = column j over the tiles (columns >= the tile width are
// zero), stored at dst[t] + offset, clipped to each tile's rows/cols inside the image.
SW_INLINE void store_rows(vec* r, float* const* dst, const int* rows, const int* cols,
                          int64_t offset, int row, bool narrow) {
    if (narrow) {                                    // at most 4 columns: half transposes
        vec u[4];
        Simd::transpose4x8(r, u);
#pragma GCC unroll 4
        for (int t = 0; t < 4; ++t) {
            if (row < rows[t]) Simd::store_half(dst[t] + offset, u[t], 0, cols[t]);
            if (row < rows[t + 4]) Simd::store_half(dst[t + 4] + offset, u[t], 1, cols[t + 4]);
        }
        return;
    }
    Simd::transpose8(r);
#pragma GCC unroll 8
    for (int t = 0; t < 8; ++t)
        if (row < rows[t]) Simd::store_first(dst[t] + offset, r[t], cols[t]);
}

// Where one output row of a group goes: per tile its destination, rows and columns inside
// the image, and (residual blocks) its residual; whether all of its tiles are whole.
struct RowSink {
    float* const* dst;
    const int* rows;
    const int* cols;
    const float* const* res;                         // null: no residual
    bool full, narrow, relu;                         // relu: after the residual (res only)
    RowSink half(int t0) const {
        return {dst + t0, rows + t0, cols + t0, res ? res + t0 : nullptr, full, narrow, relu};
    }
};

// Output row i (at offset) of 8 tiles, r[j] = column j over the tiles (bias applied; j >= m
// zero): with a residual, added and then ReLU; whole tiles of compile-time width MM stored
// whole, others clipped to the image.
template <int MM>
SW_INLINE void emit_row8(vec* r, const RowSink& s, int64_t offset, int i) {
    if (s.res) {
        Simd::transpose8(r);
#pragma GCC unroll 8
        for (int t = 0; t < 8; ++t) {
            if (i >= s.rows[t]) continue;
            vec v = Simd::add(r[t], Simd::load_first(s.res[t] + offset, s.cols[t]));
            if (s.relu) v = Simd::max0(v);
            Simd::store_first(s.dst[t] + offset, v, s.cols[t]);
        }
    } else if (s.full && MM && MM <= 4) {
        vec u[4];
        Simd::transpose4x8(r, u);                     // u[t]: tile t (low), t + 4 (high)
#pragma GCC unroll 4
        for (int t = 0; t < 4; ++t) {
            Simd::store_half(s.dst[t] + offset, u[t], 0, MM);
            Simd::store_half(s.dst[t + 4] + offset, u[t], 1, MM);
        }
    } else if (s.full && MM) {
        Simd::transpose8(r);                          // r[t] = row i of tile t
#pragma GCC unroll 8
        for (int t = 0; t < 8; ++t) Simd::store_first(s.dst[t] + offset, r[t], MM);
    } else {
        store_rows(r, s.dst, s.rows, s.cols, offset, i, s.narrow);
    }
}

// emit_row8 for the L = S::lanes tiles of a group (16: its two halves of 8).
template <class S, int MM>
SW_INLINE void emit_row(typename S::vec* r, const RowSink& s, int64_t offset, int i) {
    if constexpr (S::lanes == 8) {
        emit_row8<MM>(r, s, offset, i);
    } else {
        vec lo[8], hi[8];
#pragma GCC unroll 8
        for (int j = 0; j < 8; ++j) {
            lo[j] = S::low(r[j]);
            hi[j] = S::high(r[j]);
        }
        emit_row8<MM>(lo, s, offset, i);
        emit_row8<MM>(hi, s.half(8), offset, i);
    }
}

// Output transform of L = S::lanes tiles (group grp) of output channel kk, written into y.
// MM: the output tile m when known at compile time (with A^T's pattern), 0 to read m from
// the arguments and treat A^T as dense.
template <class S, int N, int MM, uint64_t NZ, uint64_t ONE, uint64_t NEG>
void output_group(const Ctx2& cx, const Block2& b, const CoeffsT<S>& k, int grp, int kk) {
    using V = typename S::vec;
    constexpr int L = S::lanes;
    const sw_conv2d_args& a = *cx.a;
    constexpr int R = MM ? MM : N - 1;               // rows computed (m <= n - 1)
    const int m = MM ? MM : imin(a.m, N - 1);
    const int64_t pstride = cx.p->m_pstride;
    const float* in = b.M + static_cast<int64_t>(kk) * cx.p->Tb + grp * L;
    const bool any_zero = cx.any_zero;
    V z[N][R];                                       // A^T applied along H: [b][i]
#pragma GCC unroll 8
    for (int bb = 0; bb < N; ++bb) {
        V col[N];
#pragma GCC unroll 8
        for (int aa = 0; aa < N; ++aa) {
            const int pos = aa * N + bb;
            col[aa] = any_zero && position_is_zero(a.w, pos) ? S::zero()
                                                             : S::load(in + pos * pstride);
        }
        apply_matrix<R, N, NZ, ONE, NEG, S>(k.at, col, z[bb]);
    }
    const V bias = S::set1(a.bias ? a.bias[kk] : 0.0f);
    const bool relu = a.relu_output != 0;
    // Local copies: stores to y must not force reloads of the block description.
    float* yk = a.y + static_cast<int64_t>(kk) * cx.plane_out;
    const int64_t wo = cx.out_w;
    float* dst[L];
    const float* res[L];
    int rows[L], cols[L];
    const float* rk = a.residual ? a.residual + static_cast<int64_t>(kk) * cx.plane_out : nullptr;
#pragma GCC unroll 16
    for (int t = 0; t < L; ++t) {
        dst[t] = yk + b.out_off[grp * L + t];
        rows[t] = b.out_rows[grp * L + t];
        cols[t] = b.out_cols[grp * L + t];
    }
    if (rk)
        for (int t = 0; t < L; ++t) res[t] = rk + b.out_off[grp * L + t];
    const bool full = b.group_full[grp] != 0;
    if (a.pool) {
        // Fused 2x2 max-pool: rows 2q and 2q+1 of the tile give pooled row q. Max commutes
        // with the per-channel bias and ReLU, so they are applied after pooling.
        const int pm = m / 2;
        const RowSink sink{dst, rows, cols, nullptr, false, pm <= 4, false};
#pragma GCC unroll 4
        for (int q = 0; q < R / 2; ++q) {
            if (q >= pm) break;
            V zi[N], r0[8], r1[8], r[8];
#pragma GCC unroll 8
            for (int bb = 0; bb < N; ++bb) zi[bb] = z[bb][2 * q];
            apply_matrix<R, N, NZ, ONE, NEG, S>(k.at, zi, r0);
#pragma GCC unroll 8
            for (int bb = 0; bb < N; ++bb) zi[bb] = z[bb][2 * q + 1];
            apply_matrix<R, N, NZ, ONE, NEG, S>(k.at, zi, r1);
#pragma GCC unroll 8
            for (int j = 0; j < 8; ++j) {
                if (2 * j + 1 < R && j < pm) {
                    const V v = S::maxnan(S::maxnan(r0[2 * j], r0[2 * j + 1]),
                                          S::maxnan(r1[2 * j], r1[2 * j + 1]));
                    r[j] = relu ? S::max0(S::add(v, bias)) : S::add(v, bias);
                } else {
                    r[j] = S::zero();
                }
            }
            emit_row<S, 0>(r, sink, q * wo, q);
        }
        return;
    }
    // y = [relu](conv + bias [+ residual]); with a residual the ReLU follows the addition.
    const RowSink sink{dst, rows, cols, rk ? res : nullptr, full, m <= 4, relu};
    const bool relu_here = relu && !rk;
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
        if (i >= m) break;
        V zi[N], r[8];
#pragma GCC unroll 8
        for (int bb = 0; bb < N; ++bb) zi[bb] = z[bb][i];
        apply_matrix<R, N, NZ, ONE, NEG, S>(k.at, zi, r);    // r[j] = Y[i][j], j < m
#pragma GCC unroll 8
        for (int j = 0; j < 8; ++j) {
            if (j >= R || j >= m)
                r[j] = S::zero();
            else
                r[j] = relu_here ? S::max0(S::add(r[j], bias)) : S::add(r[j], bias);
        }
        emit_row<S, MM>(r, sink, i * wo, i);
    }
}

// The 2-D geometry of the generic convolution (sw_winograd_impl.h), its transforms on the
// vector policy S (S::lanes tiles per vector).
template <class S>
struct Geometry2d {
    using Args = sw_conv2d_args;
    using Ctx = Ctx2;
    using Block = Block2;
    using Coeffs = CoeffsT<S>;
    static constexpr int lanes = S::lanes;
    static constexpr bool specialises(int) { return true; }
    static Block slot_block(const Ctx& cx, float* slot) { return slot_block2(cx, slot); }
    static void setup_block(const Ctx& cx, int64_t block, Block& b) {
        setup_block2<lanes>(cx, block, b);
    }
    // One input item is one channel of every tile of the block (through the band buffer).
    static int64_t input_items(const Ctx& cx, const Block&) { return cx.a->C; }
    template <int N, uint64_t NZ, uint64_t ONE, uint64_t NEG>
    static constexpr auto input = &input_channel<S, N, NZ, ONE, NEG>;
    template <int N, int MM, uint64_t NZ, uint64_t ONE, uint64_t NEG>
    static constexpr auto output = &output_group<S, N, MM, NZ, ONE, NEG>;
};

}  // namespace

int32_t conv2d_forward(const sw_conv2d_args* args, const sw_plan* plan) {
    Ctx2 cx;
    cx.a = args;
    cx.p = plan;
    cx.plane_in = static_cast<int64_t>(args->H) * args->W;
    const int pool = args->pool ? args->pool : 1;
    cx.out_h = args->Ho / pool;
    cx.out_w = args->Wo / pool;
    cx.out_m = args->m / pool;
    cx.plane_out = static_cast<int64_t>(cx.out_h) * cx.out_w;
    cx.any_zero = false;
    for (int pos = 0; pos < plan->P; ++pos) cx.any_zero |= position_is_zero(args->w, pos);
#if SW_HAS_WIDE
    // 16 tiles per vector in the transforms when the plan says so (then Tb % 16 == 0).
    if (plan->transform_lanes == 16) return run_winograd<Geometry2d<Wide>>(cx);
#endif
    return run_winograd<Geometry2d<Simd>>(cx);
}
