// C interface of the sparse Winograd CPU kernels (loaded from Python with ctypes).
//
// The operations (listed once in SW_OPERATIONS below), each one call over a whole layer
// (OpenMP inside), and a runner that executes a list of them in one call (a compiled model's
// plan):
//   conv2d  stride-1 2-D Winograd convolution y = A^T [ U (.) (B^T d B) ] A (+ bias, fused
//           BatchNorm, ReLUs, 2x2 max-pool, residual add), fused per block of tiles:
//           input transform -> per-position sparse/dense product -> output transform;
//   gemm    y = W x (+ bias, residual, ReLU) for fully connected layers and 1x1 convolutions;
//   pool2d  max / average pooling, global average pooling;
//   eltwise element-wise add (+ ReLU), ReLU, per-channel affine map (+ ReLU), copy;
//   conv3d  the 3-D counterpart of conv2d;
//   extract sub-images of an input stacked as channels (decomposed convolutions);
//   adder   the adder product of AdderNet layers, y = -sum |x - w|^p.
// Weights come pre-packed (see packing.py): per matrix (Winograd position) either "zero",
// sparse (SELL-4: slices of 4 rows sorted by length, 16-bit column indices), dense 6-row
// panels, or blocked (blocks of 8 output channels at one input channel, vectorised across the
// output channels: fast when a block's weights are pruned together, or with few tiles).
#ifndef SPARSEWINO_SW_KERNELS_H
#define SPARSEWINO_SW_KERNELS_H

#include <cstdint>

#define SW_ABI_VERSION 10
#define SW_DENSE_ROWS 6          // rows (output channels) per dense weight panel
#define SW_SLICE_ROWS 4          // rows per sparse (SELL) slice
#define SW_BLOCK_ROWS 8          // rows (output channels) per block of a blocked matrix
#define SW_CHUNK_ROWS 24         // output channels per work chunk (multiple of 4 and 6)
#define SW_MAX_N 8               // largest Winograd input tile n supported (n <= 8)
#define SW_MAX_COLUMNS 65536     // sparse column indices are 16-bit

enum sw_format : int8_t { SW_ZERO = 0, SW_SPARSE = 1, SW_DENSE = 2, SW_BLOCKED = 3 };
enum sw_isa : int32_t {
    SW_ISA_AUTO = 0, SW_ISA_PORTABLE = 1, SW_ISA_AVX2 = 2, SW_ISA_AVX512 = 3,
};
// How sw_matrices stores its values and multiplies them (see sw_matrices).
enum sw_precision : int32_t { SW_PRECISION_FP32 = 0, SW_PRECISION_FP16 = 1, SW_PRECISION_BF16 = 2 };
enum sw_mode : int32_t { SW_MODE_AUTO = 0, SW_MODE_BLOCKS = 1, SW_MODE_COOPERATIVE = 2 };
enum sw_status : int32_t {
    SW_OK = 0,
    SW_ERR_ARGS = -1,          // null pointer or inconsistent sizes
    SW_ERR_WORKSPACE = -2,     // workspace smaller than the *_workspace() call asked for
    SW_ERR_TILE = -3,          // tile sizes outside what the kernel supports
    SW_ERR_ISA = -4,           // requested instruction set not supported by this CPU / build
    SW_ERR_ALIGN = -5,         // workspace not 64-byte aligned
    SW_ERR_OP = -6,            // unknown operation kind in a program
};
// The operations of a program, listed once: X(NAME, code, name, args struct). The list
// generates enum sw_op_kind (SW_OP_<NAME> = code), the declaration of each entry point
// sw_<name>_forward(const args*), the sw_run_program switch and the table sw_op_table()
// returns (checked by the Python loader against its ctypes mirrors). Adding an operation:
// one line here, its args struct below, sw_<name>_forward in sw_api.cpp, and the same
// (name, code, struct) in sparsewino/native/abi.py.
#define SW_OPERATIONS(X)                        \
    X(CONV2D, 1, conv2d, sw_conv2d_args)        \
    X(GEMM, 2, gemm, sw_gemm_args)              \
    X(POOL2D, 3, pool2d, sw_pool2d_args)        \
    X(ELTWISE, 4, eltwise, sw_eltwise_args)     \
    X(CONV3D, 5, conv3d, sw_conv3d_args)        \
    X(EXTRACT, 6, extract, sw_extract_args)     \
    X(ADDER, 7, adder, sw_adder_args)

#define SW_OP_ENUM(NAME, code, name, type) SW_OP_##NAME = code,
enum sw_op_kind : int32_t { SW_OPERATIONS(SW_OP_ENUM) };
#undef SW_OP_ENUM

enum sw_pool_kind : int32_t { SW_POOL_MAX = 0, SW_POOL_AVG = 1 };
enum sw_eltwise_kind : int32_t {
    SW_ELT_ADD = 0,            // y = a + b
    SW_ELT_AFFINE = 1,         // y = a * scale[c] + shift[c]
    SW_ELT_COPY = 2,           // y = a (with relu = 1: a standalone ReLU)
};
enum sw_adder_grad_mode : int32_t {
    SW_ADDER_GRAD_HARDTANH = 0,   // f(d) = clamp(d, -1, 1): AdderNet's input gradient
    SW_ADDER_GRAD_EXACT = 1,      // f(d) = p |d|^(p-1) sign(d): the derivative of |d|^p
};

// Every named constant Python uses, exported by sw_constant_table() and checked at load.
#define SW_CONSTANTS(X)                                                                     \
    X(SW_DENSE_ROWS) X(SW_SLICE_ROWS) X(SW_BLOCK_ROWS) X(SW_CHUNK_ROWS) X(SW_MAX_N)          \
    X(SW_MAX_COLUMNS)                                                                       \
    X(SW_ISA_AUTO) X(SW_ISA_PORTABLE) X(SW_ISA_AVX2) X(SW_ISA_AVX512)                       \
    X(SW_MODE_AUTO) X(SW_MODE_BLOCKS) X(SW_MODE_COOPERATIVE)                                \
    X(SW_POOL_MAX) X(SW_POOL_AVG) X(SW_ELT_ADD) X(SW_ELT_AFFINE) X(SW_ELT_COPY)             \
    X(SW_ADDER_GRAD_HARDTANH) X(SW_ADDER_GRAD_EXACT)                                       \
    X(SW_PRECISION_FP32) X(SW_PRECISION_FP16) X(SW_PRECISION_BF16)

// Structs shared by several entry points (not the args of one operation), with their sizes
// in sw_struct_table() next to every operation's args struct.
#define SW_SHARED_STRUCTS(X) X(sw_matrices) X(sw_op) X(sw_adder_grad_args)

#define SW_EXPORT __attribute__((visibility("default")))

extern "C" {

// P packed matrices of K x C (the Winograd positions of a layer; P = 1 for a gemm).
// Sparse matrix p: slices s of SW_SLICE_ROWS rows, entries [slice_ptr[p*(S+1)+s],
// slice_ptr[p*(S+1)+s+1]) stored lane-interleaved (entry e belongs to lane e % 4 of the
// slice), each lane padded to the slice's longest row with (column 0, value 0) entries.
// The rows of chunk j (rows 24j .. 24j+23) are sorted by length into slices 6j .. 6j+5.
// precision (sw_precision):
//   FP32  float values, fp32 products;
//   FP16  val and dense hold IEEE fp16 values (uint16 bits), each widened exactly to fp32 as it
//         is broadcast (half the weight bytes streamed, fp32 arithmetic);
//   BF16  bf16 weights, fp32 accumulation. Sparse matrices: val holds each weight's bf16 bits
//         (uint16), multiplied exactly with the fp32 input tiles (two bytes a weight, and
//         the tiles are not rounded). Dense matrices: bf16 products of pairs of input
//         channels (2j, 2j+1): dense holds uint32 pairs of bf16 bits (channel 2j in the low
//         half), panels [sets][ceil(K/6)][ceil(C/2)][6]; the kernel rounds those positions' V
//         to bf16 (to nearest even, subnormals to zero) into pair rows in place, then
//         multiplies with AVX512-BF16's vdpbf16ps where the CPU has it, else with an exact
//         software equivalent (the products of bf16 values are exact in fp32: two multiply-
//         adds, odd channel first).
// Blocked matrix p (SW_BLOCKED): block row b holds output channels 8b .. 8b+7; its entries are
// [block_ptr[p*(B+1)+b], block_ptr[p*(B+1)+b+1]), B = ceil(K / 8), each a column block_col[e]
// and the 8 weights block_val[8e .. 8e+7] of rows 8b .. 8b+7 at that column (rows past K
// zero), stored in the precision's value type (float, fp16 or bf16 bits: bf16 blocks multiply
// the fp32 tiles like sparse bf16 matrices). The kernel vectorises over the 8 rows, so the
// work is the blocks', not the tiles' vectors: what few tiles (batch 1, small maps) need.
struct sw_matrices {
    int32_t P, K, C;
    const int8_t* formats;      // P entries of sw_format
    const int32_t* slice_ptr;   // P * (S + 1), S = ceil(K / 4): entry offsets into col/val
    const int32_t* slice_rows;  // P * S * 4: the row (output channel) of each slice lane, -1: none
    const uint16_t* col;        // column (input channel) of each entry
    const void* val;            // value of each entry (float, or fp16 / bf16 bits)
    const int32_t* dense_index; // P entries: panel set of SW_DENSE matrices, else -1
    const void* dense;          // [sets][ceil(K/6)][C, or bf16 pairs][6] dense panels
    int32_t precision;          // sw_precision
    const int32_t* block_ptr;   // P * (ceil(K/8) + 1): entry offsets into block_col (blocked)
    const uint16_t* block_col;  // column (input channel) of each block entry
    const void* block_val;      // 8 values per block entry (float, or fp16 / bf16 bits)
};

// Everything one conv2d call needs. Pointers are borrowed, never freed by the kernel.
struct sw_conv2d_args {
    int32_t N, C, H, W;        // input (N, C, H, W), contiguous float32
    int32_t K, Ho, Wo;         // output before pooling (N, K, Ho, Wo), contiguous float32
    int32_t n, m;              // Winograd input tile n and output tile m (same in H and W)
    int32_t pad_top, pad_left; // zero padding before the first row / column
    const float* bt;           // B^T, n x n, row-major
    const float* at;           // A^T, m x n, row-major
    sw_matrices w;             // P = n*n Winograd-domain weights, positions first
    const float* bias;         // K entries or null
    int32_t relu_input;        // ReLU after the input transform (Winograd-ReLU layers)
    int32_t relu_output;       // ReLU on the output (fused activation), after the residual
    int32_t pool;              // 2: fused 2x2/stride-2 max-pool (floor), y is (N,K,Ho/2,Wo/2);
                               // needs an even m and no residual. 0: none
    const float* residual;     // null or (N, K, Ho, Wo): added to the output before the ReLU
    const float* x;
    float* y;
    float* workspace;          // 64-byte aligned, >= sw_conv2d_workspace() floats
    int64_t workspace_floats;
    int32_t threads;           // OpenMP threads (>= 1)
    int32_t isa;               // sw_isa
    int32_t tile_block;        // tiles per block (rounded up to a power of two, 8..64), 0 = auto
    int32_t mode;              // sw_mode
    int32_t lanes;             // vector lanes of the element-wise stage: 0 = the ISA's, 8 or 16
};

// y[n][k][s] = sum_c W[k][c] x[n][c][s] + bias[k] (+ residual) (ReLU): fully connected layers
// (S = 1, x is (N, C)) and 1x1 convolutions (S = H*W, x is (N, C, H, W)).
struct sw_gemm_args {
    int32_t N, C, K, S;
    sw_matrices w;             // P = 1
    const float* bias;         // K entries or null
    const float* residual;     // null or like y
    int32_t relu;
    const float* x;
    float* y;
    float* workspace;
    int64_t workspace_floats;
    int32_t threads, isa, tile_block, mode, lanes;   // as in sw_conv2d_args
};

// Pooling of (N, C, H, W) into (N, C, Ho, Wo): window kh x kw, stride sh x sw, zero-based
// padding ph x pw (padded cells are ignored by max, counted by average only with
// count_include_pad); the caller computes Ho/Wo (ceil_mode is a matter of Ho/Wo: windows
// starting inside the padded input are kept, cells past it ignored).
struct sw_pool2d_args {
    int32_t N, C, H, W, Ho, Wo;
    int32_t kh, kw, sh, sw, ph, pw;
    int32_t kind;               // sw_pool_kind
    int32_t count_include_pad;  // average only
    int32_t relu;               // ReLU on the result
    const float* x;
    float* y;
    int32_t threads, isa;
};

// Element-wise over `outer` x `channels` x `inner` floats (NCHW: outer = N, inner = H*W).
struct sw_eltwise_args {
    int32_t kind;               // sw_eltwise_kind
    int32_t relu;               // ReLU on the result
    int64_t outer, channels, inner;
    const float* a;
    const float* b;             // SW_ELT_ADD
    const float* scale;         // SW_ELT_AFFINE: per channel
    const float* shift;
    float* y;                   // may equal a (in place)
    int32_t threads, isa;
};

// One step of a program: kind (sw_op_kind) and a pointer to its argument struct.
struct sw_op {
    int32_t kind;
    void* args;
};

// Floats of workspace the call described by args needs (x, y, workspace may be null).
SW_EXPORT int32_t sw_conv2d_workspace(const sw_conv2d_args* args, int64_t* floats);
SW_EXPORT int32_t sw_gemm_workspace(const sw_gemm_args* args, int64_t* floats);
// Each operation's sw_<name>_forward(args) (declared from SW_OPERATIONS at the end) returns
// SW_OK or a negative sw_status; y is fully written on success.
// Run `count` operations in order; stops at the first error and returns it. `failed`
// (may be null) receives the index of the failing operation.
SW_EXPORT int32_t sw_run_program(const sw_op* ops, int32_t count, int32_t* failed);
// The same, writing each operation's wall time in seconds to seconds[0 .. count) (profiling:
// the operations timed in sequence, caches as a real call leaves them).
SW_EXPORT int32_t sw_run_program_timed(const sw_op* ops, int32_t count, int32_t* failed,
                                       double* seconds);
// Describe the plan sw_conv2d_forward would use: tiles per block, blocks, mode, isa.
SW_EXPORT int32_t sw_conv2d_plan(const sw_conv2d_args* args, int32_t* tile_block, int32_t* blocks,
                                 int32_t* mode, int32_t* isa);
// 1 if the instruction set was compiled in and can run on this CPU, else 0.
SW_EXPORT int32_t sw_isa_supported(int32_t isa);
// 1 if the instruction set was compiled into this library (whatever the CPU), else 0.
SW_EXPORT int32_t sw_isa_compiled(int32_t isa);
// 1 where the instruction set (SW_ISA_AUTO: the automatic one) runs SW_PRECISION_BF16 products
// with AVX512-BF16 instructions on this CPU, 0 where it rounds in software.
SW_EXPORT int32_t sw_isa_bf16_hardware(int32_t isa);
// Vector lanes of the instruction set's element-wise stage and 2-D transforms (8 or 16).
SW_EXPORT int32_t sw_isa_lanes(int32_t isa);
SW_EXPORT int32_t sw_abi_version(void);
SW_EXPORT int32_t sw_dense_rows(void);
SW_EXPORT int32_t sw_slice_rows(void);
SW_EXPORT int32_t sw_chunk_rows(void);
SW_EXPORT int32_t sw_max_n(void);
}

// ---------------------------------------------------------------------------- conv3d
// Stride-1 3-D Winograd convolution y = A^T [ U (.) (B^T d B) ] A along D, H and W (the same
// F(m, r) in the three dimensions; + bias, fused BatchNorm, residual, ReLUs), fused per block
// of tiles like conv2d: input transform -> per-position product -> output transform. Positions
// whose packed matrix is all zero (pruned columns) are skipped. Pointers are borrowed.
struct sw_conv3d_args {
    int32_t N, C, D, H, W;     // input (N, C, D, H, W), contiguous float32
    int32_t K, Do, Ho, Wo;     // output (N, K, Do, Ho, Wo), contiguous float32
    int32_t n, m;              // Winograd input tile n and output tile m (the same along D, H, W)
    int32_t pad_front, pad_top, pad_left;   // zero padding before the first depth / row / column
    const float* bt;           // B^T, n x n, row-major
    const float* at;           // A^T, m x n, row-major
    sw_matrices w;             // P = n*n*n Winograd-domain weights, positions first ((d*n + h)*n + w)
    const float* bias;         // K entries or null
    int32_t relu_input;        // ReLU after the input transform (Winograd-ReLU layers)
    int32_t relu_output;       // ReLU on the output, after the residual
    const float* residual;     // null or (N, K, Do, Ho, Wo): added to the output before the ReLU
    const float* x;
    float* y;
    float* workspace;          // 64-byte aligned, >= sw_conv3d_workspace() floats
    int64_t workspace_floats;
    int32_t threads, isa, tile_block, mode, lanes;   // as in sw_conv2d_args
};

extern "C" {
SW_EXPORT int32_t sw_conv3d_workspace(const sw_conv3d_args* args, int64_t* floats);
// Describe the plan sw_conv3d_forward would use: tiles per block, blocks, mode, isa.
SW_EXPORT int32_t sw_conv3d_plan(const sw_conv3d_args* args, int32_t* tile_block, int32_t* blocks,
                                 int32_t* mode, int32_t* isa);
}

// Sub-images of an (N, C, H, W) input stacked as channels, the input of a decomposed (DWM)
// convolution: y is (N, C * S, Ho, Wo) with
//   y[n][c * S + s][u][v] = x[n][c][sh * u + offsets[2s]][sw * v + offsets[2s + 1]]
// and zero where that element lies outside x (polyphase sub-images for strides, shifted
// views for kernel pieces). Plain copies and strided gathers; no instruction-set variants.
struct sw_extract_args {
    int32_t N, C, H, W;
    int32_t S, Ho, Wo;
    int32_t sh, sw;
    const int32_t* offsets;     // 2 * S: (row, column) in x of each sub-image's element (0, 0)
    const float* x;
    float* y;
    int32_t threads;
};

// ---------------------------------------------------------------------------- adder
// The adder product of AdderNet layers (AdderConv2d: the im2col patches against the filters;
// WinogradAdderConv2d: the transformed tiles against the transformed filters at one Winograd
// position). For b < B, a < A, c < C:
//   y[b][a][c] = -sum_{j < J} |x[b][a][j] - wt[b][j][c]|^p
// x is (B, A, J), wt the weights transposed (B, J, C) so that the inner loop runs over c,
// y is (B, A, C); float32, contiguous. 1 <= p <= 2 (p = 1 and p = 2 have exact fast paths).
struct sw_adder_args {
    int64_t B, A, C, J;
    const float* x;             // B x A x J
    const float* wt;            // B x J x C
    float* y;                   // B x A x C
    float p;                    // the exponent, 1 <= p <= 2
    int32_t threads, isa;
};

// Its gradient with respect to x (training, not a program operation):
//   g_x[b][a][j] = sum_c g_y[b][a][c] * f(w[b][c][j] - x[b][a][j])
// with f of sw_adder_grad_mode. The weights are not transposed here: w is (B, C, J).
struct sw_adder_grad_args {
    int64_t B, A, C, J;
    const float* grad_y;        // B x A x C
    const float* w;             // B x C x J
    const float* x;             // B x A x J
    float* grad_x;              // B x A x J
    float p;
    int32_t mode;               // sw_adder_grad_mode
    int32_t threads, isa;
};

// The ABI as data, for the loader's check: each operation's name, code and args struct size;
// the size of every struct; the value of every constant of SW_CONSTANTS.
struct sw_op_info {
    const char* name;           // "conv2d"
    const char* args_struct;    // "sw_conv2d_args"
    int32_t code;               // SW_OP_CONV2D
    int32_t struct_size;        // sizeof(sw_conv2d_args)
};
struct sw_struct_info {
    const char* name;
    int32_t size;
};
struct sw_constant_info {
    const char* name;
    int64_t value;
};

#define SW_OP_DECLARE(NAME, code, name, type) SW_EXPORT int32_t sw_##name##_forward(const type*);
extern "C" {
SW_OPERATIONS(SW_OP_DECLARE)
SW_EXPORT int32_t sw_adder_backward(const sw_adder_grad_args* args);
// The tables above; *count receives the number of entries (the arrays are static).
SW_EXPORT const sw_op_info* sw_op_table(int32_t* count);
SW_EXPORT const sw_struct_info* sw_struct_table(int32_t* count);
SW_EXPORT const sw_constant_info* sw_constant_table(int32_t* count);
}
#undef SW_OP_DECLARE

#endif
