// Portable build of the adder kernels: 8-lane "vectors" of plain floats (any CPU; the
// compiler may still use SSE2). The general power uses std::pow.
#include <cmath>
#include <cstdint>

#include "sa_kernels.h"

namespace sa_portable {
namespace {

struct V {
    float v[8];
    static V zero() { return set1(0.0f); }
    static V set1(float x) { V r; for (int i = 0; i < 8; ++i) r.v[i] = x; return r; }
    static V load(const float* p) { V r; for (int i = 0; i < 8; ++i) r.v[i] = p[i]; return r; }
    static void store(float* p, V a) { for (int i = 0; i < 8; ++i) p[i] = a.v[i]; }
#define SA_LANEWISE(name, expr) \
    static V name(V a, V b) { V r; for (int i = 0; i < 8; ++i) { const float x = a.v[i], y = b.v[i]; r.v[i] = (expr); } return r; }
    SA_LANEWISE(add, x + y)
    SA_LANEWISE(sub, x - y)
    SA_LANEWISE(mul, x * y)
    SA_LANEWISE(min, y < x ? y : x)
    SA_LANEWISE(max, y > x ? y : x)
    SA_LANEWISE(pow_abs, pow_abs_scalar(x, y))
#undef SA_LANEWISE
    static V abs(V a) { V r; for (int i = 0; i < 8; ++i) r.v[i] = std::fabs(a.v[i]); return r; }
    static V sign(V a) {
        V r;
        for (int i = 0; i < 8; ++i) r.v[i] = a.v[i] > 0.0f ? 1.0f : (a.v[i] < 0.0f ? -1.0f : 0.0f);
        return r;
    }
    static float pow_abs_scalar(float d, float p) {
        const float a = std::fabs(d);
        return a == 0.0f ? 0.0f : std::pow(a, p);
    }
};

#include "sa_impl.h"

const sa_isa_table kTable = {&forward, &backward};

}  // namespace

const sa_isa_table* const table = &kTable;

}  // namespace sa_portable
