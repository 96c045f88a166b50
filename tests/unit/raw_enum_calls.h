/* raw_enum_calls.h -- the public ABI's enum-taking calls with int32 enum
 * arguments, implemented in C (raw_enum_calls.c says why). */
#ifndef SLAY_TEST_RAW_ENUM_CALLS_H
#define SLAY_TEST_RAW_ENUM_CALLS_H

#include "slay/slay.h"

#ifdef __cplusplus
extern "C" {
#endif

slay_status_t raw_handle_create(slay_handle_t* handle, int32_t backend, int32_t device);
slay_status_t raw_desc_create(slay_attn_desc_t* desc, int32_t variant);
slay_status_t raw_desc_set_i64(slay_attn_desc_t desc, int32_t attr, int64_t value);
slay_status_t raw_desc_set_f64(slay_attn_desc_t desc, int32_t attr, double value);
slay_status_t raw_desc_get_i64(slay_attn_desc_t desc, int32_t attr, int64_t* value);
slay_status_t raw_desc_get_f64(slay_attn_desc_t desc, int32_t attr, double* value);
slay_status_t raw_plan_get_workspace_size(slay_attn_plan_t plan, int32_t pass, int64_t batch, int64_t seq_len,
                                          size_t* bytes);
const char* raw_attr_name(int32_t attr);
const char* raw_variant_name(int32_t variant);
const char* raw_status_name(int32_t status);
const char* raw_status_string(int32_t status);
/* Stores any int32 in t->dtype (as C code filling the struct would). */
void raw_set_dtype(slay_tensor_t* t, int32_t dtype);

#ifdef __cplusplus
}
#endif

#endif
