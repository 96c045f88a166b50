// plan.cpp -- validation of fwd/bwd argument blocks and workspaces against a
// plan, shared by both backends. Every check here runs before any output is
// written, so a failing call leaves all outputs untouched.
//
// Shapes: q, k (B, H, T, D); v, out, dout (B, H, T, Dv); state (B, H, F, Dv+1).
#include <algorithm>
#include <cstddef>
#include <cstring>
#include <initializer_list>
#include <string>
#include <type_traits>

#include "attributes.hpp"
#include "backend.hpp"
#include "limits.hpp"

namespace slay {

namespace {

// A caller built against a newer ABI may pass a larger block. Accept it only
// when the fields this library does not know are all zero: silently
// ignoring a request would be worse than refusing it.
Status check_struct_size(const void* block, size_t given, size_t known, const char* name) {
    SLAY_TRY(check_struct_size_range(given, known, name));
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

// Offsets of a packed call: rank 1, int32 or int64, N+1 >= 1 entries.
Status check_offsets_tensor(const slay_tensor_t* t, TensorView* view) {
    if (t && t->rank == 1 && enum_bits(t->dtype) == SLAY_DTYPE_INT32)
        return check_tensor_rank(t, "seq_offsets", SLAY_DTYPE_INT32, 1, Access::Read, view);
    SLAY_TRY(check_tensor_rank(t, "seq_offsets", SLAY_DTYPE_INT64, 1, Access::Read, view));
    if (view->shape[0] < 1)
        return error(SLAY_STATUS_BAD_SHAPE, "seq_offsets has 0 entries; a packed call of N sequences needs N+1");
    return Status();
}

// The offsets' values (read through the backend): 0 first, never
// decreasing, T_total last. Sets the sequence count and the longest length.
Status check_offset_values(const Plan& p, void* stream, int64_t total_tokens, CallInputs* c) {
    SLAY_TRY(p.backend->check_stream(stream));
    SLAY_TRY(p.backend->read_offsets(c->seq_offsets, stream, &c->seq_starts));
    const std::vector<int64_t>& o = c->seq_starts;
    const int64_t n = static_cast<int64_t>(o.size()) - 1;
    if (o[0] != 0) return error(SLAY_STATUS_INVALID_VALUE, "seq_offsets[0]=", o[0], " but it must be 0");
    int64_t longest = 0;
    for (int64_t i = 0; i < n; ++i) {
        if (o[i + 1] < o[i])
            return error(SLAY_STATUS_INVALID_VALUE, "seq_offsets[", i + 1, "]=", o[i + 1], " < seq_offsets[", i,
                         "]=", o[i], "; offsets must not decrease");
        longest = std::max(longest, o[i + 1] - o[i]);
    }
    if (o[n] != total_tokens)
        return error(SLAY_STATUS_INVALID_VALUE, "seq_offsets[", n, "]=", o[n], " but q holds ", total_tokens,
                     " tokens; the last offset must equal the token extent");
    c->batch = n;
    c->seq_len = longest;
    return Status();
}

// q defines the batch and token extents; k, v (H_kv heads), out and the
// gradients must agree with it. A packed call (offsets given) has batch
// extent 1 and takes B and T from the offsets. Checks the inputs forward
// and backward share, in argument order.
Status check_inputs(const Plan& p, const slay_tensor_t* q, const slay_tensor_t* k, const slay_tensor_t* v,
                    const slay_tensor_t* offsets, void* stream, CallInputs* c) {
    const AttnConfig& cf = p.cfg;
    SLAY_TRY(check_tensor_rank(q, "q", cf.io_dtype, 4, Access::Read, &c->q));
    const int64_t B = c->q.shape[0], T = c->q.shape[2];
    c->packed = offsets != nullptr;
    if (c->packed) {
        SLAY_TRY(check_offsets_tensor(offsets, &c->seq_offsets));
        if (B != 1)
            return error(SLAY_STATUS_BAD_SHAPE, "q.shape[0]=", B, " but a packed call (seq_offsets given) has "
                         "batch extent 1, the sequences lying back to back on the token axis");
    }
    // Checked first: with T = 0 the tensors hold no element, so nothing else
    // bounds B, and a backend would otherwise walk B*H empty heads.
    const int64_t sequences = c->packed ? c->seq_offsets.shape[0] - 1 : B;
    if (sequences > kMaxBatchHeads / cf.num_heads)
        return error(SLAY_STATUS_INVALID_VALUE, "B*H = ", sequences, "*", cf.num_heads, " exceeds the limit of ",
                     kMaxBatchHeads, " (2^31-1, CUDA's gridDim.x) on B*H", c->packed ? " (B = sequences)" : "");
    const int64_t Hkv = cf.num_kv_heads;
    SLAY_TRY(check_tensor(q, "q", cf.io_dtype, {B, cf.num_heads, T, cf.head_dim}, "(B, H, T, D)", Access::Read, &c->q));
    SLAY_TRY(check_tensor(k, "k", cf.io_dtype, {B, Hkv, T, cf.head_dim}, "(B, H_kv, T, D)", Access::Read, &c->k));
    SLAY_TRY(check_tensor(v, "v", cf.io_dtype, {B, Hkv, T, cf.value_dim}, "(B, H_kv, T, Dv)", Access::Read, &c->v));
    c->batch = B;
    c->seq_len = T;
    c->total_tokens = B * T;
    if (c->packed) SLAY_TRY(check_offset_values(p, stream, T, c));
    return Status();
}

Status check_params_state_position(const Plan& p, const slay_tensor_t* params, const slay_tensor_t* initial_state,
                                   int64_t position_offset, CallInputs* c) {
    SLAY_TRY(validate_params_tensor(p, params, Access::Read, &c->params, &c->has_params));
    SLAY_TRY(check_state(p, initial_state, "initial_state", c->batch, Access::Read, &c->initial_state,
                         &c->has_initial_state));
    SLAY_TRY(check_position_offset(p, position_offset, c->seq_len));
    // With length 0 each sequence's weights would depend on its own T; like
    // states, packing needs one fixed length.
    if (c->packed && p.cfg.variant == SLAY_ATTN_COSFORMER && p.cfg.cosformer_length == 0)
        return error(SLAY_STATUS_NOT_SUPPORTED,
                     "a packed cosformer call (seq_offsets given) needs attribute cosformer_length > 0");
    c->position_offset = position_offset;
    return Status();
}

// One tensor of a call for the overlap check; absent tensors touch no byte.
struct CallTensor {
    const char* name;
    const TensorView* view;
    bool written;
};

// Same data, dtype, shape and strides: the documented in-place state.
bool same_view(const TensorView& a, const TensorView& b) {
    if (a.data != b.data || a.dtype != b.dtype || a.rank != b.rank) return false;
    for (int i = 0; i < a.rank; ++i)
        if (a.shape[i] != b.shape[i] || a.strides[i] != b.strides[i]) return false;
    return true;
}

// No tensor a call writes may share a byte with another tensor of the call
// or with the workspace it uses (bytes [workspace, workspace + need)). The
// test is on byte ranges [first element, last element], so interleaved
// tensors that never share an element (dq, dk, dv in one packed buffer)
// are rejected too: the rule stays one comparison, the same on every backend.
// Inputs may overlap each other freely (q and k may be one tensor).
Status check_disjoint(std::initializer_list<CallTensor> tensors, const void* workspace, size_t need,
                      const CallTensor* allowed_alias = nullptr) {
    const TensorView* alias_a = allowed_alias ? allowed_alias[0].view : nullptr;
    const TensorView* alias_b = allowed_alias ? allowed_alias[1].view : nullptr;
    const uintptr_t ws_first = reinterpret_cast<uintptr_t>(workspace), ws_end = ws_first + need;
    for (auto a = tensors.begin(); a != tensors.end(); ++a) {
        uintptr_t a0 = 0, a1 = 0;
        if (!a->view->byte_range(&a0, &a1)) continue;
        if (need > 0 && workspace && a0 < ws_end && ws_first < a1)
            return error(SLAY_STATUS_BAD_STRIDE, a->name, " overlaps the workspace; the workspace must not "
                         "share memory with a tensor of the call");
        for (auto b = a + 1; b != tensors.end(); ++b) {
            uintptr_t b0 = 0, b1 = 0;
            if (!(a->written || b->written) || !b->view->byte_range(&b0, &b1)) continue;
            if (a0 >= b1 || b0 >= a1) continue;
            const bool in_place = ((a->view == alias_a && b->view == alias_b) ||
                                   (a->view == alias_b && b->view == alias_a)) &&
                                  same_view(*a->view, *b->view);
            if (!in_place)
                return error(SLAY_STATUS_BAD_STRIDE, a->name, " and ", b->name, " share memory, and ",
                             a->written ? a->name : b->name,
                             " is written; outputs must not overlap another tensor of the call",
                             allowed_alias ? " (final_state may alias initial_state exactly)" : "");
        }
    }
    return Status();
}

}  // namespace

Status check_struct_size_range(size_t given, size_t known, const char* name) {
    if (given < known)
        return error(SLAY_STATUS_STRUCT_SIZE, name, "->struct_size=", given, " but this library needs ",
                     known, " (set it to the sizeof of its struct)");
    if (given > kMaxStructSize)
        return error(SLAY_STATUS_STRUCT_SIZE, name, "->struct_size=", given, " exceeds the limit of ",
                     kMaxStructSize, " bytes on struct_size (set it to the sizeof of its struct)");
    return Status();
}

Status check_fwd_memory(const FwdCall& c, const void* workspace, size_t need) {
    const CallTensor state_alias[2] = {{"initial_state", &c.initial_state, false},
                                       {"final_state", &c.final_state, true}};
    return check_disjoint({{"q", &c.q, false},
                           {"k", &c.k, false},
                           {"v", &c.v, false},
                           {"params", &c.params, false},
                           {"seq_offsets", &c.seq_offsets, false},
                           {"initial_state", &c.initial_state, false},
                           {"out", &c.out, true},
                           {"final_state", &c.final_state, true},
                           {"row_stats", &c.row_stats, true}},
                          workspace, need, state_alias);
}

Status check_bwd_memory(const BwdCall& c, const void* workspace, size_t need) {
    return check_disjoint({{"q", &c.q, false},
                           {"k", &c.k, false},
                           {"v", &c.v, false},
                           {"params", &c.params, false},
                           {"seq_offsets", &c.seq_offsets, false},
                           {"initial_state", &c.initial_state, false},
                           {"out", &c.out, false},
                           {"dout", &c.dout, false},
                           {"dfinal_state", &c.dfinal_state, false},
                           {"row_stats", &c.row_stats, false},
                           {"dq", &c.dq, true},
                           {"dk", &c.dk, true},
                           {"dv", &c.dv, true},
                           {"dinitial_state", &c.dinitial_state, true}},
                          workspace, need);
}

Status check_sample_memory(const TensorView& params, const void* workspace, size_t need) {
    return check_disjoint({{"params", &params, true}}, workspace, need);
}

bool writes_nothing(const FwdCall& c) {
    return c.out.numel() == 0 && (!c.has_final_state || c.final_state.numel() == 0);
}

bool writes_nothing(const BwdCall& c) {
    return c.dq.numel() == 0 && c.dk.numel() == 0 && c.dv.numel() == 0 &&
           (!c.has_dinitial_state || c.dinitial_state.numel() == 0);
}

Status validate_params_tensor(const Plan& p, const slay_tensor_t* params, Access access, TensorView* view,
                              bool* present) {
    *present = false;
    if (p.param_count == 0) {
        // Deterministic variants take no parameters: NULL or an empty vector.
        if (!params) return Status();
        if (!(params->rank == 1 && params->shape[0] == 0))
            return error(SLAY_STATUS_BAD_SHAPE, "params given but variant ", variant_name(p.cfg.variant),
                         " has no feature parameters (pass NULL)");
        // An empty vector is still a tensor: its dtype and stride must be valid.
        TensorView empty;
        return check_tensor(params, "params", SLAY_DTYPE_FLOAT32, {0}, "(0,)", access, &empty);
    }
    if (!params)
        return error(SLAY_STATUS_INVALID_ARGUMENT, "params is NULL but variant ", variant_name(p.cfg.variant),
                     " needs ", p.param_count, " fp32 feature parameters");
    SLAY_TRY(check_tensor(params, "params", SLAY_DTYPE_FLOAT32, {p.param_count}, "(param_count,)", access, view));
    *present = true;
    return Status();
}

namespace {

// A caller built against an older ABI passes the block of that ABI's layout
// (`layouts`: the sizes of the older layouts, ascending; the oldest is the
// least accepted): copy what was given into a zeroed block of this
// library's size, so absent fields read as zero / NULL. A size between two
// layouts must not cover part of a field with anything but zeros.
template <typename Args>
Status read_args_block(const Args* given, std::initializer_list<size_t> layouts, Args* block) {
    if (!given) return error(SLAY_STATUS_INVALID_ARGUMENT, "args is NULL");
    const size_t size = given->struct_size;
    if (size >= sizeof(Args)) {
        SLAY_TRY(check_struct_size(given, size, sizeof(Args), "args"));
        std::memcpy(static_cast<void*>(block), given, sizeof(Args));
        return Status();
    }
    SLAY_TRY(check_struct_size_range(size, *layouts.begin(), "args"));
    size_t known = *layouts.begin();  // the largest layout within `size`
    for (size_t l : layouts)
        if (l <= size) known = l;
    const unsigned char* bytes = reinterpret_cast<const unsigned char*>(given);
    for (size_t i = known; i < size; ++i)
        if (bytes[i] != 0) {
            std::string sizes;
            for (size_t l : layouts) sizes += std::to_string(l) + ", ";
            return error(SLAY_STATUS_STRUCT_SIZE, "args->struct_size=", size,
                         " covers part of a field; pass the size of a layout (", sizes, "or ", sizeof(Args),
                         ": this library's)");
        }
    std::memset(static_cast<void*>(block), 0, sizeof(Args));
    std::memcpy(static_cast<void*>(block), given, known);
    return Status();
}

// Row statistics, given (non-null): exact variants only, (B, H, T) fp32 over
// q's batch and token extents. The forward writes them (ABI 4), the
// backward reads them (ABI 5).
Status check_row_stats_tensor(const Plan& p, const slay_tensor_t* t, const CallInputs& c, Access access,
                              TensorView* view) {
    if (p.features > 0)
        return error(SLAY_STATUS_NOT_SUPPORTED, "row_stats given but variant ", variant_name(p.cfg.variant),
                     " is linearized (row statistics are the exact variants'; the linearized family combines "
                     "pieces through its states)");
    const int64_t B = c.q.shape[0], T = c.q.shape[2], H = p.cfg.num_heads;
    return check_tensor(t, "row_stats", SLAY_DTYPE_FLOAT32, {B, H, T}, "(B, H, T)", access, view);
}

// The forward's row statistics (ABI 4); merge is 0 or 1 and needs them.
Status check_row_stats(const Plan& p, const slay_attn_fwd_args_t& a, FwdCall* c) {
    if (a.merge != 0 && a.merge != 1)
        return error(SLAY_STATUS_INVALID_VALUE, "merge=", a.merge, " but it must be 0 or 1");
    if (!a.row_stats) {
        if (a.merge)
            return error(SLAY_STATUS_INVALID_ARGUMENT,
                         "merge=1 but row_stats is NULL (a merge reads the statistics of the result in out)");
        return Status();
    }
    SLAY_TRY(check_row_stats_tensor(p, a.row_stats, *c, Access::Write, &c->row_stats));
    c->has_row_stats = true;
    c->merge = a.merge == 1;
    return Status();
}

}  // namespace

Status validate_fwd(const Plan& p, const slay_attn_fwd_args_t* given, void* stream, FwdCall* call) {
    slay_attn_fwd_args_t a;
    SLAY_TRY(read_args_block(
        given, {offsetof(slay_attn_fwd_args_t, seq_offsets), offsetof(slay_attn_fwd_args_t, row_stats)}, &a));
    FwdCall c;
    SLAY_TRY(check_inputs(p, a.q, a.k, a.v, a.seq_offsets, stream, &c));
    const int64_t B = c.q.shape[0], T = c.q.shape[2], H = p.cfg.num_heads, Dv = p.cfg.value_dim;
    SLAY_TRY(check_tensor(a.out, "out", p.cfg.io_dtype, {B, H, T, Dv}, "(B, H, T, Dv)", Access::Write, &c.out));
    SLAY_TRY(check_params_state_position(p, a.params, a.initial_state, a.position_offset, &c));
    SLAY_TRY(check_state(p, a.final_state, "final_state", c.batch, Access::Write, &c.final_state,
                         &c.has_final_state));
    SLAY_TRY(check_row_stats(p, a, &c));
    *call = c;
    return Status();
}

Status validate_bwd(const Plan& p, const slay_attn_bwd_args_t* given, void* stream, BwdCall* call) {
    slay_attn_bwd_args_t a;
    SLAY_TRY(read_args_block(
        given, {offsetof(slay_attn_bwd_args_t, seq_offsets), offsetof(slay_attn_bwd_args_t, row_stats)}, &a));
    BwdCall c;
    SLAY_TRY(check_inputs(p, a.q, a.k, a.v, a.seq_offsets, stream, &c));
    const AttnConfig& cf = p.cfg;
    const int64_t B = c.q.shape[0], T = c.q.shape[2], H = cf.num_heads, Hkv = cf.num_kv_heads, D = cf.head_dim,
                  Dv = cf.value_dim;
    SLAY_TRY(check_tensor(a.out, "out", cf.io_dtype, {B, H, T, Dv}, "(B, H, T, Dv)", Access::Read, &c.out));
    SLAY_TRY(check_tensor(a.dout, "dout", cf.io_dtype, {B, H, T, Dv}, "(B, H, T, Dv)", Access::Read, &c.dout));
    SLAY_TRY(check_tensor(a.dq, "dq", cf.io_dtype, {B, H, T, D}, "(B, H, T, D)", Access::Write, &c.dq));
    SLAY_TRY(check_tensor(a.dk, "dk", cf.io_dtype, {B, Hkv, T, D}, "(B, H_kv, T, D)", Access::Write, &c.dk));
    SLAY_TRY(check_tensor(a.dv, "dv", cf.io_dtype, {B, Hkv, T, Dv}, "(B, H_kv, T, Dv)", Access::Write, &c.dv));
    SLAY_TRY(check_params_state_position(p, a.params, a.initial_state, a.position_offset, &c));
    SLAY_TRY(check_state(p, a.dfinal_state, "dfinal_state", c.batch, Access::Read, &c.dfinal_state,
                         &c.has_dfinal_state));
    SLAY_TRY(check_state(p, a.dinitial_state, "dinitial_state", c.batch, Access::Write, &c.dinitial_state,
                         &c.has_dinitial_state));
    if (a.row_stats) {  // the forward's statistics (ABI 5)
        SLAY_TRY(check_row_stats_tensor(p, a.row_stats, c, Access::Read, &c.row_stats));
        c.has_row_stats = true;
    }
    *call = c;
    return Status();
}

namespace {
// The workspace against a need, with the query that tells it.
Status check_workspace_need(size_t need, const void* workspace, size_t workspace_size, const char* query) {
    if (workspace_size < need)
        return error(SLAY_STATUS_WORKSPACE_TOO_SMALL, "workspace_size=", workspace_size, " but this call needs ",
                     need, " bytes (", query, ")");
    if (need > 0 && !workspace)
        return error(SLAY_STATUS_INVALID_ARGUMENT, "workspace is NULL but this call needs ", need, " bytes");
    if (need > 0 && reinterpret_cast<uintptr_t>(workspace) % 16 != 0)
        return error(SLAY_STATUS_INVALID_ARGUMENT, "workspace is not aligned to 16 bytes");
    return Status();
}
}  // namespace

Status check_workspace(const Plan& p, slay_pass_t pass, int64_t batch, int64_t seq_len, const void* workspace,
                       size_t workspace_size, size_t* needed) {
    *needed = 0;
    SLAY_TRY(p.backend->workspace_size(p, pass, batch, seq_len, needed));
    return check_workspace_need(*needed, workspace, workspace_size, "slay_attn_plan_get_workspace_size");
}

template <typename Call>
Status check_call_workspace(const Plan& p, const Call& call, const void* workspace, size_t workspace_size,
                            size_t* needed) {
    *needed = 0;
    SLAY_TRY(p.backend->call_workspace_size(p, call, needed));
    return check_workspace_need(*needed, workspace, workspace_size,
                                std::is_same<Call, FwdCall>::value ? "slay_attn_fwd_workspace_size"
                                                                   : "slay_attn_bwd_workspace_size");
}
template Status check_call_workspace(const Plan&, const FwdCall&, const void*, size_t, size_t*);
template Status check_call_workspace(const Plan&, const BwdCall&, const void*, size_t, size_t*);

}  // namespace slay
