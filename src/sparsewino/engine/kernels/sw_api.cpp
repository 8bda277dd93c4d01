// C entry points: argument checks, execution plans (blocking/threads/workspace), the run-time
// choice of instruction set (portable, AVX2+FMA, AVX-512), the program runner (its switch
// generated from SW_OPERATIONS) and the ABI tables the Python loader checks.
#include <chrono>
#include <cstdint>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include "sw_kernels.h"
#include "sw_plan.h"

namespace {

constexpr int32_t kMaxTileBlock = 64;           // 8 vectors of 8 tiles
constexpr int64_t kLargeWeights = 1 << 20;      // bytes: streaming them per block is costly
// Bytes of transformed input (V, all positions) one block may hold: it is written once and
// read once per block; measured on Zen 3 (512 KiB L2), blocks up to ~1 MiB of V still win
// (fewer passes over the weights).
constexpr int64_t kVBudget = 1024 * 1024;
constexpr int64_t kGemmVBudget = 128 * 1024;    // a gemm block of x columns

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t align16(int64_t floats) { return (floats + 15) / 16 * 16; }
int64_t pow2_floor(int64_t v) {
    int64_t r = 1;
    while (2 * r <= v) r *= 2;
    return r;
}
int64_t pow2_ceil(int64_t v) {
    int64_t r = 1;
    while (r < v) r *= 2;
    return r;
}
int32_t log2_exact(int64_t v) {
    int32_t s = 0;
    while ((int64_t{1} << s) < v) ++s;
    return s;
}
int64_t clamp64(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : (v > hi ? hi : v); }
// A stride of an odd number of 64-byte lines spreads consecutive rows over all L1 sets.
int64_t odd_lines(int64_t floats) {
    const int64_t lines = (floats + 15) / 16;
    return (lines % 2 ? lines : lines + 1) * 16;
}

// Block size (power of two, 8..cap) minimising the estimated finishing time when the
// threads take blocks in turn: the busiest thread's tiles plus a fixed cost per block
// (setup and one pass over the weights, worth about kBlockCost tiles).
constexpr int64_t kBlockCost = 8;
int64_t balanced_block(int64_t tiles, int threads, int64_t cap) {
    int64_t best = 8, best_cost = -1, best_blocks = 0;
    for (int64_t tb = 8; tb <= cap; tb *= 2) {
        const int64_t blocks = ceil_div(tiles, tb);
        if (blocks == best_blocks) break;                // larger blocks only add padding
        int64_t worst = 0;
        for (int t = 0; t < threads && t < blocks; ++t) {
            int64_t mine = 0, count = 0;
            for (int64_t b = t; b < blocks; b += threads, ++count)
                mine += b == blocks - 1 ? tiles - (blocks - 1) * tb : tb;
            const int64_t cost = mine + count * kBlockCost;
            if (cost > worst) worst = cost;
        }
        if (best_cost < 0 || worst <= best_cost) {   // ties: the larger block (fewer blocks)
            best = tb;
            best_cost = worst;
            best_blocks = blocks;
        }
    }
    return best;
}

bool cpu_has(int32_t isa) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (isa == SW_ISA_AVX2)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
               __builtin_cpu_supports("f16c");
    if (isa == SW_ISA_AVX512)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
               __builtin_cpu_supports("f16c");
#endif
    return isa == SW_ISA_PORTABLE;
}

}  // namespace

bool sw_cpu_has_avx512_bf16() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bf16");
#else
    return false;
#endif
}

namespace {

const sw_isa_table* table_of(int32_t isa) {
    switch (isa) {
        case SW_ISA_PORTABLE: return sw_portable::table;
        case SW_ISA_AVX2: return sw_avx2::table;
        case SW_ISA_AVX512: return sw_avx512::table;
        default: return nullptr;
    }
}

// The table to run `isa` (SW_ISA_AUTO: the best compiled-in set this CPU runs), or null.
const sw_isa_table* runnable(int32_t isa, int32_t* chosen) {
    if (isa == SW_ISA_AUTO) {
        constexpr int32_t order[] = {SW_ISA_AVX512, SW_ISA_AVX2, SW_ISA_PORTABLE};
        for (int32_t candidate : order)
            if (table_of(candidate) && cpu_has(candidate)) {
                if (chosen) *chosen = candidate;
                return table_of(candidate);
            }
        return nullptr;
    }
    if (!table_of(isa) || !cpu_has(isa)) return nullptr;
    if (chosen) *chosen = isa;
    return table_of(isa);
}

// Lanes of the element-wise stage for a block of Tb tiles: as requested, else the build's;
// 16 only where Tb allows.
int32_t plan_lanes(int32_t requested, const sw_isa_table* table, int64_t tb) {
    if (requested == 16) return tb % 16 == 0 ? 16 : 8;
    if (requested == 8) return 8;
    return table && table->lanes == 16 && tb % 16 == 0 ? 16 : 8;
}

// Whether this CPU splits each 512-bit operation into two 256-bit ones: AMD family 19h
// (Zen 4). There whole models with the 2-D transforms on 16 tiles per vector were 2-4 % slower
// than on 8 at batch 32 and no faster at batch 1 (no more arithmetic per cycle, wider band
// rounding; docs/performance.md, "16 lanes"). Read once (cpuid).
bool splits_512_bit() {
#if defined(__x86_64__) || defined(__i386__)
    static const bool splits = [] {
        unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
        if (!__get_cpuid(0, &eax, &ebx, &ecx, &edx)) return false;
        const bool amd = ebx == 0x68747541u && edx == 0x69746e65u && ecx == 0x444d4163u;
        if (!amd || !__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return false;
        unsigned family = (eax >> 8) & 0xfu;
        if (family == 0xfu) family += (eax >> 20) & 0xffu;
        return family == 0x19u;
    }();
    return splits;
#else
    return false;
#endif
}

// Tiles per vector of the 2-D transforms (3-D plans carry it unread: their transforms run 8):
// with 16 element-wise lanes, 16 when the caller asked for 16 or the CPU runs 512-bit
// operations whole; else 8.
int32_t plan_transform_lanes(int32_t requested, int32_t lanes) {
    return lanes == 16 && (requested == 16 || !splits_512_bit()) ? 16 : 8;
}

bool matrices_ok(const sw_matrices& w, int32_t P, int32_t K, int32_t C) {
    return w.P == P && w.K == K && w.C == C && w.formats && w.slice_ptr && w.slice_rows &&
           w.dense_index && w.block_ptr && C <= SW_MAX_COLUMNS &&
           (w.precision == SW_PRECISION_FP32 || w.precision == SW_PRECISION_FP16 ||
            w.precision == SW_PRECISION_BF16);
}

int64_t weight_bytes(const sw_matrices& w) {
    const int64_t S = ceil_div(w.K, SW_SLICE_ROWS);
    int64_t bytes = 0;
    for (int i = 0; i < w.P; ++i) {
        // bf16: sparse entries are single 2-byte weights, dense panels 4-byte pairs.
        const bool bf16 = w.precision == SW_PRECISION_BF16;
        const int64_t value = w.precision == SW_PRECISION_FP16 || bf16 ? 2 : 4;
        const int64_t columns = bf16 ? (w.C + 1) / 2 : w.C;
        if (w.formats[i] == SW_SPARSE)
            bytes += (2 + value) *
                     static_cast<int64_t>(w.slice_ptr[i * (S + 1) + S] - w.slice_ptr[i * (S + 1)]);
        if (w.formats[i] == SW_DENSE)
            bytes += (bf16 ? 4 : value) * static_cast<int64_t>(w.K) * columns;
        if (w.formats[i] == SW_BLOCKED) {
            const int64_t B = ceil_div(w.K, SW_BLOCK_ROWS);
            bytes += (2 + SW_BLOCK_ROWS * value) *
                     static_cast<int64_t>(w.block_ptr[i * (B + 1) + B] - w.block_ptr[i * (B + 1)]);
        }
    }
    return bytes;
}

}  // namespace

// Tiles per block a cache budget allows: a power of two (8..64, so that sparse column indices
// become V rows by a shift), as many as keep `floats_per_tile` x Tb floats within `bytes`.
static int64_t cache_tile_block(int64_t bytes, int64_t floats_per_tile) {
    return clamp64(pow2_floor(bytes / (4 * floats_per_tile)), 8, kMaxTileBlock);
}

// The one thread-mode and tile-block rule of the planned operations (conv2d, conv3d, gemm),
// filling Tb, shift, blocks, mode, chunks and lanes of the plan from its T and threads.
// Mode: independent blocks (no barriers; robust when a core is busy) unless there are fewer
// 8-tile groups than threads, or fewer than two per thread while the weights are large
// (`always_large`, or more than kLargeWeights bytes): then the threads share one block and
// each streams only part of the weights. Tiles per block: the caller's, else in block mode
// the balanced size up to cache_tb, else (cooperative) all tiles up to cache_tb.
template <class Args, class Plan>
static int32_t plan_blocking(const Args& a, int64_t cache_tb, Plan* p, bool always_large = false) {
    const int64_t groups = ceil_div(p->T, 8);
    int32_t mode = a.mode;
    if (mode == SW_MODE_AUTO) {
        const bool large = always_large || weight_bytes(a.w) > kLargeWeights;
        const bool share = groups < a.threads || (groups < 2 * a.threads && large);
        mode = a.threads > 1 && share ? SW_MODE_COOPERATIVE : SW_MODE_BLOCKS;
    }
    if (mode != SW_MODE_BLOCKS && mode != SW_MODE_COOPERATIVE) return SW_ERR_ARGS;
    int64_t tb;
    if (a.tile_block > 0)
        tb = a.tile_block;
    else if (mode == SW_MODE_BLOCKS)
        tb = balanced_block(p->T, a.threads, cache_tb);
    else
        tb = p->T < cache_tb ? p->T : cache_tb;
    tb = clamp64(pow2_ceil(tb < 8 ? 8 : tb), 8, kMaxTileBlock);
    p->Tb = static_cast<int32_t>(tb);
    p->shift = log2_exact(tb);
    p->blocks = ceil_div(p->T, tb);
    p->mode = mode;
    p->chunks = static_cast<int32_t>(ceil_div(a.K, SW_CHUNK_ROWS));
    p->lanes = plan_lanes(a.lanes, runnable(a.isa, nullptr), tb);
    return SW_OK;
}

// The checks every Winograd convolution's arguments share (after its own size checks): the
// tile n, m, the threads, tile block and lanes, the transforms and the n^dims packed matrices.
template <class Args>
static int32_t winograd_args_status(const Args& a, int dims) {
    if (a.n < 2 || a.n > SW_MAX_N || a.m < 1 || a.m >= a.n) return SW_ERR_TILE;
    if (a.threads < 1 || a.tile_block < 0) return SW_ERR_ARGS;
    if (a.lanes != 0 && a.lanes != 8 && a.lanes != 16) return SW_ERR_ARGS;
    int32_t positions = 1;
    for (int d = 0; d < dims; ++d) positions *= a.n;
    if (!a.bt || !a.at || !matrices_ok(a.w, positions, a.K, a.C)) return SW_ERR_ARGS;
    return SW_OK;
}

// The blocking of a Winograd convolution (conv2d, conv3d) whose plan has P and T, and the
// start of its slots: one slot per thread in block mode, one shared slot in cooperative mode,
// each beginning with V (P x C x Tb) and M (P x whole chunks x Tb; the last chunk's padding
// rows are written, never read), the floats between positions padded to an odd number of
// cache lines. Tb keeps the block's V within v_budget bytes. *slot_end: the offset after M.
template <class Args, class Plan>
static int32_t plan_winograd(const Args& a, int64_t v_budget, Plan* p, int64_t* slot_end) {
    p->threads = a.threads;
    const int64_t cache_tb = cache_tile_block(v_budget, int64_t{p->P} * a.C);
    const int32_t status = plan_blocking(a, cache_tb, p);
    if (status != SW_OK) return status;
    p->transform_lanes = plan_transform_lanes(a.lanes, p->lanes);
    p->slots = p->mode == SW_MODE_BLOCKS ? a.threads : 1;
    p->v_pstride = odd_lines(static_cast<int64_t>(a.C) * p->Tb);
    p->m_pstride = odd_lines(static_cast<int64_t>(p->chunks) * SW_CHUNK_ROWS * p->Tb);
    p->off_v = 0;
    p->off_m = p->P * p->v_pstride;
    *slot_end = p->off_m + p->P * p->m_pstride;
    return SW_OK;
}

// The end of a Winograd convolution's layout: slots of slot_floats, then per thread an input
// buffer of buffer_floats.
static void plan_regions(int64_t slot_floats, int64_t buffer_floats, sw_winograd_plan* p) {
    p->slot_floats = slot_floats;
    p->thread_floats = buffer_floats;
    p->total_floats = p->slots * slot_floats + p->threads * p->thread_floats;
}

static int32_t sw_make_plan(const sw_conv2d_args* a, sw_plan* p) {
    if (!a || !p) return SW_ERR_ARGS;
    if (a->N < 1 || a->C < 1 || a->H < 1 || a->W < 1 || a->K < 1 || a->Ho < 1 || a->Wo < 1)
        return SW_ERR_ARGS;
    const int32_t checked = winograd_args_status(*a, 2);
    if (checked != SW_OK) return checked;
    if (a->pad_top < 0 || a->pad_left < 0) return SW_ERR_ARGS;
    if (a->pool != 0 && (a->pool != 2 || a->m % 2 != 0 || a->Ho < 2 || a->Wo < 2 || a->residual))
        return SW_ERR_ARGS;
    // Any Ho/Wo is safe: image reads are masked to [0,H)x[0,W), writes stay in Ho x Wo.
    p->P = a->n * a->n;
    p->th = static_cast<int32_t>(ceil_div(a->Ho, a->m));
    p->tw = static_cast<int32_t>(ceil_div(a->Wo, a->m));
    p->T = static_cast<int64_t>(a->N) * p->th * p->tw;
    int64_t off = 0;
    const int32_t status = plan_winograd(*a, kVBudget, p, &off);
    if (status != SW_OK) return status;
    const int64_t tb = p->Tb;
    p->off_band_base = off;
    off += align16(tb * 2);                                   // int64 per band
    p->off_ints = off;
    off += align16(tb * 9);                                   // 9 int32 arrays of Tb
    p->off_out_off = off;
    off += align16(tb * 2);
    // Band buffers: n rows per band; a band of k tiles needs (k-1)*m + 8 columns rounded up
    // to the transforms' lanes (8 or 16), so all bands together need at most
    // n * Tb * (m + 23) floats.
    plan_regions(off, align16(static_cast<int64_t>(a->n) * tb * (a->m + 23)), p);
    return SW_OK;
}

static int32_t sw_make_gemm_plan(const sw_gemm_args* a, sw_gemm_plan* p) {
    if (!a || !p) return SW_ERR_ARGS;
    if (a->N < 1 || a->C < 1 || a->K < 1 || a->S < 1 || a->threads < 1 || a->tile_block < 0)
        return SW_ERR_ARGS;
    if (a->lanes != 0 && a->lanes != 8 && a->lanes != 16) return SW_ERR_ARGS;
    if (!matrices_ok(a->w, 1, a->K, a->C)) return SW_ERR_ARGS;
    p->T = static_cast<int64_t>(a->N) * a->S;
    p->threads = a->threads;
    // A block of x columns (C x Tb floats) within kGemmVBudget. A gemm streams its whole
    // weight matrix per block, so it counts as large weights in the thread-mode rule.
    const int64_t cache_tb = cache_tile_block(kGemmVBudget, a->C);
    const int32_t status = plan_blocking(*a, cache_tb, p, /*always_large=*/true);
    if (status != SW_OK) return status;
    const int64_t tb = p->Tb;
    p->off_v = 0;
    p->off_m = align16(static_cast<int64_t>(a->C) * tb);
    p->thread_floats = p->off_m + align16(static_cast<int64_t>(SW_CHUNK_ROWS) * tb);
    // Then the column runs: Tb per thread, 6 floats (24 bytes) each.
    p->total_floats = p->threads * p->thread_floats + align16(int64_t{a->threads} * tb * 6);
    return SW_OK;
}

// Bytes of transformed input (V, all n^3 positions) one conv3d block may hold. 3-D layers
// have 3.4x (F(4,3)^3) more positions per tile than 2-D ones: a block of up to 64 tiles keeps
// each pass over the weights (P x K x C) serving as many tiles as possible (measured in
// benchmarks/engine3d.py), while V and M stay in the last-level cache.
constexpr int64_t kV3Budget = 4 * 1024 * 1024;

static int32_t sw_make_plan3d(const sw_conv3d_args* a, sw_plan3d* p) {
    if (!a || !p) return SW_ERR_ARGS;
    if (a->N < 1 || a->C < 1 || a->D < 1 || a->H < 1 || a->W < 1 || a->K < 1 || a->Do < 1 ||
        a->Ho < 1 || a->Wo < 1)
        return SW_ERR_ARGS;
    const int32_t checked = winograd_args_status(*a, 3);
    if (checked != SW_OK) return checked;
    if (a->pad_front < 0 || a->pad_top < 0 || a->pad_left < 0) return SW_ERR_ARGS;
    // Any Do/Ho/Wo is safe: reads are masked to the volume, writes stay in Do x Ho x Wo.
    p->P = a->n * a->n * a->n;
    p->td = static_cast<int32_t>(ceil_div(a->Do, a->m));
    p->th = static_cast<int32_t>(ceil_div(a->Ho, a->m));
    p->tw = static_cast<int32_t>(ceil_div(a->Wo, a->m));
    p->T = static_cast<int64_t>(a->N) * p->td * p->th * p->tw;
    int64_t off = 0;
    const int32_t status = plan_winograd(*a, kV3Budget, p, &off);
    if (status != SW_OK) return status;
    const int64_t tb = p->Tb;
    p->off_tiles = off;
    off += align16(tb * 4 + tb * 7);                         // 2 int64 and 7 int32 per tile
    plan_regions(off, 0, p);                             // no input buffer
    return SW_OK;
}

// The planned operations (conv2d, gemm, conv3d) share their entry points: make the plan,
// check the buffers, run the kernel of the requested instruction set.
template <class Args, class Plan>
using sw_kernel_fn = int32_t (*)(const Args*, const Plan*);

template <class Args, class Plan>
static int32_t planned_workspace(const Args* args, int32_t (*make)(const Args*, Plan*),
                                 int64_t* floats) {
    Plan plan;
    const int32_t status = make(args, &plan);
    if (status != SW_OK) return status;
    if (floats) *floats = plan.total_floats;
    return SW_OK;
}

template <class Args, class Plan>
static int32_t planned_describe(const Args* args, int32_t (*make)(const Args*, Plan*),
                                int32_t* tile_block, int32_t* blocks, int32_t* mode,
                                int32_t* isa) {
    Plan plan;
    const int32_t status = make(args, &plan);
    if (status != SW_OK) return status;
    int32_t chosen = 0;
    if (!runnable(args->isa, &chosen)) return SW_ERR_ISA;
    if (tile_block) *tile_block = plan.Tb;
    if (blocks) *blocks = static_cast<int32_t>(plan.blocks);
    if (mode) *mode = plan.mode;
    if (isa) *isa = chosen;
    return SW_OK;
}

template <class Args, class Plan>
static int32_t planned_forward(const Args* args, int32_t (*make)(const Args*, Plan*),
                               sw_kernel_fn<Args, Plan> sw_isa_table::*kernel) {
    Plan plan;
    const int32_t status = make(args, &plan);
    if (status != SW_OK) return status;
    if (!args->x || !args->y || !args->workspace) return SW_ERR_ARGS;
    if (args->workspace_floats < plan.total_floats) return SW_ERR_WORKSPACE;
    if (reinterpret_cast<uintptr_t>(args->workspace) % 64 != 0) return SW_ERR_ALIGN;
    const sw_isa_table* table = runnable(args->isa, nullptr);
    if (!table || !(table->*kernel)) return SW_ERR_ISA;
    return (table->*kernel)(args, &plan);
}

// The adder product and its gradient: the sizes, the exponent and the CPU are checked before
// any instruction-set code runs; empty products are done without touching the arrays.
static bool adder_sizes_ok(int64_t B, int64_t A, int64_t C, int64_t J, float p, int32_t threads) {
    return B >= 0 && A >= 0 && C >= 0 && J >= 0 && p >= 1.0f && p <= 2.0f && threads >= 1;
}

// One operation of a program: the entry point of its kind (the switch is generated from
// SW_OPERATIONS).
static int32_t run_operation(const sw_op& op) {
#define SW_OP_CASE(NAME, code, name, type) \
    case SW_OP_##NAME: return sw_##name##_forward(static_cast<const type*>(op.args));
    switch (op.kind) {
        SW_OPERATIONS(SW_OP_CASE)
        default: return SW_ERR_OP;
    }
#undef SW_OP_CASE
}

// The ABI as data (sw_kernels.h), generated from the lists so that it cannot drift.
#define SW_OP_INFO(NAME, code, name, type) {#name, #type, code, static_cast<int32_t>(sizeof(type))},
static const sw_op_info kOpTable[] = {SW_OPERATIONS(SW_OP_INFO)};
#undef SW_OP_INFO
#define SW_OP_STRUCT(NAME, code, name, type) {#type, static_cast<int32_t>(sizeof(type))},
#define SW_STRUCT_INFO(type) {#type, static_cast<int32_t>(sizeof(type))},
static const sw_struct_info kStructTable[] = {SW_OPERATIONS(SW_OP_STRUCT)
                                              SW_SHARED_STRUCTS(SW_STRUCT_INFO)};
#undef SW_STRUCT_INFO
#undef SW_OP_STRUCT
#define SW_CONSTANT_INFO(constant) {#constant, static_cast<int64_t>(constant)},
static const sw_constant_info kConstantTable[] = {SW_CONSTANTS(SW_CONSTANT_INFO)};
#undef SW_CONSTANT_INFO

template <class T, int32_t Count>
static const T* table_with_count(const T (&table)[Count], int32_t* count) {
    if (count) *count = Count;
    return table;
}

extern "C" {

SW_EXPORT int32_t sw_abi_version(void) { return SW_ABI_VERSION; }
SW_EXPORT int32_t sw_dense_rows(void) { return SW_DENSE_ROWS; }
SW_EXPORT int32_t sw_slice_rows(void) { return SW_SLICE_ROWS; }
SW_EXPORT int32_t sw_chunk_rows(void) { return SW_CHUNK_ROWS; }
SW_EXPORT int32_t sw_max_n(void) { return SW_MAX_N; }

SW_EXPORT int32_t sw_isa_compiled(int32_t isa) { return table_of(isa) ? 1 : 0; }
SW_EXPORT int32_t sw_isa_supported(int32_t isa) { return runnable(isa, nullptr) ? 1 : 0; }
SW_EXPORT int32_t sw_isa_bf16_hardware(int32_t isa) {
    const sw_isa_table* t = runnable(isa, nullptr);
    return t && t->bf16_hardware && t->bf16_hardware() ? 1 : 0;
}
SW_EXPORT int32_t sw_isa_lanes(int32_t isa) {
    const sw_isa_table* t = table_of(isa);
    return t ? t->lanes : 0;
}

SW_EXPORT int32_t sw_conv2d_workspace(const sw_conv2d_args* args, int64_t* floats) {
    return planned_workspace(args, sw_make_plan, floats);
}

SW_EXPORT int32_t sw_gemm_workspace(const sw_gemm_args* args, int64_t* floats) {
    return planned_workspace(args, sw_make_gemm_plan, floats);
}

SW_EXPORT int32_t sw_conv3d_workspace(const sw_conv3d_args* args, int64_t* floats) {
    return planned_workspace(args, sw_make_plan3d, floats);
}

SW_EXPORT int32_t sw_conv2d_plan(const sw_conv2d_args* args, int32_t* tile_block, int32_t* blocks,
                                 int32_t* mode, int32_t* isa) {
    return planned_describe(args, sw_make_plan, tile_block, blocks, mode, isa);
}

SW_EXPORT int32_t sw_conv3d_plan(const sw_conv3d_args* args, int32_t* tile_block, int32_t* blocks,
                                 int32_t* mode, int32_t* isa) {
    return planned_describe(args, sw_make_plan3d, tile_block, blocks, mode, isa);
}

SW_EXPORT int32_t sw_conv2d_forward(const sw_conv2d_args* args) {
    return planned_forward(args, sw_make_plan, &sw_isa_table::conv2d);
}

SW_EXPORT int32_t sw_gemm_forward(const sw_gemm_args* args) {
    return planned_forward(args, sw_make_gemm_plan, &sw_isa_table::gemm);
}

SW_EXPORT int32_t sw_conv3d_forward(const sw_conv3d_args* args) {
    return planned_forward(args, sw_make_plan3d, &sw_isa_table::conv3d);
}

SW_EXPORT int32_t sw_pool2d_forward(const sw_pool2d_args* a) {
    if (!a || !a->x || !a->y || a->N < 1 || a->C < 1 || a->H < 1 || a->W < 1 || a->Ho < 1 ||
        a->Wo < 1 || a->kh < 1 || a->kw < 1 || a->sh < 1 || a->sw < 1 || a->ph < 0 ||
        a->pw < 0 || a->threads < 1 || (a->kind != SW_POOL_MAX && a->kind != SW_POOL_AVG))
        return SW_ERR_ARGS;
    // Every window must start inside the padded input (what torch guarantees for ceil_mode).
    if (static_cast<int64_t>(a->Ho - 1) * a->sh >= a->H + a->ph ||
        static_cast<int64_t>(a->Wo - 1) * a->sw >= a->W + a->pw)
        return SW_ERR_ARGS;
    const sw_isa_table* table = runnable(a->isa, nullptr);
    return table ? table->pool2d(a) : SW_ERR_ISA;
}

SW_EXPORT int32_t sw_eltwise_forward(const sw_eltwise_args* a) {
    if (!a || !a->a || !a->y || a->outer < 0 || a->channels < 1 || a->inner < 0 ||
        a->threads < 1)
        return SW_ERR_ARGS;
    if ((a->kind == SW_ELT_ADD && !a->b) ||
        (a->kind == SW_ELT_AFFINE && (!a->scale || !a->shift)) ||
        (a->kind != SW_ELT_ADD && a->kind != SW_ELT_AFFINE && a->kind != SW_ELT_COPY))
        return SW_ERR_ARGS;
    const sw_isa_table* table = runnable(a->isa, nullptr);
    return table ? table->eltwise(a) : SW_ERR_ISA;
}

SW_EXPORT int32_t sw_adder_forward(const sw_adder_args* a) {
    if (!a || !adder_sizes_ok(a->B, a->A, a->C, a->J, a->p, a->threads)) return SW_ERR_ARGS;
    const sw_isa_table* table = runnable(a->isa, nullptr);
    if (!table || !table->adder) return SW_ERR_ISA;
    if (a->B * a->A * a->C == 0) return SW_OK;
    if (!a->x || !a->wt || !a->y) return SW_ERR_ARGS;
    return table->adder(a);
}

SW_EXPORT int32_t sw_adder_backward(const sw_adder_grad_args* a) {
    if (!a || !adder_sizes_ok(a->B, a->A, a->C, a->J, a->p, a->threads) ||
        (a->mode != SW_ADDER_GRAD_HARDTANH && a->mode != SW_ADDER_GRAD_EXACT))
        return SW_ERR_ARGS;
    const sw_isa_table* table = runnable(a->isa, nullptr);
    if (!table || !table->adder_backward) return SW_ERR_ISA;
    if (a->B * a->A * a->J == 0) return SW_OK;
    if (!a->grad_y || !a->w || !a->x || !a->grad_x) return SW_ERR_ARGS;
    return table->adder_backward(a);
}

// The one runner of a program; `seconds` (may be null) receives each operation's wall time.
static int32_t run_ops(const sw_op* ops, int32_t count, int32_t* failed, double* seconds) {
    if (!ops || count < 0) return SW_ERR_ARGS;
    for (int32_t i = 0; i < count; ++i) {
        if (!seconds) {
            const int32_t status = run_operation(ops[i]);
            if (status == SW_OK) continue;
            if (failed) *failed = i;
            return status;
        }
        const auto start = std::chrono::steady_clock::now();
        const int32_t status = run_operation(ops[i]);
        seconds[i] = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        if (status != SW_OK) {
            if (failed) *failed = i;
            return status;
        }
    }
    return SW_OK;
}

SW_EXPORT int32_t sw_run_program(const sw_op* ops, int32_t count, int32_t* failed) {
    return run_ops(ops, count, failed, nullptr);
}

SW_EXPORT int32_t sw_run_program_timed(const sw_op* ops, int32_t count, int32_t* failed,
                                       double* seconds) {
    return run_ops(ops, count, failed, seconds);
}

SW_EXPORT const sw_op_info* sw_op_table(int32_t* count) {
    return table_with_count(kOpTable, count);
}
SW_EXPORT const sw_struct_info* sw_struct_table(int32_t* count) {
    return table_with_count(kStructTable, count);
}
SW_EXPORT const sw_constant_info* sw_constant_table(int32_t* count) {
    return table_with_count(kConstantTable, count);
}

}  // extern "C"
