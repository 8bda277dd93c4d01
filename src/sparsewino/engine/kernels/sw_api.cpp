// C entry points: argument checks, execution plan (blocking/threads/workspace) and the
// run-time choice between the AVX2+FMA and the portable build of the kernel.
#include <cstdint>

#include "sw_kernels.h"
#include "sw_plan.h"

namespace {

// Tiles per block for sparse layers: kTileBudget / (C + K) (see sw_make_plan).
constexpr int64_t kTileBudget = 8192;
constexpr int32_t kMaxTileBlock = 64;           // 8 vectors of 8 tiles
constexpr int32_t kRowsPerItem = 4 * SW_DENSE_ROWS;
constexpr int64_t kLargeWeights = 1 << 20;      // bytes: streaming them per block is costly

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
        // Blocks are handed out in order; thread 0 gets blocks 0, T, 2T, ...; the last block
        // is the partial one.
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

bool cpu_has_avx2() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return false;
#endif
}

}  // namespace

int32_t sw_make_plan(const sw_conv2d_args* a, sw_plan* p) {
    if (!a || !p) return SW_ERR_ARGS;
    if (a->N < 1 || a->C < 1 || a->H < 1 || a->W < 1 || a->K < 1 || a->Ho < 1 || a->Wo < 1)
        return SW_ERR_ARGS;
    if (a->n < 2 || a->n > SW_MAX_N || a->m < 1 || a->m >= a->n) return SW_ERR_TILE;
    if (a->pad_top < 0 || a->pad_left < 0 || a->threads < 1 || a->tile_block < 0)
        return SW_ERR_ARGS;
    if (a->pool != 0 && (a->pool != 2 || a->m % 2 != 0 || a->Ho < 2 || a->Wo < 2))
        return SW_ERR_ARGS;
    if (!a->bt || !a->at || !a->formats || !a->rowptr || !a->dense_index) return SW_ERR_ARGS;
    // Any Ho/Wo is safe: image reads are masked to [0,H)x[0,W), writes stay in Ho x Wo.
    p->P = a->n * a->n;
    p->th = static_cast<int32_t>(ceil_div(a->Ho, a->m));
    p->tw = static_cast<int32_t>(ceil_div(a->Wo, a->m));
    p->T = static_cast<int64_t>(a->N) * p->th * p->tw;
    p->threads = a->threads;
    // Tiles per block: a power of two (8..64) so that CSR columns become V rows by a shift.
    // Dense panels run best on 16 tiles (two vectors per panel row); sparse rows gain from
    // longer rows (fewer loads per multiply-add) as long as one position's V and M rows
    // (C*Tb and K*Tb floats) stay within the L1/L2 caches: 8192 / (C + K) tiles.
    int dense = 0;
    for (int i = 0; i < p->P; ++i) dense += a->formats[i] == SW_DENSE;
    int64_t cache_tb = 2 * dense >= p->P ? 16 : kTileBudget / (a->C + a->K);
    cache_tb = pow2_floor(cache_tb);
    if (cache_tb < 16) cache_tb = 16;
    if (cache_tb > kMaxTileBlock) cache_tb = kMaxTileBlock;
    const int64_t groups = ceil_div(p->T, 8);
    int32_t mode = a->mode;
    // Independent blocks (no barriers; robust when a core is busy) unless there are fewer
    // 8-tile groups than threads, or fewer than two per thread while the weights are large:
    // then the threads share one block and each streams only part of the weights (measured
    // on 2 quiet cores at 16 tiles: sharing 0.29 vs 0.39 ms with 1.8 MiB of weights, a tie
    // with 0.45 MiB; blocks win from ~49 tiles).
    int64_t weight_bytes = 0;
    for (int i = 0; i < p->P; ++i) {
        const int32_t* rp = a->rowptr + static_cast<int64_t>(i) * (a->K + 1);
        if (a->formats[i] == SW_SPARSE) weight_bytes += 8 * static_cast<int64_t>(rp[a->K] - rp[0]);
        if (a->formats[i] == SW_DENSE) weight_bytes += 4 * static_cast<int64_t>(a->K) * a->C;
    }
    if (mode == SW_MODE_AUTO) {
        const bool share = groups < a->threads ||
                           (groups < 2 * a->threads && weight_bytes > kLargeWeights);
        mode = a->threads > 1 && share ? SW_MODE_COOPERATIVE : SW_MODE_BLOCKS;
    }
    if (mode != SW_MODE_BLOCKS && mode != SW_MODE_COOPERATIVE) return SW_ERR_ARGS;
    int64_t tb;
    if (a->tile_block > 0) {
        tb = a->tile_block;
    } else if (mode == SW_MODE_BLOCKS) {
        tb = balanced_block(p->T, a->threads, cache_tb);
    } else {
        tb = p->T < cache_tb ? p->T : cache_tb;
    }
    tb = pow2_ceil(tb < 8 ? 8 : tb);
    if (tb > kMaxTileBlock) tb = kMaxTileBlock;
    p->Tb = static_cast<int32_t>(tb);
    p->blocks = ceil_div(p->T, tb);
    p->mode = mode;
    p->slots = mode == SW_MODE_BLOCKS ? a->threads : 1;
    p->rows_per_item = kRowsPerItem;
    p->v_pstride = odd_lines(static_cast<int64_t>(a->C) * tb);
    p->m_pstride = odd_lines(static_cast<int64_t>(a->K) * tb);
    int64_t off = 0;
    p->off_v = off;
    off += p->P * p->v_pstride;
    p->off_m = off;
    off += p->P * p->m_pstride;
    p->off_band_base = off;
    off += align16(static_cast<int64_t>(tb) * 2);             // int64 per band
    p->off_ints = off;
    off += align16(static_cast<int64_t>(tb) * 9);             // 9 int32 arrays of Tb
    p->off_out_off = off;
    off += align16(static_cast<int64_t>(tb) * 2);
    // Band buffers: n rows per band; a band of k tiles needs (k-1)*m + 8 columns rounded up
    // to 8, so all bands together need at most n * Tb * (m + 15) floats.
    p->band_floats = align16(static_cast<int64_t>(a->n) * tb * (a->m + 15));
    p->off_band_buf = off;
    off += p->band_floats * (mode == SW_MODE_COOPERATIVE ? a->threads : 1);
    p->slot_floats = off;
    return SW_OK;
}

extern "C" {

SW_EXPORT int32_t sw_abi_version(void) { return SW_ABI_VERSION; }
SW_EXPORT int32_t sw_dense_rows(void) { return SW_DENSE_ROWS; }
SW_EXPORT int32_t sw_max_n(void) { return SW_MAX_N; }

SW_EXPORT int32_t sw_isa_supported(int32_t isa) {
    if (isa == SW_ISA_PORTABLE) return 1;
    if (isa == SW_ISA_AVX2) return cpu_has_avx2() ? 1 : 0;
    return 0;
}

SW_EXPORT int32_t sw_conv2d_workspace(const sw_conv2d_args* args, int64_t* floats) {
    sw_plan plan;
    const int32_t status = sw_make_plan(args, &plan);
    if (status != SW_OK) return status;
    if (floats) *floats = plan.slot_floats * plan.slots;
    return SW_OK;
}

SW_EXPORT int32_t sw_conv2d_plan(const sw_conv2d_args* args, int32_t* tile_block, int32_t* blocks,
                       int32_t* mode, int32_t* isa) {
    sw_plan plan;
    const int32_t status = sw_make_plan(args, &plan);
    if (status != SW_OK) return status;
    if (tile_block) *tile_block = plan.Tb;
    if (blocks) *blocks = static_cast<int32_t>(plan.blocks);
    if (mode) *mode = plan.mode;
    if (isa) *isa = args->isa == SW_ISA_AUTO ? (cpu_has_avx2() ? SW_ISA_AVX2 : SW_ISA_PORTABLE)
                                             : args->isa;
    return SW_OK;
}

SW_EXPORT int32_t sw_conv2d_forward(const sw_conv2d_args* args) {
    sw_plan plan;
    const int32_t status = sw_make_plan(args, &plan);
    if (status != SW_OK) return status;
    if (!args->x || !args->y || !args->workspace) return SW_ERR_ARGS;
    if (args->workspace_floats < plan.slot_floats * plan.slots) return SW_ERR_WORKSPACE;
    if (reinterpret_cast<uintptr_t>(args->workspace) % 64 != 0) return SW_ERR_ALIGN;
    int32_t isa = args->isa;
    if (isa == SW_ISA_AUTO) isa = cpu_has_avx2() ? SW_ISA_AVX2 : SW_ISA_PORTABLE;
    if (isa == SW_ISA_AVX2) {
        if (!cpu_has_avx2()) return SW_ERR_ISA;
        return sw_avx2::conv2d_forward(args, &plan);
    }
    if (isa == SW_ISA_PORTABLE) return sw_portable::conv2d_forward(args, &plan);
    return SW_ERR_ISA;
}

}  // extern "C"
