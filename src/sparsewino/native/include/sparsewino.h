/* sparsewino C API: run an engine artifact (.swe, written by sparsewino.engine.save or
 * `sparsewino export`) without Python.
 *
 * The functions live in the package's one native library (sparsewino/native/_sw_kernels*.so;
 * link with -l:_sw_kernels<suffix>.so or dlopen it). An artifact holds, per saved input shape,
 * the whole-model kernel program and its packed weights; sw_model_run runs one on caller
 * buffers (float32, contiguous NCHW).
 *
 * Thread safety: a loaded model is read-only; each sw_model_run call takes its own arena and
 * workspace from a pool (made on first need, kept for the next call), so several threads may
 * run the same model at once. sw_model_free must not race with runs.
 *
 * CPU: the programs keep the instruction set they were planned for. If this CPU lacks it
 * (an AVX-512 artifact on an AVX2 machine), they run on the best set this CPU has and
 * sw_model_note says so.
 *
 *     sw_model* model;
 *     char error[256];
 *     if (sw_model_load("model.swe", &model, error, sizeof error) != SW_MODEL_OK) {
 *         fprintf(stderr, "%s\n", error);
 *         return 1;
 *     }
 *     int64_t in[8], out[8];
 *     int in_rank = sw_model_input_shape(model, 0, in, 8);    (shape 0: the first saved)
 *     ...
 *     sw_model_run(model, input, output);
 *     sw_model_free(model);
 */
#ifndef SPARSEWINO_H
#define SPARSEWINO_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes: 0 on success, a negative code otherwise (sw_model_strerror describes it). */
enum sw_model_status {
    SW_MODEL_OK = 0,
    SW_MODEL_ERR_IO = -101,        /* the file cannot be opened or read */
    SW_MODEL_ERR_FORMAT = -102,    /* not an artifact, truncated, checksum mismatch, malformed */
    SW_MODEL_ERR_VERSION = -103,   /* a newer artifact format, or another kernel ABI version */
    SW_MODEL_ERR_ARGS = -104,      /* a null pointer or a shape index out of range */
    SW_MODEL_ERR_MEMORY = -105,    /* out of memory */
    SW_MODEL_ERR_KERNEL = -106     /* a kernel operation failed (see sw_model_last_kernel_status) */
};

typedef struct sw_model sw_model;

/* Load `path`. On success *model is set (free it with sw_model_free); on failure *model is
 * NULL and `error` (if not NULL, `error_size` bytes) receives a message saying what to do. */
int sw_model_load(const char* path, sw_model** model, char* error, size_t error_size);

/* Release everything the model holds. NULL is allowed. */
void sw_model_free(sw_model* model);

/* How many input shapes the artifact has a program for (the model has one input and one
 * output; each saved shape is a batch size / image size it runs). */
int sw_model_shape_count(const sw_model* model);

/* The input (output) shape of saved shape `index`: writes up to `max_rank` dimensions into
 * `dims` and returns the rank, or a negative status. */
int sw_model_input_shape(const sw_model* model, int index, int64_t* dims, int max_rank);
int sw_model_output_shape(const sw_model* model, int index, int64_t* dims, int max_rank);

/* Run saved shape 0 on `input` (its input shape, float32 NCHW) into `output` (its output
 * shape). Returns SW_MODEL_OK or a negative status. */
int sw_model_run(sw_model* model, const float* input, float* output);
/* The same for saved shape `index`. */
int sw_model_run_shape(sw_model* model, int index, const float* input, float* output);

/* A note about how the model runs on this CPU ("" when it runs as planned). */
const char* sw_model_note(const sw_model* model);

/* The kernel library's status of the last failed run in this thread (0 if none). */
int sw_model_last_kernel_status(void);

/* A message for a status code. */
const char* sw_model_strerror(int status);

#ifdef __cplusplus
}
#endif

#endif
