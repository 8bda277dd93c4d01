// The adder kernels (sw_kernels.h: sw_adder_forward, sw_adder_backward), written once over an
// 8-lane SIMD type and included by each instruction-set build (sw_isa_*.cpp) inside its own
// namespace, after defining `struct AdderVec` (sw_adder_avx2.h, or the portable one).
//
// AdderVec provides: zero, set1, load, store, add, sub, mul, min, max, abs, sign, pow_abs(v, p)
// (|v|^p for 1 < p < 2, 0 at 0) and the scalar helper pow_abs_scalar used for tails.
// The exponent p is dispatched once per call to one of three specialisations (p = 1: |d|,
// p = 2: d*d, otherwise the general power), so the hot loops carry no branch.
// Requires before inclusion: <cmath>, <cstdint>, "sw_plan.h" (OpenMP), struct AdderVec.

namespace adder {

using V = AdderVec;

enum PowerKind { kP1, kP2, kPGeneral };

static inline PowerKind power_kind(float p) {
    if (p == 1.0f) return kP1;
    if (p == 2.0f) return kP2;
    return kPGeneral;
}

template <PowerKind K>
static inline V term(V d, V p) {                     // |d|^p
    if (K == kP1) return V::abs(d);
    if (K == kP2) return V::mul(d, d);
    return V::pow_abs(d, p);
}

template <PowerKind K>
static inline float term_scalar(float d, float p) {
    if (K == kP1) return std::fabs(d);
    if (K == kP2) return d * d;
    return V::pow_abs_scalar(d, p);
}

// d/dd of |d|^p: p |d|^(p-1) sign(d)
template <PowerKind K>
static inline V slope(V d, V p) {
    if (K == kP1) return V::sign(d);
    if (K == kP2) return V::add(d, d);
    return V::mul(V::mul(p, V::pow_abs(d, V::sub(p, V::set1(1.0f)))), V::sign(d));
}

template <PowerKind K>
static inline float slope_scalar(float d, float p) {
    const float s = d > 0.0f ? 1.0f : (d < 0.0f ? -1.0f : 0.0f);
    if (K == kP1) return s;
    if (K == kP2) return 2.0f * d;
    return p * V::pow_abs_scalar(d, p - 1.0f) * s;
}

// Rows(a, b, a0, rows) for every b < B and every block of 4 rows a0 .. a0 + rows of A (the
// last block may be shorter), the blocks shared by the threads.
template <auto Rows, class Args>
static void over_row_blocks(const Args& a) {
    const int64_t blocks = (a.A + 3) / 4;
    const int64_t total = a.B * blocks;
#pragma omp parallel for schedule(static) num_threads(a.threads) if (a.threads > 1 && total > 1)
    for (int64_t t = 0; t < total; ++t) {
        const int64_t b = t / blocks, a0 = (t % blocks) * 4;
        Rows(a, b, a0, a.A - a0 < 4 ? a.A - a0 : 4);
    }
}

// ---------------------------------------------------------------------------- forward
template <PowerKind K>
static void forward_rows(const sw_adder_args& a, int64_t b, int64_t a0, int64_t rows) {
    const int64_t C = a.C, J = a.J;
    const float* S = a.x + (b * a.A + a0) * J;
    const float* Rt = a.wt + b * J * C;
    float* Y = a.y + (b * a.A + a0) * C;
    const V pv = V::set1(a.p);
    int64_t c = 0;
    if (rows == 4) {
        for (; c + 16 <= C; c += 16) {
            V acc[4][2];
            for (int r = 0; r < 4; ++r) acc[r][0] = acc[r][1] = V::zero();
            for (int64_t j = 0; j < J; ++j) {
                const V w0 = V::load(Rt + j * C + c), w1 = V::load(Rt + j * C + c + 8);
                for (int r = 0; r < 4; ++r) {
                    const V x = V::set1(S[r * J + j]);
                    acc[r][0] = V::add(acc[r][0], term<K>(V::sub(x, w0), pv));
                    acc[r][1] = V::add(acc[r][1], term<K>(V::sub(x, w1), pv));
                }
            }
            for (int r = 0; r < 4; ++r) {
                V::store(Y + r * C + c, V::sub(V::zero(), acc[r][0]));
                V::store(Y + r * C + c + 8, V::sub(V::zero(), acc[r][1]));
            }
        }
    }
    for (; c + 8 <= C; c += 8) {
        for (int64_t r = 0; r < rows; ++r) {
            V acc = V::zero();
            for (int64_t j = 0; j < J; ++j)
                acc = V::add(acc, term<K>(V::sub(V::set1(S[r * J + j]), V::load(Rt + j * C + c)), pv));
            V::store(Y + r * C + c, V::sub(V::zero(), acc));
        }
    }
    for (; c < C; ++c) {
        for (int64_t r = 0; r < rows; ++r) {
            float acc = 0.0f;
            for (int64_t j = 0; j < J; ++j) acc += term_scalar<K>(S[r * J + j] - Rt[j * C + c], a.p);
            Y[r * C + c] = -acc;
        }
    }
}

template <PowerKind K>
static void forward_all(const sw_adder_args& a) {
    over_row_blocks<&forward_rows<K>>(a);
}

static int32_t adder_forward(const sw_adder_args* args) {
    switch (power_kind(args->p)) {
        case kP1: forward_all<kP1>(*args); break;
        case kP2: forward_all<kP2>(*args); break;
        default: forward_all<kPGeneral>(*args); break;
    }
    return SW_OK;
}

// ---------------------------------------------------------------------------- backward
template <PowerKind K, bool HardTanh>
static inline V grad_of(V d, V p) {
    if (HardTanh) return V::min(V::max(d, V::set1(-1.0f)), V::set1(1.0f));
    return slope<K>(d, p);
}

template <PowerKind K, bool HardTanh>
static inline float grad_scalar(float d, float p) {
    if (HardTanh) return d < -1.0f ? -1.0f : (d > 1.0f ? 1.0f : d);
    return slope_scalar<K>(d, p);
}

template <PowerKind K, bool HardTanh>
static void backward_rows(const sw_adder_grad_args& a, int64_t b, int64_t a0, int64_t rows) {
    const int64_t C = a.C, J = a.J;
    const float* G = a.grad_y + (b * a.A + a0) * C;
    const float* R = a.w + b * C * J;
    const float* S = a.x + (b * a.A + a0) * J;
    float* O = a.grad_x + (b * a.A + a0) * J;
    const V pv = V::set1(a.p);
    int64_t j = 0;
    if (rows == 4) {
        for (; j + 8 <= J; j += 8) {
            V x[4], acc[4];
            for (int r = 0; r < 4; ++r) {
                x[r] = V::load(S + r * J + j);
                acc[r] = V::zero();
            }
            for (int64_t c = 0; c < C; ++c) {
                const V w = V::load(R + c * J + j);
                for (int r = 0; r < 4; ++r)
                    acc[r] = V::add(acc[r], V::mul(V::set1(G[r * C + c]),
                                                   grad_of<K, HardTanh>(V::sub(w, x[r]), pv)));
            }
            for (int r = 0; r < 4; ++r) V::store(O + r * J + j, acc[r]);
        }
    }
    for (; j + 8 <= J; j += 8) {
        for (int64_t r = 0; r < rows; ++r) {
            const V x = V::load(S + r * J + j);
            V acc = V::zero();
            for (int64_t c = 0; c < C; ++c)
                acc = V::add(acc, V::mul(V::set1(G[r * C + c]),
                                         grad_of<K, HardTanh>(V::sub(V::load(R + c * J + j), x), pv)));
            V::store(O + r * J + j, acc);
        }
    }
    for (; j < J; ++j) {
        for (int64_t r = 0; r < rows; ++r) {
            float acc = 0.0f;
            for (int64_t c = 0; c < C; ++c)
                acc += G[r * C + c] * grad_scalar<K, HardTanh>(R[c * J + j] - S[r * J + j], a.p);
            O[r * J + j] = acc;
        }
    }
}

template <PowerKind K, bool HardTanh>
static void backward_all(const sw_adder_grad_args& a) {
    over_row_blocks<&backward_rows<K, HardTanh>>(a);
}

static int32_t adder_backward(const sw_adder_grad_args* args) {
    if (args->mode == SW_ADDER_GRAD_HARDTANH) {
        backward_all<kP1, true>(*args);             // the clipped gradient ignores p
        return SW_OK;
    }
    switch (power_kind(args->p)) {
        case kP1: backward_all<kP1, false>(*args); break;
        case kP2: backward_all<kP2, false>(*args); break;
        default: backward_all<kPGeneral, false>(*args); break;
    }
    return SW_OK;
}

}  // namespace adder
