// AVX2 + FMA (+ F16C for fp16 weights) build of the kernels (chosen at run time on CPUs that
// have all three).
//
// Standard headers come first, before the target pragma, so that no inline library function
// is compiled for AVX2 and later shared with the portable build; everything compiled for
// AVX2 lives in namespace sw_avx2 with internal linkage.
#include <cmath>
#include <cstdint>

#include "sw_plan.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")

namespace sw_avx2 {

#include "sw_simd_avx2.h"

struct Simd : SimdAvx2 {};

#define SW_SPECIALISE_PATTERNS 1
#define SW_HAS_WIDE 0
#include "sw_product_impl.h"
#include "sw_winograd_impl.h"
#include "sw_conv2d_impl.h"
#include "sw_conv3d_impl.h"
#include "sw_ops_impl.h"
#undef SW_HAS_WIDE
#undef SW_SPECIALISE_PATTERNS

#include "sw_adder_avx2.h"
#include "sw_adder_impl.h"

SW_DEFINE_ISA_TABLE(Simd::lanes, nullptr)

}  // namespace sw_avx2

#pragma GCC pop_options

#else  // not x86: no AVX2 build; the dispatcher never selects it (sw_isa_compiled says 0)

namespace sw_avx2 {
const sw_isa_table* const table = nullptr;
}  // namespace sw_avx2

#endif
