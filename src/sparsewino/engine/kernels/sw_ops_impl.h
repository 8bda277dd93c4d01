// The layers around the convolutions, written once against the SIMD policy `Simd`:
//   gemm     fully connected layers and 1x1 convolutions (the packed-matrix product of
//            sw_product_impl.h over blocks of columns, bias / residual / ReLU on the way out);
//   pool2d   max and average pooling (any window, stride, padding; NaN propagates like torch);
//   eltwise  add, per-channel affine map, copy, each with an optional ReLU.
// Requires before inclusion: "sw_plan.h", "sw_product_impl.h", struct Simd.

namespace {

inline int64_t lmin_o(int64_t a, int64_t b) { return a < b ? a : b; }

// Columns of a gemm block: runs of consecutive columns of one image (n, s0 .. s0 + len).
struct Run {
    int32_t first;          // column inside the block
    int32_t len;
    int64_t n, s0;
};

// The runs of block `blk` (at most Tb of them), returns their count.
int gemm_runs(const sw_gemm_args& a, const sw_gemm_plan& p, int64_t blk, Run* runs) {
    const int64_t t0 = blk * p.Tb;
    const int64_t count = lmin_o(p.Tb, p.T - t0);
    int r = 0;
    for (int64_t i = 0; i < count;) {
        const int64_t t = t0 + i;
        const int64_t n = t / a.S, s = t - n * a.S;
        const int64_t len = lmin_o(count - i, a.S - s);
        runs[r++] = {static_cast<int32_t>(i), static_cast<int32_t>(len), n, s};
        i += len;
    }
    return r;
}

// V[c][first .. first+len) = x[n][c][s0 .. s0+len) for every run.
void gemm_gather(const sw_gemm_args& a, const sw_gemm_plan& p, const Run* runs, int nruns,
                 float* V) {
    for (int r = 0; r < nruns; ++r) {
        const Run& run = runs[r];
        const float* src = a.x + run.n * a.C * a.S + run.s0;
        float* dst = V + run.first;
        if (run.len == 1) {
            for (int c = 0; c < a.C; ++c) dst[static_cast<int64_t>(c) << p.shift] = src[c * int64_t{a.S}];
            continue;
        }
        for (int c = 0; c < a.C; ++c) {
            const float* s = src + c * int64_t{a.S};
            float* d = dst + (static_cast<int64_t>(c) << p.shift);
            for (int i = 0; i < run.len; ++i) d[i] = s[i];
        }
    }
}

// y rows of chunk j from the M chunk: bias, residual, ReLU.
void gemm_scatter(const sw_gemm_args& a, const sw_gemm_plan& p, const Run* runs, int nruns,
                  const float* Mc, int j) {
    const int k0 = j * SW_CHUNK_ROWS;
    const int k1 = k0 + SW_CHUNK_ROWS < a.K ? k0 + SW_CHUNK_ROWS : a.K;
    for (int r = 0; r < nruns; ++r) {
        const Run& run = runs[r];
        for (int k = k0; k < k1; ++k) {
            const float* m = Mc + (static_cast<int64_t>(k - k0) << p.shift) + run.first;
            const int64_t off = (run.n * a.K + k) * a.S + run.s0;
            float* y = a.y + off;
            const float* res = a.residual ? a.residual + off : nullptr;
            const float bias = a.bias ? a.bias[k] : 0.0f;
            for (int i = 0; i < run.len; ++i) {
                float v = m[i] + bias;
                if (res) v += res[i];
                if (a.relu) v = v < 0.0f ? 0.0f : v;      // NaN stays NaN
                y[i] = v;
            }
        }
    }
}

// Groups of 8 columns in block blk.
// Columns (tiles) of block blk, and their vectors of 8.
inline int block_tiles(const sw_gemm_plan& p, int64_t blk) {
    return static_cast<int>(lmin_o(p.Tb, p.T - blk * p.Tb));
}
inline int block_groups(const sw_gemm_plan& p, int64_t blk) { return (block_tiles(p, blk) + 7) / 8; }

int32_t gemm_forward(const sw_gemm_args* args, const sw_gemm_plan* plan) {
    const sw_gemm_args& a = *args;
    const sw_gemm_plan& p = *plan;
    if (p.mode == SW_MODE_COOPERATIVE) {
        // Few blocks: one thread gathers the block, all threads share its chunks.
        float* shared_v = a.workspace + p.off_v;           // thread 0's V, shared
        Run* runs = reinterpret_cast<Run*>(a.workspace + p.threads * p.thread_floats);
        int shared_runs = 0;
#pragma omp parallel num_threads(p.threads)
        {
            float* Mc = a.workspace + omp_get_thread_num() * p.thread_floats + p.off_m;
            for (int64_t blk = 0; blk < p.blocks; ++blk) {
#pragma omp single
                {
                    shared_runs = gemm_runs(a, p, blk, runs);
                    gemm_gather(a, p, runs, shared_runs, shared_v);
                    if (a.w.precision == SW_PRECISION_BF16 && a.w.formats[0] == SW_DENSE)
                        bf16_pairs_in_place(shared_v, a.C, p.shift, block_groups(p, blk));
                }
                const int nruns = shared_runs;
                const int tiles = block_tiles(p, blk);
#pragma omp for schedule(dynamic, 1)
                for (int j = 0; j < p.chunks; ++j) {
                    chunk_rows_lanes(p.lanes, a.w, 0, j, shared_v, p.shift, tiles, Mc);
                    gemm_scatter(a, p, runs, nruns, Mc, j);
                }
            }
        }
        return SW_OK;
    }
#pragma omp parallel num_threads(p.threads)
    {
        float* region = a.workspace + omp_get_thread_num() * p.thread_floats;
        float* V = region + p.off_v;
        float* Mc = region + p.off_m;
        Run* runs = reinterpret_cast<Run*>(a.workspace + p.threads * p.thread_floats) +
                    static_cast<int64_t>(omp_get_thread_num()) * p.Tb;
#pragma omp for schedule(dynamic, 1)
        for (int64_t blk = 0; blk < p.blocks; ++blk) {
            const int nruns = gemm_runs(a, p, blk, runs);
            gemm_gather(a, p, runs, nruns, V);
            if (a.w.precision == SW_PRECISION_BF16 && a.w.formats[0] == SW_DENSE)
                bf16_pairs_in_place(V, a.C, p.shift, block_groups(p, blk));
            for (int j = 0; j < p.chunks; ++j) {
                chunk_rows_lanes(p.lanes, a.w, 0, j, V, p.shift, block_tiles(p, blk), Mc);
                gemm_scatter(a, p, runs, nruns, Mc, j);
            }
        }
    }
    return SW_OK;
}

// ------------------------------------------------------------------ pooling
int32_t pool2d_forward(const sw_pool2d_args* args) {
    const sw_pool2d_args& a = *args;
    const int64_t planes = static_cast<int64_t>(a.N) * a.C;
    const int64_t in_plane = static_cast<int64_t>(a.H) * a.W;
    const int64_t out_plane = static_cast<int64_t>(a.Ho) * a.Wo;
    const bool global = a.kind == SW_POOL_AVG && a.Ho == 1 && a.Wo == 1 && a.kh == a.H &&
                        a.kw == a.W && a.ph == 0 && a.pw == 0;
#pragma omp parallel for num_threads(a.threads) schedule(static)
    for (int64_t plane = 0; plane < planes; ++plane) {
        const float* x = a.x + plane * in_plane;
        float* y = a.y + plane * out_plane;
        if (global) {                                      // mean of the whole plane
            vec acc = Simd::zero();
            int64_t i = 0;
            for (; i + 8 <= in_plane; i += 8) acc = Simd::add(acc, Simd::load(x + i));
            alignas(64) float lanes[8];
            Simd::store(lanes, acc);
            float sum = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) +
                        ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
            for (; i < in_plane; ++i) sum += x[i];
            const float v = sum / static_cast<float>(in_plane);
            y[0] = a.relu && v < 0.0f ? 0.0f : v;
            continue;
        }
        // Output columns whose window lies inside the row and, for stride 1 or 2, whose 8-wide
        // vector loads stay inside it: vectorised over 8 outputs; the others one by one.
        const int step = a.sw;
        const int reach = step == 1 ? 8 : 16;             // floats one vector load reads
        int vec_lo = (a.pw + step - 1) / step, vec_hi = vec_lo;
        if (step <= 2)
            while (vec_hi + 8 <= a.Wo && vec_hi * step - a.pw + a.kw + reach - 1 <= a.W)
                vec_hi += 8;
        for (int oy = 0; oy < a.Ho; ++oy) {
            const int y0 = oy * a.sh - a.ph;
            const int ylo = y0 < 0 ? 0 : y0, yhi = y0 + a.kh < a.H ? y0 + a.kh : a.H;
            int rows_counted = yhi - ylo;
            if (a.kind == SW_POOL_AVG && a.count_include_pad) {
                const int ph_end = a.H + a.ph;
                rows_counted = (y0 + a.kh < ph_end ? y0 + a.kh : ph_end) - y0;
            }
            for (int ox = vec_lo; ox < vec_hi; ox += 8) {
                const float* base = x + ox * step - a.pw;
                vec acc = a.kind == SW_POOL_MAX ? Simd::set1(-__builtin_inff()) : Simd::zero();
                for (int iy = ylo; iy < yhi; ++iy) {
                    const float* row = base + static_cast<int64_t>(iy) * a.W;
                    for (int j = 0; j < a.kw; ++j) {
                        const vec v = step == 1 ? Simd::load(row + j) : Simd::load_stride2(row + j);
                        acc = a.kind == SW_POOL_MAX ? Simd::maxnan(acc, v) : Simd::add(acc, v);
                    }
                }
                if (a.kind == SW_POOL_AVG)
                    acc = Simd::mul(acc, Simd::set1(1.0f / static_cast<float>(rows_counted * a.kw)));
                if (a.relu) acc = Simd::max0(acc);
                Simd::store(y + oy * a.Wo + ox, acc);
            }
            for (int ox = 0; ox < a.Wo; ++ox) {
                if (ox == vec_lo && vec_hi > vec_lo) ox = vec_hi;
                if (ox >= a.Wo) break;
                const int x0 = ox * a.sw - a.pw;
                const int xlo = x0 < 0 ? 0 : x0, xhi = x0 + a.kw < a.W ? x0 + a.kw : a.W;
                float v;
                if (a.kind == SW_POOL_MAX) {          // branch-free max; NaN wins afterwards
                    v = -__builtin_inff();
                    bool nan = false;
                    for (int iy = ylo; iy < yhi; ++iy)
                        for (int ix = xlo; ix < xhi; ++ix) {
                            const float e = x[iy * a.W + ix];
                            v = e > v ? e : v;
                            nan |= e != e;
                        }
                    if (nan) v = __builtin_nanf("");
                } else {
                    float sum = 0.0f;
                    for (int iy = ylo; iy < yhi; ++iy)
                        for (int ix = xlo; ix < xhi; ++ix) sum += x[iy * a.W + ix];
                    int count;
                    if (a.count_include_pad) {          // the window clipped to the padded input
                        const int pw_end = a.W + a.pw;
                        count = rows_counted * ((x0 + a.kw < pw_end ? x0 + a.kw : pw_end) - x0);
                    } else {
                        count = (yhi - ylo) * (xhi - xlo);
                    }
                    v = count > 0 ? sum / static_cast<float>(count) : 0.0f;
                }
                y[oy * a.Wo + ox] = a.relu && v < 0.0f ? 0.0f : v;
            }
        }
    }
    return SW_OK;
}

// ------------------------------------------------------------------ element-wise
int32_t eltwise_forward(const sw_eltwise_args* args) {
    const sw_eltwise_args& a = *args;
    const int64_t rows = a.outer * a.channels;
    const int64_t inner = a.inner;
    const bool relu = a.relu != 0;
#pragma omp parallel for num_threads(a.threads) schedule(static)
    for (int64_t row = 0; row < rows; ++row) {
        const int64_t c = row % a.channels;
        const float* x = a.a + row * inner;
        const float* b = a.kind == SW_ELT_ADD ? a.b + row * inner : nullptr;
        float* y = a.y + row * inner;
        const float s = a.kind == SW_ELT_AFFINE ? a.scale[c] : 1.0f;
        const float t = a.kind == SW_ELT_AFFINE ? a.shift[c] : 0.0f;
        const vec vs = Simd::set1(s), vt = Simd::set1(t);
        int64_t i = 0;
        for (; i + 8 <= inner; i += 8) {
            vec v = Simd::load(x + i);
            if (a.kind == SW_ELT_ADD) v = Simd::add(v, Simd::load(b + i));
            else if (a.kind == SW_ELT_AFFINE) v = Simd::fmadd(v, vs, vt);
            if (relu) v = Simd::max0(v);
            Simd::store(y + i, v);
        }
        for (; i < inner; ++i) {
            float v = x[i];
            if (a.kind == SW_ELT_ADD) v += b[i];
            else if (a.kind == SW_ELT_AFFINE) v = v * s + t;
            if (relu) v = v < 0.0f ? 0.0f : v;
            y[i] = v;
        }
    }
    return SW_OK;
}

}  // namespace
