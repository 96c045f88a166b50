// attn_call.cpp -- the baseline-call builder (see attn_call.hpp).
#include "attn_call.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string>

namespace slay_test {

const char* pass_name(Pass p) {
    switch (p) {
        case Pass::Forward: return "slay_attn_fwd";
        case Pass::Backward: return "slay_attn_bwd";
        default: return "slay_attn_features_sample";
    }
}

namespace {

// A contiguous fp32 tensor over a fresh buffer.
slay_tensor_t make_fp32(Buffer& storage, std::initializer_list<int64_t> shape) {
    int64_t n = 1;
    for (int64_t e : shape) n *= e;
    storage = Buffer(static_cast<size_t>(n) * sizeof(float));
    return contiguous_tensor(storage.data(), SLAY_DTYPE_FLOAT32, shape);
}

void set_if_applicable(slay_attn_desc_t d, slay_attr_t attr, int64_t value) {
    const slay_status_t s = slay_attn_desc_set_i64(d, attr, value);
    REQUIRE((s == SLAY_STATUS_SUCCESS || s == SLAY_STATUS_ATTRIBUTE_NOT_APPLICABLE));
}

}  // namespace

AttnCall::AttnCall(const CallShape& s) : shape_(s), handle_(make_cpu_handle()) {
    Desc desc = make_desc(s.variant, {{SLAY_ATTR_NUM_HEADS, s.heads},
                                      {SLAY_ATTR_HEAD_DIM, s.head_dim},
                                      {SLAY_ATTR_VALUE_DIM, s.value_dim}});
    set_if_applicable(desc, SLAY_ATTR_NUM_QUAD_NODES, s.quad_nodes);
    set_if_applicable(desc, SLAY_ATTR_NUM_FEATURES, s.features);
    set_if_applicable(desc, SLAY_ATTR_POLY_DIM, s.poly_dim);
    set_if_applicable(desc, SLAY_ATTR_COSFORMER_LENGTH, s.cosformer_length);
    plan_ = make_plan(handle_, desc);
    plan = plan_;
    REQUIRE(slay_attn_plan_get_param_count(plan, &param_count) == SLAY_STATUS_SUCCESS);
    REQUIRE(slay_attn_plan_get_feature_dim(plan, &feature_dim) == SLAY_STATUS_SUCCESS);

    const int64_t B = s.batch, H = s.heads, T = s.seq_len, D = s.head_dim, Dv = s.value_dim, F = feature_dim;
    TestRng rng(7);
    struct Owner {
        slay_tensor_t* tensor;
        Buffer* storage;
        int64_t rows, cols;
        float lo, hi;  // initial contents: uniform in [lo, hi)
    };
    const Owner owners[] = {
        {&q, &q_, T, D, -1, 1},          {&k, &k_, T, D, -1, 1},        {&v, &v_, T, Dv, -1, 1},
        {&out, &out_, T, Dv, -1, 1},     {&dout, &dout_, T, Dv, -1, 1}, {&dq, &dq_, T, D, -1, 1},
        {&dk, &dk_, T, D, -1, 1},        {&dv, &dv_, T, Dv, -1, 1},
        {&initial_state, &initial_state_, F, Dv + 1, 0, 1},   {&final_state, &final_state_, F, Dv + 1, 0, 1},
        {&dfinal_state, &dfinal_state_, F, Dv + 1, -1, 1},    {&dinitial_state, &dinitial_state_, F, Dv + 1, 0, 1},
    };
    for (const Owner& o : owners) {
        *o.tensor = make_fp32(*o.storage, {B, H, o.rows, o.cols});
        rng.fill(o.storage->as<float>(), static_cast<size_t>(numel(*o.tensor)), o.lo, o.hi);
    }
    params = make_fp32(params_, {param_count});
    row_stats = make_fp32(row_stats_, {B, H, T});
    rng.fill(row_stats_.as<float>(), static_cast<size_t>(numel(row_stats)), -1, 1);

    size_t largest = 0;
    for (Pass p : {Pass::Forward, Pass::Backward, Pass::Sample})
        largest = std::max(largest, workspace_needed(p));
    workspace_ = Buffer(largest + 64);  // room for the misaligned-workspace cases
    workspace = workspace_.data();

    fwd_args().struct_size = sizeof(slay_attn_fwd_args_t);
    fwd_args().q = &q;
    fwd_args().k = &k;
    fwd_args().v = &v;
    fwd_args().out = &out;
    bwd_args().struct_size = sizeof(slay_attn_bwd_args_t);
    bwd_args().q = &q;
    bwd_args().k = &k;
    bwd_args().v = &v;
    bwd_args().out = &out;
    bwd_args().dout = &dout;
    bwd_args().dq = &dq;
    bwd_args().dk = &dk;
    bwd_args().dv = &dv;
    if (param_count > 0) {
        both_args([&](auto& a) { a.params = &params; });
        sample_params = &params;
        const slay_status_t sampled = run(Pass::Sample);
        const std::string message = slay_last_error_message();
        INFO("sampling the baseline parameters: ", message);
        REQUIRE(status_text(sampled) == "SLAY_STATUS_SUCCESS");
    }
}

void AttnCall::grow_args(size_t extra, bool nonzero_tail) {
    REQUIRE(extra <= sizeof(fwd_block_.tail));
    REQUIRE(offsetof(FwdBlock, tail) == sizeof(slay_attn_fwd_args_t));
    REQUIRE(offsetof(BwdBlock, tail) == sizeof(slay_attn_bwd_args_t));
    fwd_args().struct_size = sizeof(slay_attn_fwd_args_t) + extra;
    bwd_args().struct_size = sizeof(slay_attn_bwd_args_t) + extra;
    fwd_block_.tail[extra - 1] = nonzero_tail ? 1 : 0;
    bwd_block_.tail[extra - 1] = nonzero_tail ? 1 : 0;
}

void AttnCall::attach_states() {
    fwd_args().initial_state = &initial_state;
    fwd_args().final_state = &final_state;
    bwd_args().initial_state = &initial_state;
    bwd_args().dfinal_state = &dfinal_state;
    bwd_args().dinitial_state = &dinitial_state;
}

void AttnCall::set_param(const char* segment, int64_t index, float value) {
    params_.as<float>()[find_param_segment(plan_, segment).offset + index] = value;
}

std::vector<float> AttnCall::logical_values(const slay_tensor_t& t) {
    std::vector<float> values;
    values.reserve(static_cast<size_t>(numel(t)));
    const float* base = static_cast<const float*>(t.data);
    for (int64_t i0 = 0; i0 < t.shape[0]; ++i0)
        for (int64_t i1 = 0; i1 < t.shape[1]; ++i1)
            for (int64_t i2 = 0; i2 < t.shape[2]; ++i2)
                for (int64_t i3 = 0; i3 < t.shape[3]; ++i3)
                    values.push_back(base[i0 * t.strides[0] + i1 * t.strides[1] + i2 * t.strides[2] +
                                          i3 * t.strides[3]]);
    return values;
}

void AttnCall::use_bthd_layout() {
    for (slay_tensor_t* t : {&q, &k, &v, &out, &dout, &dq, &dk, &dv}) {
        const std::vector<float> logical = logical_values(*t);
        const int64_t H = t->shape[1], T = t->shape[2], X = t->shape[3];
        t->strides[3] = 1;
        t->strides[1] = X;
        t->strides[2] = H * X;
        t->strides[0] = T * H * X;
        float* base = static_cast<float*>(t->data);
        size_t i = 0;
        for (int64_t i0 = 0; i0 < t->shape[0]; ++i0)
            for (int64_t i1 = 0; i1 < H; ++i1)
                for (int64_t i2 = 0; i2 < T; ++i2)
                    for (int64_t i3 = 0; i3 < X; ++i3)
                        base[i0 * t->strides[0] + i1 * t->strides[1] + i2 * t->strides[2] + i3] = logical[i++];
    }
}

size_t AttnCall::workspace_needed(Pass pass) const {
    const slay_pass_t p = pass == Pass::Forward ? SLAY_PASS_FORWARD
                          : pass == Pass::Backward ? SLAY_PASS_BACKWARD
                                                   : SLAY_PASS_SAMPLE;
    size_t bytes = 0;
    REQUIRE(slay_attn_plan_get_workspace_size(plan_, p, shape_.batch, shape_.seq_len, &bytes) == SLAY_STATUS_SUCCESS);
    return bytes;
}

slay_status_t AttnCall::run(Pass pass) {
    const size_t size = static_cast<size_t>(static_cast<long>(workspace_needed(pass)) + workspace_size_delta);
    switch (pass) {
        case Pass::Forward:
            return slay_attn_fwd(plan, pass_null_args ? nullptr : &fwd_args(), workspace, size, stream);
        case Pass::Backward:
            return slay_attn_bwd(plan, pass_null_args ? nullptr : &bwd_args(), workspace, size, stream);
        default:
            return slay_attn_features_sample(plan, seed, offset, sample_params, workspace, size, stream);
    }
}

std::vector<Buffer*> AttnCall::all_buffers() {
    return {&q_, &k_, &v_, &out_, &dout_, &dq_, &dk_, &dv_, &params_,
            &initial_state_, &final_state_, &dfinal_state_, &dinitial_state_, &row_stats_};
}

std::vector<slay_tensor_t*> AttnCall::outputs(Pass pass) {
    switch (pass) {
        case Pass::Forward: return {&out, &final_state, &row_stats};
        case Pass::Backward: return {&dq, &dk, &dv, &dinitial_state};
        default: return {&params};
    }
}

void AttnCall::poison_outputs(Pass pass) {
    Buffer* owners[] = {&out_, &final_state_, &row_stats_, &dq_, &dk_, &dv_, &dinitial_state_, &params_};
    slay_tensor_t* tensors[] = {&out, &final_state, &row_stats, &dq, &dk, &dv, &dinitial_state, &params};
    for (slay_tensor_t* t : outputs(pass))
        for (size_t i = 0; i < std::size(tensors); ++i)
            if (tensors[i] == t) owners[i]->fill_bytes(kPoisonByte);
}

std::vector<std::vector<unsigned char>> AttnCall::snapshot() {
    std::vector<std::vector<unsigned char>> bytes;
    for (Buffer* b : all_buffers()) bytes.push_back(b->bytes());
    return bytes;
}

bool AttnCall::outputs_fully_written(Pass pass) {
    float poison;
    std::memset(&poison, kPoisonByte, sizeof(poison));
    // The outputs the argument blocks actually point at.
    std::vector<const slay_tensor_t*> written;
    if (pass == Pass::Forward) written = {fwd_args().out, fwd_args().final_state, fwd_args().row_stats};
    if (pass == Pass::Backward) written = {bwd_args().dq, bwd_args().dk, bwd_args().dv, bwd_args().dinitial_state};
    if (pass == Pass::Sample) written = {sample_params};
    for (const slay_tensor_t* t : written) {
        if (!t || numel(*t) == 0) continue;
        const float* data = static_cast<const float*>(t->data);
        const std::vector<float> values =
            t->rank == 4 ? logical_values(*t) : std::vector<float>(data, data + numel(*t));
        for (float x : values)
            if (!std::isfinite(x) || std::memcmp(&x, &poison, sizeof(x)) == 0) return false;
    }
    return true;
}

}  // namespace slay_test
