// Entry points of the adder kernel library: argument checks, CPU check, dispatch per ISA.
// An instruction set the CPU lacks is refused (SA_NO_ISA) before any of its code runs.
#include <cstdint>

#include "sa_kernels.h"

namespace {

bool cpu_has(int32_t isa) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (isa == SA_ISA_AVX2) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    return isa == SA_ISA_PORTABLE;
}

const sa_isa_table* table_of(int32_t isa) {
    switch (isa) {
        case SA_ISA_PORTABLE: return sa_portable::table;
        case SA_ISA_AVX2: return sa_avx2::table;
        default: return nullptr;
    }
}

const sa_isa_table* runnable(int32_t isa) {
    const sa_isa_table* table = table_of(isa);
    return table && cpu_has(isa) ? table : nullptr;
}

bool sizes_ok(int64_t B, int64_t A, int64_t C, int64_t J, float p, int32_t threads) {
    return B >= 0 && A >= 0 && C >= 0 && J >= 0 && p >= 1.0f && p <= 2.0f && threads >= 1;
}

}  // namespace

extern "C" {

SA_EXPORT int32_t sa_abi_version() { return 1; }
SA_EXPORT int32_t sa_isa_compiled(int32_t isa) { return table_of(isa) ? 1 : 0; }
SA_EXPORT int32_t sa_isa_supported(int32_t isa) { return runnable(isa) ? 1 : 0; }

SA_EXPORT int32_t sa_forward(const sa_forward_args* a) {
    if (!a || !sizes_ok(a->B, a->A, a->C, a->J, a->p, a->threads)) return SA_BAD_ARGS;
    const sa_isa_table* table = runnable(a->isa);
    if (!table) return SA_NO_ISA;
    if (a->B * a->A * a->C == 0) return SA_OK;
    if (!a->S || !a->Rt || !a->Y) return SA_BAD_ARGS;
    return table->forward(a);
}

SA_EXPORT int32_t sa_backward(const sa_backward_args* a) {
    if (!a || !sizes_ok(a->B, a->A, a->C, a->J, a->p, a->threads) ||
        (a->mode != SA_GRAD_HARDTANH && a->mode != SA_GRAD_EXACT)) return SA_BAD_ARGS;
    const sa_isa_table* table = runnable(a->isa);
    if (!table) return SA_NO_ISA;
    if (a->B * a->A * a->J == 0) return SA_OK;
    if (!a->G || !a->R || !a->S || !a->O) return SA_BAD_ARGS;
    return table->backward(a);
}

}  // extern "C"
