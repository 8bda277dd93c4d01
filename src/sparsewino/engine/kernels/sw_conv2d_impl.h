// Fused sparse Winograd 2-D convolution, written once against a SIMD policy `Simd`.
//
// Included by sw_conv2d_avx2.cpp (AVX2+FMA intrinsics) and sw_conv2d_portable.cpp (plain C++),
// each inside its own namespace, so the two builds never share a symbol.
//
// Data layout of one block of Tb tiles (the transforms' vectors always hold 8 tiles):
//   V[p][c][Tb]  transformed input   (p = Winograd position, c = input channel)
//   M[p][k][Tb]  element-wise stage  (k = output channel)
// Stages per block:
//   input transform, per input channel: B^T along H on the block's bands (the n image rows
//     under one tile row, 8 contiguous columns per vector, masked loads at the image edges,
//     rows outside the image are zero padding), then per 8 tiles: each tile's n-column window,
//     8x8 transpose, B^T along W, optional ReLU;
//   element-wise stage, per position (V[p] stays in L1/L2 while all its output channels are
//     computed): sparse slices x V, dense 6-row panels x V, or zeros (sw_product_impl.h);
//   output transform, per 8 tiles and output channel: A^T along H then W, bias, residual,
//     optional ReLU and 2x2 max-pool, transpose back, store the m x m (or pooled) tile
//     clipped at the border.
// Every output element belongs to exactly one tile and every tile to exactly one block, so
// the output is fully written.
//
// SW_SPECIALISE_PATTERNS (0/1) says whether to compile the pattern-specialised transforms.
// ReLU and max-pool propagate NaN like PyTorch (max0 / maxnan).
// Requires before inclusion: <cstdint>, "sw_plan.h" (OpenMP or its stub),
// "sw_product_impl.h", and in the enclosing namespace a struct Simd with: vec, mask, zero,
// set1, load, store, fmadd, add, sub, maxnan, max0, make_mask(bits), maskload(ptr, mask),
// transpose8(vec[8]), transpose4x8(vec[4], vec[4]), store_first(ptr, vec, count),
// store_half(ptr, vec, half, count), load_first(ptr, count).

namespace {

inline int imin(int a, int b) { return a < b ? a : b; }
inline int imax(int a, int b) { return a > b ? a : b; }
inline int64_t lmin(int64_t a, int64_t b) { return a < b ? a : b; }

using vec = Simd::vec;
using mask = Simd::mask;

// Per-call constants.
struct Ctx {
    const sw_conv2d_args* a;
    const sw_plan* p;
    int64_t plane_in, plane_out;   // H*W and the output plane (Ho*Wo, or pooled)
    int32_t out_h, out_w, out_m;   // output plane and per-tile output size (pooled if pool)
};

// Description of the tiles of the block a slot is working on. The input transform works on
// "bands": the n image rows under one row of tiles (one image, one tile row), restricted to
// the block's tiles in that row.
struct Block {
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

Block slot_block(const Ctx& cx, float* slot) {
    const sw_plan& p = *cx.p;
    Block b;
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

// A thread's own region: its band buffer for the input transform (returned) and, after
// off_scratch floats, its fp16 conversion scratch.
float* thread_band(const Ctx& cx, int thread) {
    const sw_plan& p = *cx.p;
    return cx.a->workspace + p.slots * p.slot_floats + thread * p.thread_floats;
}

void setup_block(const Ctx& cx, int64_t block, Block& b) {
    const sw_conv2d_args& a = *cx.a;
    const int N = a.n;
    const sw_plan& p = *cx.p;
    b.first = block * p.Tb;
    b.count = static_cast<int>(lmin(p.Tb, p.T - b.first));
    b.groups = (b.count + 7) / 8;
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
            b.band_len[b.bands] = 8;
            ++b.bands;
        }
        // The tile reads 8 floats (n used) from its first column.
        const int start = (tx - band_tx0) * a.m;
        b.band_len[b.bands - 1] = (start + 8 + 7) / 8 * 8;
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
    for (int t = b.count; t < b.groups * 8; ++t) {             // lanes without a tile
        b.tile_src[t] = b.tile_src[0];
        b.tile_len[t] = b.tile_len[0];
        b.out_off[t] = 0;
        b.out_rows[t] = b.out_cols[t] = 0;
    }
    for (int g = 0; g < b.groups; ++g) {
        int full = 1;
        for (int t = g * 8; t < g * 8 + 8; ++t)
            if (b.out_rows[t] != cx.out_m || b.out_cols[t] != cx.out_m) full = 0;
        b.group_full[g] = full;
    }
}

// Transform coefficients broadcast once per thread: bt[i*n + j], at[i*n + j] (row-major).
struct Coeffs {
    vec bt[SW_MAX_N * SW_MAX_N];
    vec at[SW_MAX_N * SW_MAX_N];
    explicit Coeffs(const sw_conv2d_args& a) {
        const int nn = a.n * a.n;
        for (int i = 0; i < SW_MAX_N * SW_MAX_N; ++i) {
            bt[i] = Simd::set1(i < nn ? a.bt[i] : 0.0f);
            at[i] = Simd::set1(i < a.m * a.n ? a.at[i] : 0.0f);
        }
    }
};

// out[r] = sum_j A[r][j] in[j] for an R x N matrix A given by its values `coef` (row-major,
// row stride N) and its pattern (bit r*N + j): zero terms are skipped and ±1 terms become
// additions. With the pattern "all non-zero" this is the general matrix-vector product.
template <int R, int N, uint64_t NZ, uint64_t ONE, uint64_t NEG>
inline void apply_matrix(const vec* coef, const vec* in, vec* out) {
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
        vec acc = Simd::zero();
#pragma GCC unroll 8
        for (int j = 0; j < N; ++j) {
            const int bit = r * N + j;
            if (!((NZ >> bit) & 1)) continue;
            if ((ONE >> bit) & 1)
                acc = (NEG >> bit) & 1 ? Simd::sub(acc, in[j]) : Simd::add(acc, in[j]);
            else
                acc = Simd::fmadd(coef[bit], in[j], acc);
        }
        out[r] = acc;
    }
}

constexpr uint64_t full_pattern(int rows, int cols) {
    return rows * cols >= 64 ? ~0ull : (1ull << (rows * cols)) - 1;
}

// Lanes j of the 8 columns from image column x that lie inside [0, width).
inline int column_bits(int x, int width) {
    int bits = 0;
    for (int j = 0; j < 8; ++j)
        if (x + j >= 0 && x + j < width) bits |= 1 << j;
    return bits;
}

// Input transform of channel c for every tile of the block: V[p][c][0 .. groups*8].
// 1. B^T along H on each band, 8 image columns at a time (contiguous loads, no transposes,
//    the columns shared by neighbouring tiles done once): band[a][x].
// 2. Per group of 8 tiles: each tile's n-column window of band row a, one 8x8 transpose,
//    B^T along W, optional ReLU, store to V.
template <int N, uint64_t NZ, uint64_t ONE, uint64_t NEG>
void input_channel(const Ctx& cx, const Block& b, const Coeffs& k, float* buf, int c) {
    const sw_conv2d_args& a = *cx.a;
    const int64_t w = a.W;
    for (int bi = 0; bi < b.bands; ++bi) {
        const float* xc = a.x + b.band_base[bi] + static_cast<int64_t>(c) * cx.plane_in;
        const int y0 = b.band_y0[bi], x0 = b.band_x0[bi], len = b.band_len[bi];
        float* out = buf + b.band_off[bi];
        if (y0 >= 0 && y0 + N <= a.H) {                   // all n rows inside the image
            const float* row = xc + static_cast<int64_t>(y0) * w;
            for (int q = 0; q < len; q += 8) {
                const int x = x0 + q;
                vec in[N], res[N];
                if (x >= 0 && x + 8 <= a.W) {
#pragma GCC unroll 8
                    for (int i = 0; i < N; ++i) in[i] = Simd::load(row + i * w + x);
                } else {
                    const mask mk = Simd::make_mask(column_bits(x, a.W));
#pragma GCC unroll 8
                    for (int i = 0; i < N; ++i) in[i] = Simd::maskload(row + i * w + x, mk);
                }
                apply_matrix<N, N, NZ, ONE, NEG>(k.bt, in, res);
#pragma GCC unroll 8
                for (int aa = 0; aa < N; ++aa) Simd::store(out + aa * len + q, res[aa]);
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
        for (int q = 0; q < len; q += 8) {
            const mask mk = Simd::make_mask(column_bits(x0 + q, a.W));
            vec in[N], res[N];
            for (int i = 0; i < N; ++i)
                in[i] = inside[i] ? Simd::maskload(row[i] + x0 + q, mk) : Simd::zero();
            apply_matrix<N, N, NZ, ONE, NEG>(k.bt, in, res);
#pragma GCC unroll 8
            for (int aa = 0; aa < N; ++aa) Simd::store(out + aa * len + q, res[aa]);
        }
    }
    const int64_t pstride = cx.p->v_pstride;
    const bool relu = a.relu_input != 0;
    for (int grp = 0; grp < b.groups; ++grp) {
        const float* src[8];
        int64_t len[8];
#pragma GCC unroll 8
        for (int t = 0; t < 8; ++t) {
            src[t] = buf + b.tile_src[grp * 8 + t];
            len[t] = b.tile_len[grp * 8 + t];
        }
        float* out = b.V + static_cast<int64_t>(c) * cx.p->Tb + grp * 8;
#pragma GCC unroll 8
        for (int aa = 0; aa < N; ++aa) {
            vec r[8], res[N];
#pragma GCC unroll 8
            for (int t = 0; t < 8; ++t) r[t] = Simd::load(src[t] + aa * len[t]);
            Simd::transpose8(r);                      // r[j] = column j of the 8 windows
            apply_matrix<N, N, NZ, ONE, NEG>(k.bt, r, res);
#pragma GCC unroll 8
            for (int bb = 0; bb < N; ++bb)
                Simd::store(out + (aa * N + bb) * pstride, relu ? Simd::max0(res[bb]) : res[bb]);
        }
    }
}

// Row `row` of 8 output tiles, r[j] = column j over the tiles (columns >= the tile width are
// zero), stored at dst[t] + offset, clipped to each tile's rows/cols inside the image.
inline void store_rows(vec* r, float* const* dst, const int* rows, const int* cols,
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

// Output transform of 8 tiles (group grp) of output channel kk, written into y.
// MM: the output tile m when known at compile time (with A^T's pattern), 0 to read m from
// the arguments and treat A^T as dense.
template <int N, int MM, uint64_t NZ, uint64_t ONE, uint64_t NEG>
void output_group(const Ctx& cx, const Block& b, const Coeffs& k, int grp, int kk) {
    const sw_conv2d_args& a = *cx.a;
    constexpr int R = MM ? MM : N - 1;               // rows computed (m <= n - 1)
    const int m = MM ? MM : imin(a.m, N - 1);
    const int64_t pstride = cx.p->m_pstride;
    const float* in = b.M + static_cast<int64_t>(kk) * cx.p->Tb + grp * 8;
    vec z[N][R];                                     // A^T applied along H: [b][i]
#pragma GCC unroll 8
    for (int bb = 0; bb < N; ++bb) {
        vec col[N];
#pragma GCC unroll 8
        for (int aa = 0; aa < N; ++aa) col[aa] = Simd::load(in + (aa * N + bb) * pstride);
        apply_matrix<R, N, NZ, ONE, NEG>(k.at, col, z[bb]);
    }
    const vec bias = Simd::set1(a.bias ? a.bias[kk] : 0.0f);
    const bool relu = a.relu_output != 0;
    // Local copies: stores to y must not force reloads of the block description.
    float* yk = a.y + static_cast<int64_t>(kk) * cx.plane_out;
    const int64_t wo = cx.out_w;
    float* dst[8];
    int rows[8], cols[8];
#pragma GCC unroll 8
    for (int t = 0; t < 8; ++t) {
        dst[t] = yk + b.out_off[grp * 8 + t];
        rows[t] = b.out_rows[grp * 8 + t];
        cols[t] = b.out_cols[grp * 8 + t];
    }
    const bool full = b.group_full[grp] != 0;
    if (a.pool) {
        // Fused 2x2 max-pool: rows 2q and 2q+1 of the tile give pooled row q. Max commutes
        // with the per-channel bias and ReLU, so they are applied after pooling.
        const int pm = m / 2;
#pragma GCC unroll 4
        for (int q = 0; q < R / 2; ++q) {
            if (q >= pm) break;
            vec zi[N], r0[8], r1[8], r[8];
#pragma GCC unroll 8
            for (int bb = 0; bb < N; ++bb) zi[bb] = z[bb][2 * q];
            apply_matrix<R, N, NZ, ONE, NEG>(k.at, zi, r0);
#pragma GCC unroll 8
            for (int bb = 0; bb < N; ++bb) zi[bb] = z[bb][2 * q + 1];
            apply_matrix<R, N, NZ, ONE, NEG>(k.at, zi, r1);
#pragma GCC unroll 8
            for (int j = 0; j < 8; ++j) {
                if (2 * j + 1 < R && j < pm) {
                    const vec v = Simd::maxnan(Simd::maxnan(r0[2 * j], r0[2 * j + 1]),
                                               Simd::maxnan(r1[2 * j], r1[2 * j + 1]));
                    r[j] = relu ? Simd::max0(Simd::add(v, bias)) : Simd::add(v, bias);
                } else {
                    r[j] = Simd::zero();
                }
            }
            store_rows(r, dst, rows, cols, q * wo, q, pm <= 4);
        }
        return;
    }
    if (a.residual) {
        // y = [relu](conv + bias + residual): after the transpose each vector is one tile row.
        const float* rk = a.residual + static_cast<int64_t>(kk) * cx.plane_out;
        const float* res[8];
#pragma GCC unroll 8
        for (int t = 0; t < 8; ++t) res[t] = rk + b.out_off[grp * 8 + t];
#pragma GCC unroll 8
        for (int i = 0; i < R; ++i) {
            if (i >= m) break;
            vec zi[N], r[8];
#pragma GCC unroll 8
            for (int bb = 0; bb < N; ++bb) zi[bb] = z[bb][i];
            apply_matrix<R, N, NZ, ONE, NEG>(k.at, zi, r);
#pragma GCC unroll 8
            for (int j = 0; j < 8; ++j) r[j] = j < R && j < m ? Simd::add(r[j], bias) : Simd::zero();
            Simd::transpose8(r);
#pragma GCC unroll 8
            for (int t = 0; t < 8; ++t) {
                if (i >= rows[t]) continue;
                vec v = Simd::add(r[t], Simd::load_first(res[t] + i * wo, cols[t]));
                if (relu) v = Simd::max0(v);
                Simd::store_first(dst[t] + i * wo, v, cols[t]);
            }
        }
        return;
    }
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
        if (i >= m) break;
        vec zi[N], r[8];
#pragma GCC unroll 8
        for (int bb = 0; bb < N; ++bb) zi[bb] = z[bb][i];
        apply_matrix<R, N, NZ, ONE, NEG>(k.at, zi, r);    // r[j] = Y[i][j], j < m
#pragma GCC unroll 8
        for (int j = 0; j < 8; ++j) {
            if (j >= R || j >= m)
                r[j] = Simd::zero();
            else
                r[j] = relu ? Simd::max0(Simd::add(r[j], bias)) : Simd::add(r[j], bias);
        }
        if (full && MM && MM <= 4) {
            vec u[4];
            Simd::transpose4x8(r, u);                 // u[t]: tile t (low), t + 4 (high)
#pragma GCC unroll 4
            for (int t = 0; t < 4; ++t) {
                Simd::store_half(dst[t] + i * wo, u[t], 0, MM);
                Simd::store_half(dst[t + 4] + i * wo, u[t], 1, MM);
            }
        } else if (full && MM) {
            Simd::transpose8(r);                      // r[t] = row i of tile t
#pragma GCC unroll 8
            for (int t = 0; t < 8; ++t) Simd::store_first(dst[t] + i * wo, r[t], MM);
        } else {
            store_rows(r, dst, rows, cols, i * wo, i, m <= 4);
        }
    }
}

// The transforms for one (n, m), instantiated with the tile sizes as constants.
using InputFn = void (*)(const Ctx&, const Block&, const Coeffs&, float*, int);
using OutputFn = void (*)(const Ctx&, const Block&, const Coeffs&, int, int);
struct Transforms {
    InputFn input;
    OutputFn output;
};

#include "sw_patterns.h"

// Bit masks of the zero, ±1 and -1 entries of a rows x n row-major matrix.
void pattern_of(const float* mat, int rows, int n, uint64_t* nz, uint64_t* one, uint64_t* neg) {
    *nz = *one = *neg = 0;
    for (int i = 0; i < rows * n; ++i) {
        const uint64_t bit = 1ull << i;
        if (mat[i] != 0.0f) *nz |= bit;
        if (mat[i] == 1.0f || mat[i] == -1.0f) *one |= bit;
        if (mat[i] == -1.0f) *neg |= bit;
    }
}

template <int N>
Transforms general_transforms() {
    constexpr uint64_t full_bt = full_pattern(N, N);
    constexpr uint64_t full_at = full_pattern(N - 1, N);
    return {&input_channel<N, full_bt, 0, 0>, &output_group<N, 0, full_at, 0, 0>};
}

// The specialised transforms when B^T and A^T match a pattern of sw_patterns.h exactly,
// else the general ones (any matrix, m read at run time).
Transforms choose_transforms(const sw_conv2d_args& a) {
    uint64_t bnz, bone, bneg, anz, aone, aneg;
    pattern_of(a.bt, a.n, a.n, &bnz, &bone, &bneg);
    pattern_of(a.at, a.m, a.n, &anz, &aone, &aneg);
#define SW_MATCH(n_, m_, b1, b2, b3, a1, a2, a3)                                         \
    if (a.n == n_ && a.m == m_ && bnz == b1 && bone == b2 && bneg == b3 && anz == a1 &&   \
        aone == a2 && aneg == a3)                                                         \
        return {&input_channel<n_, b1, b2, b3>, &output_group<n_, m_, a1, a2, a3>};
#if SW_SPECIALISE_PATTERNS
    SW_PATTERN_LIST(SW_MATCH)
#endif
#undef SW_MATCH
    switch (a.n) {
        case 2: return general_transforms<2>();
        case 3: return general_transforms<3>();
        case 4: return general_transforms<4>();
        case 5: return general_transforms<5>();
        case 6: return general_transforms<6>();
        case 7: return general_transforms<7>();
        default: return general_transforms<8>();
    }
}

// Element-wise stage of position pos for the output channels of chunks [j0, j1).
inline void position_chunks(const Ctx& cx, const Block& b, int pos, int j0, int j1,
                            float* scratch) {
    const sw_plan& p = *cx.p;
    const float* V = b.V + pos * p.v_pstride;
    float* M = b.M + pos * p.m_pstride;
    for (int j = j0; j < j1; ++j)
        chunk_rows_lanes(p.lanes, cx.a->w, pos, j, V, p.shift, b.groups,
                         M + static_cast<int64_t>(j) * SW_CHUNK_ROWS * p.Tb, scratch);
}

// Block mode: each thread runs whole blocks in its own workspace slot.
void run_blocks(const Ctx& cx, Transforms tf) {
    const sw_conv2d_args& a = *cx.a;
    const sw_plan& p = *cx.p;
#pragma omp parallel num_threads(p.threads)
    {
        const int thread = omp_get_thread_num();
        Block b = slot_block(cx, a.workspace + thread * p.slot_floats);
        float* band = thread_band(cx, thread);
        const Coeffs k(a);
#pragma omp for schedule(dynamic, 1)
        for (int64_t blk = 0; blk < p.blocks; ++blk) {
            setup_block(cx, blk, b);
            for (int c = 0; c < a.C; ++c) tf.input(cx, b, k, band, c);
            for (int pos = 0; pos < p.P; ++pos)
                position_chunks(cx, b, pos, 0, p.chunks, band + p.off_scratch);
            for (int kk = 0; kk < a.K; ++kk)
                for (int grp = 0; grp < b.groups; ++grp) tf.output(cx, b, k, grp, kk);
        }
    }
}

// Cooperative mode: all threads share each block (few tiles, many channels): the input
// transform is split over input channels, the element-wise stage over (position, chunk)
// items, the output transform over (output channel, 8 tiles).
void run_cooperative(const Ctx& cx, Transforms tf) {
    const sw_conv2d_args& a = *cx.a;
    const sw_plan& p = *cx.p;
    Block shared = slot_block(cx, a.workspace);
#pragma omp parallel num_threads(p.threads)
    {
        float* band = thread_band(cx, omp_get_thread_num());
        const Coeffs k(a);
        for (int64_t blk = 0; blk < p.blocks; ++blk) {
#pragma omp single
            setup_block(cx, blk, shared);
            const Block b = shared;
            // Dynamic schedules everywhere: if one thread is descheduled (a busy machine),
            // the others take over its work instead of waiting at the barrier.
#pragma omp for schedule(dynamic, 4)
            for (int c = 0; c < a.C; ++c) tf.input(cx, b, k, band, c);
            const int64_t items = static_cast<int64_t>(p.P) * p.chunks;
#pragma omp for schedule(dynamic, 1)
            for (int64_t item = 0; item < items; ++item) {
                const int pos = static_cast<int>(item / p.chunks);
                const int j = static_cast<int>(item % p.chunks);
                position_chunks(cx, b, pos, j, j + 1, band + p.off_scratch);
            }
            const int64_t out_items = static_cast<int64_t>(a.K) * b.groups;
#pragma omp for schedule(dynamic, 8)
            for (int64_t item = 0; item < out_items; ++item)
                tf.output(cx, b, k, static_cast<int>(item % b.groups),
                          static_cast<int>(item / b.groups));
        }
    }
}

}  // namespace

int32_t conv2d_forward(const sw_conv2d_args* args, const sw_plan* plan) {
    Ctx cx;
    cx.a = args;
    cx.p = plan;
    cx.plane_in = static_cast<int64_t>(args->H) * args->W;
    const int pool = args->pool ? args->pool : 1;
    cx.out_h = args->Ho / pool;
    cx.out_w = args->Wo / pool;
    cx.out_m = args->m / pool;
    cx.plane_out = static_cast<int64_t>(cx.out_h) * cx.out_w;
    if (args->n < 2 || args->n > SW_MAX_N) return SW_ERR_TILE;
    const Transforms tf = choose_transforms(*args);
    if (plan->mode == SW_MODE_COOPERATIVE)
        run_cooperative(cx, tf);
    else
        run_blocks(cx, tf);
    return SW_OK;
}
