// C interface of the sparse Winograd CPU kernels (loaded from Python with ctypes).
//
// One call computes a whole stride-1 2-D Winograd convolution layer,
//   y = A^T [ U (.) (B^T d B) ] A  (+ bias, optional ReLUs),
// fused per block of tiles: input transform -> per-position sparse/dense product ->
// output transform. Weights come pre-packed (see packing.py): per Winograd position
// either "zero", CSR over (K rows, C columns) or dense 6-row panels.
#ifndef SPARSEWINO_SW_KERNELS_H
#define SPARSEWINO_SW_KERNELS_H

#include <cstdint>

#define SW_ABI_VERSION 2
#define SW_DENSE_ROWS 6          // rows (output channels) per dense weight panel
#define SW_MAX_N 8               // largest Winograd input tile n supported (n <= 8)

enum sw_format : int8_t { SW_ZERO = 0, SW_SPARSE = 1, SW_DENSE = 2 };
enum sw_isa : int32_t { SW_ISA_AUTO = 0, SW_ISA_PORTABLE = 1, SW_ISA_AVX2 = 2 };
enum sw_mode : int32_t { SW_MODE_AUTO = 0, SW_MODE_BLOCKS = 1, SW_MODE_COOPERATIVE = 2 };
enum sw_status : int32_t {
    SW_OK = 0,
    SW_ERR_ARGS = -1,          // null pointer or inconsistent sizes
    SW_ERR_WORKSPACE = -2,     // workspace smaller than sw_conv2d_workspace() asked for
    SW_ERR_TILE = -3,          // tile sizes outside what the kernel supports
    SW_ERR_ISA = -4,           // requested instruction set not supported by this CPU
    SW_ERR_ALIGN = -5,         // workspace not 64-byte aligned
};

#define SW_EXPORT __attribute__((visibility("default")))

extern "C" {

// Everything one layer call needs. Pointers are borrowed, never freed by the kernel.
struct sw_conv2d_args {
    int32_t N, C, H, W;        // input (N, C, H, W), contiguous float32
    int32_t K, Ho, Wo;         // output (N, K, Ho, Wo), contiguous float32
    int32_t n, m;              // Winograd input tile n and output tile m (same in H and W)
    int32_t pad_top, pad_left; // zero padding before the first row / column
    const float* bt;           // B^T, n x n, row-major
    const float* at;           // A^T, m x n, row-major
    const int8_t* formats;     // P = n*n entries of sw_format
    const int32_t* rowptr;     // P * (K + 1) CSR row pointers (into col/val)
    const int32_t* col;        // CSR column (input channel) indices
    const float* val;          // CSR values
    const int32_t* dense_index;// P entries: panel set index for SW_DENSE positions, else -1
    const float* dense;        // [sets][ceil(K/6)][C][6] dense panels
    const float* bias;         // K entries or null
    int32_t relu_input;        // ReLU after the input transform (Winograd-ReLU layers)
    int32_t relu_output;       // ReLU on the output (fused activation)
    int32_t pool;              // 2: fused 2x2/stride-2 max-pool (floor), y is (N,K,Ho/2,Wo/2);
                               // needs an even m. 0: none
    const float* x;
    float* y;
    float* workspace;          // 64-byte aligned, >= sw_conv2d_workspace() floats
    int64_t workspace_floats;
    int32_t threads;           // OpenMP threads (>= 1)
    int32_t isa;               // sw_isa
    int32_t tile_block;        // tiles per block (rounded up to a power of two, 8..64), 0 = auto
    int32_t mode;              // sw_mode
};

// Floats of workspace the call described by args needs (x, y, workspace may be null).
SW_EXPORT int32_t sw_conv2d_workspace(const sw_conv2d_args* args, int64_t* floats);
// Run the layer. Returns SW_OK or a negative sw_status; y is fully written on success.
SW_EXPORT int32_t sw_conv2d_forward(const sw_conv2d_args* args);
// Describe the plan sw_conv2d_forward would use: tiles per block, blocks, mode, isa.
SW_EXPORT int32_t sw_conv2d_plan(const sw_conv2d_args* args, int32_t* tile_block, int32_t* blocks,
                       int32_t* mode, int32_t* isa);
// 1 if the instruction set can run on this CPU (and was compiled in), else 0.
SW_EXPORT int32_t sw_isa_supported(int32_t isa);
SW_EXPORT int32_t sw_abi_version(void);
SW_EXPORT int32_t sw_dense_rows(void);
SW_EXPORT int32_t sw_max_n(void);
}

#endif
