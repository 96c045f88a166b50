/*
 * slay_example.c -- the main libslay example.
 *
 * Builds a slay_anchor plan (the paper's SLAY: anchor polynomial features
 * (x) positive random features, R = 2 quadrature nodes, M = 16, P = 32),
 * samples its feature parameters, runs the causal forward on random
 * q, k (B, H, T, D) and v (B, H, T, Dv), and prints the relative L2 error
 * of its output against exact yat_spherical attention (the kernel SLAY
 * linearizes) together with the time each took.
 *
 * It computes on CUDA device 0 when a CUDA handle can be created (inputs,
 * parameters and workspaces are then device memory, allocated and copied
 * with the CUDA runtime), and on the CPU reference backend otherwise;
 * --cpu (or SLAY_EXAMPLE_BACKEND=cpu) forces the CPU backend.
 *
 * It checks its own result: both outputs finite and non-zero, and the
 * relative error finite and below 2.0; it exits 1 otherwise.
 *
 * Usage: slay_example [--cpu] [T] [H] [D]      (defaults 256 4 64, B = 1)
 * Build: cc -std=c99 -D_POSIX_C_SOURCE=199309L slay_example.c \
 *           $(pkg-config --cflags --libs libslay) -I$CUDA/include -L$CUDA/lib64 -lcudart -lm
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cuda_runtime_api.h>

#include <slay/slay.h>

#define CHECK(call)                                                              \
    do {                                                                         \
        slay_status_t s_ = (call);                                               \
        if (s_ != SLAY_STATUS_SUCCESS) {                                         \
            fprintf(stderr, "%s failed: %s: %s\n", #call, slay_status_name(s_),  \
                    slay_last_error_message());                                  \
            exit(1);                                                             \
        }                                                                        \
    } while (0)

#define CUDA_CHECK(call)                                                         \
    do {                                                                         \
        cudaError_t e_ = (call);                                                 \
        if (e_ != cudaSuccess) {                                                 \
            fprintf(stderr, "%s failed: %s\n", #call, cudaGetErrorString(e_));   \
            exit(1);                                                             \
        }                                                                        \
    } while (0)

/* Memory in the handle's memory space: device memory on the CUDA backend,
 * host memory on the CPU backend. */
static int on_device = 0;

static void* mem_alloc(size_t bytes) {
    void* p = NULL;
    if (bytes == 0) return NULL;
    if (on_device) {
        CUDA_CHECK(cudaMalloc(&p, bytes));
    } else if ((p = malloc(bytes)) == NULL) {
        fprintf(stderr, "out of host memory (%zu bytes)\n", bytes);
        exit(1);
    }
    return p;
}
static void mem_free(void* p) {
    if (on_device)
        cudaFree(p);
    else
        free(p);
}
static void copy_in(void* dst, const float* host, int64_t n) {
    if (on_device)
        CUDA_CHECK(cudaMemcpy(dst, host, (size_t)n * sizeof(float), cudaMemcpyHostToDevice));
    else
        memcpy(dst, host, (size_t)n * sizeof(float));
}
static void copy_out(float* host, const void* src, int64_t n) {
    if (on_device)
        CUDA_CHECK(cudaMemcpy(host, src, (size_t)n * sizeof(float), cudaMemcpyDeviceToHost));
    else
        memcpy(host, src, (size_t)n * sizeof(float));
}
/* Waits for the work queued on the NULL stream (cudaStreamPerThread on
 * CUDA); CPU calls have completed when they return. */
static void sync_device(void) {
    if (on_device) CUDA_CHECK(cudaStreamSynchronize(cudaStreamPerThread));
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

/* Standard normals from a 64-bit LCG and Box-Muller: self-contained, so the
 * example's inputs are the same on every machine. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static double uniform01(void) {
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return ((rng_state >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}
static void fill_normal(float* x, int64_t n) {
    for (int64_t i = 0; i < n; ++i)
        x[i] = (float)(sqrt(-2.0 * log(uniform01())) * cos(6.283185307179586 * uniform01()));
}

/* A contiguous fp32 (B, H, T, C) tensor over data. */
static slay_tensor_t tensor4(void* data, int64_t B, int64_t H, int64_t T, int64_t C) {
    slay_tensor_t t;
    memset(&t, 0, sizeof t);
    t.data = data;
    t.dtype = SLAY_DTYPE_FLOAT32;
    t.rank = 4;
    t.shape[0] = B; t.shape[1] = H; t.shape[2] = T; t.shape[3] = C;
    t.strides[3] = 1; t.strides[2] = C; t.strides[1] = T * C; t.strides[0] = H * T * C;
    return t;
}

/* Makes a plan for `variant` with the shared shape attributes; `extra`
 * sets the variant's own attributes. */
static slay_attn_plan_t make_plan(slay_handle_t handle, slay_attn_variant_t variant, int64_t H, int64_t D,
                                  void (*extra)(slay_attn_desc_t)) {
    slay_attn_desc_t desc;
    slay_attn_plan_t plan;
    CHECK(slay_attn_desc_create(&desc, variant));
    CHECK(slay_attn_desc_set_i64(desc, SLAY_ATTR_NUM_HEADS, H));
    CHECK(slay_attn_desc_set_i64(desc, SLAY_ATTR_HEAD_DIM, D));
    CHECK(slay_attn_desc_set_i64(desc, SLAY_ATTR_CAUSAL, 1));
    CHECK(slay_attn_desc_set_f64(desc, SLAY_ATTR_EPSILON, 1e-6));
    if (extra) extra(desc);
    CHECK(slay_attn_plan_create(&plan, handle, desc));
    CHECK(slay_attn_desc_destroy(desc));
    return plan;
}

static void slay_paper_config(slay_attn_desc_t desc) {
    CHECK(slay_attn_desc_set_i64(desc, SLAY_ATTR_NUM_QUAD_NODES, 2));
    CHECK(slay_attn_desc_set_i64(desc, SLAY_ATTR_NUM_FEATURES, 16));
    CHECK(slay_attn_desc_set_i64(desc, SLAY_ATTR_POLY_DIM, 32));
}

/* Runs the forward and returns its time in ms (on CUDA: after one warm-up
 * call, up to the completion of the timed one). */
static double timed_forward(slay_attn_plan_t plan, slay_attn_fwd_args_t* args, int64_t B, int64_t T) {
    size_t ws_bytes = 0;
    CHECK(slay_attn_plan_get_workspace_size(plan, SLAY_PASS_FORWARD, B, T, &ws_bytes));
    void* ws = mem_alloc(ws_bytes);
    if (on_device) {
        CHECK(slay_attn_fwd(plan, args, ws, ws_bytes, NULL));
        sync_device();
    }
    double t0 = now_ms();
    CHECK(slay_attn_fwd(plan, args, ws, ws_bytes, NULL));
    sync_device();
    double t1 = now_ms();
    mem_free(ws);
    return t1 - t0;
}

/* 1 if all n values are finite. */
static int all_finite(const float* x, int64_t n) {
    for (int64_t i = 0; i < n; ++i)
        if (!isfinite(x[i])) return 0;
    return 1;
}

int main(int argc, char** argv) {
    /* Positional T H D (as before); --cpu anywhere forces the CPU backend. */
    int64_t sizes[3] = {256, 4, 64};
    int given = 0, bad = 0;
    const char* env = getenv("SLAY_EXAMPLE_BACKEND");
    int force_cpu = env != NULL && strcmp(env, "cpu") == 0;
    for (int i = 1; i < argc; ++i) {
        if (strcmp(argv[i], "--cpu") == 0)
            force_cpu = 1;
        else if (given < 3)
            sizes[given++] = atoll(argv[i]);
        else
            bad = 1;
    }
    const int64_t B = 1, T = sizes[0], H = sizes[1], D = sizes[2];
    if (bad || T < 1 || H < 1 || D < 1) {
        fprintf(stderr, "usage: %s [--cpu] [T>=1] [H>=1] [D>=1]\n", argv[0]);
        return 2;
    }
    printf("libslay %u.%u.%u (ABI %u)\n", slay_get_version() / 10000, slay_get_version() / 100 % 100,
           slay_get_version() % 100, slay_get_abi_version());

    /* Backend: CUDA device 0 when a handle can be created on it, else the
     * CPU reference backend. */
    slay_handle_t handle = NULL;
    if (force_cpu) {
        printf("backend: CPU (forced)\n");
    } else {
        slay_status_t cs = slay_handle_create(&handle, SLAY_BACKEND_CUDA, 0);
        if (cs == SLAY_STATUS_SUCCESS) {
            on_device = 1;
            printf("backend: CUDA device 0\n");
        } else {
            printf("backend: CPU (no CUDA handle: %s: %s)\n", slay_status_name(cs), slay_last_error_message());
        }
    }
    if (!on_device) CHECK(slay_handle_create(&handle, SLAY_BACKEND_CPU, 0));

    slay_attn_plan_t slay = make_plan(handle, SLAY_ATTN_SLAY_ANCHOR, H, D, slay_paper_config);
    slay_attn_plan_t exact = make_plan(handle, SLAY_ATTN_YAT_SPHERICAL, H, D, NULL);

    /* Feature parameters: one fp32 vector, sampled from (seed, offset) the
     * same way on every backend. */
    int64_t n_params = 0, features = 0;
    size_t sample_ws_bytes = 0;
    CHECK(slay_attn_plan_get_param_count(slay, &n_params));
    CHECK(slay_attn_plan_get_feature_dim(slay, &features));
    CHECK(slay_attn_plan_get_workspace_size(slay, SLAY_PASS_SAMPLE, 0, 0, &sample_ws_bytes));
    void* params = mem_alloc((size_t)n_params * sizeof(float));
    void* sample_ws = mem_alloc(sample_ws_bytes);
    slay_tensor_t params_t;
    memset(&params_t, 0, sizeof params_t);
    params_t.data = params;
    params_t.dtype = SLAY_DTYPE_FLOAT32;
    params_t.rank = 1;
    params_t.shape[0] = n_params;
    params_t.strides[0] = 1;
    CHECK(slay_attn_features_sample(slay, 42, 0, &params_t, sample_ws, sample_ws_bytes, NULL));
    sync_device();

    /* Inputs on the host, copied to the handle's memory space. */
    const int64_t n_qk = B * H * T * D, n_v = B * H * T * D;
    float* q = malloc(n_qk * sizeof(float));
    float* k = malloc(n_qk * sizeof(float));
    float* v = malloc(n_v * sizeof(float));
    float* out_slay = malloc(n_v * sizeof(float));
    float* out_exact = malloc(n_v * sizeof(float));
    if (!q || !k || !v || !out_slay || !out_exact) {
        fprintf(stderr, "out of host memory\n");
        return 1;
    }
    fill_normal(q, n_qk);
    fill_normal(k, n_qk);
    fill_normal(v, n_v);
    void* d_q = mem_alloc(n_qk * sizeof(float));
    void* d_k = mem_alloc(n_qk * sizeof(float));
    void* d_v = mem_alloc(n_v * sizeof(float));
    void* d_out_slay = mem_alloc(n_v * sizeof(float));
    void* d_out_exact = mem_alloc(n_v * sizeof(float));
    copy_in(d_q, q, n_qk);
    copy_in(d_k, k, n_qk);
    copy_in(d_v, v, n_v);

    slay_tensor_t tq = tensor4(d_q, B, H, T, D), tk = tensor4(d_k, B, H, T, D), tv = tensor4(d_v, B, H, T, D);
    slay_tensor_t to_slay = tensor4(d_out_slay, B, H, T, D), to_exact = tensor4(d_out_exact, B, H, T, D);
    slay_attn_fwd_args_t args;
    memset(&args, 0, sizeof args);
    args.struct_size = sizeof args;
    args.q = &tq;
    args.k = &tk;
    args.v = &tv;
    args.params = &params_t;
    args.out = &to_slay;
    double ms_slay = timed_forward(slay, &args, B, T);
    args.params = NULL;
    args.out = &to_exact;
    double ms_exact = timed_forward(exact, &args, B, T);
    copy_out(out_slay, d_out_slay, n_v);
    copy_out(out_exact, d_out_exact, n_v);

    double num = 0, den = 0, norm_slay = 0;
    for (int64_t i = 0; i < n_v; ++i) {
        double d = (double)out_slay[i] - out_exact[i];
        num += d * d;
        den += (double)out_exact[i] * out_exact[i];
        norm_slay += (double)out_slay[i] * out_slay[i];
    }
    const double rel_l2 = sqrt(num / den);
    printf("shape B=%lld H=%lld T=%lld D=%lld, causal, fp32, %s backend\n", (long long)B, (long long)H,
           (long long)T, (long long)D, on_device ? "CUDA" : "CPU");
    printf("slay_anchor (R=2, M=16, P=32, F=%lld): %.2f ms\n", (long long)features, ms_slay);
    printf("yat_spherical (exact, eps=1e-6):      %.2f ms\n", ms_exact);
    printf("relative L2 error of slay_anchor vs yat_spherical: %.4f\n", rel_l2);

    /* The example's own checks: an all-zero, NaN or far-off output fails. */
    int ok = 1;
    if (!all_finite(out_slay, n_v) || !all_finite(out_exact, n_v)) {
        printf("CHECK FAILED: an output holds NaN or Inf\n");
        ok = 0;
    }
    if (!(norm_slay > 0) || !(den > 0)) {
        printf("CHECK FAILED: an output is all zero\n");
        ok = 0;
    }
    if (!(isfinite(rel_l2) && rel_l2 < 2.0)) {
        printf("CHECK FAILED: relative L2 error %.4g is not below 2.0\n", rel_l2);
        ok = 0;
    }
    printf("%s\n", ok ? "ok" : "FAILED");

    free(q); free(k); free(v); free(out_slay); free(out_exact);
    mem_free(d_q); mem_free(d_k); mem_free(d_v); mem_free(d_out_slay); mem_free(d_out_exact);
    mem_free(params); mem_free(sample_ws);
    CHECK(slay_attn_plan_destroy(slay));
    CHECK(slay_attn_plan_destroy(exact));
    CHECK(slay_handle_destroy(handle));
    return ok ? 0 : 1;
}
