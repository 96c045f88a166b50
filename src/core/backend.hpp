// backend.hpp -- the internal interface both backends implement (CPU
// reference, CUDA), the objects behind slay_handle_t / slay_attn_plan_t, and
// the validated forms of the fwd/bwd argument blocks. The ABI layer checks
// everything that does not depend on the backend (validate_* below) before
// a backend sees a call, so backends receive only well-formed calls.
//
// Shapes: q, k (B, H, T, D); v, out, dout (B, H, T, Dv);
//         state (B, H, F, Dv+1) fp32; params (param_count,) fp32.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "config.hpp"
#include "status.hpp"
#include "tensor.hpp"

namespace slay {

struct Plan;

// What the forward and the backward both read.
//   Dense calls: batch = B sequences of seq_len = T tokens each.
//   Packed calls (seq_offsets given): the tensors have batch extent 1 and
//   total_tokens tokens; batch = N sequences, sequence n is tokens
//   [seq_starts[n], seq_starts[n+1]) (validated host copy of the offsets),
//   and seq_len = the longest sequence (what the workspace is sized for).
// k, v (and dk, dv) have num_kv_heads heads; q h uses kv head h / group.
struct CallInputs {
    int64_t batch = 0, seq_len = 0, position_offset = 0;
    TensorView q, k, v, params, initial_state;
    bool has_params = false, has_initial_state = false;
    bool packed = false;
    int64_t total_tokens = 0;
    TensorView seq_offsets;           // packed: (N+1,) int32/int64, the caller's (device) tensor
    std::vector<int64_t> seq_starts;  // packed: the offsets, read back and validated

    // Sequence n as (tensor batch index, first token, length).
    int64_t tensor_batch(int64_t n) const { return packed ? 0 : n; }
    int64_t first_token(int64_t n) const { return packed ? seq_starts[n] : 0; }
    int64_t length(int64_t n) const { return packed ? seq_starts[n + 1] - seq_starts[n] : seq_len; }
};

struct FwdCall : CallInputs {
    TensorView out, final_state;
    bool has_final_state = false;
    TensorView row_stats;  // (B, H, T) fp32, exact variants (ABI 4)
    bool has_row_stats = false;
    bool merge = false;  // out and row_stats hold a result over other keys (slay.h)
};

struct BwdCall : CallInputs {
    TensorView out, dout, dq, dk, dv, dfinal_state, dinitial_state;
    bool has_dfinal_state = false, has_dinitial_state = false;
    TensorView row_stats;  // (B, H, T) fp32, exact variants: the forward's, read (ABI 5)
    bool has_row_stats = false;
};

// Backend-owned resources of one plan (cuFFT plans, ...), made once at plan
// creation so that forward/backward calls never allocate.
struct PlanResources {
    virtual ~PlanResources() = default;
};

class Backend {
public:
    virtual ~Backend() = default;
    virtual slay_backend_t kind() const = 0;
    // Called once when a plan is created on this backend, after its config is
    // resolved; may attach resources to plan->resources.
    virtual Status prepare(Plan* plan) const {
        (void)plan;
        return Status();
    }
    // Checks run last, before any write: the stream fits the backend, the
    // parameter values are usable, ...
    virtual Status check_stream(void* stream) const = 0;
    virtual Status workspace_size(const Plan& plan, slay_pass_t pass, int64_t batch,
                                  int64_t seq_len, size_t* bytes) const = 0;
    // Bytes of workspace a validated call needs: at most workspace_size's for
    // its batch and seq_len, less where its tensors let a path use less (the
    // CUDA backend's Hopper Kronecker kernels with the fused map). The call
    // then runs in that many bytes. (ABI 6)
    virtual Status call_workspace_size(const Plan& plan, const FwdCall& call, size_t* bytes) const {
        return workspace_size(plan, SLAY_PASS_FORWARD, call.batch, call.seq_len, bytes);
    }
    virtual Status call_workspace_size(const Plan& plan, const BwdCall& call, size_t* bytes) const {
        return workspace_size(plan, SLAY_PASS_BACKWARD, call.batch, call.seq_len, bytes);
    }
    virtual Status forward(const Plan& plan, const FwdCall& call, void* workspace,
                           void* stream) = 0;
    virtual Status backward(const Plan& plan, const BwdCall& call, void* workspace,
                            void* stream) = 0;
    virtual Status sample(const Plan& plan, uint64_t seed, uint64_t offset,
                          const TensorView& params, void* workspace, void* stream) = 0;
    // Copies the n values of a validated int32/int64 offsets tensor (in the
    // backend's memory space) into `out`; CUDA waits for `stream` to do so.
    virtual Status read_offsets(const TensorView& offsets, void* stream, std::vector<int64_t>* out) const = 0;
};

std::unique_ptr<Backend> make_cpu_backend();
// NO_DEVICE (with the driver's reason) when no usable device exists.
Status make_cuda_backend(int32_t device, std::unique_ptr<Backend>* out);

struct Plan {
    AttnConfig cfg;  // resolved
    int64_t features = 0;      // F (0 for exact variants)
    int64_t param_count = 0;
    std::vector<ParamSegment> segments;
    Backend* backend = nullptr;  // owned by the handle
    std::unique_ptr<PlanResources> resources;  // backend-specific, may be null
};

// Validates an argument block against the plan; fills the call on success.
// A packed call's offset values are read through the backend (on `stream`,
// after the stream check) and validated before anything is written.
Status validate_fwd(const Plan& plan, const slay_attn_fwd_args_t* args, void* stream, FwdCall* call);
Status validate_bwd(const Plan& plan, const slay_attn_bwd_args_t* args, void* stream, BwdCall* call);
Status validate_params_tensor(const Plan& plan, const slay_tensor_t* params, Access access,
                              TensorView* view, bool* present);
// Size, presence and alignment of the workspace; *need receives its size.
Status check_workspace(const Plan& plan, slay_pass_t pass, int64_t batch, int64_t seq_len,
                       const void* workspace, size_t workspace_size, size_t* need);
// The same for a validated call: its own need (Backend::call_workspace_size).
template <typename Call>
Status check_call_workspace(const Plan& plan, const Call& call, const void* workspace, size_t workspace_size,
                            size_t* need);
// No written tensor shares memory with another tensor of the call or with
// the workspace's first `need` bytes (final_state may alias initial_state
// exactly). Run after validation, before the backend.
Status check_fwd_memory(const FwdCall& call, const void* workspace, size_t need);
Status check_bwd_memory(const BwdCall& call, const void* workspace, size_t need);
Status check_sample_memory(const TensorView& params, const void* workspace, size_t need);
// True when a valid call has no element to write (B = 0, or T = 0 without
// states): the ABI returns SUCCESS at once, without any backend work.
bool writes_nothing(const FwdCall& call);
bool writes_nothing(const BwdCall& call);
// struct_size of a size-prefixed block: at least `known`, at most
// kMaxStructSize (core/limits.hpp).
Status check_struct_size_range(size_t given, size_t known, const char* name);

}  // namespace slay

struct slay_handle_s {
    std::unique_ptr<slay::Backend> backend;
    int32_t device = 0;
};

struct slay_attn_plan_s {
    slay::Plan plan;
    // Set while features_sample, fwd or bwd runs on the plan: one plan is
    // executed by one host thread at a time (slay.h), and a second thread
    // arriving meanwhile gets SLAY_STATUS_PLAN_IN_USE instead of racing on
    // the plan's resources (the CUDA backend's cuFFT handles are rebound to
    // each call's stream and workspace).
    std::atomic<bool> busy{false};
};
