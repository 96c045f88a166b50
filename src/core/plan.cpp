// plan.cpp -- validation of fwd/bwd argument blocks and workspaces against a
// plan, shared by both backends. Every check here runs before any output is
// written, so a failing call leaves all outputs untouched.
//
// Shapes: q, k (B, H, T, D); v, out, dout (B, H, T, Dv); state (B, H, F, Dv+1).
#include <cstring>

#include "attributes.hpp"
#include "backend.hpp"

namespace slay {

namespace {

// A caller built against a newer ABI may pass a larger block. Accept it only
// when the fields this library does not know are all zero: silently
// ignoring a request would be worse than refusing it.
Status check_struct_size(const void* block, size_t given, size_t known, const char* name) {
    if (given < known)
        return error(SLAY_STATUS_STRUCT_SIZE, name, "->struct_size=", given, " but this library needs ",
                     known, " (set it to the sizeof of its struct)");
    const unsigned char* bytes = static_cast<const unsigned char*>(block);
    for (size_t i = known; i < given; ++i)
        if (bytes[i] != 0)
            return error(SLAY_STATUS_NOT_SUPPORTED, name, " has fields beyond the ", known,
                         " bytes this library knows (struct_size=", given,
                         "); upgrade libslay to use them");
    return Status();
}

Status check_position_offset(const Plan& p, int64_t offset, int64_t seq_len) {
    if (offset < 0) return error(SLAY_STATUS_INVALID_VALUE, "position_offset=", offset, " is negative");
    if (p.cfg.variant != SLAY_ATTN_COSFORMER) {
        if (offset != 0)
            return error(SLAY_STATUS_INVALID_VALUE, "position_offset=", offset,
                         " but only cosformer uses positions; pass 0");
        return Status();
    }
    const int64_t L = p.cfg.cosformer_length;
    if (L > 0 && (offset > L || seq_len > L - offset))  // written so that nothing can overflow
        return error(SLAY_STATUS_INVALID_VALUE, "position_offset=", offset, " plus T=", seq_len,
                     " exceeds cosformer_length=", L);
    if (L == 0 && offset != 0)
        return error(SLAY_STATUS_INVALID_VALUE, "position_offset=", offset,
                     " needs cosformer_length > 0 (with length 0 the weights use T of the call)");
    return Status();
}

// States exist only for the linearized family; cosformer additionally needs
// a fixed length, since its weights otherwise depend on each call's T.
Status check_state_allowed(const Plan& p, const char* name) {
    if (is_exact_variant(p.cfg.variant))
        return error(SLAY_STATUS_NOT_SUPPORTED, name, " given but variant ", variant_name(p.cfg.variant),
                     " is exact and carries no state");
    if (p.cfg.variant == SLAY_ATTN_COSFORMER && p.cfg.cosformer_length == 0)
        return error(SLAY_STATUS_NOT_SUPPORTED, name,
                     " given but cosformer needs attribute cosformer_length > 0 to carry state");
    return Status();
}

Status check_state(const Plan& p, const slay_tensor_t* t, const char* name, int64_t B, Access access,
                   TensorView* view, bool* present) {
    *present = t != nullptr;
    if (!t) return Status();
    SLAY_TRY(check_state_allowed(p, name));
    return check_tensor(t, name, SLAY_DTYPE_FLOAT32,
                        {B, p.cfg.num_heads, p.features, p.cfg.value_dim + 1}, "(B, H, F, Dv+1)", access,
                        view);
}

// q defines B and T; k, v, out and the gradients must agree with it. Checks
// the inputs forward and backward share, in argument order.
Status check_inputs(const Plan& p, const slay_tensor_t* q, const slay_tensor_t* k, const slay_tensor_t* v,
                    CallInputs* c) {
    const AttnConfig& cf = p.cfg;
    SLAY_TRY(check_tensor_rank(q, "q", cf.io_dtype, 4, Access::Read, &c->q));
    const int64_t B = c->q.shape[0], T = c->q.shape[2];
    SLAY_TRY(check_tensor(q, "q", cf.io_dtype, {B, cf.num_heads, T, cf.head_dim}, "(B, H, T, D)", Access::Read, &c->q));
    SLAY_TRY(check_tensor(k, "k", cf.io_dtype, {B, cf.num_heads, T, cf.head_dim}, "(B, H, T, D)", Access::Read, &c->k));
    SLAY_TRY(check_tensor(v, "v", cf.io_dtype, {B, cf.num_heads, T, cf.value_dim}, "(B, H, T, Dv)", Access::Read, &c->v));
    c->batch = B;
    c->seq_len = T;
    return Status();
}

Status check_params_state_position(const Plan& p, const slay_tensor_t* params, const slay_tensor_t* initial_state,
                                   int64_t position_offset, CallInputs* c) {
    SLAY_TRY(validate_params_tensor(p, params, Access::Read, &c->params, &c->has_params));
    SLAY_TRY(check_state(p, initial_state, "initial_state", c->batch, Access::Read, &c->initial_state,
                         &c->has_initial_state));
    SLAY_TRY(check_position_offset(p, position_offset, c->seq_len));
    c->position_offset = position_offset;
    return Status();
}

}  // namespace

Status validate_params_tensor(const Plan& p, const slay_tensor_t* params, Access access, TensorView* view,
                              bool* present) {
    *present = false;
    if (p.param_count == 0) {
        // Deterministic variants take no parameters: NULL or an empty vector.
        if (params && !(params->rank == 1 && params->shape[0] == 0))
            return error(SLAY_STATUS_BAD_SHAPE, "params given but variant ", variant_name(p.cfg.variant),
                         " has no feature parameters (pass NULL)");
        return Status();
    }
    if (!params)
        return error(SLAY_STATUS_INVALID_ARGUMENT, "params is NULL but variant ", variant_name(p.cfg.variant),
                     " needs ", p.param_count, " fp32 feature parameters");
    SLAY_TRY(check_tensor(params, "params", SLAY_DTYPE_FLOAT32, {p.param_count}, "(param_count,)", access, view));
    *present = true;
    return Status();
}

Status validate_fwd(const Plan& p, const slay_attn_fwd_args_t* a, FwdCall* call) {
    if (!a) return error(SLAY_STATUS_INVALID_ARGUMENT, "args is NULL");
    SLAY_TRY(check_struct_size(a, a->struct_size, sizeof(slay_attn_fwd_args_t), "args"));
    FwdCall c;
    SLAY_TRY(check_inputs(p, a->q, a->k, a->v, &c));
    const int64_t B = c.batch, T = c.seq_len, H = p.cfg.num_heads, Dv = p.cfg.value_dim;
    SLAY_TRY(check_tensor(a->out, "out", p.cfg.io_dtype, {B, H, T, Dv}, "(B, H, T, Dv)", Access::Write, &c.out));
    SLAY_TRY(check_params_state_position(p, a->params, a->initial_state, a->position_offset, &c));
    SLAY_TRY(check_state(p, a->final_state, "final_state", B, Access::Write, &c.final_state, &c.has_final_state));
    *call = c;
    return Status();
}

Status validate_bwd(const Plan& p, const slay_attn_bwd_args_t* a, BwdCall* call) {
    if (!a) return error(SLAY_STATUS_INVALID_ARGUMENT, "args is NULL");
    SLAY_TRY(check_struct_size(a, a->struct_size, sizeof(slay_attn_bwd_args_t), "args"));
    BwdCall c;
    SLAY_TRY(check_inputs(p, a->q, a->k, a->v, &c));
    const AttnConfig& cf = p.cfg;
    const int64_t B = c.batch, T = c.seq_len, H = cf.num_heads, D = cf.head_dim, Dv = cf.value_dim;
    SLAY_TRY(check_tensor(a->out, "out", cf.io_dtype, {B, H, T, Dv}, "(B, H, T, Dv)", Access::Read, &c.out));
    SLAY_TRY(check_tensor(a->dout, "dout", cf.io_dtype, {B, H, T, Dv}, "(B, H, T, Dv)", Access::Read, &c.dout));
    SLAY_TRY(check_tensor(a->dq, "dq", cf.io_dtype, {B, H, T, D}, "(B, H, T, D)", Access::Write, &c.dq));
    SLAY_TRY(check_tensor(a->dk, "dk", cf.io_dtype, {B, H, T, D}, "(B, H, T, D)", Access::Write, &c.dk));
    SLAY_TRY(check_tensor(a->dv, "dv", cf.io_dtype, {B, H, T, Dv}, "(B, H, T, Dv)", Access::Write, &c.dv));
    SLAY_TRY(check_params_state_position(p, a->params, a->initial_state, a->position_offset, &c));
    SLAY_TRY(check_state(p, a->dfinal_state, "dfinal_state", B, Access::Read, &c.dfinal_state, &c.has_dfinal_state));
    SLAY_TRY(check_state(p, a->dinitial_state, "dinitial_state", B, Access::Write, &c.dinitial_state,
                         &c.has_dinitial_state));
    *call = c;
    return Status();
}

Status check_workspace(const Plan& p, slay_pass_t pass, int64_t batch, int64_t seq_len, const void* workspace,
                       size_t workspace_size) {
    size_t need = 0;
    SLAY_TRY(p.backend->workspace_size(p, pass, batch, seq_len, &need));
    if (workspace_size < need)
        return error(SLAY_STATUS_WORKSPACE_TOO_SMALL, "workspace_size=", workspace_size, " but this call needs ",
                     need, " bytes (slay_attn_plan_get_workspace_size)");
    if (need > 0 && !workspace)
        return error(SLAY_STATUS_INVALID_ARGUMENT, "workspace is NULL but this call needs ", need, " bytes");
    if (need > 0 && reinterpret_cast<uintptr_t>(workspace) % 16 != 0)
        return error(SLAY_STATUS_INVALID_ARGUMENT, "workspace is not aligned to 16 bytes");
    return Status();
}

}  // namespace slay
