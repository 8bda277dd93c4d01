// The fused Winograd convolution, written once for 2-D and 3-D against a geometry policy `G`
// and the SIMD policy `Simd`: blocking (each thread its own blocks), cooperation (all threads
// on each block), the choice of transforms, and the element-wise stage per Winograd position.
//
// A block of Tb tiles goes through three stages:
//   input transform   G's input function over G::input_items(...) work items (2-D: one input
//                     channel of every tile, through the thread's band buffer; 3-D: one
//                     channel of 8 tiles), writing V[p][c][Tb];
//   element-wise      per position p: M[p] = U[p] V[p] with p's packed format (sparse /
//                     dense); with bf16 weights a dense V[p] is first rounded to bf16 pairs in place. A position whose matrix is all zero is skipped: no product,
//                     and the output transforms read zeros for it (position_is_zero);
//   output transform  G's output function per (output channel, 8 tiles).
//
// The geometry policy provides: the types Args, Ctx (per-call constants: the args in a, the
// plan, a sw_winograd_plan, in p) and Block (the tiles of a block, with V, M and groups);
// slot_block(cx, slot), setup_block(cx, block, b) and input_items(cx, b); the transforms as
// pointers input<N, NZ, ONE, NEG> (to f(cx, b, coeffs, buffer, item)) and
// output<N, MM, NZ, ONE, NEG> (to f(cx, b, coeffs, grp, kk)); and
// specialises(n): whether the pattern-specialised transforms are compiled for tile n.
//
// Included by each sw_isa_*.cpp after sw_product_impl.h and before sw_conv2d_impl.h /
// sw_conv3d_impl.h, inside the build's namespace. SW_SPECIALISE_PATTERNS (0/1) says whether
// to compile the pattern-specialised transforms at all.

namespace {

// The transforms' helpers are always inlined: their vectors must stay in registers (out of
// line, GCC passes them through memory).
#define SW_INLINE inline __attribute__((always_inline))

inline int imin(int a, int b) { return a < b ? a : b; }
inline int imax(int a, int b) { return a > b ? a : b; }
inline int64_t lmin(int64_t a, int64_t b) { return a < b ? a : b; }

using vec = Simd::vec;
using mask = Simd::mask;

// Transform coefficients broadcast once per thread for the vector policy S: bt[i*n + j],
// at[i*n + j] (row-major).
template <class S>
struct CoeffsT {
    typename S::vec bt[SW_MAX_N * SW_MAX_N];
    typename S::vec at[SW_MAX_N * SW_MAX_N];
    CoeffsT(const float* bt_values, const float* at_values, int n, int m) {
        for (int i = 0; i < SW_MAX_N * SW_MAX_N; ++i) {
            bt[i] = S::set1(i < n * n ? bt_values[i] : 0.0f);
            at[i] = S::set1(i < m * n ? at_values[i] : 0.0f);
        }
    }
};
using Coeffs = CoeffsT<Simd>;

// out[r] = sum_j A[r][j] in[j] for an R x N matrix A given by its values `coef` (row-major,
// row stride N) and its pattern (bit r*N + j): zero terms are skipped and ±1 terms become
// additions; each row starts from its first term (no addition to zero). With the pattern
// "all non-zero" this is the general matrix-vector product. S: the vector policy (8 lanes by
// default; the AVX-512 build's 2-D transforms also run it on 16).
template <int R, int N, uint64_t NZ, uint64_t ONE, uint64_t NEG, class S = Simd>
SW_INLINE void apply_matrix(const typename S::vec* coef, const typename S::vec* in,
                            typename S::vec* out) {
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
        typename S::vec acc = S::zero();
        bool started = false;                        // a constant once the loops are unrolled
#pragma GCC unroll 8
        for (int j = 0; j < N; ++j) {
            const int bit = r * N + j;
            if (!((NZ >> bit) & 1)) continue;
            if ((ONE >> bit) & 1) {
                if ((NEG >> bit) & 1)
                    acc = S::sub(acc, in[j]);
                else
                    acc = started ? S::add(acc, in[j]) : in[j];
            } else {
                acc = started ? S::fmadd(coef[bit], in[j], acc) : S::mul(coef[bit], in[j]);
            }
            started = true;
        }
        out[r] = acc;
    }
}

constexpr uint64_t full_pattern(int rows, int cols) {
    return rows * cols >= 64 ? ~0ull : (1ull << (rows * cols)) - 1;
}

// Lanes j of the `lanes` (8 or 16) columns from image column x that lie inside [0, width).
inline int column_bits(int x, int width, int lanes = 8) {
    int bits = 0;
    for (int j = 0; j < lanes; ++j)
        if (x + j >= 0 && x + j < width) bits |= 1 << j;
    return bits;
}

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

// Whether position pos of the weights is all zero: its product is skipped and M[pos] is never
// written, so the output transforms must read zeros for it.
inline bool position_is_zero(const sw_matrices& w, int pos) { return w.formats[pos] == SW_ZERO; }

// The input and output transforms for one (n, m), instantiated with the tile sizes as constants.
template <class G>
struct Transforms {
    using Ctx = typename G::Ctx;
    using Block = typename G::Block;
    using K = typename G::Coeffs;
    void (*input)(const Ctx&, const Block&, const K&, float* buffer, int64_t item);
    void (*output)(const Ctx&, const Block&, const K&, int grp, int kk);
};

template <class G, int N>
Transforms<G> general_transforms() {
    constexpr uint64_t full_bt = full_pattern(N, N);
    constexpr uint64_t full_at = full_pattern(N - 1, N);
    return {G::template input<N, full_bt, 0, 0>, G::template output<N, 0, full_at, 0, 0>};
}

// The pattern-specialised transforms of one sw_patterns.h entry, if G compiles them for N and
// B^T, A^T match it exactly.
template <class G, int N, int MM, uint64_t B1, uint64_t B2, uint64_t B3, uint64_t A1,
          uint64_t A2, uint64_t A3>
bool match_pattern(int n, int m, const uint64_t* bt, const uint64_t* at, Transforms<G>* out) {
    if constexpr (G::specialises(N)) {
        if (n == N && m == MM && bt[0] == B1 && bt[1] == B2 && bt[2] == B3 && at[0] == A1 &&
            at[1] == A2 && at[2] == A3) {
            *out = {G::template input<N, B1, B2, B3>, G::template output<N, MM, A1, A2, A3>};
            return true;
        }
    }
    return false;
}

#include "sw_patterns.h"

// The specialised transforms when B^T and A^T match a pattern of sw_patterns.h exactly,
// else the general ones (any matrix, m read at run time).
template <class G>
Transforms<G> choose_transforms(const typename G::Args& a) {
    uint64_t bt[3], at[3];
    pattern_of(a.bt, a.n, a.n, &bt[0], &bt[1], &bt[2]);
    pattern_of(a.at, a.m, a.n, &at[0], &at[1], &at[2]);
    [[maybe_unused]] Transforms<G> found;
#define SW_MATCH(n_, m_, b1, b2, b3, a1, a2, a3) \
    if (match_pattern<G, n_, m_, b1, b2, b3, a1, a2, a3>(a.n, a.m, bt, at, &found)) return found;
#if SW_SPECIALISE_PATTERNS
    SW_PATTERN_LIST(SW_MATCH)
#endif
#undef SW_MATCH
    switch (a.n) {
        case 2: return general_transforms<G, 2>();
        case 3: return general_transforms<G, 3>();
        case 4: return general_transforms<G, 4>();
        case 5: return general_transforms<G, 5>();
        case 6: return general_transforms<G, 6>();
        case 7: return general_transforms<G, 7>();
        default: return general_transforms<G, 8>();
    }
}

// A thread's region of the workspace (after the slots): its input buffer (2-D: the band
// buffer).
inline float* thread_region(const sw_winograd_plan& p, float* workspace, int thread) {
    return workspace + p.slots * p.slot_floats + thread * p.thread_floats;
}

// Element-wise stage of position pos for the output channels of chunks [j0, j1); all-zero
// positions are skipped.
template <class G>
inline void position_chunks(const typename G::Ctx& cx, const typename G::Block& b, int pos,
                            int j0, int j1) {
    const auto& p = *cx.p;
    const sw_matrices& w = cx.a->w;
    if (position_is_zero(w, pos)) return;
    const float* V = b.V + pos * p.v_pstride;
    float* M = b.M + pos * p.m_pstride;
    for (int j = j0; j < j1; ++j)
        chunk_rows_lanes(p.lanes, w, pos, j, V, p.shift, b.count,
                         M + static_cast<int64_t>(j) * SW_CHUNK_ROWS * p.Tb);
}

// bf16 weights: a dense position's V rounded to bf16 pair rows in place (before its products).
template <class G>
inline void position_to_bf16(const typename G::Ctx& cx, const typename G::Block& b, int pos) {
    const sw_matrices& w = cx.a->w;
    if (w.formats[pos] != SW_DENSE) return;          // sparse bf16 matrices read fp32 tiles
    bf16_pairs_in_place(b.V + pos * cx.p->v_pstride, w.C, cx.p->shift, b.groups * G::lanes / 8);
}

// Block mode: each thread runs whole blocks in its own workspace slot.
template <class G>
void run_blocks(const typename G::Ctx& cx, Transforms<G> tf) {
    const auto& a = *cx.a;
    const auto& p = *cx.p;
    const bool bf16 = a.w.precision == SW_PRECISION_BF16;
#pragma omp parallel num_threads(p.threads)
    {
        const int thread = omp_get_thread_num();
        typename G::Block b = G::slot_block(cx, a.workspace + thread * p.slot_floats);
        float* buffer = thread_region(p, a.workspace, thread);
        const typename G::Coeffs k(a.bt, a.at, a.n, a.m);
#pragma omp for schedule(dynamic, 1)
        for (int64_t blk = 0; blk < p.blocks; ++blk) {
            G::setup_block(cx, blk, b);
            const int64_t in_items = G::input_items(cx, b);
            for (int64_t item = 0; item < in_items; ++item) tf.input(cx, b, k, buffer, item);
            if (bf16)
                for (int pos = 0; pos < p.P; ++pos) position_to_bf16<G>(cx, b, pos);
            for (int pos = 0; pos < p.P; ++pos)
                position_chunks<G>(cx, b, pos, 0, p.chunks);
            for (int kk = 0; kk < a.K; ++kk)
                for (int grp = 0; grp < b.groups; ++grp) tf.output(cx, b, k, grp, kk);
        }
    }
}

// Cooperative mode: all threads share each block (few tiles, many channels): the input
// transform is split over G's input items, the element-wise stage over (position, chunk)
// items, the output transform over (output channel, 8 tiles). Dynamic schedules everywhere:
// if one thread is descheduled (a busy machine), the others take over its work instead of
// waiting at the barrier.
template <class G>
void run_cooperative(const typename G::Ctx& cx, Transforms<G> tf) {
    const auto& a = *cx.a;
    const auto& p = *cx.p;
    const bool bf16 = a.w.precision == SW_PRECISION_BF16;
    typename G::Block shared = G::slot_block(cx, a.workspace);
#pragma omp parallel num_threads(p.threads)
    {
        float* buffer = thread_region(p, a.workspace, omp_get_thread_num());
        const typename G::Coeffs k(a.bt, a.at, a.n, a.m);
        for (int64_t blk = 0; blk < p.blocks; ++blk) {
#pragma omp single
            G::setup_block(cx, blk, shared);
            const typename G::Block b = shared;
            const int64_t in_items = G::input_items(cx, b);
#pragma omp for schedule(dynamic, 4)
            for (int64_t item = 0; item < in_items; ++item) tf.input(cx, b, k, buffer, item);
            if (bf16) {
#pragma omp for schedule(dynamic, 1)
                for (int pos = 0; pos < p.P; ++pos) position_to_bf16<G>(cx, b, pos);
            }
            const int64_t items = static_cast<int64_t>(p.P) * p.chunks;
#pragma omp for schedule(dynamic, 1)
            for (int64_t item = 0; item < items; ++item) {
                const int pos = static_cast<int>(item / p.chunks);
                const int j = static_cast<int>(item % p.chunks);
                position_chunks<G>(cx, b, pos, j, j + 1);
            }
            const int64_t out_items = static_cast<int64_t>(a.K) * b.groups;
#pragma omp for schedule(dynamic, 8)
            for (int64_t item = 0; item < out_items; ++item)
                tf.output(cx, b, k, static_cast<int>(item % b.groups),
                          static_cast<int>(item / b.groups));
        }
    }
}

// One convolution call: the transforms for its tiles, then the plan's thread mode.
template <class G>
int32_t run_winograd(const typename G::Ctx& cx) {
    if (cx.a->n < 2 || cx.a->n > SW_MAX_N) return SW_ERR_TILE;
    const Transforms<G> tf = choose_transforms<G>(*cx.a);
    if (cx.p->mode == SW_MODE_COOPERATIVE)
        run_cooperative<G>(cx, tf);
    else
        run_blocks<G>(cx, tf);
    return SW_OK;
}

}  // namespace
