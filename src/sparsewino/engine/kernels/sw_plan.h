// Internal: the execution plan of one layer call (blocking, threads, workspace layout).
// Plain data shared by the dispatcher and the per-instruction-set translation units.
#ifndef SPARSEWINO_SW_PLAN_H
#define SPARSEWINO_SW_PLAN_H

#include <cstdint>

#include "sw_kernels.h"

#ifdef _OPENMP
#include <omp.h>
#else
// Built without OpenMP: the parallel pragmas are ignored and everything runs on one thread.
inline int omp_get_thread_num() { return 0; }
#endif

struct sw_plan {
    int32_t P;              // Winograd positions n*n
    int32_t th, tw;         // tiles per image along H and W
    int64_t T;              // tiles in the batch (N * th * tw)
    int32_t Tb;             // tiles per block (multiple of 8): the buffer row length
    int64_t blocks;         // ceil(T / Tb)
    int32_t mode;           // SW_MODE_BLOCKS or SW_MODE_COOPERATIVE
    int32_t threads;        // OpenMP threads
    int32_t slots;          // workspace slots (one per thread in block mode, else one)
    int32_t rows_per_item;  // output channels per work item in cooperative mode
    // Floats between Winograd positions in V and M: C*Tb (K*Tb) padded to an odd number of
    // cache lines, so the n*n rows of one tile group never share an L1 set (4 KiB aliasing).
    int64_t v_pstride, m_pstride;
    // Offsets (in floats) of the regions of one slot, and the slot size.
    int64_t off_v, off_m, off_band_base, off_ints, off_out_off, off_band_buf;
    int64_t band_floats;    // one band buffer (a slot holds one per thread in cooperative mode)
    int64_t slot_floats;
};

// Filled by sw_make_plan (sw_api.cpp); returns SW_OK or an error status.
int32_t sw_make_plan(const sw_conv2d_args* args, sw_plan* plan);

namespace sw_avx2 {
int32_t conv2d_forward(const sw_conv2d_args* args, const sw_plan* plan);
}
namespace sw_portable {
int32_t conv2d_forward(const sw_conv2d_args* args, const sw_plan* plan);
}

#endif
