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
 * It uses a CUDA device when the CUDA backend can run the forward, and the
 * CPU reference backend otherwise.
 *
 * Usage: slay_example [T] [H] [D]      (defaults 256 4 64, B = 1)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
static slay_tensor_t tensor4(float* data, int64_t B, int64_t H, int64_t T, int64_t C) {
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

/* Runs the forward once and returns its time in ms. */
static double timed_forward(slay_attn_plan_t plan, slay_attn_fwd_args_t* args, int64_t B, int64_t T) {
    size_t ws_bytes = 0;
    CHECK(slay_attn_plan_get_workspace_size(plan, SLAY_PASS_FORWARD, B, T, &ws_bytes));
    void* ws = ws_bytes ? malloc(ws_bytes) : NULL;
    double t0 = now_ms();
    CHECK(slay_attn_fwd(plan, args, ws, ws_bytes, NULL));
    double t1 = now_ms();
    free(ws);
    return t1 - t0;
}

int main(int argc, char** argv) {
    const int64_t B = 1;
    const int64_t T = argc > 1 ? atoll(argv[1]) : 256;
    const int64_t H = argc > 2 ? atoll(argv[2]) : 4;
    const int64_t D = argc > 3 ? atoll(argv[3]) : 64;
    if (T < 1 || H < 1 || D < 1) {
        fprintf(stderr, "usage: %s [T>=1] [H>=1] [D>=1]\n", argv[0]);
        return 2;
    }
    printf("libslay %u.%u.%u (ABI %u)\n", slay_get_version() / 10000, slay_get_version() / 100 % 100,
           slay_get_version() % 100, slay_get_abi_version());

    /* Backend: this release's CUDA backend binds a device but does not run
     * attention yet, so the example computes on the CPU reference backend
     * and says which device it saw. */
    slay_handle_t cuda_handle = NULL;
    slay_status_t cs = slay_handle_create(&cuda_handle, SLAY_BACKEND_CUDA, 0);
    if (cs == SLAY_STATUS_SUCCESS) {
        printf("CUDA device 0 found; CUDA kernels are not in this release: using the CPU backend\n");
        CHECK(slay_handle_destroy(cuda_handle));
    } else {
        printf("no GPU (%s: %s): using the CPU backend\n", slay_status_name(cs), slay_last_error_message());
    }
    slay_handle_t handle;
    CHECK(slay_handle_create(&handle, SLAY_BACKEND_CPU, 0));

    slay_attn_plan_t slay = make_plan(handle, SLAY_ATTN_SLAY_ANCHOR, H, D, slay_paper_config);
    slay_attn_plan_t exact = make_plan(handle, SLAY_ATTN_YAT_SPHERICAL, H, D, NULL);

    /* Feature parameters: one fp32 vector, sampled from (seed, offset). */
    int64_t n_params = 0, features = 0;
    size_t sample_ws_bytes = 0;
    CHECK(slay_attn_plan_get_param_count(slay, &n_params));
    CHECK(slay_attn_plan_get_feature_dim(slay, &features));
    CHECK(slay_attn_plan_get_workspace_size(slay, SLAY_PASS_SAMPLE, 0, 0, &sample_ws_bytes));
    float* params = malloc((size_t)n_params * sizeof(float));
    void* sample_ws = malloc(sample_ws_bytes);
    slay_tensor_t params_t;
    memset(&params_t, 0, sizeof params_t);
    params_t.data = params;
    params_t.dtype = SLAY_DTYPE_FLOAT32;
    params_t.rank = 1;
    params_t.shape[0] = n_params;
    params_t.strides[0] = 1;
    CHECK(slay_attn_features_sample(slay, 42, 0, &params_t, sample_ws, sample_ws_bytes, NULL));

    const int64_t n_qk = B * H * T * D, n_v = B * H * T * D;
    float* q = malloc(n_qk * sizeof(float));
    float* k = malloc(n_qk * sizeof(float));
    float* v = malloc(n_v * sizeof(float));
    float* out_slay = malloc(n_v * sizeof(float));
    float* out_exact = malloc(n_v * sizeof(float));
    fill_normal(q, n_qk);
    fill_normal(k, n_qk);
    fill_normal(v, n_v);

    slay_tensor_t tq = tensor4(q, B, H, T, D), tk = tensor4(k, B, H, T, D), tv = tensor4(v, B, H, T, D);
    slay_tensor_t to_slay = tensor4(out_slay, B, H, T, D), to_exact = tensor4(out_exact, B, H, T, D);
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

    double num = 0, den = 0;
    for (int64_t i = 0; i < n_v; ++i) {
        double d = (double)out_slay[i] - out_exact[i];
        num += d * d;
        den += (double)out_exact[i] * out_exact[i];
    }
    const double rel_l2 = sqrt(num / den);
    printf("shape B=%lld H=%lld T=%lld D=%lld, causal, fp32, CPU backend\n", (long long)B, (long long)H,
           (long long)T, (long long)D);
    printf("slay_anchor (R=2, M=16, P=32, F=%lld): %.2f ms\n", (long long)features, ms_slay);
    printf("yat_spherical (exact, eps=1e-6):      %.2f ms\n", ms_exact);
    printf("relative L2 error of slay_anchor vs yat_spherical: %.4f\n", rel_l2);
    int ok = isfinite(rel_l2);

    free(q); free(k); free(v); free(out_slay); free(out_exact); free(params); free(sample_ws);
    CHECK(slay_attn_plan_destroy(slay));
    CHECK(slay_attn_plan_destroy(exact));
    CHECK(slay_handle_destroy(handle));
    return ok ? 0 : 1;
}
