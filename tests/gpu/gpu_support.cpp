// gpu_support.cpp -- the GPU test harness (see gpu_support.hpp): CPU and
// device runs of one case through the public ABI, and the relative L2 errors
// of q, k (B, H, T, D) / v, out (B, H, T, Dv) / state (B, H, F, Dv+1) outputs.
#include "gpu_support.hpp"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <sstream>
#include <stdexcept>

namespace slay_gpu {
namespace {

Env g_env;
int g_env_state = -1;  // -1 not opened, else open_env's answer
std::string g_env_why;

void cuda_ok(cudaError_t e, const char* what) {
    if (e != cudaSuccess)
        throw std::runtime_error(std::string(what) + " failed: " + cudaGetErrorName(e) + ": " + cudaGetErrorString(e));
}

cudaStream_t device_stream() { return static_cast<cudaStream_t>(g_env.stream); }

bool emulated_from_environment() {
    const char* e = std::getenv("SLAY_GPU_TEST_EMULATE");
    return e && *e && std::strcmp(e, "0") != 0;
}

CallStatus status_of(slay_status_t s, const char* call) {
    CallStatus c;
    c.status = s;
    if (s != SLAY_STATUS_SUCCESS)
        c.message = std::string(call) + ": " + slay_status_name(s) + ": " + slay_last_error_message();
    return c;
}

// ------------------------------------------------------------- dtype bits

uint32_t bits_of(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
}
float float_of(uint32_t u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

uint16_t to_bf16(float f) {
    const uint32_t u = bits_of(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN
    const uint32_t rounding = 0x7fffu + ((u >> 16) & 1u);  // round to nearest even
    return static_cast<uint16_t>((u + rounding) >> 16);
}
float from_bf16(uint16_t b) { return float_of(static_cast<uint32_t>(b) << 16); }

float from_fp16(uint16_t h) {
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ffu;
    if (exp == 0x1f) return float_of(sign | 0x7f800000u | (mant << 13));  // inf / NaN
    if (exp == 0) {  // zero or subnormal: mant * 2^-24
        const float v = std::ldexp(static_cast<float>(mant), -24);
        return sign ? -v : v;
    }
    return float_of(sign | ((exp + 112) << 23) | (mant << 13));
}

uint16_t to_fp16(float f) {
    const uint32_t u = bits_of(f);
    const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
    const float a = std::fabs(f);
    if (std::isnan(f)) return static_cast<uint16_t>(sign | 0x7e00u);
    if (a >= 65520.0f) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to inf
    if (a < std::ldexp(1.0f, -14)) {
        // Subnormal range: the value in units of 2^-24, rounded to nearest
        // even (nearbyint under the default rounding mode).
        const float units = std::nearbyint(a * std::ldexp(1.0f, 24));
        return static_cast<uint16_t>(sign | static_cast<uint16_t>(units));
    }
    const uint32_t au = bits_of(a);
    uint32_t exp = ((au >> 23) & 0xff) - 112, mant = au & 0x7fffffu;
    uint32_t half = (exp << 10) | (mant >> 13);
    const uint32_t rest = mant & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (half & 1u))) ++half;  // may carry into exp: still right
    return static_cast<uint16_t>(sign | half);
}

void store(unsigned char* base, slay_dtype_t t, int64_t i, float x) {
    switch (t) {
        case SLAY_DTYPE_FLOAT32: std::memcpy(base + 4 * i, &x, 4); break;
        case SLAY_DTYPE_BFLOAT16: {
            const uint16_t b = to_bf16(x);
            std::memcpy(base + 2 * i, &b, 2);
            break;
        }
        default: {
            const uint16_t h = to_fp16(x);
            std::memcpy(base + 2 * i, &h, 2);
            break;
        }
    }
}

double load(const unsigned char* base, slay_dtype_t t, int64_t i) {
    switch (t) {
        case SLAY_DTYPE_FLOAT32: {
            float x;
            std::memcpy(&x, base + 4 * i, 4);
            return x;
        }
        case SLAY_DTYPE_BFLOAT16: {
            uint16_t b;
            std::memcpy(&b, base + 2 * i, 2);
            return from_bf16(b);
        }
        default: {
            uint16_t h;
            std::memcpy(&h, base + 2 * i, 2);
            return from_fp16(h);
        }
    }
}

// ------------------------------------------------------------ tensor views

// Element strides of a logical (B, H, T, C) tensor in the given layout.
void strides_of(Layout l, int64_t H, int64_t T, int64_t C, int64_t st[4]) {
    if (l == Layout::BHTD) {
        st[0] = H * T * C, st[1] = T * C, st[2] = C, st[3] = 1;
    } else {
        st[0] = T * H * C, st[1] = C, st[2] = H * C, st[3] = 1;
    }
}

slay_tensor_t view4(const Buffer& buf, slay_dtype_t dtype, int64_t B, int64_t H, int64_t T, int64_t C, Layout l) {
    slay_tensor_t t;
    std::memset(&t, 0, sizeof t);
    t.data = buf.get();
    t.dtype = dtype;
    t.rank = 4;
    t.shape[0] = B, t.shape[1] = H, t.shape[2] = T, t.shape[3] = C;
    strides_of(l, H, T, C, t.strides);
    return t;
}


// A logical (B, H, T, C) tensor on a side: values encoded in the dtype and
// laid out per the layout (encode) or read back as fp64 (decode).
struct Tensor4 {
    Buffer buf;
    slay_tensor_t view;
    slay_dtype_t dtype;
    int64_t B, H, T, C;
    Layout layout;

    Tensor4(Side side, slay_dtype_t t, int64_t b, int64_t h, int64_t tt, int64_t c, Layout l)
        : buf(side, static_cast<size_t>(b * h * tt * c) * dtype_bytes(t)), dtype(t), B(b), H(h), T(tt), C(c),
          layout(l) {
        view = view4(buf, dtype, B, H, T, C, layout);
    }
    int64_t numel() const { return B * H * T * C; }
    template <typename Real>
    void encode(const std::vector<Real>& logical) {
        std::vector<unsigned char> bytes(buf.size());
        for_each_element([&](size_t i, int64_t at) { store(bytes.data(), dtype, at, static_cast<float>(logical[i])); });
        buf.upload(bytes.data(), bytes.size());
    }
    std::vector<double> decode() const {
        const std::vector<unsigned char> bytes = buf.bytes();
        std::vector<double> logical(static_cast<size_t>(numel()));
        for_each_element([&](size_t i, int64_t at) { logical[i] = load(bytes.data(), dtype, at); });
        return logical;
    }

    // Calls f(i, at) for every element in row-major logical order: i its
    // logical index, at its element offset in memory under the layout.
    template <typename F>
    void for_each_element(const F& f) const {
        int64_t st[4];
        strides_of(layout, H, T, C, st);
        size_t i = 0;
        for (int64_t b = 0; b < B; ++b)
            for (int64_t h = 0; h < H; ++h)
                for (int64_t t = 0; t < T; ++t)
                    for (int64_t c = 0; c < C; ++c, ++i) f(i, b * st[0] + h * st[1] + t * st[2] + c);
    }
};

// A side's workspace for one pass, sized by that side's plan.
CallStatus make_workspace(Side side, const Plans& plans, slay_pass_t pass, int64_t B, int64_t T, Buffer* ws) {
    size_t bytes = 0;
    CallStatus s = status_of(slay_attn_plan_get_workspace_size(plans.on(side), pass, B, T, &bytes),
                             "slay_attn_plan_get_workspace_size");
    if (!s.ok()) return s;
    *ws = Buffer(side, bytes);
    ws->poison();  // contents on entry must not matter
    return s;
}

void* stream_for(Side side) { return side == Side::Device ? g_env.stream : nullptr; }

bool has_state(const Plans& p) { return p.features > 0; }

}  // namespace

// A rank-1 fp32 view of n elements of buf (feature parameters).
slay_tensor_t view1(const Buffer& buf, int64_t n) {
    slay_tensor_t t;
    std::memset(&t, 0, sizeof t);
    t.data = buf.get();
    t.dtype = SLAY_DTYPE_FLOAT32;
    t.rank = 1;
    t.shape[0] = n;
    t.strides[0] = 1;
    return t;
}

// ------------------------------------------------------------- environment

int open_env(std::string* why) {
    if (g_env_state >= 0) {
        if (why) *why = g_env_why;
        return g_env_state;
    }
    g_env_state = 1;
    if (slay_handle_create(&g_env.cpu, SLAY_BACKEND_CPU, 0) != SLAY_STATUS_SUCCESS) {
        g_env_why = std::string("CPU handle: ") + slay_last_error_message();
    } else if (emulated_from_environment()) {
        g_env.emulated = true;
        if (slay_handle_create(&g_env.device, SLAY_BACKEND_CPU, 0) == SLAY_STATUS_SUCCESS) {
            g_env_state = 0;
            g_env_why = "SLAY_GPU_TEST_EMULATE: the device side is a CPU handle";
        } else {
            g_env_why = std::string("second CPU handle: ") + slay_last_error_message();
        }
    } else {
        const slay_status_t s = slay_handle_create(&g_env.device, SLAY_BACKEND_CUDA, 0);
        if (s == SLAY_STATUS_NO_DEVICE) {
            g_env_state = 77;
            g_env_why = std::string("no CUDA device: ") + slay_last_error_message();
        } else if (s != SLAY_STATUS_SUCCESS) {
            g_env_why = std::string("CUDA handle: ") + slay_status_name(s) + ": " + slay_last_error_message();
        } else {
            // A non-blocking stream: it does not synchronize with the legacy
            // default stream, so a library call that wrongly used that stream
            // would race with the harness's copies instead of hiding.
            cudaStream_t st = nullptr;
            const cudaError_t e = cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking);
            if (e != cudaSuccess) {
                g_env_why = std::string("cudaStreamCreate: ") + cudaGetErrorString(e);
            } else {
                g_env.stream = st;
                g_env_state = 0;
            }
        }
    }
    if (why) *why = g_env_why;
    return g_env_state;
}

namespace {

std::vector<slay_attn_variant_t> variants_of_family(bool exact) {
    slay_handle_t cpu = nullptr;
    if (slay_handle_create(&cpu, SLAY_BACKEND_CPU, 0) != SLAY_STATUS_SUCCESS)
        throw std::runtime_error("variants_of_family: no CPU handle");
    std::vector<slay_attn_variant_t> out;
    for (int v = 0; v < SLAY_ATTN_VARIANT_COUNT_; ++v) {
        slay_attn_desc_t desc = nullptr;
        slay_attn_plan_t plan = nullptr;
        int64_t F = -1;
        if (slay_attn_desc_create(&desc, static_cast<slay_attn_variant_t>(v)) == SLAY_STATUS_SUCCESS &&
            slay_attn_plan_create(&plan, cpu, desc) == SLAY_STATUS_SUCCESS)
            slay_attn_plan_get_feature_dim(plan, &F);
        slay_attn_plan_destroy(plan);
        slay_attn_desc_destroy(desc);
        if (F < 0) throw std::runtime_error("variants_of_family: no default plan of variant " + std::to_string(v));
        if ((F == 0) == exact) out.push_back(static_cast<slay_attn_variant_t>(v));
    }
    slay_handle_destroy(cpu);
    return out;
}

}  // namespace

std::vector<slay_attn_variant_t> exact_variants() { return variants_of_family(true); }
std::vector<slay_attn_variant_t> linearized_variants() { return variants_of_family(false); }

Env& env() {
    if (g_env_state != 0) throw std::runtime_error("slay_gpu::env() used before open_env succeeded");
    return g_env;
}

// ----------------------------------------------------------- device memory

const char* side_name(Side s) { return s == Side::Cpu ? "cpu" : "device"; }

Buffer::Buffer(Side side, size_t bytes) : bytes_(bytes) {
    device_ = side == Side::Device && !g_env.emulated;
    if (bytes == 0) return;
    if (device_) {
        cuda_ok(cudaMalloc(&ptr_, bytes), "cudaMalloc");
    } else {
        // 64-byte alignment (the ABI asks for 16) and a whole number of lines.
        ptr_ = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
        if (!ptr_) throw std::runtime_error("aligned_alloc failed");
    }
}

Buffer::~Buffer() { release(); }

void Buffer::release() {
    if (!ptr_) return;
    if (device_)
        cudaFree(ptr_);
    else
        std::free(ptr_);
    ptr_ = nullptr;
}

Buffer::Buffer(Buffer&& o) noexcept : ptr_(o.ptr_), bytes_(o.bytes_), device_(o.device_) {
    o.ptr_ = nullptr;
    o.bytes_ = 0;
}

Buffer& Buffer::operator=(Buffer&& o) noexcept {
    if (this != &o) {
        release();
        ptr_ = o.ptr_, bytes_ = o.bytes_, device_ = o.device_;
        o.ptr_ = nullptr;
        o.bytes_ = 0;
    }
    return *this;
}

namespace {

// A copy of `bytes` between host memory and a buffer of `capacity` bytes:
// a memcpy for a CPU buffer, else a copy on the harness stream, which orders
// it after the library's kernels on that stream, waited for so the host side
// may be used (or freed) at once.
void buffer_copy(void* dst, const void* src, size_t bytes, size_t capacity, bool device, cudaMemcpyKind kind,
                 const char* too_large, const char* what) {
    if (bytes > capacity) throw std::runtime_error(too_large);
    if (bytes == 0) return;
    if (!device) {
        std::memcpy(dst, src, bytes);
        return;
    }
    cuda_ok(cudaMemcpyAsync(dst, src, bytes, kind, device_stream()), what);
    cuda_ok(cudaStreamSynchronize(device_stream()), "cudaStreamSynchronize");
}

}  // namespace

void Buffer::upload(const void* host, size_t bytes) {
    buffer_copy(ptr_, host, bytes, bytes_, device_, cudaMemcpyHostToDevice, "Buffer::upload larger than the buffer",
                "cudaMemcpyAsync(H2D)");
}

void Buffer::download(void* host, size_t bytes) const {
    buffer_copy(host, ptr_, bytes, bytes_, device_, cudaMemcpyDeviceToHost, "Buffer::download larger than the buffer",
                "cudaMemcpyAsync(D2H)");
}

std::vector<unsigned char> Buffer::bytes() const {
    std::vector<unsigned char> b(bytes_);
    download(b.data(), bytes_);
    return b;
}

void Buffer::fill(unsigned char byte) {
    if (bytes_ == 0) return;
    if (!device_) {
        std::memset(ptr_, byte, bytes_);
        return;
    }
    cuda_ok(cudaMemsetAsync(ptr_, byte, bytes_, device_stream()), "cudaMemsetAsync");
    cuda_ok(cudaStreamSynchronize(device_stream()), "cudaStreamSynchronize");
}

void sync_device() {
    if (g_env.stream) cuda_ok(cudaStreamSynchronize(device_stream()), "cudaStreamSynchronize");
}

void sync_whole_device() {
    if (g_env.stream) cuda_ok(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
}

// ------------------------------------------------------------------ dtypes

size_t dtype_bytes(slay_dtype_t t) { return t == SLAY_DTYPE_FLOAT32 ? 4 : 2; }

const char* dtype_label(slay_dtype_t t) {
    switch (t) {
        case SLAY_DTYPE_FLOAT32: return "fp32";
        case SLAY_DTYPE_BFLOAT16: return "bf16";
        case SLAY_DTYPE_FLOAT16: return "fp16";
        default: return "?";
    }
}

float round_to(slay_dtype_t t, float x) {
    unsigned char b[4];
    store(b, t, 0, x);
    return static_cast<float>(load(b, t, 0));
}

// -------------------------------------------------------------------- cases

double tol_for(slay_dtype_t t) { return t == SLAY_DTYPE_FLOAT32 ? 1e-5 : 2e-2; }

Case base_case(slay_attn_variant_t v, int64_t T, bool causal, slay_dtype_t dtype, int64_t head_dim) {
    Case c;
    c.variant = v;
    c.batch = 2;
    c.heads = 2;
    c.seq_len = T;
    c.head_dim = head_dim;
    c.causal = causal;
    c.dtype = dtype;
    c.input_seed = static_cast<uint64_t>(T * 131 + v * 7 + (causal ? 1 : 0) + dtype * 3);
    return c;
}

int64_t Case::tokens() const {
    int64_t n = 0;
    for (int64_t t : seq_lengths) n += t;
    return packed() ? n : seq_len;
}

int64_t Case::longest() const {
    int64_t n = 0;
    for (int64_t t : seq_lengths) n = std::max(n, t);
    return packed() ? n : seq_len;
}

std::vector<int64_t> Case::offsets() const {
    std::vector<int64_t> o(1, 0);
    for (int64_t t : seq_lengths) o.push_back(o.back() + t);
    return o;
}

std::string Case::label() const {
    std::ostringstream s;
    s << slay_attn_variant_name(variant) << (causal ? " causal " : " bidir ") << dtype_label(dtype)
      << (layout == Layout::BHTD ? " BHTD" : " BTHD") << " B=" << batch << " H=" << heads << " T=" << seq_len
      << " D=" << head_dim << " Dv=" << dv();
    for (const Attr& a : attrs) {
        s << " " << slay_attr_name(a.attr) << "=";
        if (a.is_f64)
            s << a.f;
        else
            s << a.i;
    }
    if (initial_state) s << " +init";
    if (final_state) s << " +final";
    if (dfinal_state) s << " +dfinal";
    if (dinitial_state) s << " +dinit";
    if (position_offset) s << " pos=" << position_offset;
    if (cluster_noise > 0) s << " clustered(noise=" << cluster_noise << ")";
    if (kv_heads) s << " H_kv=" << kv_heads;
    if (packed()) {
        s << " packed" << (offsets_int32 ? "(int32)" : "(int64)") << "[";
        for (size_t i = 0; i < seq_lengths.size(); ++i) s << (i ? "," : "") << seq_lengths[i];
        s << "]";
    }
    return s.str();
}

Made make_desc(const Case& c, slay_test::Desc* desc) {
    Made m;
    slay_attn_desc_t d = nullptr;
    auto fail = [&](slay_status_t s, const std::string& what) {
        m.status = s;
        m.message = what + ": " + slay_status_name(s) + ": " + slay_last_error_message();
        return m;
    };
    slay_status_t s = slay_attn_desc_create(&d, c.variant);
    if (s != SLAY_STATUS_SUCCESS) return fail(s, "slay_attn_desc_create");
    *desc = slay_test::Desc(d);
    const Attr base[] = {attr_i64(SLAY_ATTR_NUM_HEADS, c.heads), attr_i64(SLAY_ATTR_HEAD_DIM, c.head_dim),
                         attr_i64(SLAY_ATTR_VALUE_DIM, c.value_dim), attr_i64(SLAY_ATTR_CAUSAL, c.causal ? 1 : 0),
                         attr_i64(SLAY_ATTR_IO_DTYPE, c.dtype)};
    std::vector<Attr> all(base, base + 5);
    if (c.kv_heads) all.push_back(attr_i64(SLAY_ATTR_NUM_KV_HEADS, c.kv_heads));
    all.insert(all.end(), c.attrs.begin(), c.attrs.end());
    for (const Attr& a : all) {
        s = a.is_f64 ? slay_attn_desc_set_f64(d, a.attr, a.f) : slay_attn_desc_set_i64(d, a.attr, a.i);
        if (s != SLAY_STATUS_SUCCESS) return fail(s, std::string("set ") + slay_attr_name(a.attr));
    }
    return m;
}

Made make_plans(const Case& c, Plans* p) {
    Made m;
    slay_test::Desc desc;
    m = make_desc(c, &desc);
    if (!m.ok()) return m;
    auto fail = [&](slay_status_t s, const char* what) {
        m.status = s;
        m.message = std::string(what) + ": " + slay_status_name(s) + ": " + slay_last_error_message();
        return m;
    };
    slay_attn_plan_t raw = nullptr;
    slay_status_t s = slay_attn_plan_create(&raw, env().cpu, desc);
    if (s != SLAY_STATUS_SUCCESS) return fail(s, "slay_attn_plan_create(cpu)");
    p->cpu = slay_test::Plan(raw);
    raw = nullptr;
    s = slay_attn_plan_create(&raw, env().device, desc);
    if (s != SLAY_STATUS_SUCCESS) return fail(s, "slay_attn_plan_create(device)");
    p->device = slay_test::Plan(raw);
    if ((s = slay_attn_plan_get_feature_dim(p->cpu, &p->features)) != SLAY_STATUS_SUCCESS)
        return fail(s, "slay_attn_plan_get_feature_dim");
    if ((s = slay_attn_plan_get_param_count(p->cpu, &p->param_count)) != SLAY_STATUS_SUCCESS)
        return fail(s, "slay_attn_plan_get_param_count");
    p->params.assign(static_cast<size_t>(p->param_count), 0.0f);
    p->params_cpu = Buffer(Side::Cpu, p->params.size() * sizeof(float));
    p->params_device = Buffer(Side::Device, p->params.size() * sizeof(float));
    if (p->param_count > 0) {
        size_t ws_bytes = 0;
        if ((s = slay_attn_plan_get_workspace_size(p->cpu, SLAY_PASS_SAMPLE, 0, 0, &ws_bytes)) != SLAY_STATUS_SUCCESS)
            return fail(s, "slay_attn_plan_get_workspace_size(SAMPLE)");
        Buffer ws(Side::Cpu, ws_bytes);
        const slay_tensor_t t = view1(p->params_cpu, p->param_count);
        s = slay_attn_features_sample(p->cpu, c.param_seed, c.param_offset, &t, ws.get(), ws.size(), nullptr);
        if (s != SLAY_STATUS_SUCCESS) return fail(s, "slay_attn_features_sample(cpu)");
        p->params_cpu.download(p->params.data(), p->params.size() * sizeof(float));
        p->params_device.upload(p->params.data(), p->params.size() * sizeof(float));
    }
    return m;
}

// ------------------------------------------------------------------ inputs

Inputs make_inputs(const Case& c, int64_t F) {
    std::mt19937_64 rng(c.input_seed * 0x9E3779B97F4A7C15ull + 17);
    std::normal_distribution<double> normal(0.0, 1.0);
    const int64_t B = c.tensor_batch(), H = c.heads, Hkv = c.kvh(), T = c.tokens(), D = c.head_dim, Dv = c.dv();
    // Never zeros: a draw that rounds to 0 in the dtype is redrawn, so an
    // output wrongly left at zero can not pass by accident.
    auto draw = [&](int64_t n, double sd) {
        std::vector<float> x(static_cast<size_t>(n));
        for (float& e : x) {
            do e = round_to(c.dtype, static_cast<float>(sd * normal(rng)));
            while (e == 0.0f);
        }
        return x;
    };
    Inputs in;
    if (c.cluster_noise > 0) {
        // One centre mu per (b, key/value head), shared by the query heads
        // of its group (without grouped heads: one per (b, h)); q and k
        // tokens scattered around their head's centre.
        const std::vector<float> mu = draw(B * Hkv * D, c.input_scale);
        auto around = [&](int64_t heads) {
            const int64_t per_centre = heads / Hkv;  // q: the group size G; k: 1
            std::vector<float> x(static_cast<size_t>(B * heads * T * D));
            for (int64_t bh = 0; bh < B * heads; ++bh)
                for (int64_t t = 0; t < T; ++t)
                    for (int64_t d = 0; d < D; ++d) {
                        const int64_t centre = (bh / heads) * Hkv + (bh % heads) / per_centre;
                        float& e = x[static_cast<size_t>((bh * T + t) * D + d)];
                        do e = round_to(c.dtype, static_cast<float>(mu[static_cast<size_t>(centre * D + d)] +
                                                                    c.cluster_noise * c.input_scale * normal(rng)));
                        while (e == 0.0f);
                    }
            return x;
        };
        in.q = around(H);
        in.k = around(Hkv);
    } else {
        in.q = draw(B * H * T * D, c.input_scale);
        in.k = draw(B * Hkv * T * D, c.input_scale);
    }
    in.v = draw(B * Hkv * T * Dv, 1.0);
    in.dout = draw(B * H * T * Dv, 1.0);
    if (F > 0) {
        const int64_t S = c.sequences() * H * F * (Dv + 1);
        in.initial_state.resize(static_cast<size_t>(S));
        in.dfinal_state.resize(static_cast<size_t>(S));
        for (int64_t i = 0; i < S; ++i) {
            const bool z_column = i % (Dv + 1) == Dv;
            in.initial_state[static_cast<size_t>(i)] = z_column ? 0.5f : static_cast<float>(0.1 * normal(rng));
            in.dfinal_state[static_cast<size_t>(i)] = static_cast<float>(0.1 * normal(rng));
        }
    }
    return in;
}

namespace {

// The named segment of a plan's parameter vector (offset and shape), or
// offset -1 when the plan has none of that name.
slay_param_segment_t find_segment(slay_attn_plan_t plan, const char* name) {
    slay_param_segment_t seg;
    std::memset(&seg, 0, sizeof seg);
    seg.offset = -1;
    int32_t n = 0;
    if (slay_attn_plan_get_param_segment_count(plan, &n) != SLAY_STATUS_SUCCESS) return seg;
    for (int32_t i = 0; i < n; ++i) {
        slay_param_segment_t s;
        std::memset(&s, 0, sizeof s);
        s.struct_size = sizeof s;
        if (slay_attn_plan_get_param_segment(plan, i, &s) == SLAY_STATUS_SUCCESS && std::strcmp(s.name, name) == 0)
            return s;
    }
    return seg;
}

// Redraws (N(0, scale^2) per element, rounded to the dtype, never 0) every
// token of x (B*x_heads rows of T tokens of D) that lies within
// 1e-4 |w_m| |x| of a relu kink w_m . x = 0 of the performer_w (H, D, M) of
// a query head that reads it (x_heads < H: a key head serves a group);
// returns how many tokens were redrawn.
int64_t avoid_relu_kinks(const Case& c, const std::vector<float>& params, const slay_param_segment_t& w_seg,
                         std::mt19937_64& rng, int64_t x_heads, std::vector<float>* x) {
    const int64_t T = c.tokens(), D = c.head_dim, M = w_seg.shape[2], group = c.heads / x_heads;
    std::normal_distribution<double> normal(0.0, 1.0);
    const float* W = params.data() + w_seg.offset;
    int64_t redrawn = 0;
    auto near_kink_of = [&](const float* tok, int64_t h) {
        double xx = 0;
        for (int64_t d = 0; d < D; ++d) xx += double(tok[d]) * tok[d];
        for (int64_t m = 0; m < M; ++m) {
            double pre = 0, ww = 0;
            for (int64_t d = 0; d < D; ++d) {
                const double w = W[(h * D + d) * M + m];
                pre += w * tok[d];
                ww += w * w;
            }
            if (std::fabs(pre) < 1e-4 * std::sqrt(ww * xx)) return true;
        }
        return false;
    };
    auto near_kink = [&](const float* tok, int64_t x_head) {
        for (int64_t g = 0; g < group; ++g)
            if (near_kink_of(tok, x_head * group + g)) return true;
        return false;
    };
    for (int64_t bh = 0; bh < c.tensor_batch() * x_heads; ++bh)
        for (int64_t t = 0; t < T; ++t) {
            float* tok = x->data() + (bh * T + t) * D;
            bool redraw = near_kink(tok, bh % x_heads);
            redrawn += redraw ? 1 : 0;
            for (; redraw; redraw = near_kink(tok, bh % x_heads))
                for (int64_t d = 0; d < D; ++d) {
                    do tok[d] = round_to(c.dtype, static_cast<float>(c.input_scale * normal(rng)));
                    while (tok[d] == 0.0f);
                }
        }
    return redrawn;
}

}  // namespace

Inputs make_case_inputs(const Case& c, const Plans& plans) {
    Inputs in;
    if (c.cluster_noise > 0 && c.initial_state && plans.features > 0 && c.packed()) {
        // As below, per sequence: the final states of a packed call of
        // 16-token prefixes around the same centres (the same seed draws the
        // same mu first) start the sequences.
        Case pre = c;
        pre.seq_lengths.assign(c.seq_lengths.size(), 16);
        pre.initial_state = false;
        pre.final_state = true;
        Outputs po;
        const CallStatus s = run_forward(Side::Cpu, plans, pre, make_inputs(pre, plans.features), &po);
        if (!s.ok()) throw std::runtime_error("make_case_inputs: clustered prefix states: " + s.message);
        in = make_inputs(c, plans.features);
        in.initial_state.assign(po.final_state.begin(), po.final_state.end());
    } else if (c.cluster_noise > 0 && c.initial_state && plans.features > 0) {
        // A random initial state would add phi(q_i).z0 of either sign to
        // every Z_i of a signed map; the state of a clustered prefix of the
        // same sequence (same mu) keeps Z_i positive.
        const int64_t prefix = 16;
        Case longer = c;
        longer.seq_len = c.seq_len + prefix;
        const Inputs all = make_inputs(longer, plans.features);
        Case pre = c;
        pre.seq_len = prefix;
        pre.initial_state = false;
        pre.final_state = true;
        Outputs po;
        const CallStatus s = run_forward(Side::Cpu, plans, pre, slice_time(all, longer, 0, prefix), &po);
        if (!s.ok()) throw std::runtime_error("make_case_inputs: clustered prefix state: " + s.message);
        in = slice_time(all, longer, prefix, longer.seq_len);
        in.initial_state.assign(po.final_state.begin(), po.final_state.end());
    } else {
        in = make_inputs(c, plans.features);
    }
    if (c.variant == SLAY_ATTN_PERFORMER && plans.param_count > 0) {
        const slay_param_segment_t w = find_segment(plans.cpu, "performer_w");
        if (w.offset < 0 || w.rank != 3) throw std::runtime_error("performer plan without an (H, D, M) performer_w");
        std::mt19937_64 rng(c.input_seed * 0x2545F4914F6CDD1Dull + 29);
        avoid_relu_kinks(c, plans.params, w, rng, c.heads, &in.q);
        avoid_relu_kinks(c, plans.params, w, rng, c.kvh(), &in.k);
    }
    return in;
}

Inputs slice_time(const Inputs& in, const Case& c, int64_t t0, int64_t t1) {
    if (c.packed()) throw std::runtime_error("slice_time: a packed case has no common time axis");
    const int64_t T = c.seq_len, n = t1 - t0;
    auto cut = [&](const std::vector<float>& x, int64_t C) {
        const int64_t BH = T * C > 0 ? static_cast<int64_t>(x.size()) / (T * C) : 0;  // q: B*H rows; k, v: B*H_kv
        std::vector<float> y(static_cast<size_t>(BH * n * C));
        for (int64_t bh = 0; bh < BH; ++bh)
            std::copy(x.begin() + (bh * T + t0) * C, x.begin() + (bh * T + t1) * C, y.begin() + bh * n * C);
        return y;
    };
    Inputs out;
    out.q = cut(in.q, c.head_dim);
    out.k = cut(in.k, c.head_dim);
    out.v = cut(in.v, c.dv());
    out.dout = cut(in.dout, c.dv());
    out.initial_state = in.initial_state;
    out.dfinal_state = in.dfinal_state;
    return out;
}

// ------------------------------------------------------------------- runs

namespace {

// Decodes a contiguous fp32 (B, H, F, Dv+1) state buffer.
std::vector<double> decode_state(const Buffer& b) {
    std::vector<float> f(b.size() / sizeof(float));
    b.download(f.data(), b.size());
    return std::vector<double>(f.begin(), f.end());
}

struct StateTensor {
    Buffer buf;
    slay_tensor_t view;
    StateTensor(Side side, int64_t B, int64_t H, int64_t F, int64_t Dv)
        : buf(side, static_cast<size_t>(B * H * F * (Dv + 1)) * sizeof(float)) {
        view = view4(buf, SLAY_DTYPE_FLOAT32, B, H, F, Dv + 1, Layout::BHTD);
    }
};

// What a forward and a backward call of a case both pass: q, k, v encoded
// from the inputs, the initial state (uploaded when the case passes one and
// the plan has a state), the parameter view, and the workspace that each
// pass sizes with make_workspace. args() points into the members, so an
// instance is used where it was made (never copied or moved).
struct CallCommon {
    Tensor4 q, k, v;
    bool init;
    StateTensor s_in;
    slay_tensor_t params;
    Buffer offsets;  // a packed case's offsets on the side (int32 or int64)
    slay_tensor_t offsets_view;
    Buffer ws;

    CallCommon(Side side, const Plans& plans, const Case& c, const Inputs& in)
        : q(side, c.dtype, c.tensor_batch(), c.heads, c.tokens(), c.head_dim, c.layout),
          k(side, c.dtype, c.tensor_batch(), c.kvh(), c.tokens(), c.head_dim, c.layout),
          v(side, c.dtype, c.tensor_batch(), c.kvh(), c.tokens(), c.dv(), c.layout),
          init(c.initial_state && has_state(plans)),
          s_in(side, c.sequences(), c.heads, init ? plans.features : 0, c.dv()),
          params(view1(plans.params_on(side), plans.param_count)) {
        q.encode(in.q);
        k.encode(in.k);
        v.encode(in.v);
        if (init) s_in.buf.upload(in.initial_state.data(), s_in.buf.size());
        std::memset(&offsets_view, 0, sizeof offsets_view);
        if (c.packed()) {
            const std::vector<int64_t> o64 = c.offsets();
            const std::vector<int32_t> o32(o64.begin(), o64.end());
            const size_t elem = c.offsets_int32 ? 4 : 8;
            offsets = Buffer(side, o64.size() * elem);
            offsets.upload(c.offsets_int32 ? static_cast<const void*>(o32.data()) : static_cast<const void*>(o64.data()),
                           o64.size() * elem);
            offsets_view.data = offsets.get();
            offsets_view.dtype = c.offsets_int32 ? SLAY_DTYPE_INT32 : SLAY_DTYPE_INT64;
            offsets_view.rank = 1;
            offsets_view.shape[0] = static_cast<int64_t>(o64.size());
            offsets_view.strides[0] = 1;
        }
    }

    // The fields the fwd and bwd args structs share (every other field zero).
    template <typename Args>
    Args args(const Plans& plans, const Case& c) const {
        Args a;
        std::memset(&a, 0, sizeof a);
        a.struct_size = sizeof a;
        a.q = &q.view, a.k = &k.view, a.v = &v.view;
        a.params = plans.param_count ? &params : nullptr;
        a.initial_state = init ? &s_in.view : nullptr;
        a.position_offset = c.position_offset;
        a.seq_offsets = c.packed() ? &offsets_view : nullptr;
        return a;
    }
};

// Runs a call's body with the harness's own failures (an allocation or copy
// that throws) turned into an INTERNAL_ERROR status that names them, so the
// case fails with that message instead of the exception ending the binary.
template <typename Body>
CallStatus harness_guarded(const Body& body) {
    try {
        return body();
    } catch (const std::exception& e) {
        CallStatus st;
        st.status = SLAY_STATUS_INTERNAL_ERROR;
        st.message = std::string("harness: ") + e.what();
        return st;
    }
}

}  // namespace

CallStatus run_forward(Side side, const Plans& plans, const Case& c, const Inputs& in, Outputs* res) {
    return harness_guarded([&] {
        const int64_t B = c.tensor_batch(), H = c.heads, T = c.tokens(), Dv = c.dv(), F = plans.features;
        CallCommon cc(side, plans, c, in);
        Tensor4 out(side, c.dtype, B, H, T, Dv, c.layout);
        out.buf.poison();
        const bool fin = c.final_state && has_state(plans);
        StateTensor s_out(side, c.sequences(), H, fin ? F : 0, Dv);
        s_out.buf.poison();
        CallStatus st = make_workspace(side, plans, SLAY_PASS_FORWARD, c.sequences(), c.longest(), &cc.ws);
        if (!st.ok()) return st;

        slay_attn_fwd_args_t a = cc.args<slay_attn_fwd_args_t>(plans, c);
        a.out = &out.view;
        a.final_state = fin ? &s_out.view : nullptr;
        st = status_of(slay_attn_fwd(plans.on(side), &a, cc.ws.get(), cc.ws.size(), stream_for(side)), "slay_attn_fwd");
        if (!st.ok()) return st;
        if (side == Side::Device) sync_device();
        res->out = out.decode();
        if (fin) res->final_state = decode_state(s_out.buf);
        return st;
    });
}

CallStatus run_backward(Side side, const Plans& plans, const Case& c, const Inputs& in,
                        const std::vector<double>& fwd_out, Outputs* res) {
    return harness_guarded([&] {
        const int64_t B = c.tensor_batch(), H = c.heads, Hkv = c.kvh(), T = c.tokens(), D = c.head_dim, Dv = c.dv(),
                      F = plans.features, N = c.sequences();
        CallCommon cc(side, plans, c, in);
        Tensor4 out(side, c.dtype, B, H, T, Dv, c.layout), dout(side, c.dtype, B, H, T, Dv, c.layout),
            dq(side, c.dtype, B, H, T, D, c.layout), dk(side, c.dtype, B, Hkv, T, D, c.layout),
            dv(side, c.dtype, B, Hkv, T, Dv, c.layout);
        out.encode(fwd_out);
        dout.encode(in.dout);
        dq.buf.poison();
        dk.buf.poison();
        dv.buf.poison();
        const bool dfin = c.dfinal_state && has_state(plans), dinit = c.dinitial_state && has_state(plans);
        StateTensor ds_out(side, N, H, dfin ? F : 0, Dv), ds_in(side, N, H, dinit ? F : 0, Dv);
        if (dfin) ds_out.buf.upload(in.dfinal_state.data(), ds_out.buf.size());
        ds_in.buf.poison();
        CallStatus st = make_workspace(side, plans, SLAY_PASS_BACKWARD, N, c.longest(), &cc.ws);
        if (!st.ok()) return st;

        slay_attn_bwd_args_t a = cc.args<slay_attn_bwd_args_t>(plans, c);
        a.out = &out.view, a.dout = &dout.view;
        a.dq = &dq.view, a.dk = &dk.view, a.dv = &dv.view;
        a.dfinal_state = dfin ? &ds_out.view : nullptr;
        a.dinitial_state = dinit ? &ds_in.view : nullptr;
        st = status_of(slay_attn_bwd(plans.on(side), &a, cc.ws.get(), cc.ws.size(), stream_for(side)), "slay_attn_bwd");
        if (!st.ok()) return st;
        if (side == Side::Device) sync_device();
        res->dq = dq.decode();
        res->dk = dk.decode();
        res->dv = dv.decode();
        if (dinit) res->dinitial_state = decode_state(ds_in.buf);
        return st;
    });
}

// ------------------------------------------------------------- comparisons

double rel_l2(const std::vector<double>& got, const std::vector<double>& want) {
    if (got.size() != want.size()) return INFINITY;
    double num = 0, den = 0;
    for (size_t i = 0; i < want.size(); ++i) {
        if (std::isnan(want[i])) return INFINITY;
        if (std::isinf(want[i])) {
            if (got[i] != want[i]) return INFINITY;
            continue;
        }
        if (!std::isfinite(got[i])) return INFINITY;
        num += (got[i] - want[i]) * (got[i] - want[i]);
        den += want[i] * want[i];
    }
    return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

double Errors::max() const {
    double m = 0;
    for (double e : {out, final_state, dq, dk, dv, dinitial_state}) {
        if (std::isnan(e)) return INFINITY;
        if (e > m) m = e;
    }
    return m;
}

std::string Errors::str() const {
    std::ostringstream s;
    const char* names[] = {"out", "final_state", "dq", "dk", "dv", "dinitial_state"};
    const double vals[] = {out, final_state, dq, dk, dv, dinitial_state};
    char buf[64];
    for (int i = 0; i < 6; ++i)
        if (vals[i] >= 0 || std::isnan(vals[i])) {
            std::snprintf(buf, sizeof buf, "%s%s %.2e", s.tellp() > 0 ? " " : "", names[i], vals[i]);
            s << buf;
        }
    return s.str();
}

std::string Outcome::why() const {
    if (!cpu.ok()) return "cpu: " + cpu.message;
    if (!device.ok()) return "device: " + device.message;
    return "";  // (both sides ran)
}

Errors compare(const Outputs& got, const Outputs& want) {
    Errors e;
    auto one = [](const std::vector<double>& g, const std::vector<double>& w) {
        return w.empty() && g.empty() ? -1.0 : rel_l2(g, w);
    };
    e.out = one(got.out, want.out);
    e.final_state = one(got.final_state, want.final_state);
    e.dq = one(got.dq, want.dq);
    e.dk = one(got.dk, want.dk);
    e.dv = one(got.dv, want.dv);
    e.dinitial_state = one(got.dinitial_state, want.dinitial_state);
    return e;
}

Outcome compare_on(const Case& c, const Plans& plans, const Inputs& in, bool backward) {
    Outcome o;
    Outputs want, got;
    // The device runs first where it can, so an unsupported case costs no
    // fp64 oracle time.
    if (!backward) {
        o.device = run_forward(Side::Device, plans, c, in, &got);
        if (!o.device.ok()) return o;
        o.cpu = run_forward(Side::Cpu, plans, c, in, &want);
    } else {
        // The backward's `out` is the CPU forward of the same inputs (with
        // the initial state when there is one), given to both sides.
        Case fc = c;
        fc.final_state = false;
        Outputs fwd;
        o.cpu = run_forward(Side::Cpu, plans, fc, in, &fwd);
        if (!o.cpu.ok()) return o;
        o.device = run_backward(Side::Device, plans, c, in, fwd.out, &got);
        if (!o.device.ok()) return o;
        o.cpu = run_backward(Side::Cpu, plans, c, in, fwd.out, &want);
    }
    if (o.ran()) o.err = compare(got, want);
    return o;
}

namespace {

// The outcome of a case whose plans could not be made (the CPU side's failure).
Outcome failed_plans(const Made& m) {
    Outcome o;
    o.cpu.status = m.status;
    o.cpu.message = m.message;
    return o;
}

Outcome compare_pass(const Case& c, bool backward) {
    Plans plans;
    const Made m = make_plans(c, &plans);
    return m.ok() ? compare_on(c, plans, make_case_inputs(c, plans), backward) : failed_plans(m);
}

}  // namespace

Outcome compare_on(const Case& c, const Inputs& in, bool backward) {
    Plans plans;
    const Made m = make_plans(c, &plans);
    return m.ok() ? compare_on(c, plans, in, backward) : failed_plans(m);
}

Outcome compare_forward(const Case& c) { return compare_pass(c, false); }
Outcome compare_backward(const Case& c) { return compare_pass(c, true); }

double cpu_sensitivity(const Case& c, bool backward) {
    // The case's inputs, made exactly as compare_forward/compare_backward do.
    Plans plans;
    Made m = make_plans(c, &plans);
    if (!m.ok()) throw std::runtime_error("cpu_sensitivity: " + m.message);
    const Inputs in = make_case_inputs(c, plans);
    // Run as fp32 (same parameters: they are drawn from the seeds alone).
    Case f = c;
    f.dtype = SLAY_DTYPE_FLOAT32;
    Plans fplans;
    if (f.dtype != c.dtype) {
        m = make_plans(f, &fplans);
        if (!m.ok()) throw std::runtime_error("cpu_sensitivity: " + m.message);
    }
    const Plans& p = f.dtype != c.dtype ? fplans : plans;
    Case fc = f;
    fc.final_state = false;
    auto outputs = [&](const Inputs& x) {
        Outputs o;
        CallStatus s = run_forward(Side::Cpu, p, f, x, &o);
        if (s.ok() && backward) {
            Outputs fwd;
            s = run_forward(Side::Cpu, p, fc, x, &fwd);
            if (s.ok()) s = run_backward(Side::Cpu, p, f, x, fwd.out, &o);
        }
        if (!s.ok()) throw std::runtime_error("cpu_sensitivity: " + s.message);
        if (backward) o.out.clear(), o.final_state.clear();
        return o;
    };
    const Outputs base = outputs(in);
    std::mt19937_64 rng(c.input_seed * 0xD1B54A32D192ED03ull + 7);
    auto nudge = [&](std::vector<float>& x) {
        for (float& e : x) e = std::nextafter(e, (rng() & 1) ? INFINITY : -INFINITY);
    };
    double floor = 0;
    for (int draw = 0; draw < 2; ++draw) {
        Inputs pin = in;
        for (std::vector<float>* x : {&pin.q, &pin.k, &pin.v, &pin.dout, &pin.initial_state, &pin.dfinal_state})
            nudge(*x);
        floor = std::max(floor, compare(outputs(pin), base).max());
    }
    return floor;
}

std::string table_row(const Case& c, const char* pass, const Outcome& o, double tol) {
    char head[256];
    std::snprintf(head, sizeof head, "| %-22s | %-3s | %-6s | %-4s | %-4s | T=%-6lld | B=%lld H=%lld D=%lld Dv=%lld | ",
                  slay_attn_variant_name(c.variant), pass, c.causal ? "causal" : "bidir", dtype_label(c.dtype),
                  c.layout == Layout::BHTD ? "BHTD" : "BTHD", static_cast<long long>(c.seq_len),
                  static_cast<long long>(c.batch), static_cast<long long>(c.heads),
                  static_cast<long long>(c.head_dim), static_cast<long long>(c.dv()));
    std::string row = head;
    if (c.kv_heads) row += "H_kv=" + std::to_string(c.kv_heads) + " | ";
    if (c.packed()) row += "packed N=" + std::to_string(c.sequences()) + " total=" + std::to_string(c.tokens()) + " | ";
    char tail[96];
    if (o.ran()) {
        std::snprintf(tail, sizeof tail, "max %.2e (tol %.0e) | %s | ", o.err.max(), tol, o.pass(tol) ? "PASS" : "FAIL");
        row += tail + o.err.str();
    } else {
        row += std::string("error | FAIL | ") + o.why();
    }
    return row;
}

bool report(const Case& c, const char* pass, const Outcome& o, double tol, const std::string& note) {
    std::printf("%s%s%s\n", table_row(c, pass, o, tol).c_str(), note.empty() ? "" : " | ", note.c_str());
    std::fflush(stdout);
    return o.pass(tol);
}

}  // namespace slay_gpu
