// support.hpp -- shared helpers of the public-ABI unit tests: RAII owners of
// handles, descriptors and plans; a checker that a call failed with the
// expected status and set a fresh last-error message; byte snapshots for
// "outputs untouched" checks; and a deterministic fill of test inputs.
#pragma once

#include <doctest/doctest.h>
#include <slay/slay.h>

#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

namespace slay_test {

// doctest prints const char* as a pointer; INFO/CAPTURE a named string of it.
inline std::string text(const char* s) { return s ? s : "(null)"; }

// doctest prints enums as integers; this makes failures read as names.
inline std::string status_text(slay_status_t s) { return slay_status_name(s); }

// Owns one libslay object and destroys it; REQUIREs creation succeeded.
template <typename T, slay_status_t (*Destroy)(T)>
class Owned {
public:
    Owned() = default;
    explicit Owned(T raw) : raw_(raw) {}
    Owned(Owned&& o) noexcept : raw_(std::exchange(o.raw_, nullptr)) {}
    Owned& operator=(Owned&& o) noexcept {
        std::swap(raw_, o.raw_);
        return *this;
    }
    Owned(const Owned&) = delete;
    Owned& operator=(const Owned&) = delete;
    ~Owned() {
        if (raw_) Destroy(raw_);
    }
    T get() const { return raw_; }
    operator T() const { return raw_; }

private:
    T raw_ = nullptr;
};

using Handle = Owned<slay_handle_t, slay_handle_destroy>;
using Desc = Owned<slay_attn_desc_t, slay_attn_desc_destroy>;
using Plan = Owned<slay_attn_plan_t, slay_attn_plan_destroy>;

inline Handle make_cpu_handle() {
    slay_handle_t h = nullptr;
    REQUIRE(status_text(slay_handle_create(&h, SLAY_BACKEND_CPU, 0)) == "SLAY_STATUS_SUCCESS");
    return Handle(h);
}

inline Desc make_desc(slay_attn_variant_t variant) {
    slay_attn_desc_t d = nullptr;
    REQUIRE(status_text(slay_attn_desc_create(&d, variant)) == "SLAY_STATUS_SUCCESS");
    return Desc(d);
}

struct IntAttr {
    slay_attr_t attr;
    int64_t value;
};

// A descriptor of `variant` with the given integer attributes set.
inline Desc make_desc(slay_attn_variant_t variant, std::initializer_list<IntAttr> attrs) {
    Desc d = make_desc(variant);
    for (const IntAttr& a : attrs) {
        const std::string attr_name = text(slay_attr_name(a.attr));
        INFO("setting ", attr_name, " = ", a.value);
        REQUIRE(status_text(slay_attn_desc_set_i64(d, a.attr, a.value)) == "SLAY_STATUS_SUCCESS");
    }
    return d;
}

inline Plan make_plan(slay_handle_t handle, slay_attn_desc_t desc) {
    slay_attn_plan_t p = nullptr;
    const slay_status_t s = slay_attn_plan_create(&p, handle, desc);
    const std::string message = slay_last_error_message();
    INFO("plan_create: ", message);
    REQUIRE(status_text(s) == "SLAY_STATUS_SUCCESS");
    return Plan(p);
}

// Sets a recognisable last-error message on this thread, so a later check
// can tell that a failing call wrote its own message (not a stale one).
constexpr const char* kSentinelName = "sentinel-variant-name-that-does-not-exist";

inline void prime_sentinel_error() {
    slay_attn_variant_t v = SLAY_ATTN_STANDARD;
    slay_attn_variant_from_name(kSentinelName, &v);
}

inline bool message_is_fresh() {
    const std::string msg = slay_last_error_message();
    return !msg.empty() && msg.find(kSentinelName) == std::string::npos;
}

// Runs `call` (returning slay_status_t) after priming the sentinel message;
// checks it returned `expected` and, when it failed, that it set a new,
// non-empty message. Returns the status.
template <typename Call>
slay_status_t check_status(slay_status_t expected, Call&& call) {
    prime_sentinel_error();
    const slay_status_t s = call();
    const std::string msg = slay_last_error_message();
    INFO("last error: \"", msg, "\"");
    CHECK(status_text(s) == status_text(expected));
    if (expected != SLAY_STATUS_SUCCESS) CHECK_MESSAGE(message_is_fresh(), "failure left no message of its own");
    return s;
}

// The plan's parameter segment called `name`, through the public layout
// queries; FAILs the test when the plan has none.
inline slay_param_segment_t find_param_segment(slay_attn_plan_t plan, const char* name) {
    int32_t count = 0;
    REQUIRE(slay_attn_plan_get_param_segment_count(plan, &count) == SLAY_STATUS_SUCCESS);
    for (int32_t i = 0; i < count; ++i) {
        slay_param_segment_t seg{};
        seg.struct_size = sizeof(seg);
        REQUIRE(slay_attn_plan_get_param_segment(plan, i, &seg) == SLAY_STATUS_SUCCESS);
        if (std::string(seg.name) == name) return seg;
    }
    FAIL("no parameter segment named ", name);
    return {};
}

// A 64-byte-aligned, zero-initialised byte buffer.
class Buffer {
public:
    Buffer() = default;
    explicit Buffer(size_t bytes) : words_((bytes + 63) / 64 * 8 + 8, 0), bytes_(bytes) {}
    void* data() { return bytes_ ? aligned() : nullptr; }
    size_t size() const { return bytes_; }
    template <typename T>
    T* as() { return static_cast<T*>(data()); }
    void fill_bytes(unsigned char b) {
        if (bytes_) std::memset(aligned(), b, bytes_);
    }
    std::vector<unsigned char> bytes() {
        const unsigned char* p = static_cast<const unsigned char*>(data());
        return std::vector<unsigned char>(p, p + bytes_);
    }

private:
    void* aligned() {
        auto p = reinterpret_cast<uintptr_t>(words_.data());
        return reinterpret_cast<void*>((p + 63) / 64 * 64);
    }
    std::vector<uint64_t> words_;
    size_t bytes_ = 0;
};

// Deterministic pseudo-random floats in [lo, hi) (a 64-bit LCG).
class TestRng {
public:
    explicit TestRng(uint64_t seed) : state_(seed * 6364136223846793005ull + 1442695040888963407ull) {}
    float uniform(float lo, float hi) {
        state_ = state_ * 6364136223846793005ull + 1442695040888963407ull;
        const double u = static_cast<double>(state_ >> 11) / 9007199254740992.0;
        return static_cast<float>(lo + (hi - lo) * u);
    }
    void fill(float* x, size_t n, float lo, float hi) {
        for (size_t i = 0; i < n; ++i) x[i] = uniform(lo, hi);
    }

private:
    uint64_t state_;
};

// A contiguous row-major tensor view over `data`.
inline slay_tensor_t contiguous_tensor(void* data, slay_dtype_t dtype, std::initializer_list<int64_t> shape) {
    slay_tensor_t t{};
    t.data = data;
    t.dtype = dtype;
    t.rank = static_cast<int32_t>(shape.size());
    int i = 0;
    for (int64_t e : shape) t.shape[i++] = e;
    int64_t stride = 1;
    for (int d = t.rank - 1; d >= 0; --d) {
        t.strides[d] = stride;
        stride *= t.shape[d];
    }
    return t;
}

// Changes one extent of a contiguous tensor and recomputes its contiguous
// strides, so a "wrong shape" case breaks the shape and nothing else.
inline void set_extent(slay_tensor_t& t, int dim, int64_t extent) {
    t.shape[dim] = extent;
    int64_t stride = 1;
    for (int d = t.rank - 1; d >= 0; --d) {
        t.strides[d] = stride;
        stride *= t.shape[d] > 0 ? t.shape[d] : 1;
    }
}

inline int64_t numel(const slay_tensor_t& t) {
    int64_t n = 1;
    for (int i = 0; i < t.rank; ++i) n *= t.shape[i];
    return n;
}

}  // namespace slay_test
