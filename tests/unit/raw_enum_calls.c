/*
 * raw_enum_calls.c -- calls of the public ABI with enum arguments given as
 * raw int32 values, made from C as a C caller would: in C an enum is an int,
 * so passing -1 or 7 is defined here, while in the C++ tests forming such an
 * enum value would itself be undefined behaviour. Used by the bad-input
 * catalogue (test_bad_inputs.cpp) and the descriptor/status tests.
 */
#include "raw_enum_calls.h"

slay_status_t raw_handle_create(slay_handle_t* handle, int32_t backend, int32_t device) {
    return slay_handle_create(handle, (slay_backend_t)backend, device);
}
slay_status_t raw_desc_create(slay_attn_desc_t* desc, int32_t variant) {
    return slay_attn_desc_create(desc, (slay_attn_variant_t)variant);
}
slay_status_t raw_desc_set_i64(slay_attn_desc_t desc, int32_t attr, int64_t value) {
    return slay_attn_desc_set_i64(desc, (slay_attr_t)attr, value);
}
slay_status_t raw_desc_set_f64(slay_attn_desc_t desc, int32_t attr, double value) {
    return slay_attn_desc_set_f64(desc, (slay_attr_t)attr, value);
}
slay_status_t raw_desc_get_i64(slay_attn_desc_t desc, int32_t attr, int64_t* value) {
    return slay_attn_desc_get_i64(desc, (slay_attr_t)attr, value);
}
slay_status_t raw_desc_get_f64(slay_attn_desc_t desc, int32_t attr, double* value) {
    return slay_attn_desc_get_f64(desc, (slay_attr_t)attr, value);
}
slay_status_t raw_plan_get_workspace_size(slay_attn_plan_t plan, int32_t pass, int64_t batch, int64_t seq_len,
                                          size_t* bytes) {
    return slay_attn_plan_get_workspace_size(plan, (slay_pass_t)pass, batch, seq_len, bytes);
}
const char* raw_attr_name(int32_t attr) { return slay_attr_name((slay_attr_t)attr); }
const char* raw_variant_name(int32_t variant) { return slay_attn_variant_name((slay_attn_variant_t)variant); }
const char* raw_status_name(int32_t status) { return slay_status_name((slay_status_t)status); }
const char* raw_status_string(int32_t status) { return slay_status_string((slay_status_t)status); }
void raw_set_dtype(slay_tensor_t* t, int32_t dtype) { t->dtype = (slay_dtype_t)dtype; }
