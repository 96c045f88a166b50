// test_bad_inputs.cpp -- the bad-input catalogue of slay_attn_fwd,
// slay_attn_bwd and slay_attn_features_sample on the CPU backend. Each case
// starts from a valid baseline call (AttnCall), breaks it in one place, and
// checks the status, that the call set its own non-empty message, and that
// every caller buffer is byte-for-byte unchanged (outputs poisoned first).
// Cases expecting SUCCESS check instead that every output was written.
// Also: the (B, T, H, D) layout given through strides gives the same result
// as the contiguous (B, H, T, D) layout.
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <type_traits>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "attn_call.hpp"
#include "raw_enum_calls.h"

using namespace slay_test;

namespace {

struct Case {
    const char* what;
    slay_status_t expected;
    std::function<void(AttnCall&)> mutate;
};

void run_case(const CallShape& shape, Pass pass, const Case& c) {
    const std::string where = text(pass_name(pass)) + " on " + text(slay_attn_variant_name(shape.variant)) + ": " + c.what;
    INFO(where);
    AttnCall call(shape);
    c.mutate(call);
    call.poison_outputs(pass);
    const auto before = call.snapshot();
    check_status(c.expected, [&] { return call.run(pass); });
    if (c.expected == SLAY_STATUS_SUCCESS)
        CHECK_MESSAGE(call.outputs_fully_written(pass), "an output element was not written (or is not finite)");
    else
        CHECK_MESSAGE(call.snapshot() == before, "a rejected call changed a caller buffer");
}

void run_cases(const CallShape& shape, std::initializer_list<Pass> passes, const std::vector<Case>& cases) {
    for (Pass pass : passes)
        for (const Case& c : cases) run_case(shape, pass, c);
}

void* shifted(void* p, long bytes) { return static_cast<char*>(p) + bytes; }

// B sequences of length 0: every tensor of extent B over the batch and 0
// over T, so none holds an element (data NULL when null_data).
void empty_sequences(AttnCall& c, int64_t batch, bool null_data) {
    for (slay_tensor_t* t : {&c.q, &c.k, &c.v, &c.out, &c.dout, &c.dq, &c.dk, &c.dv}) {
        t->shape[0] = batch;
        t->shape[2] = 0;
        t->strides[0] = t->strides[1] = 0;  // as in the report: (2^40, 1, 0, 4), strides (0, 0, 4, 1)
        if (null_data) t->data = nullptr;
    }
}

float* element(const slay_tensor_t& t, int64_t i) { return static_cast<float*>(t.data) + i; }

// Cases of the fields fwd and bwd share, valid for any variant with params.
std::vector<Case> shared_argument_cases() {
    return {
        {"valid baseline", SLAY_STATUS_SUCCESS, [](AttnCall&) {}},
        {"valid baseline with states", SLAY_STATUS_SUCCESS, [](AttnCall& c) { c.attach_states(); }},
        {"plan is NULL", SLAY_STATUS_INVALID_ARGUMENT, [](AttnCall& c) { c.plan = nullptr; }},
        {"args is NULL", SLAY_STATUS_INVALID_ARGUMENT, [](AttnCall& c) { c.pass_null_args = true; }},
        {"q is NULL", SLAY_STATUS_INVALID_ARGUMENT, [](AttnCall& c) { c.both_args([](auto& a) { a.q = nullptr; }); }},
        {"k is NULL", SLAY_STATUS_INVALID_ARGUMENT, [](AttnCall& c) { c.both_args([](auto& a) { a.k = nullptr; }); }},
        {"v is NULL", SLAY_STATUS_INVALID_ARGUMENT, [](AttnCall& c) { c.both_args([](auto& a) { a.v = nullptr; }); }},
        {"params is NULL", SLAY_STATUS_INVALID_ARGUMENT,
         [](AttnCall& c) { c.both_args([](auto& a) { a.params = nullptr; }); }},
        {"q.data is NULL", SLAY_STATUS_INVALID_ARGUMENT, [](AttnCall& c) { c.q.data = nullptr; }},
        {"k.data is NULL", SLAY_STATUS_INVALID_ARGUMENT, [](AttnCall& c) { c.k.data = nullptr; }},
        {"v.data is NULL", SLAY_STATUS_INVALID_ARGUMENT, [](AttnCall& c) { c.v.data = nullptr; }},
        {"params.data is NULL", SLAY_STATUS_INVALID_ARGUMENT, [](AttnCall& c) { c.params.data = nullptr; }},
        {"q.data misaligned for fp32", SLAY_STATUS_INVALID_ARGUMENT, [](AttnCall& c) { c.q.data = shifted(c.q.data, 2); }},
        {"struct_size is 0", SLAY_STATUS_STRUCT_SIZE, [](AttnCall& c) { c.both_args([](auto& a) { a.struct_size = 0; }); }},
        {"struct_size one field short of the ABI 2 layout", SLAY_STATUS_STRUCT_SIZE,
         [](AttnCall& c) { c.both_args([](auto& a) { a.struct_size = offsetof(std::decay_t<decltype(a)>, seq_offsets) - 8; }); }},
        {"struct_size of the ABI 2 layout (no seq_offsets)", SLAY_STATUS_SUCCESS,
         [](AttnCall& c) { c.both_args([](auto& a) { a.struct_size = offsetof(std::decay_t<decltype(a)>, seq_offsets); }); }},
        {"struct_size larger, nonzero unknown tail", SLAY_STATUS_NOT_SUPPORTED, [](AttnCall& c) { c.grow_args(16, true); }},
        {"struct_size larger, zero tail", SLAY_STATUS_SUCCESS, [](AttnCall& c) { c.grow_args(16, false); }},
        {"q rank 3", SLAY_STATUS_BAD_SHAPE, [](AttnCall& c) { c.q.rank = 3; }},
        {"k rank 5", SLAY_STATUS_BAD_SHAPE, [](AttnCall& c) { c.k.rank = 5; }},
        {"v rank 0", SLAY_STATUS_BAD_SHAPE, [](AttnCall& c) { c.v.rank = 0; }},
        {"k.T != q.T", SLAY_STATUS_BAD_SHAPE, [](AttnCall& c) { set_extent(c.k, 2, c.k.shape[2] - 1); }},
        {"v.T != q.T", SLAY_STATUS_BAD_SHAPE, [](AttnCall& c) { set_extent(c.v, 2, c.v.shape[2] - 1); }},
        {"q has the wrong number of heads", SLAY_STATUS_BAD_SHAPE, [](AttnCall& c) { set_extent(c.q, 1, c.q.shape[1] + 1); }},
        {"k has the wrong number of heads", SLAY_STATUS_BAD_SHAPE, [](AttnCall& c) { set_extent(c.k, 1, c.k.shape[1] - 1); }},
        {"q has the wrong head dim", SLAY_STATUS_BAD_SHAPE, [](AttnCall& c) { set_extent(c.q, 3, c.q.shape[3] + 1); }},
        {"k has the wrong head dim", SLAY_STATUS_BAD_SHAPE, [](AttnCall& c) { set_extent(c.k, 3, c.k.shape[3] - 1); }},
        {"v has D columns instead of Dv", SLAY_STATUS_BAD_SHAPE, [](AttnCall& c) { set_extent(c.v, 3, c.q.shape[3]); }},
        {"k has a different batch", SLAY_STATUS_BAD_SHAPE, [](AttnCall& c) { set_extent(c.k, 0, c.k.shape[0] - 1); }},
        {"v has a different batch", SLAY_STATUS_BAD_SHAPE, [](AttnCall& c) { set_extent(c.v, 0, c.v.shape[0] + 1); }},
        {"q has a negative extent", SLAY_STATUS_BAD_SHAPE, [](AttnCall& c) { c.q.shape[2] = -1; }},
        {"q offsets beyond 64 bits (huge batch stride)", SLAY_STATUS_BAD_SHAPE,
         [](AttnCall& c) { c.q.strides[0] = int64_t{1} << 62; }},
        {"q innermost stride 2", SLAY_STATUS_BAD_STRIDE, [](AttnCall& c) { c.q.strides[3] = 2; }},
        {"k innermost stride 0", SLAY_STATUS_BAD_STRIDE, [](AttnCall& c) { c.k.strides[3] = 0; }},
        {"k negative head stride", SLAY_STATUS_BAD_STRIDE, [](AttnCall& c) { c.k.strides[1] = -c.k.strides[1]; }},
        {"v negative innermost stride", SLAY_STATUS_BAD_STRIDE, [](AttnCall& c) { c.v.strides[3] = -1; }},
        {"q is bf16 while the plan is fp32", SLAY_STATUS_BAD_DTYPE, [](AttnCall& c) { c.q.dtype = SLAY_DTYPE_BFLOAT16; }},
        {"k is fp16", SLAY_STATUS_BAD_DTYPE, [](AttnCall& c) { c.k.dtype = SLAY_DTYPE_FLOAT16; }},
        {"v has no valid dtype", SLAY_STATUS_BAD_DTYPE, [](AttnCall& c) { raw_set_dtype(&c.v, 7); }},
        {"q.dtype is -1", SLAY_STATUS_BAD_DTYPE, [](AttnCall& c) { raw_set_dtype(&c.q, -1); }},
        {"params are bf16", SLAY_STATUS_BAD_DTYPE, [](AttnCall& c) { c.params.dtype = SLAY_DTYPE_BFLOAT16; }},
        {"params one element short", SLAY_STATUS_BAD_SHAPE, [](AttnCall& c) { set_extent(c.params, 0, c.params.shape[0] - 1); }},
        {"params one element long", SLAY_STATUS_BAD_SHAPE, [](AttnCall& c) { set_extent(c.params, 0, c.params.shape[0] + 1); }},
        {"params rank 2", SLAY_STATUS_BAD_SHAPE, [](AttnCall& c) { c.params.rank = 2; c.params.shape[1] = 1; }},
        {"params stride 2", SLAY_STATUS_BAD_STRIDE, [](AttnCall& c) { c.params.strides[0] = 2; }},
        {"position_offset nonzero for a non-cosformer variant", SLAY_STATUS_INVALID_VALUE,
         [](AttnCall& c) { c.both_args([](auto& a) { a.position_offset = 3; }); }},
        {"position_offset negative", SLAY_STATUS_INVALID_VALUE,
         [](AttnCall& c) { c.both_args([](auto& a) { a.position_offset = -1; }); }},
        {"initial_state has F+1 rows", SLAY_STATUS_BAD_SHAPE,
         [](AttnCall& c) { c.attach_states(); set_extent(c.initial_state, 2, c.initial_state.shape[2] + 1); }},
        {"initial_state has Dv columns instead of Dv+1", SLAY_STATUS_BAD_SHAPE,
         [](AttnCall& c) { c.attach_states(); set_extent(c.initial_state, 3, c.initial_state.shape[3] - 1); }},
        {"initial_state has a different batch", SLAY_STATUS_BAD_SHAPE,
         [](AttnCall& c) { c.attach_states(); set_extent(c.initial_state, 0, c.initial_state.shape[0] - 1); }},
        {"initial_state is bf16", SLAY_STATUS_BAD_DTYPE,
         [](AttnCall& c) { c.attach_states(); c.initial_state.dtype = SLAY_DTYPE_BFLOAT16; }},
        {"initial_state rank 3", SLAY_STATUS_BAD_SHAPE, [](AttnCall& c) { c.attach_states(); c.initial_state.rank = 3; }},
        {"workspace one byte too small", SLAY_STATUS_WORKSPACE_TOO_SMALL, [](AttnCall& c) { c.workspace_size_delta = -1; }},
        {"workspace NULL while bytes are needed", SLAY_STATUS_INVALID_ARGUMENT, [](AttnCall& c) { c.workspace = nullptr; }},
        {"workspace not 16-byte aligned", SLAY_STATUS_INVALID_ARGUMENT,
         [](AttnCall& c) { c.workspace = shifted(c.workspace, 8); }},
        {"a stream given to the CPU backend", SLAY_STATUS_BACKEND_MISMATCH, [](AttnCall& c) { c.stream = &c; }},
        // Issue 14, 3: a garbage struct_size must not make the library read
        // past the caller's block.
        {"struct_size garbage (sizeof + 4096)", SLAY_STATUS_STRUCT_SIZE,
         [](AttnCall& c) { c.both_args([](auto& a) { a.struct_size = sizeof(a) + 4096; }); }},
        {"struct_size SIZE_MAX", SLAY_STATUS_STRUCT_SIZE,
         [](AttnCall& c) { c.both_args([](auto& a) { a.struct_size = SIZE_MAX; }); }},
        // Issue 14, 1 and 7: B*H beyond the limit, with T = 0 so that no
        // tensor holds an element and nothing else bounds B.
        {"B*H = 2^41 with T = 0 and NULL data", SLAY_STATUS_INVALID_VALUE,
         [](AttnCall& c) { empty_sequences(c, int64_t{1} << 40, true); }},
        {"B*H = 2^31 with T = 0", SLAY_STATUS_INVALID_VALUE,
         [](AttnCall& c) { empty_sequences(c, int64_t{1} << 30, false); }},
        {"B*H overflows int64 with T = 0", SLAY_STATUS_BAD_SHAPE,  // the element count overflows first
         [](AttnCall& c) { empty_sequences(c, INT64_MAX, true); }},
        // Issue 14, 2: overlaps between tensors of the call.
        {"workspace overlaps q", SLAY_STATUS_BAD_STRIDE, [](AttnCall& c) { c.workspace = c.q.data; }},
        {"q and k are one tensor (inputs may overlap)", SLAY_STATUS_SUCCESS, [](AttnCall& c) { c.k = c.q; }},
    };
}

std::vector<Case> forward_only_cases() {
    return {
        {"out is NULL", SLAY_STATUS_INVALID_ARGUMENT, [](AttnCall& c) { c.fwd_args().out = nullptr; }},
        {"out.data is NULL", SLAY_STATUS_INVALID_ARGUMENT, [](AttnCall& c) { c.out.data = nullptr; }},
        {"out has D columns instead of Dv", SLAY_STATUS_BAD_SHAPE, [](AttnCall& c) { set_extent(c.out, 3, c.q.shape[3]); }},
        {"out.T != q.T", SLAY_STATUS_BAD_SHAPE, [](AttnCall& c) { set_extent(c.out, 2, c.out.shape[2] + 1); }},
        {"out has a different batch", SLAY_STATUS_BAD_SHAPE, [](AttnCall& c) { set_extent(c.out, 0, c.out.shape[0] - 1); }},
        {"out is fp16", SLAY_STATUS_BAD_DTYPE, [](AttnCall& c) { c.out.dtype = SLAY_DTYPE_FLOAT16; }},
        {"out stride 0 over T (overlapping output)", SLAY_STATUS_BAD_STRIDE, [](AttnCall& c) { c.out.strides[2] = 0; }},
        {"out rows overlap (T stride < Dv)", SLAY_STATUS_BAD_STRIDE, [](AttnCall& c) { c.out.strides[2] = 3; }},
        {"out heads overlap batches", SLAY_STATUS_BAD_STRIDE, [](AttnCall& c) { c.out.strides[0] = c.out.strides[1]; }},
        {"final_state has F-1 rows", SLAY_STATUS_BAD_SHAPE, [](AttnCall& c) { c.attach_states(); set_extent(c.final_state, 2, c.final_state.shape[2] - 1); }},
        {"final_state stride 0 over F", SLAY_STATUS_BAD_STRIDE,
         [](AttnCall& c) { c.attach_states(); c.final_state.strides[2] = 0; }},
        {"final_state is fp16", SLAY_STATUS_BAD_DTYPE,
         [](AttnCall& c) { c.attach_states(); c.final_state.dtype = SLAY_DTYPE_FLOAT16; }},
        {"final_state.data is NULL", SLAY_STATUS_INVALID_ARGUMENT,
         [](AttnCall& c) { c.attach_states(); c.final_state.data = nullptr; }},
        {"final_state aliases initial_state", SLAY_STATUS_SUCCESS,
         [](AttnCall& c) { c.attach_states(); c.fwd_args().final_state = &c.initial_state; }},
        {"final_state without initial_state", SLAY_STATUS_SUCCESS,
         [](AttnCall& c) { c.fwd_args().final_state = &c.final_state; }},
        // Issue 14, 2: an output overlapping another tensor of the call.
        {"out overlaps k", SLAY_STATUS_BAD_STRIDE, [](AttnCall& c) { c.out.data = c.k.data; }},
        {"out overlaps v by one element", SLAY_STATUS_BAD_STRIDE, [](AttnCall& c) { c.out.data = element(c.v, 1); }},
        {"final_state partially overlaps initial_state", SLAY_STATUS_BAD_STRIDE,
         [](AttnCall& c) { c.attach_states(); c.final_state.data = element(c.initial_state, 1); }},
        {"final_state aliases initial_state with other strides", SLAY_STATUS_BAD_STRIDE, [](AttnCall& c) {
             c.attach_states();
             c.final_state.data = c.initial_state.data;
             std::swap(c.final_state.strides[0], c.final_state.strides[1]);  // B = H = 2: same bytes, other order
         }},
        {"final_state overlaps out", SLAY_STATUS_BAD_STRIDE,
         [](AttnCall& c) { c.attach_states(); c.final_state.data = c.out.data; }},
        {"out overlaps the workspace", SLAY_STATUS_BAD_STRIDE, [](AttnCall& c) { c.out.data = c.workspace; }},
    };
}

std::vector<Case> backward_only_cases() {
    return {
        {"out is NULL", SLAY_STATUS_INVALID_ARGUMENT, [](AttnCall& c) { c.bwd_args().out = nullptr; }},
        {"dout is NULL", SLAY_STATUS_INVALID_ARGUMENT, [](AttnCall& c) { c.bwd_args().dout = nullptr; }},
        {"dq is NULL", SLAY_STATUS_INVALID_ARGUMENT, [](AttnCall& c) { c.bwd_args().dq = nullptr; }},
        {"dk is NULL", SLAY_STATUS_INVALID_ARGUMENT, [](AttnCall& c) { c.bwd_args().dk = nullptr; }},
        {"dv is NULL", SLAY_STATUS_INVALID_ARGUMENT, [](AttnCall& c) { c.bwd_args().dv = nullptr; }},
        {"dout.data is NULL", SLAY_STATUS_INVALID_ARGUMENT, [](AttnCall& c) { c.dout.data = nullptr; }},
        {"dq.data is NULL", SLAY_STATUS_INVALID_ARGUMENT, [](AttnCall& c) { c.dq.data = nullptr; }},
        {"out has the wrong Dv", SLAY_STATUS_BAD_SHAPE, [](AttnCall& c) { set_extent(c.out, 3, c.out.shape[3] + 1); }},
        {"dout.T != q.T", SLAY_STATUS_BAD_SHAPE, [](AttnCall& c) { set_extent(c.dout, 2, c.dout.shape[2] - 1); }},
        {"dq has the wrong head dim", SLAY_STATUS_BAD_SHAPE, [](AttnCall& c) { set_extent(c.dq, 3, c.dq.shape[3] - 1); }},
        {"dk has a different batch", SLAY_STATUS_BAD_SHAPE, [](AttnCall& c) { set_extent(c.dk, 0, c.dk.shape[0] + 1); }},
        {"dv has D columns instead of Dv", SLAY_STATUS_BAD_SHAPE, [](AttnCall& c) { set_extent(c.dv, 3, c.q.shape[3]); }},
        {"dout is bf16", SLAY_STATUS_BAD_DTYPE, [](AttnCall& c) { c.dout.dtype = SLAY_DTYPE_BFLOAT16; }},
        {"dv is fp16", SLAY_STATUS_BAD_DTYPE, [](AttnCall& c) { c.dv.dtype = SLAY_DTYPE_FLOAT16; }},
        {"dq stride 0 over the batch", SLAY_STATUS_BAD_STRIDE, [](AttnCall& c) { c.dq.strides[0] = 0; }},
        {"dk rows overlap", SLAY_STATUS_BAD_STRIDE, [](AttnCall& c) { c.dk.strides[2] = 1; c.dk.strides[3] = 1; }},
        {"dv innermost stride 2", SLAY_STATUS_BAD_STRIDE, [](AttnCall& c) { c.dv.strides[3] = 2; }},
        {"dinitial_state has F+1 rows", SLAY_STATUS_BAD_SHAPE,
         [](AttnCall& c) { c.attach_states(); set_extent(c.dinitial_state, 2, c.dinitial_state.shape[2] + 1); }},
        {"dinitial_state stride 0 over heads", SLAY_STATUS_BAD_STRIDE,
         [](AttnCall& c) { c.attach_states(); c.dinitial_state.strides[1] = 0; }},
        {"dfinal_state is bf16", SLAY_STATUS_BAD_DTYPE,
         [](AttnCall& c) { c.attach_states(); c.dfinal_state.dtype = SLAY_DTYPE_BFLOAT16; }},
        {"dfinal_state has Dv columns", SLAY_STATUS_BAD_SHAPE,
         [](AttnCall& c) { c.attach_states(); set_extent(c.dfinal_state, 3, c.dfinal_state.shape[3] - 1); }},
        // Issue 14, 2: gradients overlapping each other or an input.
        {"dq.data == dk.data", SLAY_STATUS_BAD_STRIDE, [](AttnCall& c) { c.dk.data = c.dq.data; }},
        {"dv overlaps dout", SLAY_STATUS_BAD_STRIDE, [](AttnCall& c) { c.dv.data = element(c.dout, 2); }},
        {"dk overlaps q", SLAY_STATUS_BAD_STRIDE, [](AttnCall& c) { c.dk.data = c.q.data; }},
        {"dinitial_state overlaps dfinal_state", SLAY_STATUS_BAD_STRIDE,
         [](AttnCall& c) { c.attach_states(); c.dinitial_state.data = c.dfinal_state.data; }},
    };
}

std::vector<Case> sample_cases() {
    return {
        {"valid baseline", SLAY_STATUS_SUCCESS, [](AttnCall&) {}},
        {"plan is NULL", SLAY_STATUS_INVALID_ARGUMENT, [](AttnCall& c) { c.plan = nullptr; }},
        {"params is NULL", SLAY_STATUS_INVALID_ARGUMENT, [](AttnCall& c) { c.sample_params = nullptr; }},
        {"params.data is NULL", SLAY_STATUS_INVALID_ARGUMENT, [](AttnCall& c) { c.params.data = nullptr; }},
        {"params.data misaligned", SLAY_STATUS_INVALID_ARGUMENT, [](AttnCall& c) { c.params.data = shifted(c.params.data, 1); }},
        {"params are bf16", SLAY_STATUS_BAD_DTYPE, [](AttnCall& c) { c.params.dtype = SLAY_DTYPE_BFLOAT16; }},
        {"params one element short", SLAY_STATUS_BAD_SHAPE, [](AttnCall& c) { set_extent(c.params, 0, c.params.shape[0] - 1); }},
        {"params rank 2", SLAY_STATUS_BAD_SHAPE, [](AttnCall& c) { c.params.rank = 2; c.params.shape[1] = 1; }},
        {"params stride 2", SLAY_STATUS_BAD_STRIDE, [](AttnCall& c) { c.params.strides[0] = 2; }},
        {"params stride 0 (overlapping output)", SLAY_STATUS_BAD_STRIDE, [](AttnCall& c) { c.params.strides[0] = 0; }},
        {"a stream given to the CPU backend", SLAY_STATUS_BACKEND_MISMATCH, [](AttnCall& c) { c.stream = &c; }},
        {"workspace one byte too small", SLAY_STATUS_WORKSPACE_TOO_SMALL, [](AttnCall& c) { c.workspace_size_delta = -1; }},
        {"workspace NULL while bytes are needed", SLAY_STATUS_INVALID_ARGUMENT, [](AttnCall& c) { c.workspace = nullptr; }},
        {"workspace not 16-byte aligned", SLAY_STATUS_INVALID_ARGUMENT,
         [](AttnCall& c) { c.workspace = shifted(c.workspace, 4); }},
    };
}

// Points a variant without parameters at a non-empty parameter vector (q's
// memory: any write to it would show in the snapshot).
void give_unwanted_params(AttnCall& c) {
    c.params = contiguous_tensor(c.q.data, SLAY_DTYPE_FLOAT32, {4});
    c.both_args([&](auto& a) { a.params = &c.params; });
    c.sample_params = &c.params;
}

CallShape variant_shape(slay_attn_variant_t variant, int64_t cosformer_length = 0) {
    CallShape s;
    s.variant = variant;
    s.cosformer_length = cosformer_length;
    return s;
}

}  // namespace

TEST_SUITE("bad_inputs") {

TEST_CASE("fwd and bwd reject each broken shared argument and write nothing") {
    run_cases(CallShape{}, {Pass::Forward, Pass::Backward}, shared_argument_cases());
}

TEST_CASE("fwd rejects broken outputs and final states and writes nothing") {
    run_cases(CallShape{}, {Pass::Forward}, forward_only_cases());
}

TEST_CASE("bwd rejects broken gradients and state gradients and writes nothing") {
    run_cases(CallShape{}, {Pass::Backward}, backward_only_cases());
}

TEST_CASE("features_sample rejects broken parameter tensors, workspaces and streams and writes nothing") {
    run_cases(CallShape{}, {Pass::Sample}, sample_cases());
}

TEST_CASE("parameters given to a variant without parameters are BAD_SHAPE; NULL or empty ones are fine") {
    const CallShape linear = variant_shape(SLAY_ATTN_LINEAR);
    run_cases(linear, {Pass::Forward, Pass::Backward, Pass::Sample},
              {{"non-empty params for linear", SLAY_STATUS_BAD_SHAPE, give_unwanted_params},
               {"NULL params for linear", SLAY_STATUS_SUCCESS, [](AttnCall&) {}}});
    run_cases(linear, {Pass::Forward, Pass::Backward},
              {{"empty params for linear", SLAY_STATUS_SUCCESS, [](AttnCall& c) {
                    c.params = contiguous_tensor(nullptr, SLAY_DTYPE_FLOAT32, {0});
                    c.both_args([&](auto& a) { a.params = &c.params; });
                }},
               // Issue 14, 5: an empty vector is still checked as a tensor.
               {"empty bf16 params for linear", SLAY_STATUS_BAD_DTYPE, [](AttnCall& c) {
                    c.params = contiguous_tensor(nullptr, SLAY_DTYPE_BFLOAT16, {0});
                    c.both_args([&](auto& a) { a.params = &c.params; });
                }},
               {"empty params with a negative stride for linear", SLAY_STATUS_BAD_STRIDE, [](AttnCall& c) {
                    c.params = contiguous_tensor(nullptr, SLAY_DTYPE_FLOAT32, {0});
                    c.params.strides[0] = -1;
                    c.both_args([&](auto& a) { a.params = &c.params; });
                }},
               {"empty params with dtype -1 for linear", SLAY_STATUS_BAD_DTYPE, [](AttnCall& c) {
                    c.params = contiguous_tensor(nullptr, SLAY_DTYPE_FLOAT32, {0});
                    raw_set_dtype(&c.params, -1);
                    c.both_args([&](auto& a) { a.params = &c.params; });
                }}});
}

TEST_CASE("states given to an exact variant are NOT_SUPPORTED") {
    for (slay_attn_variant_t exact : {SLAY_ATTN_STANDARD, SLAY_ATTN_YAT, SLAY_ATTN_YAT_SPHERICAL}) {
        run_cases(variant_shape(exact), {Pass::Forward, Pass::Backward},
                  {{"valid exact call", SLAY_STATUS_SUCCESS, [](AttnCall&) {}},
                   {"initial_state given", SLAY_STATUS_NOT_SUPPORTED,
                    [](AttnCall& c) { c.both_args([&](auto& a) { a.initial_state = &c.initial_state; }); }}});
        run_cases(variant_shape(exact), {Pass::Forward},
                  {{"final_state given", SLAY_STATUS_NOT_SUPPORTED,
                    [](AttnCall& c) { c.fwd_args().final_state = &c.final_state; }}});
        run_cases(variant_shape(exact), {Pass::Backward},
                  {{"dinitial_state given", SLAY_STATUS_NOT_SUPPORTED,
                    [](AttnCall& c) { c.bwd_args().dinitial_state = &c.dinitial_state; }},
                   {"dfinal_state given", SLAY_STATUS_NOT_SUPPORTED,
                    [](AttnCall& c) { c.bwd_args().dfinal_state = &c.dfinal_state; }}});
    }
}

// The malformed row_stats tensors both passes reject the same way
// (with_stats attaches c.row_stats to the pass's argument block).
std::vector<Case> malformed_row_stats_cases(const std::function<void(AttnCall&)>& with_stats) {
    return {{"row_stats one token short", SLAY_STATUS_BAD_SHAPE,
             [=](AttnCall& c) {
                 with_stats(c);
                 c.row_stats.shape[2] -= 1;
             }},
            {"row_stats of rank 4", SLAY_STATUS_BAD_SHAPE,
             [=](AttnCall& c) {
                 with_stats(c);
                 c.row_stats.rank = 4;
                 c.row_stats.shape[3] = 1;
                 c.row_stats.strides[3] = 1;
             }},
            {"row_stats in bf16", SLAY_STATUS_BAD_DTYPE, [=](AttnCall& c) {
                 with_stats(c);
                 c.row_stats.dtype = SLAY_DTYPE_BFLOAT16;
             }}};
}

TEST_CASE("row statistics (ABI 4): exact variants only, (B, H, T) fp32, merge needs them") {
    auto with_stats = [](AttnCall& c) { c.fwd_args().row_stats = &c.row_stats; };
    for (slay_attn_variant_t exact : {SLAY_ATTN_STANDARD, SLAY_ATTN_YAT, SLAY_ATTN_YAT_SPHERICAL})
        run_cases(variant_shape(exact), {Pass::Forward},
                  {{"row_stats given", SLAY_STATUS_SUCCESS, with_stats},
                   {"a block of the ABI 3 size (no row_stats, merge)", SLAY_STATUS_SUCCESS,
                    [](AttnCall& c) { c.fwd_args().struct_size = offsetof(slay_attn_fwd_args_t, row_stats); }},
                   {"struct_size covering half of the row_stats pointer", SLAY_STATUS_STRUCT_SIZE,
                    [&](AttnCall& c) {
                        with_stats(c);
                        c.fwd_args().struct_size = offsetof(slay_attn_fwd_args_t, row_stats) + 4;
                    }},
                   {"merge = 1 without row_stats", SLAY_STATUS_INVALID_ARGUMENT,
                    [](AttnCall& c) { c.fwd_args().merge = 1; }},
                   {"merge = 2", SLAY_STATUS_INVALID_VALUE,
                    [&](AttnCall& c) {
                        with_stats(c);
                        c.fwd_args().merge = 2;
                    }},
                   {"row_stats overlapping out", SLAY_STATUS_BAD_STRIDE,
                    [&](AttnCall& c) {
                        with_stats(c);
                        c.row_stats.data = c.out.data;
                    }}});
    for (slay_attn_variant_t exact : {SLAY_ATTN_STANDARD, SLAY_ATTN_YAT, SLAY_ATTN_YAT_SPHERICAL})
        run_cases(variant_shape(exact), {Pass::Forward}, malformed_row_stats_cases(with_stats));
    run_cases(CallShape{}, {Pass::Forward},
              {{"row_stats given to a linearized variant", SLAY_STATUS_NOT_SUPPORTED, with_stats}});
}

TEST_CASE("row statistics given to the backward (ABI 5): exact variants only, (B, H, T) fp32, read") {
    auto with_stats = [](AttnCall& c) { c.bwd_args().row_stats = &c.row_stats; };
    for (slay_attn_variant_t exact : {SLAY_ATTN_STANDARD, SLAY_ATTN_YAT, SLAY_ATTN_YAT_SPHERICAL})
        run_cases(variant_shape(exact), {Pass::Backward},
                  {{"row_stats given", SLAY_STATUS_SUCCESS, with_stats},
                   {"a block of the ABI 4 size (no row_stats)", SLAY_STATUS_SUCCESS,
                    [](AttnCall& c) { c.bwd_args().struct_size = offsetof(slay_attn_bwd_args_t, row_stats); }},
                   {"a block of the ABI 2 size (no seq_offsets, row_stats)", SLAY_STATUS_SUCCESS,
                    [](AttnCall& c) { c.bwd_args().struct_size = offsetof(slay_attn_bwd_args_t, seq_offsets); }},
                   {"struct_size covering half of the row_stats pointer", SLAY_STATUS_STRUCT_SIZE,
                    [&](AttnCall& c) {
                        with_stats(c);
                        c.bwd_args().struct_size = offsetof(slay_attn_bwd_args_t, row_stats) + 4;
                    }},
                   {"row_stats for one head too many", SLAY_STATUS_BAD_SHAPE,  // (the forward: BAD_STRIDE, it writes)
                    [&](AttnCall& c) {
                        with_stats(c);
                        c.row_stats.shape[1] += 1;
                    }},
                   {"row_stats.data is NULL", SLAY_STATUS_INVALID_ARGUMENT,
                    [&](AttnCall& c) {
                        with_stats(c);
                        c.row_stats.data = nullptr;
                    }},
                   {"row_stats overlapping dq", SLAY_STATUS_BAD_STRIDE,
                    [&](AttnCall& c) {
                        with_stats(c);
                        c.row_stats.data = c.dq.data;
                    }}});
    for (slay_attn_variant_t exact : {SLAY_ATTN_STANDARD, SLAY_ATTN_YAT, SLAY_ATTN_YAT_SPHERICAL})
        run_cases(variant_shape(exact), {Pass::Backward}, malformed_row_stats_cases(with_stats));
    run_cases(CallShape{}, {Pass::Backward},
              {{"row_stats given to a linearized variant", SLAY_STATUS_NOT_SUPPORTED, with_stats}});
}

TEST_CASE("cosformer: states need cosformer_length > 0, positions must fit in it") {
    run_cases(variant_shape(SLAY_ATTN_COSFORMER, 0), {Pass::Forward, Pass::Backward},
              {{"valid call with length 0", SLAY_STATUS_SUCCESS, [](AttnCall&) {}},
               {"states with cosformer_length 0", SLAY_STATUS_NOT_SUPPORTED, [](AttnCall& c) { c.attach_states(); }},
               {"position_offset with cosformer_length 0", SLAY_STATUS_INVALID_VALUE,
                [](AttnCall& c) { c.both_args([](auto& a) { a.position_offset = 2; }); }}});
    run_cases(variant_shape(SLAY_ATTN_COSFORMER, 16), {Pass::Forward, Pass::Backward},
              {{"states and position_offset within cosformer_length", SLAY_STATUS_SUCCESS,
                [](AttnCall& c) {
                    c.attach_states();
                    c.both_args([](auto& a) { a.position_offset = 11; });  // 11 + T(5) = 16
                }},
               {"position_offset + T beyond cosformer_length", SLAY_STATUS_INVALID_VALUE,
                [](AttnCall& c) { c.both_args([](auto& a) { a.position_offset = 12; }); }},
               {"position_offset + T overflows int64", SLAY_STATUS_INVALID_VALUE,
                [](AttnCall& c) { c.both_args([](auto& a) { a.position_offset = INT64_MAX - 2; }); }},
               {"state with the wrong feature dim", SLAY_STATUS_BAD_SHAPE,
                [](AttnCall& c) { c.attach_states(); set_extent(c.initial_state, 2, c.initial_state.shape[2] / 2); }}});
}

TEST_CASE("parameter values are used as given: hashes map to buckets by trunc and clamp, NaN gives NaN") {
    // Issue 14, 6: one rule on both backends (slay.h at features_sample),
    // no value check. P = 4: hash 7.5 and 4 act as 3, -1 and NaN as 0.
    const CallShape sketch = variant_shape(SLAY_ATTN_SLAY_TENSORSKETCH);
    struct Same {
        const char* bad;
        float value;
        float equivalent;
    };
    for (const Same& same : {Same{"hash 7.5", 7.5f, 3.0f}, Same{"hash P", 4.0f, 3.0f}, Same{"hash -1", -1.0f, 0.0f},
                             Same{"hash NaN", NAN, 0.0f}, Same{"hash 2.5", 2.5f, 2.0f}}) {
        CAPTURE(same.bad);
        for (Pass pass : {Pass::Forward, Pass::Backward}) {
            AttnCall bad(sketch), good(sketch);
            bad.set_param("ts_hash1", 1, same.value);
            good.set_param("ts_hash1", 1, same.equivalent);
            REQUIRE(status_text(bad.run(pass)) == "SLAY_STATUS_SUCCESS");
            REQUIRE(status_text(good.run(pass)) == "SLAY_STATUS_SUCCESS");
            for (auto member : {&AttnCall::out, &AttnCall::dq, &AttnCall::dk, &AttnCall::dv})
                CHECK(AttnCall::logical_values(bad.*member) == AttnCall::logical_values(good.*member));
        }
    }
    AttnCall nan_omega(CallShape{});
    nan_omega.set_param("omega", 3, NAN);
    REQUIRE(status_text(nan_omega.run(Pass::Forward)) == "SLAY_STATUS_SUCCESS");
    bool any_nan = false;
    for (float x : AttnCall::logical_values(nan_omega.out)) any_nan = any_nan || std::isnan(x);
    CHECK(any_nan);
}

TEST_CASE("one call's workspace size (ABI 6): validated as the call, at most the plan's, and enough") {
    for (slay_attn_variant_t v : {SLAY_ATTN_SLAY_ANCHOR, SLAY_ATTN_LINEAR, SLAY_ATTN_YAT_SPHERICAL}) {
        CAPTURE(slay_attn_variant_name(v));
        CallShape shape;
        shape.variant = v;
        AttnCall call(shape);
        for (Pass pass : {Pass::Forward, Pass::Backward}) {
            CAPTURE(pass_name(pass));
            size_t bytes = 12345;
            const slay_status_t got =
                pass == Pass::Forward
                    ? slay_attn_fwd_workspace_size(call.plan, &call.fwd_args(), call.stream, &bytes)
                    : slay_attn_bwd_workspace_size(call.plan, &call.bwd_args(), call.stream, &bytes);
            REQUIRE(got == SLAY_STATUS_SUCCESS);
            CHECK(bytes == call.workspace_needed(pass));  // the CPU backend's paths all need the plan's
            // The call runs in exactly that many bytes and writes every output.
            call.workspace_size_delta = static_cast<long>(bytes) - static_cast<long>(call.workspace_needed(pass));
            call.poison_outputs(pass);
            CHECK(call.run(pass) == SLAY_STATUS_SUCCESS);
            CHECK(call.outputs_fully_written(pass));
            call.workspace_size_delta = 0;
        }
        // Broken arguments fail as the call fails, and the answer stays untouched.
        size_t bytes = 777;
        const slay_tensor_t* q = call.fwd_args().q;
        call.fwd_args().q = nullptr;
        CHECK(slay_attn_fwd_workspace_size(call.plan, &call.fwd_args(), call.stream, &bytes) ==
              call.run(Pass::Forward));
        call.fwd_args().q = q;
        CHECK(bytes == 777);
        check_status(SLAY_STATUS_INVALID_ARGUMENT,
                     [&] { return slay_attn_bwd_workspace_size(call.plan, nullptr, call.stream, &bytes); });
        check_status(SLAY_STATUS_INVALID_ARGUMENT,
                     [&] { return slay_attn_fwd_workspace_size(call.plan, &call.fwd_args(), call.stream, nullptr); });
        check_status(SLAY_STATUS_INVALID_ARGUMENT,
                     [&] { return slay_attn_fwd_workspace_size(nullptr, &call.fwd_args(), call.stream, &bytes); });
        CHECK(bytes == 777);
    }
}

TEST_CASE("a call with nothing to write returns SUCCESS at once, without visiting B*H empty heads") {
    // Issue 14, 1: B*H = 2^31 - 2 heads of T = 0. Visiting them took minutes;
    // the call must return at once (the bound leaves a slow machine room).
    for (Pass pass : {Pass::Forward, Pass::Backward}) {
        for (slay_attn_variant_t variant : {SLAY_ATTN_LINEAR, SLAY_ATTN_STANDARD}) {
            AttnCall call(variant_shape(variant));
            empty_sequences(call, (int64_t{1} << 30) - 1, true);
            const auto start = std::chrono::steady_clock::now();
            check_status(SLAY_STATUS_SUCCESS, [&] { return call.run(pass); });
            CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(2));
        }
    }
}

TEST_CASE("enum values from C outside their enums are rejected; messages print them as int32") {
    // Issue 14, 4 (the calls go through raw_enum_calls.c, as a C caller's would).
    AttnCall call(CallShape{});
    raw_set_dtype(&call.q, -1);
    check_status(SLAY_STATUS_BAD_DTYPE, [&] { return call.run(Pass::Forward); });
    CHECK(std::string(slay_last_error_message()) == "q.dtype=unknown (-1) but float32 is required");
    size_t bytes = 0;
    check_status(SLAY_STATUS_INVALID_ARGUMENT, [&] { return raw_plan_get_workspace_size(call.plan, -1, 1, 1, &bytes); });
    CHECK(std::string(slay_last_error_message()) == "pass=-1 is not a slay_pass_t");
    check_status(SLAY_STATUS_INVALID_ARGUMENT,
                 [&] { return raw_plan_get_workspace_size(call.plan, INT32_MIN, 1, 1, &bytes); });
    CHECK(std::string(slay_last_error_message()) == "pass=-2147483648 is not a slay_pass_t");
}

TEST_CASE("a plan executed by a second thread meanwhile is PLAN_IN_USE") {
    // Issue 14, 8: one thread runs a long forward; another calls the same
    // plan meanwhile (with NULL args: the busy check comes first) and must
    // see PLAN_IN_USE; afterwards the plan works again.
    CallShape shape = variant_shape(SLAY_ATTN_STANDARD);
    shape.seq_len = 1500;
    AttnCall call(shape);
    std::atomic<bool> done{false};
    slay_status_t long_status = SLAY_STATUS_INTERNAL_ERROR;
    std::thread runner([&] {
        // The probes below hold the flag for an instant too: retry past them.
        do long_status = call.run(Pass::Forward);
        while (long_status == SLAY_STATUS_PLAN_IN_USE);
        done = true;
    });
    int in_use = 0;
    std::string message;
    while (!done) {
        const slay_status_t s = slay_attn_fwd(call.plan, nullptr, nullptr, 0, nullptr);
        if (s == SLAY_STATUS_PLAN_IN_USE) {
            ++in_use;
            message = slay_last_error_message();
        }
    }
    runner.join();
    CHECK(long_status == SLAY_STATUS_SUCCESS);
    CHECK(in_use > 0);
    CHECK(message.find("another thread") != std::string::npos);
    CHECK(status_text(slay_attn_fwd(call.plan, nullptr, nullptr, 0, nullptr)) == "SLAY_STATUS_INVALID_ARGUMENT");
}

TEST_CASE("(B, T, H, D) memory passed through strides gives the (B, H, T, D) result") {
    for (slay_attn_variant_t variant : {SLAY_ATTN_SLAY_ANCHOR, SLAY_ATTN_STANDARD}) {
        const std::string variant_name = text(slay_attn_variant_name(variant));
        CAPTURE(variant_name);
        AttnCall contiguous(variant_shape(variant));
        AttnCall bthd(variant_shape(variant));
        bthd.use_bthd_layout();
        for (Pass pass : {Pass::Forward, Pass::Backward}) {
            const std::string pass_text = pass_name(pass);
            CAPTURE(pass_text);
            REQUIRE(status_text(contiguous.run(pass)) == "SLAY_STATUS_SUCCESS");
            REQUIRE(status_text(bthd.run(pass)) == "SLAY_STATUS_SUCCESS");
        }
        for (auto member : {&AttnCall::out, &AttnCall::dq, &AttnCall::dk, &AttnCall::dv})
            CHECK(AttnCall::logical_values(contiguous.*member) == AttnCall::logical_values(bthd.*member));
    }
}

}  // TEST_SUITE bad_inputs
