// Internal: execution plans (blocking, threads, workspace layout) and the per-instruction-set
// function tables. Plain data shared by the dispatcher (sw_api.cpp) and the per-ISA builds.
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

// What the plan of every Winograd convolution holds (the generic code of sw_winograd_impl.h
// reads only these). Workspace: `slots` slots (block mode: one per thread; cooperative: one
// shared) holding a block's V, M and tile tables, then one region of thread_floats per thread:
// its input buffer (2-D: the band buffer; 3-D: none).
struct sw_winograd_plan {
    int32_t P;              // Winograd positions n^dims
    int64_t T;              // tiles in the batch
    int32_t Tb;             // tiles per block (power of two, 8..64): the V/M row length
    int32_t shift;          // log2(Tb)
    int64_t blocks;         // ceil(T / Tb)
    int32_t mode;           // SW_MODE_BLOCKS or SW_MODE_COOPERATIVE
    int32_t threads;        // OpenMP threads
    int32_t slots;          // block mode: threads; cooperative: 1
    int32_t chunks;         // ceil(K / SW_CHUNK_ROWS)
    int32_t lanes;          // vector lanes of the element-wise stage (8 or 16)
    int32_t transform_lanes;  // tiles per vector in the 2-D transforms (8, or 16 when lanes is)
    // Floats between Winograd positions in V (C*Tb) and M (K*Tb, whole chunks), padded to an
    // odd number of cache lines so that the n^dims rows of one tile never share an L1 set.
    int64_t v_pstride, m_pstride;
    int64_t off_v, off_m, slot_floats;      // inside a slot
    int64_t thread_floats;                  // a thread's region
    int64_t total_floats;
};

// conv2d: tile rows and columns per image; the slot's band and tile tables.
struct sw_plan : sw_winograd_plan {
    int32_t th, tw;         // tiles per image along H and W (T = N * th * tw)
    int64_t off_band_base, off_ints, off_out_off;
};

// Workspace of one gemm call: per thread, a block of Tb columns of x (C x Tb, "V") and an
// M chunk (24 x Tb).
struct sw_gemm_plan {
    int64_t T;              // columns: N * S
    int32_t Tb, shift;
    int64_t blocks;
    int32_t mode, threads, chunks, lanes;
    int64_t off_v, off_m, thread_floats, total_floats;
};

inline float sw_bits_float(uint32_t bits) {
    float f;
    __builtin_memcpy(&f, &bits, 4);
    return f;
}

// One float rounded to bf16 bits: to nearest even, subnormals to signed zero, NaN kept quiet.
// The reference for every build's vector rounding (Simd::bf16_pairs).
inline uint32_t sw_bf16_bits(float f) {
    uint32_t b;
    __builtin_memcpy(&b, &f, 4);
    if ((b & 0x7f800000u) == 0) b &= 0x80000000u;
    if ((b & 0x7fffffffu) > 0x7f800000u) return (b >> 16) | 0x40u;
    return (b + 0x7fffu + ((b >> 16) & 1u)) >> 16;
}

// Whether the CPU has AVX512-BF16 (defined in sw_api.cpp).
bool sw_cpu_has_avx512_bf16();

// conv3d: tiles per image along each dimension; the slot's tile tables.
struct sw_plan3d : sw_winograd_plan {
    int32_t td, th, tw;     // tiles per image along D, H and W (T = N * td * th * tw)
    int64_t off_tiles;
};

// The operations one instruction-set build provides.
struct sw_isa_table {
    int32_t (*conv2d)(const sw_conv2d_args*, const sw_plan*);
    int32_t (*gemm)(const sw_gemm_args*, const sw_gemm_plan*);
    int32_t (*pool2d)(const sw_pool2d_args*);
    int32_t (*eltwise)(const sw_eltwise_args*);
    int32_t lanes;          // native lanes of the element-wise stage
    int32_t (*conv3d)(const sw_conv3d_args*, const sw_plan3d*);
    int32_t (*adder)(const sw_adder_args*);
    int32_t (*adder_backward)(const sw_adder_grad_args*);
    bool (*bf16_hardware)();  // null, or whether this CPU runs the build's AVX512-BF16 products
};

// Each build defines its table from the kernels its *_impl.h headers define, with this one
// line (a null table where the build is not compiled in).
#define SW_DEFINE_ISA_TABLE(elementwise_lanes, bf16_hardware)                                  \
    const sw_isa_table kTable = {&conv2d_forward,  &gemm_forward,        &pool2d_forward,       \
                                 &eltwise_forward, (elementwise_lanes), &conv3d_forward,       \
                                 &adder::adder_forward, &adder::adder_backward, (bf16_hardware)}; \
    const sw_isa_table* const table = &kTable;

namespace sw_portable { extern const sw_isa_table* const table; }
namespace sw_avx2 { extern const sw_isa_table* const table; }
namespace sw_avx512 { extern const sw_isa_table* const table; }

#endif
