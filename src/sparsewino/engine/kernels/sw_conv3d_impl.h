// Fused sparse Winograd 3-D convolution F(m, r)^3: the 3-D geometry (Geometry3d) of the generic
// convolution of sw_winograd_impl.h, written once against a SIMD policy `Simd`.
//
// Included by the sw_isa_*.cpp builds after sw_product_impl.h and sw_winograd_impl.h, inside
// the build's namespace: the blocking, cooperation, transform choice and element-wise stage
// are the generic ones; this file holds the tiles of a block and the 3-D transforms (built
// from apply_matrix with the zero/±1 patterns of sw_patterns.h).
//
// Data layout of one block of Tb tiles (vectors hold 8 tiles):
//   V[p][c][Tb]  transformed input   (p = (i*n + j)*n + l: position along D, H, W)
//   M[p][k][Tb]  element-wise stage  (k = output channel)
// Stages per block:
//   input transform, per input channel and 8 tiles: for each of the n*n rows (d, h) of the
//     tiles' n x n x n windows, one masked load of 8 columns per tile (rows outside the
//     volume are zero padding), an 8x8 transpose, B^T along W; then B^T along H and along D
//     on the vectors; optional ReLU; store to V;
//   element-wise stage, per position: M[p] = U[p] V[p] with the position's packed format
//     (sparse / dense). A position whose matrix is all zero (a pruned column of a low-rank
//     layer) is skipped: no product, and the output transform reads zeros for it;
//   output transform, per 8 tiles and output channel: A^T along D, H, W, bias, residual,
//     optional ReLU, transpose back, store the m x m x m tile clipped at the border.
// Every output element belongs to exactly one tile and every tile to exactly one block.
// Requires before inclusion: "sw_plan.h", "sw_product_impl.h", "sw_winograd_impl.h", struct Simd.

namespace {

// Per-call constants of a conv3d call.
struct Ctx3 {
    const sw_conv3d_args* a;
    const sw_plan3d* p;
    int64_t plane_in, plane_out;   // D*H*W and Do*Ho*Wo
    int64_t area_out;              // Ho*Wo
};

// The tiles of the block a slot is working on.
struct Block3 {
    int64_t first;
    int count, groups;
    int64_t* in_base;              // [Tb] offset of the tile's image in x (channel 0)
    int64_t* out_off;              // [Tb] offset of the tile's first output (channel 0)
    int32_t* z0;                   // [Tb] first input depth / row / column (may be < 0)
    int32_t* y0;
    int32_t* x0;
    int32_t* od;                   // [Tb] outputs of the tile inside the volume per dimension
    int32_t* oh;
    int32_t* ow;
    int32_t* bits;                 // [Tb] lanes of the 8 columns from x0 inside [0, W)
    float* V;
    float* M;
};

Block3 slot_block3(const Ctx3& cx, float* slot) {
    const sw_plan3d& p = *cx.p;
    Block3 b;
    b.first = 0;
    b.count = b.groups = 0;
    b.V = slot + p.off_v;
    b.M = slot + p.off_m;
    int64_t* longs = reinterpret_cast<int64_t*>(slot + p.off_tiles);
    b.in_base = longs;
    b.out_off = longs + p.Tb;
    int32_t* ints = reinterpret_cast<int32_t*>(longs + 2 * p.Tb);
    b.z0 = ints;
    b.y0 = ints + p.Tb;
    b.x0 = ints + 2 * p.Tb;
    b.od = ints + 3 * p.Tb;
    b.oh = ints + 4 * p.Tb;
    b.ow = ints + 5 * p.Tb;
    b.bits = ints + 6 * p.Tb;
    return b;
}

void setup_block3(const Ctx3& cx, int64_t block, Block3& b) {
    const sw_conv3d_args& a = *cx.a;
    const sw_plan3d& p = *cx.p;
    b.first = block * p.Tb;
    b.count = static_cast<int>(lmin(p.Tb, p.T - b.first));
    b.groups = (b.count + 7) / 8;
    const int64_t per_image = static_cast<int64_t>(p.td) * p.th * p.tw;
    for (int t = 0; t < b.groups * 8; ++t) {
        if (t >= b.count) {                                     // a lane without a tile
            b.in_base[t] = b.out_off[t] = 0;
            b.z0[t] = -a.n - 1;                                 // every row reads as padding
            b.y0[t] = b.x0[t] = 0;
            b.od[t] = b.oh[t] = b.ow[t] = 0;
            b.bits[t] = 0;
            continue;
        }
        const int64_t idx = b.first + t;
        const int64_t img = idx / per_image;
        int64_t rem = idx - img * per_image;
        const int tz = static_cast<int>(rem / (static_cast<int64_t>(p.th) * p.tw));
        rem -= static_cast<int64_t>(tz) * p.th * p.tw;
        const int ty = static_cast<int>(rem / p.tw);
        const int tx = static_cast<int>(rem - static_cast<int64_t>(ty) * p.tw);
        const int oz = tz * a.m, oy = ty * a.m, ox = tx * a.m;
        b.in_base[t] = img * a.C * cx.plane_in;
        b.z0[t] = oz - a.pad_front;
        b.y0[t] = oy - a.pad_top;
        b.x0[t] = ox - a.pad_left;
        b.bits[t] = column_bits(b.x0[t], a.W);
        b.out_off[t] = img * a.K * cx.plane_out + oz * cx.area_out +
                       static_cast<int64_t>(oy) * a.Wo + ox;
        b.od[t] = imax(0, imin(a.m, a.Do - oz));
        b.oh[t] = imax(0, imin(a.m, a.Ho - oy));
        b.ow[t] = imax(0, imin(a.m, a.Wo - ox));
    }
}

// Input transform of one channel of 8 tiles (item = c * groups + grp): V[p][c][grp*8 .. +8].
template <int N, uint64_t NZ, uint64_t ONE, uint64_t NEG>
void input_group3(const Ctx3& cx, const Block3& b, const Coeffs& k, float*, int64_t item) {
    const sw_conv3d_args& a = *cx.a;
    const int grp = static_cast<int>(item % b.groups), c = static_cast<int>(item / b.groups);
    const int64_t area = static_cast<int64_t>(a.H) * a.W;
    const float* base[8];
    int z0[8], y0[8], x0[8];
    bool whole[8];
    mask mk[8];
#pragma GCC unroll 8
    for (int t = 0; t < 8; ++t) {
        const int i = grp * 8 + t;
        base[t] = a.x + b.in_base[i] + static_cast<int64_t>(c) * cx.plane_in;
        z0[t] = b.z0[i];
        y0[t] = b.y0[i];
        x0[t] = b.x0[i];
        whole[t] = x0[t] >= 0 && x0[t] + 8 <= a.W;
        mk[t] = Simd::make_mask(b.bits[i]);
    }
    vec s[N][N][N];                                   // s[d][h][w] for the 8 tiles
    for (int dz = 0; dz < N; ++dz) {
        for (int dy = 0; dy < N; ++dy) {
            vec r[8];
#pragma GCC unroll 8
            for (int t = 0; t < 8; ++t) {
                const int z = z0[t] + dz, y = y0[t] + dy;
                if (z < 0 || z >= a.D || y < 0 || y >= a.H) {
                    r[t] = Simd::zero();
                    continue;
                }
                const float* row = base[t] + z * area + static_cast<int64_t>(y) * a.W + x0[t];
                r[t] = whole[t] ? Simd::load(row) : Simd::maskload(row, mk[t]);
            }
            Simd::transpose8(r);                      // r[j] = column j of the 8 windows
            apply_matrix<N, N, NZ, ONE, NEG>(k.bt, r, s[dz][dy]);
        }
    }
    for (int dz = 0; dz < N; ++dz)                    // B^T along H
        for (int l = 0; l < N; ++l) {
            vec in[N], out[N];
#pragma GCC unroll 8
            for (int dy = 0; dy < N; ++dy) in[dy] = s[dz][dy][l];
            apply_matrix<N, N, NZ, ONE, NEG>(k.bt, in, out);
#pragma GCC unroll 8
            for (int j = 0; j < N; ++j) s[dz][j][l] = out[j];
        }
    const int64_t pstride = cx.p->v_pstride;
    float* dst = b.V + static_cast<int64_t>(c) * cx.p->Tb + grp * 8;
    const bool relu = a.relu_input != 0;
    for (int j = 0; j < N; ++j)                       // B^T along D, store
        for (int l = 0; l < N; ++l) {
            vec in[N], out[N];
#pragma GCC unroll 8
            for (int dz = 0; dz < N; ++dz) in[dz] = s[dz][j][l];
            apply_matrix<N, N, NZ, ONE, NEG>(k.bt, in, out);
#pragma GCC unroll 8
            for (int i = 0; i < N; ++i)
                Simd::store(dst + ((i * N + j) * N + l) * pstride,
                            relu ? Simd::max0(out[i]) : out[i]);
        }
}

// Output transform of the 8 tiles of group grp for output channel kk, written into y.
// MM: the output tile m when known at compile time (with A^T's pattern), 0 to read m from
// the arguments and treat A^T as dense.
template <int N, int MM, uint64_t NZ, uint64_t ONE, uint64_t NEG>
void output_group3(const Ctx3& cx, const Block3& b, const Coeffs& k, int grp, int kk) {
    const sw_conv3d_args& a = *cx.a;
    constexpr int R = MM ? MM : N - 1;               // rows computed (m <= n - 1)
    const int m = MM ? MM : imin(a.m, N - 1);
    const int64_t pstride = cx.p->m_pstride;
    const float* in = b.M + static_cast<int64_t>(kk) * cx.p->Tb + grp * 8;
    vec z[R][N][N];                                  // A^T along D: z[i][h][w]
    for (int h = 0; h < N; ++h)
        for (int w = 0; w < N; ++w) {
            vec col[N], out[R];
#pragma GCC unroll 8
            for (int d = 0; d < N; ++d) {
                const int pos = (d * N + h) * N + w;
                col[d] = position_is_zero(a.w, pos) ? Simd::zero() : Simd::load(in + pos * pstride);
            }
            apply_matrix<R, N, NZ, ONE, NEG>(k.at, col, out);
#pragma GCC unroll 8
            for (int i = 0; i < R; ++i) z[i][h][w] = out[i];
        }
    vec u[R][R][N];                                  // A^T along H: u[i][j][w]
    for (int i = 0; i < R; ++i)
        for (int w = 0; w < N; ++w) {
            vec col[N], out[R];
#pragma GCC unroll 8
            for (int h = 0; h < N; ++h) col[h] = z[i][h][w];
            apply_matrix<R, N, NZ, ONE, NEG>(k.at, col, out);
#pragma GCC unroll 8
            for (int j = 0; j < R; ++j) u[i][j][w] = out[j];
        }
    const vec bias = Simd::set1(a.bias ? a.bias[kk] : 0.0f);
    const bool relu = a.relu_output != 0;
    float* yk = a.y + static_cast<int64_t>(kk) * cx.plane_out;
    const float* rk = a.residual ? a.residual + static_cast<int64_t>(kk) * cx.plane_out : nullptr;
    int64_t off[8];
    int od[8], oh[8], ow[8];
#pragma GCC unroll 8
    for (int t = 0; t < 8; ++t) {
        off[t] = b.out_off[grp * 8 + t];
        od[t] = b.od[grp * 8 + t];
        oh[t] = b.oh[grp * 8 + t];
        ow[t] = b.ow[grp * 8 + t];
    }
    for (int i = 0; i < R; ++i) {
        if (i >= m) break;
        for (int j = 0; j < R; ++j) {
            if (j >= m) break;
            vec r[8];
            apply_matrix<R, N, NZ, ONE, NEG>(k.at, u[i][j], r);   // r[l] = Y[i][j][l], l < m
#pragma GCC unroll 8
            for (int l = 0; l < 8; ++l) {
                if (l >= R || l >= m)
                    r[l] = Simd::zero();
                else if (rk || !relu)
                    r[l] = Simd::add(r[l], bias);
                else
                    r[l] = Simd::max0(Simd::add(r[l], bias));
            }
            Simd::transpose8(r);                      // r[t] = row (i, j) of tile t
            const int64_t row = i * cx.area_out + static_cast<int64_t>(j) * a.Wo;
#pragma GCC unroll 8
            for (int t = 0; t < 8; ++t) {
                if (i >= od[t] || j >= oh[t]) continue;
                vec v = r[t];
                if (rk) {
                    v = Simd::add(v, Simd::load_first(rk + off[t] + row, ow[t]));
                    if (relu) v = Simd::max0(v);
                }
                Simd::store_first(yk + off[t] + row, v, ow[t]);
            }
        }
    }
}

// The 3-D geometry of the generic convolution (sw_winograd_impl.h).
struct Geometry3d {
    using Coeffs = CoeffsT<Simd>;
    static constexpr int lanes = 8;   // the 3-D transforms run 8 tiles per vector
    using Args = sw_conv3d_args;
    using Ctx = Ctx3;
    using Block = Block3;
    // The pattern-specialised transforms only for the tiles 3-D layers use in practice
    // (F(2,3)^3 and F(4,3)^3: n = 4 and 6), to bound the build time.
    static constexpr bool specialises(int n) { return n == 4 || n == 6; }
    static Block slot_block(const Ctx& cx, float* slot) { return slot_block3(cx, slot); }
    static void setup_block(const Ctx& cx, int64_t block, Block& b) {
        setup_block3(cx, block, b);
    }
    // One input item is one channel of 8 tiles.
    static int64_t input_items(const Ctx& cx, const Block& b) {
        return static_cast<int64_t>(cx.a->C) * b.groups;
    }
    template <int N, uint64_t NZ, uint64_t ONE, uint64_t NEG>
    static constexpr auto input = &input_group3<N, NZ, ONE, NEG>;
    template <int N, int MM, uint64_t NZ, uint64_t ONE, uint64_t NEG>
    static constexpr auto output = &output_group3<N, MM, NZ, ONE, NEG>;
};

}  // namespace

int32_t conv3d_forward(const sw_conv3d_args* args, const sw_plan3d* plan) {
    Ctx3 cx;
    cx.a = args;
    cx.p = plan;
    cx.plane_in = static_cast<int64_t>(args->D) * args->H * args->W;
    cx.area_out = static_cast<int64_t>(args->Ho) * args->Wo;
    cx.plane_out = static_cast<int64_t>(args->Do) * cx.area_out;
    return run_winograd<Geometry3d>(cx);
}
