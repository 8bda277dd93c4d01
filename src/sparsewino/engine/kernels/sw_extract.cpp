// The extract operation (sw_kernels.h): polyphase sub-images and shifted views of an input,
// stacked as channels, for decomposed (DWM) convolutions. Memory-bound copies: contiguous
// rows are copied with memcpy, strided ones gathered; elements outside the input are zeros.
#include <cstdint>
#include <cstring>

#include "sw_kernels.h"
#include "sw_plan.h"

namespace {

// First v >= 0 with step * v + offset >= 0, and the first v with step * v + offset >= limit.
inline int64_t first_inside(int64_t offset, int64_t step) {
    return offset >= 0 ? 0 : (-offset + step - 1) / step;
}
inline int64_t first_beyond(int64_t offset, int64_t step, int64_t limit) {
    const int64_t d = limit - offset;
    return d <= 0 ? 0 : (d + step - 1) / step;
}

void extract_plane(const sw_extract_args& a, const float* x, float* y, int32_t oh, int32_t ow) {
    const int64_t W = a.W, Wo = a.Wo;
    int64_t v0 = first_inside(ow, a.sw), v1 = first_beyond(ow, a.sw, W);
    if (v0 > Wo) v0 = Wo;
    if (v1 > Wo) v1 = Wo;
    if (v1 < v0) v1 = v0;
    for (int64_t u = 0; u < a.Ho; ++u) {
        float* row = y + u * Wo;
        const int64_t source = static_cast<int64_t>(a.sh) * u + oh;
        if (source < 0 || source >= a.H || v0 == v1) {
            std::memset(row, 0, sizeof(float) * Wo);
            continue;
        }
        const float* in = x + source * W + ow;           // element v at in[sw * v]
        if (v0 > 0) std::memset(row, 0, sizeof(float) * v0);
        if (a.sw == 1) {
            std::memcpy(row + v0, in + v0, sizeof(float) * (v1 - v0));
        } else {
            const int64_t step = a.sw;
            for (int64_t v = v0; v < v1; ++v) row[v] = in[step * v];
        }
        if (v1 < Wo) std::memset(row + v1, 0, sizeof(float) * (Wo - v1));
    }
}

}  // namespace

extern "C" SW_EXPORT int32_t sw_extract_forward(const sw_extract_args* a) {
    if (!a || !a->x || !a->y || !a->offsets || a->N < 1 || a->C < 1 || a->H < 1 || a->W < 1 ||
        a->S < 1 || a->Ho < 1 || a->Wo < 1 || a->sh < 1 || a->sw < 1 || a->threads < 1)
        return SW_ERR_ARGS;
    const int64_t planes = static_cast<int64_t>(a->N) * a->C * a->S;
    const int64_t in_plane = static_cast<int64_t>(a->H) * a->W;
    const int64_t out_plane = static_cast<int64_t>(a->Ho) * a->Wo;
#pragma omp parallel for num_threads(a->threads) schedule(static)
    for (int64_t plane = 0; plane < planes; ++plane) {
        const int64_t s = plane % a->S;
        const int64_t image_channel = plane / a->S;                    // n * C + c
        extract_plane(*a, a->x + image_channel * in_plane, a->y + plane * out_plane,
                      a->offsets[2 * s], a->offsets[2 * s + 1]);
    }
    return SW_OK;
}
