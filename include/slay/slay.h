/*
 * slay.h -- the public C ABI of libslay.
 *
 * libslay computes attention for the SLAY family (Spherical Linearized
 * Attention with Yat kernels) and the mechanisms it is compared with, on a CPU
 * reference backend (fp64 accumulation, the oracle) or on a CUDA device.
 *
 * Shapes use (B, H, T, D) notation throughout:
 *   q, k          (B, H, T, D)    queries and keys
 *   v             (B, H, T, Dv)   values
 *   out, dout     (B, H, T, Dv)   output and its gradient
 *   state         (B, H, F, Dv+1) fp32 linear-attention state: columns 0..Dv-1
 *                                 hold S = sum_j phi(k_j) v_j^T, column Dv
 *                                 holds z = sum_j phi(k_j)
 *   params        (N,)            fp32 feature parameters, layout per variant
 *                                 (slay_attn_plan_get_param_segment)
 * Logical order is always (B, H, T, D); a (B, T, H, D) buffer is passed by
 * giving its strides. Strides are in elements; the innermost stride must be 1.
 *
 * This header is C99, includes only <stddef.h> and <stdint.h>, and never
 * names a CUDA type: streams and device pointers cross it as void*.
 *
 * Conventions shared by every function:
 *   - Every function returns slay_status_t (SLAY_STATUS_SUCCESS == 0).
 *   - On failure slay_last_error_message() names what was wrong, and no output
 *     of the call (out-parameters, tensors, workspace contents aside) has been
 *     written. Input validation happens completely before any output write.
 *   - No C++ exception, abort() or exit() crosses this boundary.
 *   - Objects are created by *_create and released by *_destroy; destroy
 *     accepts NULL and returns SUCCESS for it.
 *   - Threading: version, status-name and last-error calls are thread-safe
 *     at all times. Handles, descriptors and plans may be used from several
 *     threads, but one plan is executed (features_sample, fwd, bwd) by one
 *     host thread at a time: a call arriving while another thread executes
 *     the same plan returns SLAY_STATUS_PLAN_IN_USE at once, having done
 *     nothing (and so does slay_attn_plan_destroy). Several plans on one
 *     handle may run concurrently. The last-error message is thread-local.
 *   - Enum arguments and fields are read as their 32-bit integer value; any
 *     value not listed is rejected with a status (INVALID_ARGUMENT, BAD_DTYPE,
 *     UNKNOWN_ATTRIBUTE) whose message prints it as a signed integer.
 *   - Limits: B*H of a call is at most 2^31-1 (INVALID_VALUE beyond, on
 *     every backend); struct_size is at most 1024 (STRUCT_SIZE).
 *   - Memory: a tensor a call writes must not share any byte, between its
 *     first and last element, with another tensor of the call or with the
 *     workspace bytes the call uses (BAD_STRIDE); the only exception is
 *     final_state passed as exactly initial_state (same data, shape and
 *     strides). Tensors a call only reads may overlap each other.
 *   - A call with no element to write (B = 0, or T = 0 without states)
 *     returns SUCCESS after validation, without touching a device.
 *   - fwd and bwd never allocate device memory, never synchronize (except
 *     to read a packed call's seq_offsets, see below) and never use the
 *     legacy default stream: on CUDA, stream is a cudaStream_t and NULL
 *     means cudaStreamPerThread. features_sample enqueues its work the
 *     same way, but on CUDA it creates and destroys a cuRAND generator per
 *     call, which may allocate a little device memory and synchronize. On the CPU backend
 *     stream must be NULL (else BACKEND_MISMATCH) and calls complete before
 *     they return.
 */
#ifndef SLAY_SLAY_H
#define SLAY_SLAY_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define SLAY_API
#else
#define SLAY_API __attribute__((visibility("default")))
#endif

/* ------------------------------------------------------------------ version */

#define SLAY_VERSION_MAJOR 0
#define SLAY_VERSION_MINOR 1
#define SLAY_VERSION_PATCH 0
/* MAJOR*10000 + MINOR*100 + PATCH */
#define SLAY_VERSION (SLAY_VERSION_MAJOR * 10000 + SLAY_VERSION_MINOR * 100 + SLAY_VERSION_PATCH)
/* Incremented whenever a function, struct field or enum value is added.
 * Existing ones are never changed or renumbered (abi/POLICY.md). */
#define SLAY_ABI_VERSION 6

/* The library's SLAY_VERSION, which may be newer than this header's. */
SLAY_API uint32_t slay_get_version(void);
/* The library's SLAY_ABI_VERSION. A program built against ABI n runs with any
 * library whose ABI version is >= n. */
SLAY_API uint32_t slay_get_abi_version(void);

/* ------------------------------------------------------------------- status */

/* Grouped by hundreds; values are never renumbered. Pinned to 32 bits. */
typedef enum slay_status {
    SLAY_STATUS_SUCCESS = 0,

    /* 100s: the caller passed something wrong. Nothing was written. */
    SLAY_STATUS_INVALID_ARGUMENT = 100,    /* NULL pointer, bad enum value    */
    SLAY_STATUS_INVALID_VALUE = 101,       /* a value out of its range        */
    SLAY_STATUS_BAD_SHAPE = 102,           /* tensor shapes disagree          */
    SLAY_STATUS_BAD_STRIDE = 103,          /* innermost stride != 1, negative
                                              stride, an output overlapping
                                              itself, another tensor of the
                                              call or the workspace           */
    SLAY_STATUS_BAD_DTYPE = 104,           /* dtype not the one required      */
    SLAY_STATUS_UNKNOWN_ATTRIBUTE = 105,   /* not an attribute of this ABI    */
    SLAY_STATUS_ATTRIBUTE_TYPE = 106,      /* set_f64 on an integer attribute,
                                              or the reverse                  */
    SLAY_STATUS_ATTRIBUTE_NOT_APPLICABLE = 107, /* attribute not used by this
                                                   variant                    */
    SLAY_STATUS_WORKSPACE_TOO_SMALL = 108,
    SLAY_STATUS_STRUCT_SIZE = 109,         /* struct_size smaller than the
                                              smallest known layout, or larger
                                              than 1024 bytes                 */
    SLAY_STATUS_BACKEND_MISMATCH = 110,    /* stream given to CPU backend, ...*/
    SLAY_STATUS_PLAN_IN_USE = 111,         /* the plan is executing on another
                                              thread (ABI 2)                  */

    /* 200s: valid request this build or variant does not support. */
    SLAY_STATUS_NOT_SUPPORTED = 200,

    /* 300s: device and runtime failures. Outputs may be partly written. */
    SLAY_STATUS_NO_DEVICE = 300,
    SLAY_STATUS_CUDA_ERROR = 301,
    SLAY_STATUS_CURAND_ERROR = 302,
    SLAY_STATUS_CUFFT_ERROR = 303,
    SLAY_STATUS_OUT_OF_MEMORY = 304,

    /* 900s: a bug in libslay; please report it with the message. */
    SLAY_STATUS_INTERNAL_ERROR = 900,

    SLAY_STATUS_FORCE_32BIT_ = 0x7fffffff
} slay_status_t;

/* "SLAY_STATUS_BAD_SHAPE"; "SLAY_STATUS_UNKNOWN" for values not listed. */
SLAY_API const char* slay_status_name(slay_status_t status);
/* A one-line English description of the status. Never NULL. */
SLAY_API const char* slay_status_string(slay_status_t status);
/* The message of the last failing call on this thread ("" if none yet).
 * The pointer stays valid until the next libslay call on this thread. */
SLAY_API const char* slay_last_error_message(void);

/* ------------------------------------------------------------------- dtypes */

typedef enum slay_dtype {
    SLAY_DTYPE_FLOAT32 = 0,
    SLAY_DTYPE_BFLOAT16 = 1,
    SLAY_DTYPE_FLOAT16 = 2,
    SLAY_DTYPE_INT32 = 3,   /* only for seq_offsets (ABI 3)                */
    SLAY_DTYPE_INT64 = 4,   /* only for seq_offsets (ABI 3)                */
    SLAY_DTYPE_FORCE_32BIT_ = 0x7fffffff
} slay_dtype_t;

/* ------------------------------------------------------------------ tensors */

#define SLAY_MAX_RANK 4

/* A strided view of caller-owned memory. Frozen: this struct never changes.
 * data    host pointer for the CPU backend, device pointer for CUDA.
 * rank    number of used entries in shape/strides (1..SLAY_MAX_RANK).
 * shape   extents, >= 0.
 * strides element strides; the innermost (strides[rank-1]) must be 1 for any
 *         dimension of extent > 1; others must be >= 0, and outputs must not
 *         overlap themselves. */
typedef struct slay_tensor {
    void* data;
    slay_dtype_t dtype;
    int32_t rank;
    int64_t shape[SLAY_MAX_RANK];
    int64_t strides[SLAY_MAX_RANK];
} slay_tensor_t;

/* ------------------------------------------------------------------ handles */

typedef enum slay_backend {
    SLAY_BACKEND_CPU = 0,  /* reference backend, fp64 accumulation */
    SLAY_BACKEND_CUDA = 1, /* CUDA device */
    SLAY_BACKEND_FORCE_32BIT_ = 0x7fffffff
} slay_backend_t;

typedef struct slay_handle_s* slay_handle_t;

/* Creates a handle on a backend. device is ignored for CPU; for CUDA it is
 * the CUDA device ordinal. Returns SLAY_STATUS_NO_DEVICE (with a message) if
 * the CUDA backend has no usable device or driver, INVALID_VALUE if device is
 * out of range. *handle is written only on success. */
SLAY_API slay_status_t slay_handle_create(slay_handle_t* handle, slay_backend_t backend,
                                          int32_t device);
SLAY_API slay_status_t slay_handle_destroy(slay_handle_t handle);
SLAY_API slay_status_t slay_handle_get_backend(slay_handle_t handle, slay_backend_t* backend);

/* ----------------------------------------------------------------- variants */

typedef enum slay_attn_variant {
    /* exact, O(T^2) */
    SLAY_ATTN_STANDARD = 0,          /* softmax(q.k * softmax_scale)             */
    SLAY_ATTN_YAT = 1,               /* softmax of the Yat score                 */
    SLAY_ATTN_YAT_SPHERICAL = 2,     /* kernel-normalised x^2/(C-2x), x=q^.k^    */
    /* linearized, O(T): feature map phi, then linear attention */
    SLAY_ATTN_SLAY_ANCHOR = 3,       /* anchor poly (x) PRF: the paper's SLAY     */
    SLAY_ATTN_SLAY_LAPLACE = 4,      /* PRF only                                  */
    SLAY_ATTN_SLAY_HADAMARD = 5,     /* u^2 * PRF with shared omega               */
    SLAY_ATTN_SLAY_TENSORSKETCH = 6, /* TensorSketch poly (x) PRF                 */
    SLAY_ATTN_SLAY_RANDOM_MACLAURIN = 7, /* random Maclaurin poly (x) PRF        */
    SLAY_ATTN_SLAY_NYSTROM = 8,      /* Nystrom poly (x) PRF                      */
    SLAY_ATTN_PERFORMER = 9,         /* ReLU random features                      */
    SLAY_ATTN_LINEAR = 10,           /* elu(x)+1                                  */
    SLAY_ATTN_COSFORMER = 11,        /* relu with cos/sin position reweighting    */
    SLAY_ATTN_RFF = 12,              /* random Fourier features                   */
    SLAY_ATTN_SLAY_POLY2 = 13,       /* exact degree-2 features (q^.k^)^2 on a
                                        random orthonormal frame (ABI 3)          */
    SLAY_ATTN_VARIANT_COUNT_ = 14,   /* not a variant; may grow                   */
    SLAY_ATTN_VARIANT_FORCE_32BIT_ = 0x7fffffff
} slay_attn_variant_t;

/* "slay_anchor", ...; NULL for an unknown value. */
SLAY_API const char* slay_attn_variant_name(slay_attn_variant_t variant);
/* Parses the names above and the reference registry keys ("yat-performer-anchor",
 * "yat-spherical", ...). INVALID_VALUE for an unknown name. */
SLAY_API slay_status_t slay_attn_variant_from_name(const char* name,
                                                   slay_attn_variant_t* variant);

/* --------------------------------------------------------------- attributes */

/* Each attribute has one type (i64 or f64), a range, and a default that may
 * depend on the variant (SPEC defaults; see README "Attributes"). Setting an
 * attribute a variant does not use returns ATTRIBUTE_NOT_APPLICABLE. */
typedef enum slay_attr {
    /* i64, all variants */
    SLAY_ATTR_NUM_HEADS = 0,        /* H, 1..65536, default 1                     */
    SLAY_ATTR_HEAD_DIM = 1,         /* D, 1..1024, default 64                     */
    SLAY_ATTR_VALUE_DIM = 2,        /* Dv, 0..1024, default 0 meaning Dv = D      */
    SLAY_ATTR_CAUSAL = 3,           /* 0 or 1, default 1                          */
    SLAY_ATTR_IO_DTYPE = 4,         /* slay_dtype_t of q,k,v,out,dout,dq,dk,dv,
                                       default SLAY_DTYPE_FLOAT32                 */
    SLAY_ATTR_ALLOW_TF32 = 5,       /* 0 or 1, default 0: GPU fp32 matmuls may use
                                       TF32 only when set                         */
    /* i64, variant-specific */
    SLAY_ATTR_NUM_QUAD_NODES = 6,   /* R, 1..16 (Gauss-Laguerre nodes)            */
    SLAY_ATTR_NUM_FEATURES = 7,     /* M, 1..4096: random features per node;
                                       slay_poly2: the feature budget F           */
    SLAY_ATTR_POLY_DIM = 8,         /* P, 1..1024: polynomial feature dim         */
    SLAY_ATTR_CHUNK_SIZE = 9,       /* 1..4096: a hint, the largest chunk the
                                       fp32 GPU scan may use (the tensor-core
                                       forward always uses 64); results agree
                                       to rounding for any value            */
    SLAY_ATTR_STABILIZER_MODE = 10, /* slay_stabilizer_mode_t                     */
    SLAY_ATTR_COSFORMER_LENGTH = 11,/* L, 0..2^40: cosformer weights cos(pi i/2L);
                                       0 means L = T of each call (of each
                                       sequence of a packed call)                 */
    SLAY_ATTR_NUM_KV_HEADS = 12,    /* H_kv, 0..65536, default 0 meaning H (ABI 3):
                                       grouped-query attention, k, v, dk, dv
                                       have H_kv heads, H a multiple of H_kv;
                                       query head h reads key/value head
                                       h / (H / H_kv). All variants.            */
    /* f64 */
    SLAY_ATTR_EPSILON = 32,         /* eps of the Yat kernel, C = 2 + eps, (0,1e3] */
    SLAY_ATTR_STABILIZER = 33,      /* delta of the denominator, (0, 1]           */
    SLAY_ATTR_SCORE_SCALE = 34,     /* multiplier of the yat / yat_spherical score,
                                       (0, 1e6], default 1                        */
    SLAY_ATTR_SOFTMAX_SCALE = 35,   /* standard: logits q.k*scale; 0 = 1/sqrt(D)  */
    SLAY_ATTR_PRF_CLAMP = 36,       /* PRF exponent clamp c: exp(clamp(a,-c,c)),
                                       (0, 80], default 20                        */
    SLAY_ATTR_KERNEL_CLAMP = 37,    /* yat_spherical: C-2x clamped below at this,
                                       (0, 1], default 1e-6                       */
    SLAY_ATTR_NYSTROM_REG = 38,     /* lambda of K_AA + lambda I, [0, 1e3],
                                       default 1e-3                               */
    SLAY_ATTR_NORM_EPS = 39,        /* normalisation x/max(|x|, eps), (0, 1e-2],
                                       default 1e-12                              */
    SLAY_ATTR_POLY2_GAMMA = 40,     /* slay_poly2: gamma of the constant feature
                                       sqrt(gamma/D), [-1, 1e3]; negative (default
                                       -1) means auto: 0.5 when D(D+1)/2 >
                                       num_features, else 0 (ABI 3)               */
    SLAY_ATTR_FORCE_32BIT_ = 0x7fffffff
} slay_attr_t;

/* How the denominator of the linearized/kernel-normalised variants is made
 * safe: ADD gives Z + delta, CLAMP gives max(Z, delta). */
typedef enum slay_stabilizer_mode {
    SLAY_STABILIZER_ADD = 0,
    SLAY_STABILIZER_CLAMP = 1,
    SLAY_STABILIZER_FORCE_32BIT_ = 0x7fffffff
} slay_stabilizer_mode_t;

/* "num_heads", ...; NULL for an unknown attribute. */
SLAY_API const char* slay_attr_name(slay_attr_t attr);

/* -------------------------------------------------------------- descriptors */

/* A variant plus its attributes. Host only; never touches a device. Not
 * thread-safe for concurrent modification. */
typedef struct slay_attn_desc_s* slay_attn_desc_t;

/* Creates a descriptor holding the variant's defaults. */
SLAY_API slay_status_t slay_attn_desc_create(slay_attn_desc_t* desc, slay_attn_variant_t variant);
SLAY_API slay_status_t slay_attn_desc_destroy(slay_attn_desc_t desc);
/* Errors: UNKNOWN_ATTRIBUTE, ATTRIBUTE_TYPE, ATTRIBUTE_NOT_APPLICABLE,
 * INVALID_VALUE (out of range; the stored value is unchanged). */
SLAY_API slay_status_t slay_attn_desc_set_i64(slay_attn_desc_t desc, slay_attr_t attr, int64_t value);
SLAY_API slay_status_t slay_attn_desc_set_f64(slay_attn_desc_t desc, slay_attr_t attr, double value);
/* Reads the current value (the default if never set). */
SLAY_API slay_status_t slay_attn_desc_get_i64(slay_attn_desc_t desc, slay_attr_t attr, int64_t* value);
SLAY_API slay_status_t slay_attn_desc_get_f64(slay_attn_desc_t desc, slay_attr_t attr, double* value);

/* -------------------------------------------------------------------- plans */

/* A validated, immutable copy of a descriptor bound to a handle. The
 * descriptor may be destroyed after the plan is made; the handle must
 * outlive the plan. */
typedef struct slay_attn_plan_s* slay_attn_plan_t;

typedef enum slay_pass {
    SLAY_PASS_FORWARD = 0,
    SLAY_PASS_BACKWARD = 1,
    SLAY_PASS_SAMPLE = 2, /* slay_attn_features_sample */
    SLAY_PASS_FORCE_32BIT_ = 0x7fffffff
} slay_pass_t;

/* Resolves the descriptor (Dv = D when VALUE_DIM is 0, softmax scale
 * 1/sqrt(D) when SOFTMAX_SCALE is 0, NUM_KV_HEADS 0 to H), checks
 * constraints across attributes (the feature dimension F must not exceed
 * 2^20, H must be a multiple of H_kv: INVALID_VALUE) and binds the plan to
 * the handle. On CUDA a plan the device kernels cannot run (exact family:
 * head dims above 128; linearized forward: head dim above 256 or a state
 * beyond one block's shared memory) fails here with NOT_SUPPORTED, the
 * limit named in the message. */
SLAY_API slay_status_t slay_attn_plan_create(slay_attn_plan_t* plan, slay_handle_t handle,
                                             slay_attn_desc_t desc);
SLAY_API slay_status_t slay_attn_plan_destroy(slay_attn_plan_t plan);
/* Resolved attribute values (VALUE_DIM resolved to Dv, SOFTMAX_SCALE to its
 * effective value). */
SLAY_API slay_status_t slay_attn_plan_get_i64(slay_attn_plan_t plan, slay_attr_t attr, int64_t* value);
SLAY_API slay_status_t slay_attn_plan_get_f64(slay_attn_plan_t plan, slay_attr_t attr, double* value);
SLAY_API slay_status_t slay_attn_plan_get_variant(slay_attn_plan_t plan, slay_attn_variant_t* variant);

/* Bytes of workspace a pass needs for this batch size and sequence length
 * (0 is a valid answer; then workspace may be NULL): enough for every call
 * of that batch and length (slay_attn_fwd_workspace_size and
 * slay_attn_bwd_workspace_size tell what one call needs, which may be less). The workspace lives in
 * the handle's memory space (host memory for CPU, device memory for CUDA),
 * must be aligned to 16 bytes (malloc and cudaMalloc both are), and may be
 * reused freely between calls; its contents on entry do not matter. For SLAY_PASS_SAMPLE batch and seq_len are ignored. */
SLAY_API slay_status_t slay_attn_plan_get_workspace_size(slay_attn_plan_t plan, slay_pass_t pass,
                                                         int64_t batch, int64_t seq_len,
                                                         size_t* bytes);

/* Feature dimension F of the linearized family (the state is (B, H, F, Dv+1)
 * fp32); 0 for the exact variants, which carry no state. */
SLAY_API slay_status_t slay_attn_plan_get_feature_dim(slay_attn_plan_t plan, int64_t* features);

/* The feature-parameter tensor is one fp32 vector of param_count elements,
 * made of named segments laid out back to back. Deterministic variants have
 * param_count 0. */
SLAY_API slay_status_t slay_attn_plan_get_param_count(slay_attn_plan_t plan, int64_t* count);
SLAY_API slay_status_t slay_attn_plan_get_param_segment_count(slay_attn_plan_t plan, int32_t* count);

typedef struct slay_param_segment {
    size_t struct_size;     /* set by the caller to sizeof(slay_param_segment_t) */
    const char* name;       /* "omega", "anchors", "nystrom_w", ... (static)     */
    int64_t offset;         /* first element within the parameter vector         */
    int32_t rank;
    int64_t shape[SLAY_MAX_RANK]; /* row-major, contiguous                       */
} slay_param_segment_t;

/* Describes segment index (0-based). INVALID_VALUE if index is out of range. */
SLAY_API slay_status_t slay_attn_plan_get_param_segment(slay_attn_plan_t plan, int32_t index,
                                                        slay_param_segment_t* segment);

/* ------------------------------------------------------------ execution API */

/* Fills params (rank 1, fp32, shape (param_count,), stride 1) with the
 * variant's random feature parameters, drawn with cuRAND's Philox4x32-10
 * generator: segment i comes from (seed, offset + i * 2^32). The same seed and
 * offset give the same parameters on every backend (to float rounding: the
 * CUDA backend's Box-Muller normals may differ in the last bits). Derived
 * segments (nystrom_w) are computed from the drawn ones. A no-op for
 * param_count 0. Parameters made elsewhere can be loaded by writing the
 * tensor directly. Parameter values are used as given, never checked, by
 * both backends (on CUDA they live in device memory): a non-finite value
 * gives non-finite outputs; a TensorSketch hash h selects the bucket
 * min(max(trunc(h), 0), P-1), NaN selecting 0; signs multiply as given.
 * params and workspace live in the handle's memory space:
 * host memory for CPU, device memory for CUDA (the work is enqueued on
 * stream; see the note on allocation at the top). */
SLAY_API slay_status_t slay_attn_features_sample(slay_attn_plan_t plan, uint64_t seed,
                                                 uint64_t offset, const slay_tensor_t* params,
                                                 void* workspace, size_t workspace_size,
                                                 void* stream);

/* Forward arguments. Size-prefixed: set struct_size = sizeof(slay_attn_fwd_args_t);
 * fields may be appended in later ABI versions, never changed. Tensor
 * pointers marked optional may be NULL. */
typedef struct slay_attn_fwd_args {
    size_t struct_size;
    const slay_tensor_t* q;             /* (B, H, T, D)  io dtype                  */
    const slay_tensor_t* k;             /* (B, H, T, D)  io dtype                  */
    const slay_tensor_t* v;             /* (B, H, T, Dv) io dtype                  */
    const slay_tensor_t* params;        /* (param_count,) fp32; NULL if count 0    */
    const slay_tensor_t* out;           /* (B, H, T, Dv) io dtype, written         */
    const slay_tensor_t* initial_state; /* optional (B, H, F, Dv+1) fp32, read     */
    const slay_tensor_t* final_state;   /* optional (B, H, F, Dv+1) fp32, written  */
    int64_t position_offset;            /* cosformer: global position of token 0
                                           of this call; 0 otherwise              */
    /* ABI 3 (size-prefixed addition; zero/NULL keeps the behaviour above): */
    const slay_tensor_t* seq_offsets;   /* optional (N+1,) int32 or int64: a packed
                                           call of N sequences (see below)        */
    /* ABI 4 (size-prefixed addition; NULL/0 keeps the behaviour above): */
    const slay_tensor_t* row_stats;     /* optional (B, H, T) fp32, exact variants:
                                           each query row's statistic (see below),
                                           written                                */
    int64_t merge;                      /* 0, or 1 (with row_stats): out and
                                           row_stats hold a result over other keys;
                                           merge this call's keys into them       */
} slay_attn_fwd_args_t;

/* Row statistics (ABI 4): results of the same queries over disjoint key
 * sets combine exactly (ring attention: include/slay/context_parallel.hpp).
 * With row_stats given, the forward of an exact variant also writes, per
 * query row i (over this call's visible keys j):
 *   standard, yat:  l_i = log sum_j exp(s_ij), s the scaled score (the
 *                   softmax's logits), natural logarithm;
 *   yat_spherical:  Z_i = sum_j K_ij, before the stabilizer (out = N / den(Z)).
 * With merge = 1, out and row_stats hold on entry a result and statistics of
 * the same queries over other keys (a call with row_stats); the call writes
 * the combined result:
 *   softmax:    l = log(e^l_a + e^l_b), out = (e^(l_a - l) out_a + e^(l_b - l) out_b);
 *   spherical:  Z = Z_a + Z_b, out = (den(Z_a) out_a + den(Z_b) out_b) / den(Z).
 * The combination reads out in the io dtype (a chain of merges rounds each
 * step to it).
 * row_stats is NOT_SUPPORTED for the linearized family; both backends compute
 * it for the exact family (the CUDA kernels in fp32, the CPU backend in fp64).
 * The backward may take them back (slay_attn_bwd_args_t.row_stats, ABI 5). */

/* Packed variable-length calls (ABI 3). With seq_offsets given, the batch
 * axis of q, k, v, out (and dout, dq, dk, dv) has extent 1 and the token
 * axis holds N sequences back to back: sequence n is tokens
 * [seq_offsets[n], seq_offsets[n+1]), seq_offsets[0] = 0, the offsets never
 * decrease and seq_offsets[N] = T_total (the token extent); empty sequences
 * are allowed. States have N rows: (N, H, F, Dv+1). Every sequence is
 * computed exactly as a call of its own with the same arguments (causal
 * within itself, starting from its own initial state, returning its own
 * final state; position_offset and cosformer_length apply to each).
 * seq_offsets lives in the handle's memory space (host memory for CPU,
 * device memory of the handle's device for CUDA). On CUDA the call copies
 * the N+1 offsets to the host and waits for the stream to finish that copy,
 * to validate them and size the launch: the one synchronization of fwd and
 * bwd. Workspace: slay_attn_plan_get_workspace_size(plan, pass, N, T_max)
 * with T_max the longest sequence's length.
 *
 * Grouped-query heads (attribute NUM_KV_HEADS = H_kv < H): k, v, dk, dv are
 * (B, H_kv, T, .); query head h uses key/value head h / (H / H_kv), and dk,
 * dv are the sums over each group's query heads, in a fixed order
 * (deterministic). The linearized family applies query head h's feature map
 * (its parameters) to the shared keys; states stay per query head. */

/* out = attention(q, k, v). For the linearized family, initial_state (if
 * given) is added to the prefix sums, and final_state (if given) receives
 * initial_state + sum over this call's keys, so a sequence can be processed
 * in pieces and a decode step is a forward of T = 1. State arguments are
 * NOT_SUPPORTED for the exact variants and for cosformer with
 * COSFORMER_LENGTH = 0. final_state may alias initial_state. */
SLAY_API slay_status_t slay_attn_fwd(slay_attn_plan_t plan, const slay_attn_fwd_args_t* args,
                                     void* workspace, size_t workspace_size, void* stream);

typedef struct slay_attn_bwd_args {
    size_t struct_size;
    const slay_tensor_t* q;              /* (B, H, T, D)                            */
    const slay_tensor_t* k;
    const slay_tensor_t* v;              /* (B, H, T, Dv)                           */
    const slay_tensor_t* params;         /* NULL if param_count 0                  */
    const slay_tensor_t* out;            /* the forward's output (B, H, T, Dv)      */
    const slay_tensor_t* dout;           /* dL/dout (B, H, T, Dv)                   */
    const slay_tensor_t* dq;             /* written (B, H, T, D)                    */
    const slay_tensor_t* dk;             /* written (B, H, T, D)                    */
    const slay_tensor_t* dv;             /* written (B, H, T, Dv)                   */
    const slay_tensor_t* initial_state;  /* optional, as in the forward             */
    const slay_tensor_t* dfinal_state;   /* optional dL/dfinal_state (B,H,F,Dv+1)  */
    const slay_tensor_t* dinitial_state; /* optional, written dL/dinitial_state     */
    int64_t position_offset;
    /* ABI 3: */
    const slay_tensor_t* seq_offsets;    /* optional, as in the forward             */
    /* ABI 5 (size-prefixed addition; NULL keeps the behaviour above): */
    const slay_tensor_t* row_stats;      /* optional (B, H, T) fp32, exact variants:
                                            the forward's row statistics (a forward
                                            call with row_stats over the same q, k,
                                            v), read; the backward then uses them
                                            instead of recomputing them            */
} slay_attn_bwd_args_t;

/* Gradients of L with respect to q, k, v (and initial_state) given dout and
 * dfinal_state. Feature parameters get no gradient.
 *
 * out: the exact variants' CUDA backend takes each row's Delta_i =
 * dout_i . out_i from it (as FlashAttention does), so out's rounding to a
 * 16-bit dtype enters dq and dk, multiplied where a row's weights are nearly
 * one-hot (dP_ij - Delta_i cancels; e.g. a key aligned with its query at a
 * small epsilon for yat_spherical). The CPU backend recomputes the output
 * in fp64. Pass the forward's out unchanged; fp32 calls keep 1e-5.
 *
 * Row statistics in the backward (ABI 5): with row_stats given, the exact
 * variants take each row's normalization from it instead of recomputing it
 * from q and k (softmax: P_ij = exp(s_ij - l_i); yat_spherical: den(Z_i),
 * and the stabilizer clamp's gradient decided on Z_i); the CUDA backend then
 * skips its statistics sweep over the keys. The statistics are used as
 * given, never checked: ones of other q, k or v give wrong gradients, as a
 * mismatched out does. For a result merged over several key sets (ring
 * attention), pass the final merged statistics, those that belong to the
 * final out. row_stats is NOT_SUPPORTED for the linearized family. */
SLAY_API slay_status_t slay_attn_bwd(slay_attn_plan_t plan, const slay_attn_bwd_args_t* args,
                                     void* workspace, size_t workspace_size, void* stream);

/* Bytes of workspace one call needs (ABI 6): the call's arguments are
 * validated exactly as slay_attn_fwd / slay_attn_bwd validate them (same
 * statuses; nothing is written, and only a packed call's seq_offsets are
 * read, on `stream`), and *bytes receives what the call with these
 * arguments needs: at most slay_attn_plan_get_workspace_size(plan, pass,
 * B, T), which covers every call of that batch and length, and less where
 * these tensors let a path use less. The CUDA backend's Hopper Kronecker
 * kernels at F = 1024 (slay_anchor, bf16, causal, head dims 64, R = 2,
 * M = 16, P = 32, 16-byte aligned tensors with contiguous rows, no states,
 * B * H >= 32; a build with the kron_wgmma option on an H100/H200) need no
 * workspace in the forward and two floats a (b, h, t) row in the backward,
 * where the plan-level size reserves the factor rows and gradients other
 * paths need. slay_attn_fwd / slay_attn_bwd accept any workspace of at least
 * this size for these arguments. */
SLAY_API slay_status_t slay_attn_fwd_workspace_size(slay_attn_plan_t plan, const slay_attn_fwd_args_t* args,
                                                    void* stream, size_t* bytes);
SLAY_API slay_status_t slay_attn_bwd_workspace_size(slay_attn_plan_t plan, const slay_attn_bwd_args_t* args,
                                                    void* stream, size_t* bytes);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* SLAY_SLAY_H */
