// attn_call.hpp -- the baseline-call builder of the execution tests: one
// valid slay_attn_fwd / slay_attn_bwd / slay_attn_features_sample call on
// the CPU backend with every buffer it needs (random inputs, sampled
// parameters, states, workspace), which a test then breaks in one place.
// It also poisons a pass's outputs and snapshots every caller buffer, so a
// test can check that a rejected call wrote nothing.
//
// Shapes: q, k (B, H, T, D); v, out, dout (B, H, T, Dv); dq, dk like q; dv
// like v; states (B, H, F, Dv+1) fp32; params (param_count,) fp32.
#pragma once

#include <vector>

#include "support.hpp"

namespace slay_test {

enum class Pass { Forward, Backward, Sample };
const char* pass_name(Pass p);

struct CallShape {
    slay_attn_variant_t variant = SLAY_ATTN_SLAY_ANCHOR;
    int64_t batch = 2, heads = 2, seq_len = 5, head_dim = 8, value_dim = 6;
    int64_t quad_nodes = 2, features = 4, poly_dim = 4;  // set where the variant uses them
    int64_t cosformer_length = 0;                         // set for cosformer only
};

constexpr unsigned char kPoisonByte = 0x7f;

class AttnCall {
public:
    explicit AttnCall(const CallShape& shape);
    AttnCall(const AttnCall&) = delete;
    AttnCall& operator=(const AttnCall&) = delete;

    // Tensors of the call; the argument blocks point at these.
    slay_tensor_t q{}, k{}, v{}, out{}, dout{}, dq{}, dk{}, dv{}, params{};
    slay_tensor_t initial_state{}, final_state{}, dfinal_state{}, dinitial_state{};
    slay_tensor_t row_stats{};  // (B, H, T) fp32 (ABI 4; not attached by default)

    slay_attn_fwd_args_t& fwd_args() { return fwd_block_.args; }
    slay_attn_bwd_args_t& bwd_args() { return bwd_block_.args; }
    // Applies f to both argument blocks (for fields they share).
    template <typename F>
    void both_args(F&& f) {
        f(fwd_args());
        f(bwd_args());
    }
    // Makes the argument blocks `extra` bytes larger than this ABI's
    // structs; the unknown tail is zero unless nonzero_tail.
    void grow_args(size_t extra, bool nonzero_tail);
    // Attaches the state tensors the pass reads and writes.
    void attach_states();
    // Overwrites one element of a named parameter segment.
    void set_param(const char* segment, int64_t index, float value);
    // Lays q, k, v, out, dout, dq, dk, dv out as (B, T, H, X) through their
    // strides, keeping their logical contents.
    void use_bthd_layout();

    // What run() passes besides the argument block.
    slay_attn_plan_t plan = nullptr;
    bool pass_null_args = false;
    void* workspace = nullptr;
    long workspace_size_delta = 0;  // added to the size the pass needs
    void* stream = nullptr;
    const slay_tensor_t* sample_params = nullptr;  // &params when the variant has any

    slay_status_t run(Pass pass);
    size_t workspace_needed(Pass pass) const;
    void poison_outputs(Pass pass);
    // Every caller buffer, byte for byte (the workspace excluded).
    std::vector<std::vector<unsigned char>> snapshot();
    // True when the pass's outputs hold no poison byte pattern and are finite.
    bool outputs_fully_written(Pass pass);
    // A tensor's elements (fp32) in logical (B, H, T, X) order.
    static std::vector<float> logical_values(const slay_tensor_t& t);

    int64_t param_count = 0, feature_dim = 0;
    uint64_t seed = 20240601, offset = 0;

private:
    struct FwdBlock {
        slay_attn_fwd_args_t args;
        unsigned char tail[64];
    };
    struct BwdBlock {
        slay_attn_bwd_args_t args;
        unsigned char tail[64];
    };
    std::vector<Buffer*> all_buffers();
    std::vector<slay_tensor_t*> outputs(Pass pass);

    CallShape shape_;
    Handle handle_;
    Plan plan_;
    Buffer q_, k_, v_, out_, dout_, dq_, dk_, dv_, params_;
    Buffer initial_state_, final_state_, dfinal_state_, dinitial_state_, row_stats_;
    Buffer workspace_;
    FwdBlock fwd_block_{};
    BwdBlock bwd_block_{};
};

}  // namespace slay_test
