/*
 * abi_layout.c -- pins the binary layout of the public ABI on x86-64 (LP64):
 * sizeof/offsetof of every public struct, the value of every enumerator,
 * sizeof of every enum (32 bits), and that the library reports the header's
 * SLAY_VERSION / SLAY_ABI_VERSION (and the meson project version). Built as
 * C99 against libslay.so. Runtime checks so one run lists every mismatch;
 * exits 1 if any.
 */
#include <slay/slay.h>

#include <stdio.h>
#include <string.h>

static int g_failures = 0;

static void expect_eq(const char* what, long long actual, long long expected) {
    if (actual != expected) {
        fprintf(stderr, "MISMATCH %s: got %lld, pinned %lld\n", what, actual, expected);
        ++g_failures;
    }
}

#define PIN(expr, value) expect_eq(#expr, (long long)(expr), (long long)(value))
#define PIN_FIELD(type, field, offset) PIN(offsetof(type, field), offset)

static void pin_struct_layouts(void) {
    PIN(sizeof(slay_tensor_t), 80);
    PIN_FIELD(slay_tensor_t, data, 0);
    PIN_FIELD(slay_tensor_t, dtype, 8);
    PIN_FIELD(slay_tensor_t, rank, 12);
    PIN_FIELD(slay_tensor_t, shape, 16);
    PIN_FIELD(slay_tensor_t, strides, 48);

    PIN(sizeof(slay_attn_fwd_args_t), 96);
    PIN_FIELD(slay_attn_fwd_args_t, struct_size, 0);
    PIN_FIELD(slay_attn_fwd_args_t, q, 8);
    PIN_FIELD(slay_attn_fwd_args_t, k, 16);
    PIN_FIELD(slay_attn_fwd_args_t, v, 24);
    PIN_FIELD(slay_attn_fwd_args_t, params, 32);
    PIN_FIELD(slay_attn_fwd_args_t, out, 40);
    PIN_FIELD(slay_attn_fwd_args_t, initial_state, 48);
    PIN_FIELD(slay_attn_fwd_args_t, final_state, 56);
    PIN_FIELD(slay_attn_fwd_args_t, position_offset, 64);
    PIN_FIELD(slay_attn_fwd_args_t, seq_offsets, 72); /* ABI 3 */
    PIN_FIELD(slay_attn_fwd_args_t, row_stats, 80);   /* ABI 4 */
    PIN_FIELD(slay_attn_fwd_args_t, merge, 88);       /* ABI 4 */

    PIN(sizeof(slay_attn_bwd_args_t), 128);
    PIN_FIELD(slay_attn_bwd_args_t, struct_size, 0);
    PIN_FIELD(slay_attn_bwd_args_t, q, 8);
    PIN_FIELD(slay_attn_bwd_args_t, k, 16);
    PIN_FIELD(slay_attn_bwd_args_t, v, 24);
    PIN_FIELD(slay_attn_bwd_args_t, params, 32);
    PIN_FIELD(slay_attn_bwd_args_t, out, 40);
    PIN_FIELD(slay_attn_bwd_args_t, dout, 48);
    PIN_FIELD(slay_attn_bwd_args_t, dq, 56);
    PIN_FIELD(slay_attn_bwd_args_t, dk, 64);
    PIN_FIELD(slay_attn_bwd_args_t, dv, 72);
    PIN_FIELD(slay_attn_bwd_args_t, initial_state, 80);
    PIN_FIELD(slay_attn_bwd_args_t, dfinal_state, 88);
    PIN_FIELD(slay_attn_bwd_args_t, dinitial_state, 96);
    PIN_FIELD(slay_attn_bwd_args_t, position_offset, 104);
    PIN_FIELD(slay_attn_bwd_args_t, seq_offsets, 112); /* ABI 3 */
    PIN_FIELD(slay_attn_bwd_args_t, row_stats, 120);   /* ABI 5 */

    PIN(sizeof(slay_param_segment_t), 64);
    PIN_FIELD(slay_param_segment_t, struct_size, 0);
    PIN_FIELD(slay_param_segment_t, name, 8);
    PIN_FIELD(slay_param_segment_t, offset, 16);
    PIN_FIELD(slay_param_segment_t, rank, 24);
    PIN_FIELD(slay_param_segment_t, shape, 32);

    PIN(SLAY_MAX_RANK, 4);
    PIN(sizeof(slay_handle_t), sizeof(void*));
    PIN(sizeof(slay_attn_desc_t), sizeof(void*));
    PIN(sizeof(slay_attn_plan_t), sizeof(void*));
}

static void pin_enum_sizes(void) {
    PIN(sizeof(slay_status_t), 4);
    PIN(sizeof(slay_dtype_t), 4);
    PIN(sizeof(slay_backend_t), 4);
    PIN(sizeof(slay_attn_variant_t), 4);
    PIN(sizeof(slay_attr_t), 4);
    PIN(sizeof(slay_stabilizer_mode_t), 4);
    PIN(sizeof(slay_pass_t), 4);
}

static void pin_status_values(void) {
    PIN(SLAY_STATUS_SUCCESS, 0);
    PIN(SLAY_STATUS_INVALID_ARGUMENT, 100);
    PIN(SLAY_STATUS_INVALID_VALUE, 101);
    PIN(SLAY_STATUS_BAD_SHAPE, 102);
    PIN(SLAY_STATUS_BAD_STRIDE, 103);
    PIN(SLAY_STATUS_BAD_DTYPE, 104);
    PIN(SLAY_STATUS_UNKNOWN_ATTRIBUTE, 105);
    PIN(SLAY_STATUS_ATTRIBUTE_TYPE, 106);
    PIN(SLAY_STATUS_ATTRIBUTE_NOT_APPLICABLE, 107);
    PIN(SLAY_STATUS_WORKSPACE_TOO_SMALL, 108);
    PIN(SLAY_STATUS_STRUCT_SIZE, 109);
    PIN(SLAY_STATUS_BACKEND_MISMATCH, 110);
    PIN(SLAY_STATUS_PLAN_IN_USE, 111);
    PIN(SLAY_STATUS_NOT_SUPPORTED, 200);
    PIN(SLAY_STATUS_NO_DEVICE, 300);
    PIN(SLAY_STATUS_CUDA_ERROR, 301);
    PIN(SLAY_STATUS_CURAND_ERROR, 302);
    PIN(SLAY_STATUS_CUFFT_ERROR, 303);
    PIN(SLAY_STATUS_OUT_OF_MEMORY, 304);
    PIN(SLAY_STATUS_INTERNAL_ERROR, 900);
    PIN(SLAY_STATUS_FORCE_32BIT_, 0x7fffffff);
}

static void pin_small_enum_values(void) {
    PIN(SLAY_DTYPE_FLOAT32, 0);
    PIN(SLAY_DTYPE_BFLOAT16, 1);
    PIN(SLAY_DTYPE_FLOAT16, 2);
    PIN(SLAY_DTYPE_INT32, 3);
    PIN(SLAY_DTYPE_INT64, 4);
    PIN(SLAY_DTYPE_FORCE_32BIT_, 0x7fffffff);

    PIN(SLAY_BACKEND_CPU, 0);
    PIN(SLAY_BACKEND_CUDA, 1);
    PIN(SLAY_BACKEND_FORCE_32BIT_, 0x7fffffff);

    PIN(SLAY_STABILIZER_ADD, 0);
    PIN(SLAY_STABILIZER_CLAMP, 1);
    PIN(SLAY_STABILIZER_FORCE_32BIT_, 0x7fffffff);

    PIN(SLAY_PASS_FORWARD, 0);
    PIN(SLAY_PASS_BACKWARD, 1);
    PIN(SLAY_PASS_SAMPLE, 2);
    PIN(SLAY_PASS_FORCE_32BIT_, 0x7fffffff);
}

static void pin_variant_values(void) {
    PIN(SLAY_ATTN_STANDARD, 0);
    PIN(SLAY_ATTN_YAT, 1);
    PIN(SLAY_ATTN_YAT_SPHERICAL, 2);
    PIN(SLAY_ATTN_SLAY_ANCHOR, 3);
    PIN(SLAY_ATTN_SLAY_LAPLACE, 4);
    PIN(SLAY_ATTN_SLAY_HADAMARD, 5);
    PIN(SLAY_ATTN_SLAY_TENSORSKETCH, 6);
    PIN(SLAY_ATTN_SLAY_RANDOM_MACLAURIN, 7);
    PIN(SLAY_ATTN_SLAY_NYSTROM, 8);
    PIN(SLAY_ATTN_PERFORMER, 9);
    PIN(SLAY_ATTN_LINEAR, 10);
    PIN(SLAY_ATTN_COSFORMER, 11);
    PIN(SLAY_ATTN_RFF, 12);
    PIN(SLAY_ATTN_SLAY_POLY2, 13); /* ABI 3 */
    /* May grow (POLICY.md) but never shrink. */
    if (SLAY_ATTN_VARIANT_COUNT_ < 14) expect_eq("SLAY_ATTN_VARIANT_COUNT_ >= 14", SLAY_ATTN_VARIANT_COUNT_, 14);
    PIN(SLAY_ATTN_VARIANT_FORCE_32BIT_, 0x7fffffff);
}

static void pin_attr_values(void) {
    PIN(SLAY_ATTR_NUM_HEADS, 0);
    PIN(SLAY_ATTR_HEAD_DIM, 1);
    PIN(SLAY_ATTR_VALUE_DIM, 2);
    PIN(SLAY_ATTR_CAUSAL, 3);
    PIN(SLAY_ATTR_IO_DTYPE, 4);
    PIN(SLAY_ATTR_ALLOW_TF32, 5);
    PIN(SLAY_ATTR_NUM_QUAD_NODES, 6);
    PIN(SLAY_ATTR_NUM_FEATURES, 7);
    PIN(SLAY_ATTR_POLY_DIM, 8);
    PIN(SLAY_ATTR_CHUNK_SIZE, 9);
    PIN(SLAY_ATTR_STABILIZER_MODE, 10);
    PIN(SLAY_ATTR_COSFORMER_LENGTH, 11);
    PIN(SLAY_ATTR_NUM_KV_HEADS, 12);
    PIN(SLAY_ATTR_EPSILON, 32);
    PIN(SLAY_ATTR_STABILIZER, 33);
    PIN(SLAY_ATTR_SCORE_SCALE, 34);
    PIN(SLAY_ATTR_SOFTMAX_SCALE, 35);
    PIN(SLAY_ATTR_PRF_CLAMP, 36);
    PIN(SLAY_ATTR_KERNEL_CLAMP, 37);
    PIN(SLAY_ATTR_NYSTROM_REG, 38);
    PIN(SLAY_ATTR_NORM_EPS, 39);
    PIN(SLAY_ATTR_POLY2_GAMMA, 40); /* ABI 3 */
    PIN(SLAY_ATTR_FORCE_32BIT_, 0x7fffffff);
}

static void pin_versions(void) {
    char header_version[32];
    PIN(SLAY_VERSION, SLAY_VERSION_MAJOR * 10000 + SLAY_VERSION_MINOR * 100 + SLAY_VERSION_PATCH);
    PIN(slay_get_version(), SLAY_VERSION);
    PIN(slay_get_abi_version(), SLAY_ABI_VERSION);
    PIN(SLAY_ABI_VERSION >= 6, 1);
#ifdef SLAY_PROJECT_VERSION
    sprintf(header_version, "%d.%d.%d", SLAY_VERSION_MAJOR, SLAY_VERSION_MINOR, SLAY_VERSION_PATCH);
    if (strcmp(header_version, SLAY_PROJECT_VERSION) != 0) {
        fprintf(stderr, "MISMATCH header version %s != meson project version %s\n", header_version,
                SLAY_PROJECT_VERSION);
        ++g_failures;
    }
#else
    (void)header_version;
#endif
}

int main(void) {
    pin_struct_layouts();
    pin_enum_sizes();
    pin_status_values();
    pin_small_enum_values();
    pin_variant_values();
    pin_attr_values();
    pin_versions();
    if (g_failures) {
        fprintf(stderr, "%d ABI pin(s) mismatched\n", g_failures);
        return 1;
    }
    printf("OK: ABI layout, enum values and versions as pinned\n");
    return 0;
}
