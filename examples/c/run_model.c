/* Run a sparsewino engine artifact from C: load it, print its shapes, run one saved shape on a
 * raw float32 input file and write the raw float32 output.
 *
 *   run_model MODEL.swe INPUT.f32 OUTPUT.f32 [SHAPE_INDEX [THREADS]]
 *
 * With THREADS > 1 the same input runs in that many threads at once, and every thread's output
 * must equal the first (exit status 3 otherwise): the API's runs are thread-safe.
 *
 * Build (see docs/deploy.md):
 *   cc run_model.c -I$(python -c "import sparsewino.native as n, pathlib; print(pathlib.Path(n.__file__).parent / 'include')") \
 *      $LIBRARY -Wl,-rpath,$(dirname $LIBRARY) -lpthread -o run_model
 * where LIBRARY is sparsewino/native/_sw_kernels*.so (sparsewino.native.library_path()).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sparsewino.h"

#define MAX_RANK 8

struct job {
    sw_model* model;
    int index;
    const float* input;
    float* output;
    int status;
    int kernel_status;
};

static void* run_job(void* argument) {
    struct job* job = argument;
    job->status = sw_model_run_shape(job->model, job->index, job->input, job->output);
    job->kernel_status = sw_model_last_kernel_status();   /* per thread */
    return NULL;
}

static size_t elements(const int64_t* dims, int rank) {
    size_t count = 1;
    for (int i = 0; i < rank; ++i) count *= (size_t)dims[i];
    return count;
}

static void print_shape(const char* what, const int64_t* dims, int rank) {
    printf("%s (", what);
    for (int i = 0; i < rank; ++i) printf(i ? ", %lld" : "%lld", (long long)dims[i]);
    printf(")\n");
}

int main(int argc, char** argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s MODEL.swe INPUT.f32 OUTPUT.f32 [SHAPE_INDEX [THREADS]]\n", argv[0]);
        return 2;
    }
    int index = argc > 4 ? atoi(argv[4]) : 0, threads = argc > 5 ? atoi(argv[5]) : 1;
    if (threads < 1 || threads > 64) threads = 1;
    char error[512];
    sw_model* model = NULL;
    int status = sw_model_load(argv[1], &model, error, sizeof error);
    if (status != SW_MODEL_OK) {
        fprintf(stderr, "run_model: %s (%s)\n", error, sw_model_strerror(status));
        return 1;
    }
    int64_t in_dims[MAX_RANK], out_dims[MAX_RANK];
    int in_rank = sw_model_input_shape(model, index, in_dims, MAX_RANK);
    int out_rank = sw_model_output_shape(model, index, out_dims, MAX_RANK);
    if (in_rank < 0 || out_rank < 0 || in_rank > MAX_RANK || out_rank > MAX_RANK) {
        fprintf(stderr, "run_model: shape %d of %d: %s\n", index, sw_model_shape_count(model),
                sw_model_strerror(in_rank < 0 ? in_rank : out_rank));
        sw_model_free(model);
        return 1;
    }
    printf("shapes saved: %d\n", sw_model_shape_count(model));
    print_shape("input", in_dims, in_rank);
    print_shape("output", out_dims, out_rank);
    if (sw_model_note(model)[0]) printf("note: %s\n", sw_model_note(model));

    size_t in_count = elements(in_dims, in_rank), out_count = elements(out_dims, out_rank);
    float* input = malloc(in_count * sizeof(float));
    float* outputs = malloc((size_t)threads * out_count * sizeof(float));
    FILE* file = fopen(argv[2], "rb");
    if (!input || !outputs || !file || fread(input, sizeof(float), in_count, file) != in_count) {
        fprintf(stderr, "run_model: cannot read %zu floats from %s\n", in_count, argv[2]);
        return 1;
    }
    fclose(file);

    struct job jobs[64];
    pthread_t ids[64];
    for (int t = 0; t < threads; ++t) {
        jobs[t] = (struct job){model, index, input, outputs + (size_t)t * out_count, 0, 0};
        pthread_create(&ids[t], NULL, run_job, &jobs[t]);
    }
    int result = 0;
    for (int t = 0; t < threads; ++t) {
        pthread_join(ids[t], NULL);
        if (jobs[t].status != SW_MODEL_OK) {
            fprintf(stderr, "run_model: run %d: %s (kernel status %d)\n", t,
                    sw_model_strerror(jobs[t].status), jobs[t].kernel_status);
            result = 1;
        } else if (memcmp(outputs, jobs[t].output, out_count * sizeof(float)) != 0) {
            fprintf(stderr, "run_model: run %d differs from run 0\n", t);
            result = 3;
        }
    }
    file = fopen(argv[3], "wb");
    if (result == 0 && (!file || fwrite(outputs, sizeof(float), out_count, file) != out_count)) {
        fprintf(stderr, "run_model: cannot write %s\n", argv[3]);
        result = 1;
    }
    if (file) fclose(file);
    printf("ran %d time(s): %s\n", threads, result == 0 ? "ok" : "failed");
    free(input);
    free(outputs);
    sw_model_free(model);
    return result;
}
