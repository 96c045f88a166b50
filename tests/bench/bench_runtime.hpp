// bench_runtime.hpp -- what slay-bench needs from a backend, on the public
// ABI only: tracked memory (every byte the bench allocates for a call:
// q, k, v, out (B,H,T,D), dout/dq/dk/dv for the backward, parameters and
// workspace), input filling, timing (CUDA events on a non-default stream, or
// std::chrono on the CPU backend) and one measured run of a plan.
#pragma once

#include <slay/slay.h>

#include <cstdint>
#include <string>
#include <vector>

namespace bench {

// One attention configuration: the plan's attributes that the bench varies.
// R, M, P, chunk <= 0 keep the library's default; attributes a variant does
// not use are skipped.
struct Config {
    std::string variant;
    slay_dtype_t dtype = SLAY_DTYPE_FLOAT32;
    bool causal = true;
    int64_t R = 2, M = 16, P = 32, chunk = 0;
    double epsilon = 1e-6;
    bool allow_tf32 = false;
};

struct Shape {
    int64_t B = 1, H = 8, T = 1024, D = 32;
};

struct RunOptions {
    bool backward = false;      // time slay_attn_bwd after each forward
    int warmup = 2;             // untimed calls after the first (checked) one
    int repeats = 5;            // timed calls
    bool keep_output = false;   // copy the forward output back (as fp32)
    uint64_t seed = 42;         // inputs and feature parameters
    // q, k: N(0, I) rows (0), or rows of norm sqrt(D) at exactly this cosine
    // to one shared direction per (b, h) (quality mode's clustered inputs).
    double cluster_cos = 0;
    uint64_t memory_limit = 0;  // bytes the bench may allocate (0: no limit)
};

// What one run of one configuration gave. status: "ok", "OOM",
// "NOT_SUPPORTED", "ERROR" (message says more).
struct Measurement {
    std::string status = "ok";
    std::string message;
    std::vector<double> fwd_ms, bwd_ms, total_ms;  // one entry per timed repeat
    uint64_t tensor_bytes = 0;      // q, k, v, out (+ dout, dq, dk, dv)
    uint64_t param_bytes = 0;
    uint64_t workspace_bytes = 0;   // max over the passes run
    uint64_t forward_bytes = 0;     // what a forward alone needs: q, k, v, out, params, fwd workspace
    uint64_t peak_bytes = 0;        // tracked peak of the bench's own allocations
    int64_t meminfo_delta = -1;     // CUDA: drop of cudaMemGetInfo free bytes over the run (cross-check)
    int64_t feature_dim = 0, param_count = 0;
    std::string params_sampled_on;  // "cuda", "cpu" (fallback) or "none"
    std::vector<float> output;      // forward output (B,H,T,Dv) when keep_output
};

struct Stats {
    double median = 0, mean = 0, std = 0, min = 0;
};
Stats stats_of(const std::vector<double>& v);

// Environment facts recorded with every run.
struct DeviceInfo {
    std::string backend, name, driver, cuda_runtime, compute_capability, host;
    uint64_t total_memory = 0;
};

class Runner {
public:
    // Throws std::runtime_error when the backend cannot be opened.
    Runner(slay_backend_t backend, int device);
    ~Runner();
    Runner(const Runner&) = delete;
    Runner& operator=(const Runner&) = delete;

    Measurement run(const Config& config, const Shape& shape, const RunOptions& options);
    DeviceInfo info() const;
    slay_backend_t backend() const { return backend_; }

private:
    slay_backend_t backend_;
    int device_;
    slay_handle_t handle_ = nullptr;
    slay_handle_t cpu_handle_ = nullptr;  // for sampling where the CUDA backend cannot
    void* stream_ = nullptr;              // cudaStream_t (non-blocking) on CUDA
};

const char* dtype_name(slay_dtype_t dtype);
bool parse_dtype(const std::string& name, slay_dtype_t* dtype);
// "slay_anchor" for any name slay_attn_variant_from_name accepts; "" if unknown.
std::string canonical_variant(const std::string& name);
bool is_exact_variant(const std::string& variant);
// The attribute names (R, M, P, chunk) the variant reads, by asking a descriptor.
bool variant_uses(const std::string& variant, slay_attr_t attr);

}  // namespace bench
