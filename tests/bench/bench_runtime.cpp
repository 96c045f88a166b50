// bench_runtime.cpp -- one measured run of a libslay plan on the CPU or CUDA
// backend, through the public ABI and the CUDA runtime only (it builds
// without a GPU; the CUDA calls just fail there). Inputs q, k, v, dout are
// (B,H,T,D) contiguous, filled from a fixed pool of N(0,1) values; the pool
// tiles tensors larger than it, which does not change a timing.
#include "bench_runtime.hpp"

#include <cuda_runtime_api.h>
#include <slay/slay.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <unistd.h>

namespace bench {
namespace {

struct OutOfMemory : std::runtime_error {
    using std::runtime_error::runtime_error;
};
struct NotSupported : std::runtime_error {
    using std::runtime_error::runtime_error;
};

void check_cuda(cudaError_t err, const char* what) {
    if (err == cudaErrorMemoryAllocation) {
        cudaGetLastError();
        throw OutOfMemory(std::string(what) + ": " + cudaGetErrorString(err));
    }
    if (err != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(err));
}

// A libslay status other than SUCCESS becomes the exception its row reports.
void check_slay(slay_status_t s, const char* what) {
    if (s == SLAY_STATUS_SUCCESS) return;
    std::string msg = std::string(what) + ": " + slay_status_name(s) + ": " + slay_last_error_message();
    if (s == SLAY_STATUS_NOT_SUPPORTED) throw NotSupported(msg);
    if (s == SLAY_STATUS_OUT_OF_MEMORY) throw OutOfMemory(msg);
    throw std::runtime_error(msg);
}

// Every allocation of one run, so its footprint is known exactly (libslay
// itself never allocates device memory in a call).
class Allocations {
public:
    Allocations(bool cuda, uint64_t limit) : cuda_(cuda), limit_(limit) {}
    ~Allocations() {
        for (auto& [ptr, bytes] : live_) release(ptr);
    }
    // Throws OutOfMemory when the memory (or the bench's limit) runs out.
    void* get(uint64_t bytes, const char* what) {
        if (bytes == 0) return nullptr;
        if (limit_ && live_bytes_ + bytes > limit_)
            throw OutOfMemory(std::string(what) + ": over the memory limit of " + std::to_string(limit_) + " bytes");
        void* ptr = nullptr;
        if (cuda_) {
            check_cuda(cudaMalloc(&ptr, bytes), what);
        } else {
            ptr = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
            if (!ptr) throw OutOfMemory(std::string(what) + ": malloc failed");
        }
        live_[ptr] = bytes;
        live_bytes_ += bytes;
        peak_ = std::max(peak_, live_bytes_);
        return ptr;
    }
    void put(void* ptr) {
        auto it = live_.find(ptr);
        if (it == live_.end()) return;
        live_bytes_ -= it->second;
        release(ptr);
        live_.erase(it);
    }
    void reset_peak() { peak_ = live_bytes_; }
    uint64_t peak() const { return peak_; }

private:
    void release(void* ptr) {
        if (cuda_)
            cudaFree(ptr);
        else
            std::free(ptr);
    }
    bool cuda_;
    uint64_t limit_;
    std::map<void*, uint64_t> live_;
    uint64_t live_bytes_ = 0, peak_ = 0;
};

uint16_t float_to_bf16(float f) {
    uint32_t bits;
    std::memcpy(&bits, &f, 4);
    return static_cast<uint16_t>((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);  // round to nearest even
}
float bf16_to_float(uint16_t h) {
    uint32_t bits = static_cast<uint32_t>(h) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}
uint16_t float_to_half(float f) {  // finite inputs, round to nearest even
    uint32_t x;
    std::memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u;
    int32_t exp = static_cast<int32_t>((x >> 23) & 0xFF) - 127 + 15;
    uint32_t mant = x & 0x7FFFFFu;
    if (exp >= 31) return static_cast<uint16_t>(sign | 0x7C00u);
    if (exp <= 0) {
        if (exp < -10) return static_cast<uint16_t>(sign);
        mant |= 0x800000u;
        uint32_t shift = static_cast<uint32_t>(14 - exp);
        uint32_t half = mant >> shift, rest = mant & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rest > mid || (rest == mid && (half & 1u))) ++half;
        return static_cast<uint16_t>(sign | half);
    }
    uint32_t half = (static_cast<uint32_t>(exp) << 10) | (mant >> 13), rest = mant & 0x1FFFu;
    if (rest > 0x1000u || (rest == 0x1000u && (half & 1u))) ++half;
    return static_cast<uint16_t>(sign | half);
}
float half_to_float(uint16_t h) {
    uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1F, mant = h & 0x3FFu;
    float mag = exp == 0 ? std::ldexp(static_cast<float>(mant), -24)
                : exp == 31 ? (mant ? NAN : INFINITY)
                            : std::ldexp(static_cast<float>(mant | 0x400u), static_cast<int>(exp) - 25);
    return sign ? -mag : mag;
}

size_t dtype_size(slay_dtype_t dtype) { return dtype == SLAY_DTYPE_FLOAT32 ? 4 : 2; }

// N(0,1) values in a given dtype, generated once per (seed, dtype).
constexpr size_t kPoolElements = size_t(1) << 22;
const std::vector<uint8_t>& input_pool(uint64_t seed, slay_dtype_t dtype) {
    static std::map<std::pair<uint64_t, int>, std::vector<uint8_t>> pools;
    auto& pool = pools[{seed, static_cast<int>(dtype)}];
    if (pool.empty()) {
        std::mt19937_64 rng(seed);
        std::normal_distribution<float> normal(0.0f, 1.0f);
        pool.resize(kPoolElements * dtype_size(dtype));
        for (size_t i = 0; i < kPoolElements; ++i) {
            float x = normal(rng);
            if (dtype == SLAY_DTYPE_FLOAT32) {
                std::memcpy(&pool[4 * i], &x, 4);
            } else {
                uint16_t h = dtype == SLAY_DTYPE_BFLOAT16 ? float_to_bf16(x) : float_to_half(x);
                std::memcpy(&pool[2 * i], &h, 2);
            }
        }
    }
    return pool;
}

// q or k (B, H, T, D) clustered: row x = sqrt(D) (c mu + sqrt(1 - c^2) g~),
// mu a unit direction per (b, h) shared by q and k (drawn from `seed`), g~
// the pool's Gaussian row (at `start`) with its mu component removed,
// normalized; so every row has norm sqrt(D), like a N(0, I) row on average,
// and cosine exactly c to mu. In the call's dtype, host memory.
std::vector<uint8_t> clustered_rows(const Shape& s, slay_dtype_t dtype, uint64_t seed, double c, size_t start) {
    const auto& pool = input_pool(seed, SLAY_DTYPE_FLOAT32);
    const float* g = reinterpret_cast<const float*>(pool.data());
    std::mt19937_64 rng(seed ^ 0x9e3779b97f4a7c15ull);
    std::normal_distribution<double> normal(0.0, 1.0);
    const size_t D = static_cast<size_t>(s.D), esz = dtype_size(dtype);
    std::vector<uint8_t> out(static_cast<size_t>(s.B * s.H * s.T) * D * esz);
    std::vector<double> mu(D), row(D);
    size_t at = start;
    for (int64_t bh = 0; bh < s.B * s.H; ++bh) {
        double n2 = 0;
        for (double& e : mu) {
            e = normal(rng);
            n2 += e * e;
        }
        for (double& e : mu) e /= std::sqrt(n2);
        for (int64_t t = 0; t < s.T; ++t) {
            double along = 0, perp2 = 0;
            for (size_t d = 0; d < D; ++d, at = (at + 1) % kPoolElements) {
                row[d] = g[at];
                along += row[d] * mu[d];
            }
            for (size_t d = 0; d < D; ++d) {
                row[d] -= along * mu[d];
                perp2 += row[d] * row[d];
            }
            const double a = std::sqrt(double(D)) * c, b = std::sqrt(double(D) * (1 - c * c) / perp2);
            for (size_t d = 0; d < D; ++d) {
                const float x = static_cast<float>(a * mu[d] + b * row[d]);
                uint8_t* dst = out.data() + ((static_cast<size_t>(bh * s.T + t)) * D + d) * esz;
                if (dtype == SLAY_DTYPE_FLOAT32) {
                    std::memcpy(dst, &x, 4);
                } else {
                    const uint16_t h = dtype == SLAY_DTYPE_BFLOAT16 ? float_to_bf16(x) : float_to_half(x);
                    std::memcpy(dst, &h, 2);
                }
            }
        }
    }
    return out;
}

// Makes the plan; attributes the variant does not read are skipped.
slay_attn_plan_t make_plan(slay_handle_t handle, const Config& c, const Shape& s) {
    slay_attn_variant_t variant;
    check_slay(slay_attn_variant_from_name(c.variant.c_str(), &variant), "variant");
    slay_attn_desc_t desc;
    check_slay(slay_attn_desc_create(&desc, variant), "slay_attn_desc_create");
    std::unique_ptr<slay_attn_desc_s, slay_status_t (*)(slay_attn_desc_t)> guard(desc, slay_attn_desc_destroy);
    auto set_i64 = [&](slay_attr_t attr, int64_t value, bool optional) {
        slay_status_t st = slay_attn_desc_set_i64(desc, attr, value);
        if (!(optional && st == SLAY_STATUS_ATTRIBUTE_NOT_APPLICABLE)) check_slay(st, slay_attr_name(attr));
    };
    set_i64(SLAY_ATTR_NUM_HEADS, s.H, false);
    set_i64(SLAY_ATTR_HEAD_DIM, s.D, false);
    set_i64(SLAY_ATTR_CAUSAL, c.causal ? 1 : 0, false);
    set_i64(SLAY_ATTR_IO_DTYPE, c.dtype, false);
    set_i64(SLAY_ATTR_ALLOW_TF32, c.allow_tf32 ? 1 : 0, false);
    if (c.R > 0) set_i64(SLAY_ATTR_NUM_QUAD_NODES, c.R, true);
    if (c.M > 0) set_i64(SLAY_ATTR_NUM_FEATURES, c.M, true);
    if (c.P > 0) set_i64(SLAY_ATTR_POLY_DIM, c.P, true);
    if (c.chunk > 0) set_i64(SLAY_ATTR_CHUNK_SIZE, c.chunk, true);
    slay_status_t st = slay_attn_desc_set_f64(desc, SLAY_ATTR_EPSILON, c.epsilon);
    if (st != SLAY_STATUS_ATTRIBUTE_NOT_APPLICABLE) check_slay(st, "epsilon");
    slay_attn_plan_t plan;
    check_slay(slay_attn_plan_create(&plan, handle, desc), "slay_attn_plan_create");
    return plan;
}

using PlanGuard = std::unique_ptr<slay_attn_plan_s, slay_status_t (*)(slay_attn_plan_t)>;

// Times a sequence of marks: CUDA events on the run's stream, or the host clock.
class Marks {
public:
    Marks(bool cuda, void* stream, int count) : cuda_(cuda), stream_(stream), events_(count), host_(count) {
        if (cuda_)
            for (auto& e : events_) check_cuda(cudaEventCreate(reinterpret_cast<cudaEvent_t*>(&e)), "cudaEventCreate");
    }
    ~Marks() {
        if (cuda_)
            for (auto e : events_) cudaEventDestroy(static_cast<cudaEvent_t>(e));
    }
    void mark(int i) {
        if (cuda_)
            check_cuda(cudaEventRecord(static_cast<cudaEvent_t>(events_[i]), static_cast<cudaStream_t>(stream_)),
                       "cudaEventRecord");
        else
            host_[i] = std::chrono::steady_clock::now();
    }
    // ms from mark a to mark b, after the last mark completed.
    double ms(int a, int b) {
        if (!cuda_) return std::chrono::duration<double, std::milli>(host_[b] - host_[a]).count();
        check_cuda(cudaEventSynchronize(static_cast<cudaEvent_t>(events_.back())), "cudaEventSynchronize");
        float out = 0;
        check_cuda(cudaEventElapsedTime(&out, static_cast<cudaEvent_t>(events_[a]), static_cast<cudaEvent_t>(events_[b])),
                   "cudaEventElapsedTime");
        return out;
    }

private:
    bool cuda_;
    void* stream_;
    std::vector<void*> events_;
    std::vector<std::chrono::steady_clock::time_point> host_;
};

std::string read_first_line(const char* path) {
    std::ifstream f(path);
    std::string line;
    std::getline(f, line);
    return line;
}

std::string version_string(int v) { return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10); }

}  // namespace

Stats stats_of(const std::vector<double>& v) {
    Stats s;
    if (v.empty()) return s;
    std::vector<double> sorted(v);
    std::sort(sorted.begin(), sorted.end());
    size_t n = sorted.size();
    s.median = n % 2 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);
    s.min = sorted.front();
    for (double x : v) s.mean += x / n;
    for (double x : v) s.std += (x - s.mean) * (x - s.mean) / n;
    s.std = std::sqrt(s.std);
    return s;
}

const char* dtype_name(slay_dtype_t dtype) {
    return dtype == SLAY_DTYPE_FLOAT32 ? "fp32" : dtype == SLAY_DTYPE_BFLOAT16 ? "bf16" : "fp16";
}

bool parse_dtype(const std::string& name, slay_dtype_t* dtype) {
    if (name == "fp32" || name == "float32") *dtype = SLAY_DTYPE_FLOAT32;
    else if (name == "bf16" || name == "bfloat16") *dtype = SLAY_DTYPE_BFLOAT16;
    else if (name == "fp16" || name == "float16") *dtype = SLAY_DTYPE_FLOAT16;
    else return false;
    return true;
}

std::string canonical_variant(const std::string& name) {
    slay_attn_variant_t v;
    if (slay_attn_variant_from_name(name.c_str(), &v) != SLAY_STATUS_SUCCESS) return "";
    return slay_attn_variant_name(v);
}

bool is_exact_variant(const std::string& variant) {
    return variant == "standard" || variant == "yat" || variant == "yat_spherical";
}

bool variant_uses(const std::string& variant, slay_attr_t attr) {
    slay_attn_variant_t v;
    slay_attn_desc_t desc;
    if (slay_attn_variant_from_name(variant.c_str(), &v) != SLAY_STATUS_SUCCESS) return false;
    if (slay_attn_desc_create(&desc, v) != SLAY_STATUS_SUCCESS) return false;
    bool used = slay_attn_desc_set_i64(desc, attr, 1) != SLAY_STATUS_ATTRIBUTE_NOT_APPLICABLE;
    slay_attn_desc_destroy(desc);
    return used;
}

Runner::Runner(slay_backend_t backend, int device) : backend_(backend), device_(device) {
    slay_status_t st = slay_handle_create(&handle_, backend, device);
    if (st != SLAY_STATUS_SUCCESS)
        throw std::runtime_error(std::string("slay_handle_create: ") + slay_status_name(st) + ": " +
                                 slay_last_error_message());
    if (backend == SLAY_BACKEND_CUDA) {
        check_cuda(cudaSetDevice(device), "cudaSetDevice");
        cudaStream_t s;
        check_cuda(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
        stream_ = s;
    }
}

Runner::~Runner() {
    if (stream_) cudaStreamDestroy(static_cast<cudaStream_t>(stream_));
    slay_handle_destroy(cpu_handle_);
    slay_handle_destroy(handle_);
}

DeviceInfo Runner::info() const {
    DeviceInfo d;
    char host[256] = {0};
    gethostname(host, sizeof host - 1);
    d.host = host;
    if (backend_ == SLAY_BACKEND_CPU) {
        d.backend = "cpu";
        std::ifstream f("/proc/cpuinfo");
        for (std::string line; std::getline(f, line);)
            if (line.rfind("model name", 0) == 0) {
                d.name = line.substr(line.find(':') + 2);
                break;
            }
        d.name += " (" + std::to_string(std::thread::hardware_concurrency()) + " threads)";
        d.total_memory = static_cast<uint64_t>(sysconf(_SC_PHYS_PAGES)) * static_cast<uint64_t>(sysconf(_SC_PAGE_SIZE));
        return d;
    }
    d.backend = "cuda";
    cudaDeviceProp p;
    if (cudaGetDeviceProperties(&p, device_) == cudaSuccess) {
        d.name = p.name;
        d.total_memory = p.totalGlobalMem;
        d.compute_capability = std::to_string(p.major) + "." + std::to_string(p.minor);
    }
    int v = 0;
    cudaRuntimeGetVersion(&v);
    d.cuda_runtime = version_string(v);
    cudaDriverGetVersion(&v);
    // "NVRM version: NVIDIA UNIX ... Kernel Module for x86_64  580.159.04  Release Build ...": the
    // kernel driver's version is its first token made of digits and dots.
    std::string kernel_version;
    std::istringstream words(read_first_line("/proc/driver/nvidia/version"));
    for (std::string w; kernel_version.empty() && words >> w;)
        if (w.find('.') != std::string::npos && w.find_first_not_of("0123456789.") == std::string::npos)
            kernel_version = w;
    d.driver = (kernel_version.empty() ? "" : kernel_version + ", ") + "CUDA driver API " + version_string(v);
    return d;
}

Measurement Runner::run(const Config& c, const Shape& s, const RunOptions& o) {
    const bool cuda = backend_ == SLAY_BACKEND_CUDA;
    Measurement m;
    try {
        size_t free_before = 0, free_after = 0, total = 0;
        if (cuda) check_cuda(cudaMemGetInfo(&free_before, &total), "cudaMemGetInfo");
        Allocations mem(cuda, o.memory_limit);
        PlanGuard plan(make_plan(handle_, c, s), slay_attn_plan_destroy);
        check_slay(slay_attn_plan_get_feature_dim(plan.get(), &m.feature_dim), "feature_dim");
        check_slay(slay_attn_plan_get_param_count(plan.get(), &m.param_count), "param_count");

        // Feature parameters: sampled on the run's backend, else on the CPU and copied.
        void* params = mem.get(static_cast<uint64_t>(m.param_count) * 4, "params");
        slay_tensor_t params_t = slay::vector_tensor(static_cast<float*>(params), m.param_count);
        m.params_sampled_on = "none";
        if (m.param_count > 0) {
            size_t ws_bytes = 0;
            check_slay(slay_attn_plan_get_workspace_size(plan.get(), SLAY_PASS_SAMPLE, 0, 0, &ws_bytes), "ws");
            void* ws = mem.get(ws_bytes, "sample workspace");
            slay_status_t st = slay_attn_features_sample(plan.get(), o.seed, 0, &params_t, ws, ws_bytes, stream_);
            mem.put(ws);
            m.params_sampled_on = cuda ? "cuda" : "cpu";
            if (st == SLAY_STATUS_NOT_SUPPORTED && cuda) {
                if (!cpu_handle_) check_slay(slay_handle_create(&cpu_handle_, SLAY_BACKEND_CPU, 0), "cpu handle");
                PlanGuard cpu_plan(make_plan(cpu_handle_, c, s), slay_attn_plan_destroy);
                std::vector<float> host(static_cast<size_t>(m.param_count));
                check_slay(slay_attn_plan_get_workspace_size(cpu_plan.get(), SLAY_PASS_SAMPLE, 0, 0, &ws_bytes), "ws");
                std::vector<uint8_t> cpu_ws(ws_bytes + 64);
                void* aligned = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(cpu_ws.data()) + 63) / 64 * 64);
                slay_tensor_t host_t = slay::vector_tensor(host.data(), m.param_count);
                check_slay(slay_attn_features_sample(cpu_plan.get(), o.seed, 0, &host_t, aligned, ws_bytes, nullptr),
                           "slay_attn_features_sample (cpu)");
                check_cuda(cudaMemcpy(params, host.data(), host.size() * 4, cudaMemcpyHostToDevice), "params copy");
                m.params_sampled_on = "cpu";
            } else {
                check_slay(st, "slay_attn_features_sample");
            }
        }
        mem.reset_peak();  // the sampling workspace is gone before the attention call
        m.param_bytes = static_cast<uint64_t>(m.param_count) * 4;

        // Tensors (Dv = D): q, k, v, out, and for the backward dout, dq, dk, dv.
        const uint64_t elems = static_cast<uint64_t>(s.B * s.H * s.T * s.D);
        const uint64_t tbytes = elems * dtype_size(c.dtype);
        const char* names[] = {"q", "k", "v", "out", "dout", "dq", "dk", "dv"};
        const int ntensors = o.backward ? 8 : 4;
        void* buf[8] = {nullptr};
        size_t fwd_ws = 0, bwd_ws = 0;
        check_slay(slay_attn_plan_get_workspace_size(plan.get(), SLAY_PASS_FORWARD, s.B, s.T, &fwd_ws), "ws");
        if (o.backward)
            check_slay(slay_attn_plan_get_workspace_size(plan.get(), SLAY_PASS_BACKWARD, s.B, s.T, &bwd_ws), "ws");
        m.workspace_bytes = std::max(fwd_ws, bwd_ws);
        m.tensor_bytes = tbytes * ntensors;
        m.forward_bytes = 4 * tbytes + m.param_bytes + fwd_ws;
        for (int i = 0; i < ntensors; ++i) buf[i] = mem.get(tbytes, names[i]);
        void* ws = mem.get(m.workspace_bytes, "workspace");

        const auto& pool = input_pool(o.seed, c.dtype);
        const size_t esz = dtype_size(c.dtype);
        for (int i : {0, 1, 2, 4}) {  // q, k, v, dout: different starting points in the pool
            if (i >= ntensors) continue;
            size_t start = (static_cast<size_t>(i) * 1000003u) % kPoolElements;
            if (o.cluster_cos > 0 && i < 2) {
                const std::vector<uint8_t> rows = clustered_rows(s, c.dtype, o.seed, o.cluster_cos, start);
                if (cuda)
                    check_cuda(cudaMemcpy(buf[i], rows.data(), rows.size(), cudaMemcpyHostToDevice), "fill");
                else
                    std::memcpy(buf[i], rows.data(), rows.size());
                continue;
            }
            for (uint64_t done = 0; done < elems;) {
                size_t n = std::min<uint64_t>(elems - done, kPoolElements - start);
                uint8_t* dst = static_cast<uint8_t*>(buf[i]) + done * esz;
                if (cuda)
                    check_cuda(cudaMemcpy(dst, pool.data() + start * esz, n * esz, cudaMemcpyHostToDevice), "fill");
                else
                    std::memcpy(dst, pool.data() + start * esz, n * esz);
                done += n;
                start = 0;
            }
        }

        slay_tensor_t t[8];
        for (int i = 0; i < ntensors; ++i) t[i] = slay::tensor_bhtd(buf[i], s.B, s.H, s.T, s.D, c.dtype);
        slay_attn_fwd_args_t fa;
        std::memset(&fa, 0, sizeof fa);
        fa.struct_size = sizeof fa;
        fa.q = &t[0], fa.k = &t[1], fa.v = &t[2], fa.out = &t[3];
        fa.params = m.param_count ? &params_t : nullptr;
        slay_attn_bwd_args_t ba;
        std::memset(&ba, 0, sizeof ba);
        ba.struct_size = sizeof ba;
        ba.q = &t[0], ba.k = &t[1], ba.v = &t[2], ba.out = &t[3], ba.params = fa.params;
        if (o.backward) ba.dout = &t[4], ba.dq = &t[5], ba.dk = &t[6], ba.dv = &t[7];

        Marks marks(cuda, stream_, 3);
        auto once = [&](bool timed) {
            if (timed) marks.mark(0);
            check_slay(slay_attn_fwd(plan.get(), &fa, ws, m.workspace_bytes, stream_), "slay_attn_fwd");
            if (timed) marks.mark(1);
            if (o.backward) check_slay(slay_attn_bwd(plan.get(), &ba, ws, m.workspace_bytes, stream_), "slay_attn_bwd");
            if (timed) marks.mark(2);
        };
        once(false);  // the checked first call
        if (cuda) {
            check_cuda(cudaStreamSynchronize(static_cast<cudaStream_t>(stream_)), "first call");
            check_cuda(cudaMemGetInfo(&free_after, &total), "cudaMemGetInfo");
            m.meminfo_delta = static_cast<int64_t>(free_before) - static_cast<int64_t>(free_after);
        }
        for (int i = 0; i < o.warmup; ++i) once(false);
        for (int i = 0; i < o.repeats; ++i) {
            once(true);
            double f = marks.ms(0, 1), total_ms = marks.ms(0, 2);
            m.fwd_ms.push_back(f);
            m.total_ms.push_back(total_ms);
            if (o.backward) m.bwd_ms.push_back(marks.ms(1, 2));
        }
        m.peak_bytes = mem.peak();
        if (o.keep_output) {
            std::vector<uint8_t> raw(tbytes);
            if (cuda)
                check_cuda(cudaMemcpy(raw.data(), buf[3], tbytes, cudaMemcpyDeviceToHost), "output copy");
            else
                std::memcpy(raw.data(), buf[3], tbytes);
            m.output.resize(elems);
            for (uint64_t i = 0; i < elems; ++i) {
                if (c.dtype == SLAY_DTYPE_FLOAT32) {
                    std::memcpy(&m.output[i], &raw[4 * i], 4);
                } else {
                    uint16_t h;
                    std::memcpy(&h, &raw[2 * i], 2);
                    m.output[i] = c.dtype == SLAY_DTYPE_BFLOAT16 ? bf16_to_float(h) : half_to_float(h);
                }
            }
        }
    } catch (const OutOfMemory& e) {
        m.status = "OOM";
        m.message = e.what();
    } catch (const NotSupported& e) {
        m.status = "NOT_SUPPORTED";
        m.message = e.what();
    } catch (const std::exception& e) {
        m.status = "ERROR";
        m.message = e.what();
    }
    if (cuda && m.status != "ok") cudaStreamSynchronize(static_cast<cudaStream_t>(stream_));
    return m;
}

}  // namespace bench
