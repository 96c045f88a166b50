// slay_example.cpp -- libslay from C++ through the header-only wrapper
// <slay/slay.hpp>.
//
// Builds the paper's SLAY configuration (slay_anchor: anchor polynomial
// features (x) positive random features, R = 2, M = 16, P = 32, eps = 1e-6)
// and the exact yat_spherical attention it linearizes, runs both causal
// forwards on the same random q, k, v, prints the relative L2 error between
// them and their times, then runs slay_anchor's backward on a random dout
// and prints the norms of dq, dk and dv.
//
// Backend: CUDA device 0 when a CUDA handle can be created, else the CPU
// reference backend; `--cpu` (or SLAY_EXAMPLE_BACKEND=cpu) forces the CPU.
// On CUDA, tensors, parameters and workspaces are device memory, allocated
// and copied here with the CUDA runtime (libslay never allocates them).
//
// The program checks its own results: every output and gradient finite, the
// output and gradient norms non-zero, and the relative error below 2.0.
// It exits 1 if a check fails or a call throws, 2 on bad arguments.
//
// Usage: slay_example_cpp [--cpu] [T] [H] [D]      (defaults 256 4 64, B = 2)
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <cuda_runtime_api.h>

#include <slay/slay.hpp>

namespace {

void cuda_check(cudaError_t err, const char* what) {
    if (err != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(err));
}

// Memory in the handle's memory space: host memory for the CPU backend,
// device memory for CUDA. Not copyable.
class Buffer {
public:
    Buffer(bool device, std::size_t bytes) : device_(device), bytes_(bytes) {
        if (bytes == 0) return;
        if (device_)
            cuda_check(cudaMalloc(&data_, bytes), "cudaMalloc");
        else if ((data_ = std::malloc(bytes)) == nullptr)
            throw std::bad_alloc();
    }
    ~Buffer() {
        if (device_)
            cudaFree(data_);
        else
            std::free(data_);
    }
    Buffer(const Buffer&) = delete;
    Buffer& operator=(const Buffer&) = delete;

    void* data() const { return data_; }
    std::size_t size() const { return bytes_; }

    // Copies host floats in (host.size() * 4 must equal size()).
    void upload(const std::vector<float>& host) {
        if (host.size() * sizeof(float) != bytes_) throw std::logic_error("upload: size mismatch");
        if (bytes_ == 0) return;
        if (device_)
            cuda_check(cudaMemcpy(data_, host.data(), bytes_, cudaMemcpyHostToDevice), "cudaMemcpy to device");
        else
            std::memcpy(data_, host.data(), bytes_);
    }
    // Copies the contents out as floats (waits for the device's work first).
    std::vector<float> download() const {
        std::vector<float> host(bytes_ / sizeof(float));
        if (bytes_ == 0) return host;
        if (device_)
            cuda_check(cudaMemcpy(host.data(), data_, bytes_, cudaMemcpyDeviceToHost), "cudaMemcpy to host");
        else
            std::memcpy(host.data(), data_, bytes_);
        return host;
    }

private:
    bool device_;
    std::size_t bytes_;
    void* data_ = nullptr;
};

std::vector<float> random_normal(std::size_t n, std::mt19937_64& rng) {
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> x(n);
    for (float& value : x) value = normal(rng);
    return x;
}

double l2_norm(const std::vector<float>& x) {
    double sum = 0;
    for (float value : x) sum += double(value) * double(value);
    return std::sqrt(sum);
}

bool all_finite(const std::vector<float>& x) {
    for (float value : x)
        if (!std::isfinite(value)) return false;
    return true;
}

// A causal plan for `variant` with the example's shape and epsilon.
slay::Descriptor describe(slay_attn_variant_t variant, std::int64_t H, std::int64_t D) {
    slay::Descriptor desc(variant);
    desc.set_i64(SLAY_ATTR_NUM_HEADS, H)
        .set_i64(SLAY_ATTR_HEAD_DIM, D)
        .set_i64(SLAY_ATTR_CAUSAL, 1)
        .set_f64(SLAY_ATTR_EPSILON, 1e-6);
    return desc;
}

int failures = 0;

void expect(bool ok, const std::string& what) {
    if (!ok) {
        std::printf("CHECK FAILED: %s\n", what.c_str());
        ++failures;
    }
}

int run(bool force_cpu, std::int64_t T, std::int64_t H, std::int64_t D) {
    const std::int64_t B = 2;
    const std::uint32_t v = slay::version();
    std::printf("libslay %u.%u.%u (ABI %u), C++ wrapper slay.hpp\n", v / 10000, v / 100 % 100, v % 100,
                slay::abi_version());

    // The backend: CUDA device 0 if a handle can be made on it, else the CPU.
    slay::Handle handle;
    if (force_cpu) {
        std::printf("backend: CPU (forced)\n");
    } else {
        try {
            handle = slay::Handle(SLAY_BACKEND_CUDA, 0);
            std::printf("backend: CUDA device 0\n");
        } catch (const slay::Error& e) {
            std::printf("backend: CPU (no CUDA handle: %s)\n", e.what());
        }
    }
    if (!handle) handle = slay::Handle(SLAY_BACKEND_CPU);
    const bool on_device = handle.backend() == SLAY_BACKEND_CUDA;
    // Waits for the device's queued work (NULL stream = cudaStreamPerThread);
    // CPU calls have completed when they return.
    auto sync = [&] {
        if (on_device) cuda_check(cudaStreamSynchronize(cudaStreamPerThread), "cudaStreamSynchronize");
    };

    // slay_anchor in the paper's configuration, and the exact kernel.
    slay::Descriptor slay_desc = describe(SLAY_ATTN_SLAY_ANCHOR, H, D);
    slay_desc.set_i64(SLAY_ATTR_NUM_QUAD_NODES, 2).set_i64(SLAY_ATTR_NUM_FEATURES, 16).set_i64(SLAY_ATTR_POLY_DIM, 32);
    const slay::Plan slay_plan(handle, slay_desc);
    const slay::Plan exact_plan(handle, describe(SLAY_ATTN_YAT_SPHERICAL, H, D));

    // Feature parameters: one fp32 vector of named segments, sampled from
    // (seed, offset) the same way on every backend.
    const std::int64_t n_params = slay_plan.param_count();
    Buffer params(on_device, std::size_t(n_params) * sizeof(float));
    const slay_tensor_t params_t = slay::vector_tensor(static_cast<float*>(params.data()), n_params);
    {
        Buffer ws(on_device, slay_plan.workspace_size(SLAY_PASS_SAMPLE));
        slay_plan.features_sample(42, 0, params_t, ws.data(), ws.size());
        sync();
    }
    std::printf("slay_anchor: F = %lld features, %lld parameters in", static_cast<long long>(slay_plan.feature_dim()),
                static_cast<long long>(n_params));
    for (const slay_param_segment_t& s : slay_plan.param_segments()) std::printf(" %s", s.name);
    std::printf("\n");

    // Random q, k, v and dout, contiguous (B, H, T, D); Dv = D.
    const std::size_t n = std::size_t(B * H * T * D), bytes = n * sizeof(float);
    std::mt19937_64 rng(2024);
    Buffer q(on_device, bytes), k(on_device, bytes), v_in(on_device, bytes), dout(on_device, bytes);
    q.upload(random_normal(n, rng));
    k.upload(random_normal(n, rng));
    v_in.upload(random_normal(n, rng));
    dout.upload(random_normal(n, rng));
    Buffer out_slay(on_device, bytes), out_exact(on_device, bytes);
    Buffer dq(on_device, bytes), dk(on_device, bytes), dv(on_device, bytes);
    auto bhtd = [&](const Buffer& b) { return slay::tensor_bhtd(b.data(), B, H, T, D); };
    const slay_tensor_t tq = bhtd(q), tk = bhtd(k), tv = bhtd(v_in), tdout = bhtd(dout);
    const slay_tensor_t tout_slay = bhtd(out_slay), tout_exact = bhtd(out_exact);
    const slay_tensor_t tdq = bhtd(dq), tdk = bhtd(dk), tdv = bhtd(dv);

    // Times one call in ms; on CUDA after one warm-up call, up to completion.
    auto timed = [&](auto&& call) {
        if (on_device) {
            call();
            sync();
        }
        const auto t0 = std::chrono::steady_clock::now();
        call();
        sync();
        return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    };

    Buffer ws_slay(on_device, slay_plan.workspace_size(SLAY_PASS_FORWARD, B, T));
    Buffer ws_exact(on_device, exact_plan.workspace_size(SLAY_PASS_FORWARD, B, T));
    const double ms_slay =
        timed([&] { slay_plan.fwd(tq, tk, tv, &params_t, tout_slay, ws_slay.data(), ws_slay.size()); });
    const double ms_exact =
        timed([&] { exact_plan.fwd(tq, tk, tv, nullptr, tout_exact, ws_exact.data(), ws_exact.size()); });

    const std::vector<float> o_slay = out_slay.download(), o_exact = out_exact.download();
    double diff = 0;
    for (std::size_t i = 0; i < n; ++i) {
        const double d = double(o_slay[i]) - double(o_exact[i]);
        diff += d * d;
    }
    const double norm_slay = l2_norm(o_slay), norm_exact = l2_norm(o_exact);
    const double rel_l2 = std::sqrt(diff) / norm_exact;
    std::printf("shape B=%lld H=%lld T=%lld D=%lld, causal, fp32, %s backend\n", static_cast<long long>(B),
                static_cast<long long>(H), static_cast<long long>(T), static_cast<long long>(D),
                on_device ? "CUDA" : "CPU");
    std::printf("forward slay_anchor (R=2, M=16, P=32): %9.2f ms   |out| = %.4g\n", ms_slay, norm_slay);
    std::printf("forward yat_spherical (exact):         %9.2f ms   |out| = %.4g\n", ms_exact, norm_exact);
    std::printf("relative L2 error of slay_anchor vs yat_spherical: %.4f\n", rel_l2);

    // Backward of slay_anchor: dq, dk, dv of L = <out, dout>.
    Buffer ws_bwd(on_device, slay_plan.workspace_size(SLAY_PASS_BACKWARD, B, T));
    const double ms_bwd = timed([&] {
        slay_plan.bwd(tq, tk, tv, &params_t, tout_slay, tdout, tdq, tdk, tdv, ws_bwd.data(), ws_bwd.size());
    });
    const std::vector<float> g_q = dq.download(), g_k = dk.download(), g_v = dv.download();
    std::printf("backward slay_anchor:                  %9.2f ms   |dq| = %.4g  |dk| = %.4g  |dv| = %.4g\n", ms_bwd,
                l2_norm(g_q), l2_norm(g_k), l2_norm(g_v));

    // The example's own checks.
    expect(all_finite(o_slay) && all_finite(o_exact), "forward outputs are finite");
    expect(norm_slay > 0 && norm_exact > 0, "forward outputs are non-zero");
    expect(std::isfinite(rel_l2) && rel_l2 < 2.0, "relative L2 error is below 2.0");
    expect(all_finite(g_q) && all_finite(g_k) && all_finite(g_v), "gradients are finite");
    expect(l2_norm(g_q) > 0 && l2_norm(g_k) > 0 && l2_norm(g_v) > 0, "gradients are non-zero");
    std::printf("%s\n", failures ? "FAILED" : "ok");
    return failures ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
    const char* env = std::getenv("SLAY_EXAMPLE_BACKEND");
    bool force_cpu = env != nullptr && std::strcmp(env, "cpu") == 0;
    std::vector<std::int64_t> sizes = {256, 4, 64};  // T, H, D
    std::size_t given = 0;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--cpu") == 0) {
            force_cpu = true;
        } else if (given < sizes.size()) {
            sizes[given++] = std::atoll(argv[i]);
        } else {
            given = sizes.size() + 1;
        }
    }
    if (given > sizes.size() || sizes[0] < 1 || sizes[1] < 1 || sizes[2] < 1) {
        std::fprintf(stderr, "usage: %s [--cpu] [T>=1] [H>=1] [D>=1]\n", argv[0]);
        return 2;
    }
    try {
        return run(force_cpu, sizes[0], sizes[1], sizes[2]);
    } catch (const slay::Error& e) {
        std::fprintf(stderr, "libslay error: %s\n", e.what());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
    }
    return 1;
}
