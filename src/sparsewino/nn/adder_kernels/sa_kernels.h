// Adder kernels of sparsewino.nn (AdderConv2d, WinogradAdderConv2d): C interface.
//
// One batched "adder product" serves both layers. For b in [0, B):
//   forward     Y[b,a,c] = -sum_j |S[b,a,j] - R[b,c,j]|^p          (a < A, c < C, j < J)
//   backward    O[b,a,j] =  sum_c G[b,a,c] * f(R[b,c,j] - S[b,a,j])
// with f(d) = clamp(d, -1, 1) (mode SA_GRAD_HARDTANH, AdderNet's input gradient) or
// f(d) = p |d|^(p-1) sign(d) (mode SA_GRAD_EXACT, the true derivative).
// The forward takes R transposed (Rt: B x J x C) so that its inner loop runs over c.
// Every array is float32, contiguous, row-major. 1 <= p <= 2.
#pragma once
#include <cstdint>

#define SA_EXPORT __attribute__((visibility("default")))

enum { SA_ISA_PORTABLE = 1, SA_ISA_AVX2 = 2 };
enum { SA_GRAD_HARDTANH = 0, SA_GRAD_EXACT = 1 };
enum { SA_OK = 0, SA_BAD_ARGS = -1, SA_NO_ISA = -4 };

struct sa_forward_args {
    int64_t B, A, C, J;
    const float* S;     // B x A x J
    const float* Rt;    // B x J x C
    float* Y;           // B x A x C
    float p;
    int32_t threads, isa;
};

struct sa_backward_args {
    int64_t B, A, C, J;
    const float* G;     // B x A x C
    const float* R;     // B x C x J
    const float* S;     // B x A x J
    float* O;           // B x A x J
    float p;
    int32_t mode, threads, isa;
};

struct sa_isa_table {
    int32_t (*forward)(const sa_forward_args*);
    int32_t (*backward)(const sa_backward_args*);
};

namespace sa_portable { extern const sa_isa_table* const table; }
namespace sa_avx2 { extern const sa_isa_table* const table; }

extern "C" {
SA_EXPORT int32_t sa_abi_version();
SA_EXPORT int32_t sa_isa_compiled(int32_t isa);
SA_EXPORT int32_t sa_isa_supported(int32_t isa);
SA_EXPORT int32_t sa_forward(const sa_forward_args* args);
SA_EXPORT int32_t sa_backward(const sa_backward_args* args);
}
