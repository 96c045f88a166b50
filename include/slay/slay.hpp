/*
 * slay.hpp -- a header-only C++17 wrapper over the C ABI in slay.h.
 *
 * It adds nothing to the ABI: every call forwards to the slay_* function of
 * the same name, and only the conveniences below are new.
 *   - slay::Error, an exception carrying the slay_status_t and the text of
 *     slay_last_error_message(); slay::check(status) throws it on failure.
 *   - slay::Handle, slay::Descriptor, slay::Plan: move-only owners of the
 *     opaque objects, released by their destructors.
 *   - slay::tensor_bhtd(), slay::tensor_bthd(), slay::make_tensor(),
 *     slay::vector_tensor(): slay_tensor_t views of caller-owned memory.
 *   - slay::fwd_args(), slay::bwd_args(): argument blocks with struct_size set.
 *
 * The rules of slay.h hold unchanged: tensors and workspaces live in the
 * handle's memory space (host memory for CPU, device memory for CUDA; this
 * header never allocates either), a plan must not outlive its handle, and one
 * plan is executed by one host thread at a time. Requires C++17 and the
 * standard library only (no CUDA headers; streams cross as void*).
 *
 *     slay::Handle handle(SLAY_BACKEND_CPU);
 *     slay::Descriptor desc(SLAY_ATTN_SLAY_ANCHOR);
 *     desc.set_i64(SLAY_ATTR_NUM_HEADS, H).set_i64(SLAY_ATTR_HEAD_DIM, D);
 *     slay::Plan plan(handle, desc);
 *     std::vector<float> params(plan.param_count());
 *     ...
 *     plan.fwd(slay::tensor_bhtd(q.data(), B, H, T, D), ..., ws.data(), ws.size());
 */
#ifndef SLAY_SLAY_HPP
#define SLAY_SLAY_HPP

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "slay.h"

namespace slay {

/* ------------------------------------------------------------------ errors */

/* Thrown by check() and every wrapper call whose C function failed. what()
 * reads "SLAY_STATUS_BAD_SHAPE: k.shape[2]=511 but 512 is expected". */
class Error : public std::runtime_error {
public:
    /* status: the failing status; message: the library's (or the wrapper's)
     * description of what was wrong. */
    Error(slay_status_t status, const std::string& message)
        : std::runtime_error(std::string(slay_status_name(status)) + ": " + message),
          status_(status),
          message_(message) {}

    /* The slay_status_t the C call returned. */
    slay_status_t status() const noexcept { return status_; }
    /* "SLAY_STATUS_BAD_SHAPE", ... */
    const char* name() const noexcept { return slay_status_name(status_); }
    /* The slay_last_error_message() text captured when the call failed. */
    const std::string& message() const noexcept { return message_; }

private:
    slay_status_t status_;
    std::string message_;
};

/* Throws slay::Error(status, slay_last_error_message()) unless status is
 * SLAY_STATUS_SUCCESS. `what`, when given, prefixes the message (e.g. the
 * name of the call). */
inline void check(slay_status_t status, const char* what = nullptr) {
    if (status == SLAY_STATUS_SUCCESS) return;
    std::string message = slay_last_error_message();
    if (message.empty()) message = slay_status_string(status);
    if (what != nullptr) message = std::string(what) + ": " + message;
    throw Error(status, message);
}

/* -------------------------------------------------------------- version */

/* The library's SLAY_VERSION (MAJOR*10000 + MINOR*100 + PATCH). */
inline std::uint32_t version() noexcept { return slay_get_version(); }
/* The library's SLAY_ABI_VERSION. */
inline std::uint32_t abi_version() noexcept { return slay_get_abi_version(); }
/* "slay_anchor", ...; throws INVALID_VALUE for an unknown variant. */
inline std::string variant_name(slay_attn_variant_t variant) {
    const char* name = slay_attn_variant_name(variant);
    if (name == nullptr) throw Error(SLAY_STATUS_INVALID_VALUE, "unknown variant " + std::to_string(int(variant)));
    return name;
}
/* Parses "slay_anchor", "yat-performer-anchor", ...; throws INVALID_VALUE. */
inline slay_attn_variant_t variant_from_name(const std::string& name) {
    slay_attn_variant_t variant = SLAY_ATTN_STANDARD;
    check(slay_attn_variant_from_name(name.c_str(), &variant), "slay_attn_variant_from_name");
    return variant;
}

/* ------------------------------------------------------------- ownership */

namespace detail {

/* Owns one opaque object and releases it with Destroy (which accepts NULL,
 * so a moved-from or empty owner destroys nothing). Move-only. */
template <class T, slay_status_t (*Destroy)(T)>
class Owner {
public:
    Owner() noexcept = default;
    explicit Owner(T object) noexcept : object_(object) {}
    ~Owner() { Destroy(object_); }
    Owner(const Owner&) = delete;
    Owner& operator=(const Owner&) = delete;
    Owner(Owner&& other) noexcept : object_(other.release()) {}
    Owner& operator=(Owner&& other) noexcept {
        if (this != &other) reset(other.release());
        return *this;
    }

    /* The C object, for calls this header does not wrap. */
    T get() const noexcept { return object_; }
    /* True when an object is owned. */
    explicit operator bool() const noexcept { return object_ != nullptr; }
    /* Gives up ownership without destroying; returns the object. */
    T release() noexcept {
        T object = object_;
        object_ = nullptr;
        return object;
    }
    /* Destroys the owned object (if any) and takes `object`. */
    void reset(T object = nullptr) noexcept {
        Destroy(object_);
        object_ = object;
    }

protected:
    /* Throws INVALID_ARGUMENT when empty (a moved-from owner), instead of
     * passing NULL to the C call. */
    T checked(const char* what) const {
        if (object_ == nullptr) throw Error(SLAY_STATUS_INVALID_ARGUMENT, std::string(what) + ": empty object");
        return object_;
    }

private:
    T object_ = nullptr;
};

}  // namespace detail

/* ---------------------------------------------------------------- handle */

/* A backend binding (slay_handle_t). It must outlive every plan made on it. */
class Handle : public detail::Owner<slay_handle_t, slay_handle_destroy> {
public:
    /* An empty handle (owns nothing). */
    Handle() noexcept = default;
    /* Takes ownership of an existing C handle. */
    explicit Handle(slay_handle_t handle) noexcept : Owner(handle) {}
    /* slay_handle_create(backend, device); device is the CUDA ordinal and is
     * ignored for the CPU. Throws NO_DEVICE (with the driver's reason) when
     * the CUDA backend has no usable device. */
    explicit Handle(slay_backend_t backend, std::int32_t device = 0) : Owner(create(backend, device)) {}

    /* The backend this handle runs on. */
    slay_backend_t backend() const {
        slay_backend_t backend = SLAY_BACKEND_CPU;
        check(slay_handle_get_backend(checked("slay_handle_get_backend"), &backend), "slay_handle_get_backend");
        return backend;
    }

private:
    static slay_handle_t create(slay_backend_t backend, std::int32_t device) {
        slay_handle_t handle = nullptr;
        check(slay_handle_create(&handle, backend, device), "slay_handle_create");
        return handle;
    }
};

/* ------------------------------------------------------------ descriptor */

/* A variant and its attributes (slay_attn_desc_t); host only. Setters
 * return *this so calls chain. */
class Descriptor : public detail::Owner<slay_attn_desc_t, slay_attn_desc_destroy> {
public:
    /* An empty descriptor (owns nothing). */
    Descriptor() noexcept = default;
    /* Takes ownership of an existing C descriptor. */
    explicit Descriptor(slay_attn_desc_t desc) noexcept : Owner(desc) {}
    /* A descriptor holding the variant's defaults. */
    explicit Descriptor(slay_attn_variant_t variant) : Owner(create(variant)) {}

    /* Sets an integer attribute (NUM_HEADS, HEAD_DIM, ...). Throws
     * ATTRIBUTE_TYPE for an f64 attribute, ATTRIBUTE_NOT_APPLICABLE,
     * INVALID_VALUE (out of range; the stored value is unchanged). */
    Descriptor& set_i64(slay_attr_t attr, std::int64_t value) {
        check(slay_attn_desc_set_i64(checked("slay_attn_desc_set_i64"), attr, value), "slay_attn_desc_set_i64");
        return *this;
    }
    /* Sets a floating-point attribute (EPSILON, STABILIZER, ...); errors as
     * set_i64. */
    Descriptor& set_f64(slay_attr_t attr, double value) {
        check(slay_attn_desc_set_f64(checked("slay_attn_desc_set_f64"), attr, value), "slay_attn_desc_set_f64");
        return *this;
    }
    /* The current value of an integer attribute (its default if never set). */
    std::int64_t get_i64(slay_attr_t attr) const {
        std::int64_t value = 0;
        check(slay_attn_desc_get_i64(checked("slay_attn_desc_get_i64"), attr, &value), "slay_attn_desc_get_i64");
        return value;
    }
    /* The current value of a floating-point attribute. */
    double get_f64(slay_attr_t attr) const {
        double value = 0;
        check(slay_attn_desc_get_f64(checked("slay_attn_desc_get_f64"), attr, &value), "slay_attn_desc_get_f64");
        return value;
    }

private:
    static slay_attn_desc_t create(slay_attn_variant_t variant) {
        slay_attn_desc_t desc = nullptr;
        check(slay_attn_desc_create(&desc, variant), "slay_attn_desc_create");
        return desc;
    }
};

/* --------------------------------------------------------------- tensors */

/* A contiguous (B, H, T, C) view of `data` (C = D for q/k, Dv for v/out):
 * strides (H*T*C, T*C, C, 1). */
inline slay_tensor_t tensor_bhtd(void* data, std::int64_t B, std::int64_t H, std::int64_t T, std::int64_t C,
                                 slay_dtype_t dtype = SLAY_DTYPE_FLOAT32) noexcept {
    slay_tensor_t t{};
    t.data = data;
    t.dtype = dtype;
    t.rank = 4;
    t.shape[0] = B;
    t.shape[1] = H;
    t.shape[2] = T;
    t.shape[3] = C;
    t.strides[3] = 1;
    t.strides[2] = C;
    t.strides[1] = T * C;
    t.strides[0] = H * T * C;
    return t;
}

/* The logical (B, H, T, C) view of a contiguous (B, T, H, C) buffer (the
 * layout of a projection's output): strides (T*H*C, C, H*C, 1). */
inline slay_tensor_t tensor_bthd(void* data, std::int64_t B, std::int64_t H, std::int64_t T, std::int64_t C,
                                 slay_dtype_t dtype = SLAY_DTYPE_FLOAT32) noexcept {
    slay_tensor_t t = tensor_bhtd(data, B, H, T, C, dtype);
    t.strides[1] = C;
    t.strides[2] = H * C;
    t.strides[0] = T * H * C;
    return t;
}

/* A view of `data` with the given shape (rank 1..SLAY_MAX_RANK) and element
 * strides; empty strides mean contiguous row-major. Throws INVALID_VALUE
 * for a bad rank or a strides list of another length. (The library checks
 * the values themselves when the tensor is used.) */
inline slay_tensor_t make_tensor(void* data, slay_dtype_t dtype, std::initializer_list<std::int64_t> shape,
                                 std::initializer_list<std::int64_t> strides = {}) {
    const std::size_t rank = shape.size();
    if (rank < 1 || rank > SLAY_MAX_RANK)
        throw Error(SLAY_STATUS_INVALID_VALUE, "make_tensor: rank " + std::to_string(rank) + " is not in 1.." +
                                                   std::to_string(SLAY_MAX_RANK));
    if (strides.size() != 0 && strides.size() != rank)
        throw Error(SLAY_STATUS_INVALID_VALUE, "make_tensor: " + std::to_string(strides.size()) +
                                                   " strides for rank " + std::to_string(rank));
    slay_tensor_t t{};
    t.data = data;
    t.dtype = dtype;
    t.rank = static_cast<std::int32_t>(rank);
    std::size_t i = 0;
    for (std::int64_t extent : shape) t.shape[i++] = extent;
    if (strides.size() == rank) {
        i = 0;
        for (std::int64_t stride : strides) t.strides[i++] = stride;
    } else {
        std::int64_t stride = 1;
        for (std::size_t d = rank; d-- > 0;) {
            t.strides[d] = stride;
            stride *= t.shape[d];
        }
    }
    return t;
}

/* A rank-1 contiguous fp32 view of n elements: the feature parameters. */
inline slay_tensor_t vector_tensor(float* data, std::int64_t n) noexcept {
    slay_tensor_t t{};
    t.data = data;
    t.dtype = SLAY_DTYPE_FLOAT32;
    t.rank = 1;
    t.shape[0] = n;
    t.strides[0] = 1;
    return t;
}

/* Number of elements of a tensor's logical shape. */
inline std::int64_t numel(const slay_tensor_t& t) noexcept {
    std::int64_t n = 1;
    for (std::int32_t d = 0; d < t.rank && d < SLAY_MAX_RANK; ++d) n *= t.shape[d];
    return n;
}

/* ------------------------------------------------------ argument blocks */

/* A zeroed forward argument block with struct_size set. */
inline slay_attn_fwd_args_t fwd_args() noexcept {
    slay_attn_fwd_args_t args{};
    args.struct_size = sizeof args;
    return args;
}

/* A zeroed backward argument block with struct_size set. */
inline slay_attn_bwd_args_t bwd_args() noexcept {
    slay_attn_bwd_args_t args{};
    args.struct_size = sizeof args;
    return args;
}

/* ------------------------------------------------------------------ plan */

/* A validated, immutable descriptor bound to a handle (slay_attn_plan_t).
 * The descriptor may be destroyed afterwards; the handle must outlive the
 * plan. workspace/stream arguments are as in slay.h: the workspace lives in
 * the handle's memory space and may be NULL when its size is 0; stream is a
 * cudaStream_t on CUDA (NULL: cudaStreamPerThread) and must be NULL on CPU. */
class Plan : public detail::Owner<slay_attn_plan_t, slay_attn_plan_destroy> {
public:
    /* An empty plan (owns nothing). */
    Plan() noexcept = default;
    /* Takes ownership of an existing C plan. */
    explicit Plan(slay_attn_plan_t plan) noexcept : Owner(plan) {}
    /* slay_attn_plan_create: resolves and checks the descriptor and binds it
     * to the handle. */
    Plan(const Handle& handle, const Descriptor& desc) : Owner(create(handle.get(), desc.get())) {}
    /* A temporary handle would be destroyed before the plan: not allowed. */
    Plan(Handle&& handle, const Descriptor& desc) = delete;

    /* The plan's variant. */
    slay_attn_variant_t variant() const {
        slay_attn_variant_t variant = SLAY_ATTN_STANDARD;
        check(slay_attn_plan_get_variant(checked("slay_attn_plan_get_variant"), &variant),
              "slay_attn_plan_get_variant");
        return variant;
    }
    /* A resolved integer attribute (VALUE_DIM resolved to Dv). */
    std::int64_t get_i64(slay_attr_t attr) const {
        std::int64_t value = 0;
        check(slay_attn_plan_get_i64(checked("slay_attn_plan_get_i64"), attr, &value), "slay_attn_plan_get_i64");
        return value;
    }
    /* A resolved floating-point attribute (SOFTMAX_SCALE resolved). */
    double get_f64(slay_attr_t attr) const {
        double value = 0;
        check(slay_attn_plan_get_f64(checked("slay_attn_plan_get_f64"), attr, &value), "slay_attn_plan_get_f64");
        return value;
    }

    /* Bytes of workspace `pass` needs for this batch size and sequence length
     * (both ignored for SLAY_PASS_SAMPLE); 0 is a valid answer. */
    std::size_t workspace_size(slay_pass_t pass, std::int64_t batch = 0, std::int64_t seq_len = 0) const {
        std::size_t bytes = 0;
        check(slay_attn_plan_get_workspace_size(checked("slay_attn_plan_get_workspace_size"), pass, batch, seq_len,
                                                &bytes),
              "slay_attn_plan_get_workspace_size");
        return bytes;
    }
    /* Feature dimension F of the linearized family; 0 for exact variants. */
    std::int64_t feature_dim() const {
        std::int64_t features = 0;
        check(slay_attn_plan_get_feature_dim(checked("slay_attn_plan_get_feature_dim"), &features),
              "slay_attn_plan_get_feature_dim");
        return features;
    }
    /* Number of fp32 elements of the feature-parameter vector (0: none). */
    std::int64_t param_count() const {
        std::int64_t count = 0;
        check(slay_attn_plan_get_param_count(checked("slay_attn_plan_get_param_count"), &count),
              "slay_attn_plan_get_param_count");
        return count;
    }
    /* Number of named segments of the parameter vector. */
    std::int32_t param_segment_count() const {
        std::int32_t count = 0;
        check(slay_attn_plan_get_param_segment_count(checked("slay_attn_plan_get_param_segment_count"), &count),
              "slay_attn_plan_get_param_segment_count");
        return count;
    }
    /* Segment `index` (name, offset, shape); throws INVALID_VALUE when out of
     * range. */
    slay_param_segment_t param_segment(std::int32_t index) const {
        slay_param_segment_t segment{};
        segment.struct_size = sizeof segment;
        check(slay_attn_plan_get_param_segment(checked("slay_attn_plan_get_param_segment"), index, &segment),
              "slay_attn_plan_get_param_segment");
        return segment;
    }
    /* Every segment, in layout order. */
    std::vector<slay_param_segment_t> param_segments() const {
        std::vector<slay_param_segment_t> segments;
        const std::int32_t count = param_segment_count();
        segments.reserve(static_cast<std::size_t>(count));
        for (std::int32_t i = 0; i < count; ++i) segments.push_back(param_segment(i));
        return segments;
    }

    /* Fills params (rank 1, fp32, (param_count,)) with the variant's random
     * feature parameters drawn from (seed, offset); the same on every
     * backend. Workspace: workspace_size(SLAY_PASS_SAMPLE). */
    void features_sample(std::uint64_t seed, std::uint64_t offset, const slay_tensor_t& params, void* workspace,
                         std::size_t workspace_size, void* stream = nullptr) const {
        check(slay_attn_features_sample(checked("slay_attn_features_sample"), seed, offset, &params, workspace,
                                        workspace_size, stream),
              "slay_attn_features_sample");
    }

    /* slay_attn_fwd with a full argument block (states, position offset);
     * struct_size must be set (fwd_args() does). */
    void fwd(const slay_attn_fwd_args_t& args, void* workspace, std::size_t workspace_size,
             void* stream = nullptr) const {
        check(slay_attn_fwd(checked("slay_attn_fwd"), &args, workspace, workspace_size, stream), "slay_attn_fwd");
    }
    /* out = attention(q, k, v) without states. params may be NULL when
     * param_count() is 0. Workspace: workspace_size(SLAY_PASS_FORWARD, B, T). */
    void fwd(const slay_tensor_t& q, const slay_tensor_t& k, const slay_tensor_t& v, const slay_tensor_t* params,
             const slay_tensor_t& out, void* workspace, std::size_t workspace_size, void* stream = nullptr) const {
        slay_attn_fwd_args_t args = fwd_args();
        args.q = &q;
        args.k = &k;
        args.v = &v;
        args.params = params;
        args.out = &out;
        fwd(args, workspace, workspace_size, stream);
    }

    /* slay_attn_bwd with a full argument block; struct_size must be set
     * (bwd_args() does). */
    void bwd(const slay_attn_bwd_args_t& args, void* workspace, std::size_t workspace_size,
             void* stream = nullptr) const {
        check(slay_attn_bwd(checked("slay_attn_bwd"), &args, workspace, workspace_size, stream), "slay_attn_bwd");
    }
    /* dq, dk, dv of L given dout = dL/dout and the forward's out, without
     * states. Workspace: workspace_size(SLAY_PASS_BACKWARD, B, T). */
    void bwd(const slay_tensor_t& q, const slay_tensor_t& k, const slay_tensor_t& v, const slay_tensor_t* params,
             const slay_tensor_t& out, const slay_tensor_t& dout, const slay_tensor_t& dq, const slay_tensor_t& dk,
             const slay_tensor_t& dv, void* workspace, std::size_t workspace_size, void* stream = nullptr) const {
        slay_attn_bwd_args_t args = bwd_args();
        args.q = &q;
        args.k = &k;
        args.v = &v;
        args.params = params;
        args.out = &out;
        args.dout = &dout;
        args.dq = &dq;
        args.dk = &dk;
        args.dv = &dv;
        bwd(args, workspace, workspace_size, stream);
    }

private:
    static slay_attn_plan_t create(slay_handle_t handle, slay_attn_desc_t desc) {
        slay_attn_plan_t plan = nullptr;
        check(slay_attn_plan_create(&plan, handle, desc), "slay_attn_plan_create");
        return plan;
    }
};

}  // namespace slay

#endif /* SLAY_SLAY_HPP */
