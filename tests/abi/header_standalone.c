/*
 * header_standalone.c -- compiled (never run) by abi/check_header.sh as C99,
 * C11, C17 and C++17 under -pedantic -Werror: <slay/slay.h> must be the
 * first and only include and must be enough to use the ABI's types.
 */
#include <slay/slay.h>

int header_standalone_use(slay_attn_plan_t plan);

int header_standalone_use(slay_attn_plan_t plan) {
    slay_tensor_t q;
    slay_attn_fwd_args_t args;
    slay_param_segment_t segment;
    slay_dtype_t dtype = SLAY_DTYPE_BFLOAT16;
    slay_attn_variant_t variant = SLAY_ATTN_SLAY_ANCHOR;
    slay_status_t status;
    size_t bytes = 0;

    q.data = NULL;
    q.dtype = dtype;
    q.rank = SLAY_MAX_RANK;
    q.shape[0] = 1;
    q.strides[0] = 1;
    args.struct_size = sizeof(args);
    args.q = &q;
    segment.struct_size = sizeof(segment);
    status = slay_attn_plan_get_workspace_size(plan, SLAY_PASS_FORWARD, 1, 1, &bytes);
    return (int)status + (int)variant + (int)args.struct_size + (int)segment.struct_size +
           (int)SLAY_VERSION + (int)SLAY_ABI_VERSION;
}
