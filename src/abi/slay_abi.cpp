// slay_abi.cpp -- the extern "C" entry points of slay.h. Each one is
// guard -> validate -> dispatch: the guard turns a failed Status into its
// code plus the thread-local message and catches every C++ exception, so
// none crosses the ABI; validation (core/) completes before any output is
// written; dispatch hands well-formed calls to the plan's backend.
#include <new>

#include "core/attributes.hpp"
#include "core/backend.hpp"
#include "core/limits.hpp"
#include "slay/slay.h"

using slay::Status;
using slay::enum_bits;
using slay::error;

namespace {

template <typename Body>
slay_status_t guarded(Body&& body) noexcept {
    try {
        const Status s = body();
        if (!s.ok()) slay::set_last_error(s.message());
        return s.code();
    } catch (const std::bad_alloc&) {
        slay::set_last_error("out of host memory");
        return SLAY_STATUS_OUT_OF_MEMORY;
    } catch (const std::exception& e) {
        slay::set_last_error(std::string("internal error: ") + e.what());
        return SLAY_STATUS_INTERNAL_ERROR;
    } catch (...) {
        slay::set_last_error("internal error: unknown exception");
        return SLAY_STATUS_INTERNAL_ERROR;
    }
}

Status require(const void* p, const char* name) {
    if (!p) return error(SLAY_STATUS_INVALID_ARGUMENT, name, " is NULL");
    return Status();
}

struct StatusInfo {
    slay_status_t code;
    const char* name;
    const char* text;
};

const StatusInfo kStatuses[] = {
    {SLAY_STATUS_SUCCESS, "SLAY_STATUS_SUCCESS", "success"},
    {SLAY_STATUS_INVALID_ARGUMENT, "SLAY_STATUS_INVALID_ARGUMENT", "invalid argument (NULL pointer or bad enum)"},
    {SLAY_STATUS_INVALID_VALUE, "SLAY_STATUS_INVALID_VALUE", "value out of range"},
    {SLAY_STATUS_BAD_SHAPE, "SLAY_STATUS_BAD_SHAPE", "tensor shape does not match"},
    {SLAY_STATUS_BAD_STRIDE, "SLAY_STATUS_BAD_STRIDE", "tensor strides not supported"},
    {SLAY_STATUS_BAD_DTYPE, "SLAY_STATUS_BAD_DTYPE", "tensor dtype not the one required"},
    {SLAY_STATUS_UNKNOWN_ATTRIBUTE, "SLAY_STATUS_UNKNOWN_ATTRIBUTE", "unknown attribute"},
    {SLAY_STATUS_ATTRIBUTE_TYPE, "SLAY_STATUS_ATTRIBUTE_TYPE", "attribute accessed with the wrong type"},
    {SLAY_STATUS_ATTRIBUTE_NOT_APPLICABLE, "SLAY_STATUS_ATTRIBUTE_NOT_APPLICABLE",
     "attribute does not apply to this variant"},
    {SLAY_STATUS_WORKSPACE_TOO_SMALL, "SLAY_STATUS_WORKSPACE_TOO_SMALL", "workspace too small"},
    {SLAY_STATUS_STRUCT_SIZE, "SLAY_STATUS_STRUCT_SIZE", "struct_size too small"},
    {SLAY_STATUS_BACKEND_MISMATCH, "SLAY_STATUS_BACKEND_MISMATCH", "argument does not fit the backend"},
    {SLAY_STATUS_PLAN_IN_USE, "SLAY_STATUS_PLAN_IN_USE", "plan is executing on another thread"},
    {SLAY_STATUS_NOT_SUPPORTED, "SLAY_STATUS_NOT_SUPPORTED", "not supported"},
    {SLAY_STATUS_NO_DEVICE, "SLAY_STATUS_NO_DEVICE", "no usable CUDA device"},
    {SLAY_STATUS_CUDA_ERROR, "SLAY_STATUS_CUDA_ERROR", "CUDA runtime error"},
    {SLAY_STATUS_CURAND_ERROR, "SLAY_STATUS_CURAND_ERROR", "cuRAND error"},
    {SLAY_STATUS_CUFFT_ERROR, "SLAY_STATUS_CUFFT_ERROR", "cuFFT error"},
    {SLAY_STATUS_OUT_OF_MEMORY, "SLAY_STATUS_OUT_OF_MEMORY", "out of memory"},
    {SLAY_STATUS_INTERNAL_ERROR, "SLAY_STATUS_INTERNAL_ERROR", "internal error in libslay"},
};

const StatusInfo* find_status(int32_t bits) {
    for (const StatusInfo& i : kStatuses)
        if (i.code == bits) return &i;
    return nullptr;
}

Status check_plan(slay_attn_plan_t plan) { return require(plan, "plan"); }

// Holds a plan's busy flag for one execution (features_sample, fwd, bwd);
// a second thread finds it set and gets PLAN_IN_USE (slay.h, Threading).
class PlanUse {
public:
    static Status enter(slay_attn_plan_t plan, PlanUse* use) {
        SLAY_TRY(check_plan(plan));
        if (plan->busy.exchange(true, std::memory_order_acquire))
            return error(SLAY_STATUS_PLAN_IN_USE, "the plan is executing on another thread; "
                         "one plan is executed by one host thread at a time (use a plan per thread)");
        use->plan_ = plan;
        return Status();
    }
    ~PlanUse() {
        if (plan_) plan_->busy.store(false, std::memory_order_release);
    }

private:
    slay_attn_plan_t plan_ = nullptr;
};


// One call's workspace size: the arguments validated as the call validates
// them (Validate: validate_fwd or validate_bwd), then the backend's answer.
template <typename Call, typename Args, typename Validate>
slay_status_t call_workspace_size(slay_attn_plan_t plan, const Args* args, void* stream, size_t* bytes,
                                  Validate validate) {
    return guarded([&]() -> Status {
        SLAY_TRY(check_plan(plan));
        SLAY_TRY(require(bytes, "bytes"));
        const slay::Plan& p = plan->plan;
        Call call;
        SLAY_TRY(validate(p, args, stream, &call));
        SLAY_TRY(p.backend->check_stream(stream));
        size_t need = 0;
        SLAY_TRY(p.backend->call_workspace_size(p, call, &need));
        *bytes = need;
        return Status();
    });
}
}  // namespace

extern "C" {

uint32_t slay_get_version(void) { return SLAY_VERSION; }
uint32_t slay_get_abi_version(void) { return SLAY_ABI_VERSION; }

const char* slay_status_name(slay_status_t status) {
    const StatusInfo* i = find_status(enum_bits(status));
    return i ? i->name : "SLAY_STATUS_UNKNOWN";
}

const char* slay_status_string(slay_status_t status) {
    const StatusInfo* i = find_status(enum_bits(status));
    return i ? i->text : "unknown status";
}

const char* slay_last_error_message(void) { return slay::last_error(); }

slay_status_t slay_handle_create(slay_handle_t* handle, slay_backend_t backend, int32_t device) {
    return guarded([&]() -> Status {
        SLAY_TRY(require(handle, "handle"));
        std::unique_ptr<slay_handle_s> h(new slay_handle_s);
        const int32_t kind = enum_bits(backend);
        if (kind == SLAY_BACKEND_CPU) {
            h->backend = slay::make_cpu_backend();
        } else if (kind == SLAY_BACKEND_CUDA) {
            SLAY_TRY(slay::make_cuda_backend(device, &h->backend));
            h->device = device;
        } else {
            return error(SLAY_STATUS_INVALID_ARGUMENT, "backend=", kind, " is not a slay_backend_t");
        }
        *handle = h.release();
        return Status();
    });
}

slay_status_t slay_handle_destroy(slay_handle_t handle) {
    return guarded([&]() -> Status {
        delete handle;
        return Status();
    });
}

slay_status_t slay_handle_get_backend(slay_handle_t handle, slay_backend_t* backend) {
    return guarded([&]() -> Status {
        SLAY_TRY(require(handle, "handle"));
        SLAY_TRY(require(backend, "backend"));
        *backend = handle->backend->kind();
        return Status();
    });
}

const char* slay_attn_variant_name(slay_attn_variant_t variant) { return slay::variant_name(enum_bits(variant)); }

slay_status_t slay_attn_variant_from_name(const char* name, slay_attn_variant_t* variant) {
    return guarded([&]() -> Status {
        SLAY_TRY(require(name, "name"));
        SLAY_TRY(require(variant, "variant"));
        slay_attn_variant_t v;
        if (!slay::variant_from_name(name, &v))
            return error(SLAY_STATUS_INVALID_VALUE, "unknown variant name \"", name, "\"");
        *variant = v;
        return Status();
    });
}

const char* slay_attr_name(slay_attr_t attr) {
    const slay::AttrSpec* a = slay::find_attr(enum_bits(attr));
    return a ? a->name : nullptr;
}

slay_status_t slay_attn_desc_create(slay_attn_desc_t* desc, slay_attn_variant_t variant) {
    return guarded([&]() -> Status {
        SLAY_TRY(require(desc, "desc"));
        const int32_t bits = enum_bits(variant);
        if (!slay::variant_name(bits))
            return error(SLAY_STATUS_INVALID_ARGUMENT, "variant=", bits, " is not a slay_attn_variant_t");
        std::unique_ptr<slay_attn_desc_s> d(new slay_attn_desc_s);
        d->raw = slay::default_config(static_cast<slay_attn_variant_t>(bits));
        d->raw.value_dim = 0;      // 0 = Dv equals D, resolved by the plan
        d->raw.softmax_scale = 0;  // 0 = 1/sqrt(D), resolved by the plan
        *desc = d.release();
        return Status();
    });
}

slay_status_t slay_attn_desc_destroy(slay_attn_desc_t desc) {
    return guarded([&]() -> Status {
        delete desc;
        return Status();
    });
}

slay_status_t slay_attn_desc_set_i64(slay_attn_desc_t desc, slay_attr_t attr, int64_t value) {
    return guarded([&]() -> Status {
        SLAY_TRY(require(desc, "desc"));
        return slay::set_attr_checked(desc->raw, enum_bits(attr), true, static_cast<double>(value));
    });
}

slay_status_t slay_attn_desc_set_f64(slay_attn_desc_t desc, slay_attr_t attr, double value) {
    return guarded([&]() -> Status {
        SLAY_TRY(require(desc, "desc"));
        return slay::set_attr_checked(desc->raw, enum_bits(attr), false, value);
    });
}

slay_status_t slay_attn_desc_get_i64(slay_attn_desc_t desc, slay_attr_t attr, int64_t* value) {
    return guarded([&]() -> Status {
        SLAY_TRY(require(desc, "desc"));
        SLAY_TRY(require(value, "value"));
        double x = 0;
        SLAY_TRY(slay::get_attr_checked(desc->raw, enum_bits(attr), true, &x));
        *value = static_cast<int64_t>(x);
        return Status();
    });
}

slay_status_t slay_attn_desc_get_f64(slay_attn_desc_t desc, slay_attr_t attr, double* value) {
    return guarded([&]() -> Status {
        SLAY_TRY(require(desc, "desc"));
        SLAY_TRY(require(value, "value"));
        return slay::get_attr_checked(desc->raw, enum_bits(attr), false, value);
    });
}

slay_status_t slay_attn_plan_create(slay_attn_plan_t* plan, slay_handle_t handle, slay_attn_desc_t desc) {
    return guarded([&]() -> Status {
        SLAY_TRY(require(plan, "plan"));
        SLAY_TRY(require(handle, "handle"));
        SLAY_TRY(require(desc, "desc"));
        std::unique_ptr<slay_attn_plan_s> p(new slay_attn_plan_s);
        SLAY_TRY(slay::resolve_config(desc->raw, &p->plan.cfg));
        p->plan.features = slay::feature_dim(p->plan.cfg);
        p->plan.segments = slay::param_layout(p->plan.cfg);
        p->plan.param_count = slay::param_count(p->plan.cfg);
        p->plan.backend = handle->backend.get();
        SLAY_TRY(p->plan.backend->prepare(&p->plan));
        *plan = p.release();
        return Status();
    });
}

slay_status_t slay_attn_plan_destroy(slay_attn_plan_t plan) {
    return guarded([&]() -> Status {
        if (plan && plan->busy.load(std::memory_order_acquire))
            return error(SLAY_STATUS_PLAN_IN_USE, "the plan is executing on another thread and cannot be destroyed");
        delete plan;
        return Status();
    });
}

slay_status_t slay_attn_plan_get_i64(slay_attn_plan_t plan, slay_attr_t attr, int64_t* value) {
    return guarded([&]() -> Status {
        SLAY_TRY(check_plan(plan));
        SLAY_TRY(require(value, "value"));
        double x = 0;
        SLAY_TRY(slay::get_attr_checked(plan->plan.cfg, enum_bits(attr), true, &x));
        *value = static_cast<int64_t>(x);
        return Status();
    });
}

slay_status_t slay_attn_plan_get_f64(slay_attn_plan_t plan, slay_attr_t attr, double* value) {
    return guarded([&]() -> Status {
        SLAY_TRY(check_plan(plan));
        SLAY_TRY(require(value, "value"));
        return slay::get_attr_checked(plan->plan.cfg, enum_bits(attr), false, value);
    });
}

slay_status_t slay_attn_plan_get_variant(slay_attn_plan_t plan, slay_attn_variant_t* variant) {
    return guarded([&]() -> Status {
        SLAY_TRY(check_plan(plan));
        SLAY_TRY(require(variant, "variant"));
        *variant = plan->plan.cfg.variant;
        return Status();
    });
}

slay_status_t slay_attn_plan_get_workspace_size(slay_attn_plan_t plan, slay_pass_t pass, int64_t batch,
                                                int64_t seq_len, size_t* bytes) {
    return guarded([&]() -> Status {
        SLAY_TRY(check_plan(plan));
        SLAY_TRY(require(bytes, "bytes"));
        const int32_t bits = enum_bits(pass);
        if (bits != SLAY_PASS_FORWARD && bits != SLAY_PASS_BACKWARD && bits != SLAY_PASS_SAMPLE)
            return error(SLAY_STATUS_INVALID_ARGUMENT, "pass=", bits, " is not a slay_pass_t");
        if (bits != SLAY_PASS_SAMPLE && (batch < 0 || seq_len < 0))
            return error(SLAY_STATUS_INVALID_VALUE, "batch=", batch, " and seq_len=", seq_len, " must be >= 0");
        size_t need = 0;
        SLAY_TRY(plan->plan.backend->workspace_size(plan->plan, static_cast<slay_pass_t>(bits), batch, seq_len,
                                                    &need));
        *bytes = need;
        return Status();
    });
}

slay_status_t slay_attn_plan_get_feature_dim(slay_attn_plan_t plan, int64_t* features) {
    return guarded([&]() -> Status {
        SLAY_TRY(check_plan(plan));
        SLAY_TRY(require(features, "features"));
        *features = plan->plan.features;
        return Status();
    });
}

slay_status_t slay_attn_plan_get_param_count(slay_attn_plan_t plan, int64_t* count) {
    return guarded([&]() -> Status {
        SLAY_TRY(check_plan(plan));
        SLAY_TRY(require(count, "count"));
        *count = plan->plan.param_count;
        return Status();
    });
}

slay_status_t slay_attn_plan_get_param_segment_count(slay_attn_plan_t plan, int32_t* count) {
    return guarded([&]() -> Status {
        SLAY_TRY(check_plan(plan));
        SLAY_TRY(require(count, "count"));
        *count = static_cast<int32_t>(plan->plan.segments.size());
        return Status();
    });
}

slay_status_t slay_attn_plan_get_param_segment(slay_attn_plan_t plan, int32_t index,
                                               slay_param_segment_t* segment) {
    return guarded([&]() -> Status {
        SLAY_TRY(check_plan(plan));
        SLAY_TRY(require(segment, "segment"));
        SLAY_TRY(slay::check_struct_size_range(segment->struct_size, sizeof(slay_param_segment_t), "segment"));
        const auto& segs = plan->plan.segments;
        if (index < 0 || static_cast<size_t>(index) >= segs.size())
            return error(SLAY_STATUS_INVALID_VALUE, "segment index ", index, " is out of range [0, ", segs.size(), ")");
        const slay::ParamSegment& s = segs[static_cast<size_t>(index)];
        slay_param_segment_t out = {};
        out.struct_size = sizeof(slay_param_segment_t);
        out.name = s.name;
        out.offset = s.offset;
        out.rank = s.rank;
        for (int i = 0; i < SLAY_MAX_RANK; ++i) out.shape[i] = i < s.rank ? s.shape[i] : 0;
        *segment = out;
        return Status();
    });
}

slay_status_t slay_attn_features_sample(slay_attn_plan_t plan, uint64_t seed, uint64_t offset,
                                        const slay_tensor_t* params, void* workspace, size_t workspace_size,
                                        void* stream) {
    return guarded([&]() -> Status {
        PlanUse use;
        SLAY_TRY(PlanUse::enter(plan, &use));
        const slay::Plan& p = plan->plan;
        slay::TensorView view;
        bool present = false;
        SLAY_TRY(slay::validate_params_tensor(p, params, slay::Access::Write, &view, &present));
        SLAY_TRY(p.backend->check_stream(stream));
        if (!present) return Status();
        size_t need = 0;
        SLAY_TRY(slay::check_workspace(p, SLAY_PASS_SAMPLE, 0, 0, workspace, workspace_size, &need));
        SLAY_TRY(slay::check_sample_memory(view, workspace, need));
        return p.backend->sample(p, seed, offset, view, workspace, stream);
    });
}

slay_status_t slay_attn_fwd_workspace_size(slay_attn_plan_t plan, const slay_attn_fwd_args_t* args, void* stream,
                                           size_t* bytes) {
    return call_workspace_size<slay::FwdCall>(plan, args, stream, bytes, slay::validate_fwd);
}

slay_status_t slay_attn_bwd_workspace_size(slay_attn_plan_t plan, const slay_attn_bwd_args_t* args, void* stream,
                                           size_t* bytes) {
    return call_workspace_size<slay::BwdCall>(plan, args, stream, bytes, slay::validate_bwd);
}

slay_status_t slay_attn_fwd(slay_attn_plan_t plan, const slay_attn_fwd_args_t* args, void* workspace,
                            size_t workspace_size, void* stream) {
    return guarded([&]() -> Status {
        PlanUse use;
        SLAY_TRY(PlanUse::enter(plan, &use));
        const slay::Plan& p = plan->plan;
        slay::FwdCall call;
        SLAY_TRY(slay::validate_fwd(p, args, stream, &call));
        SLAY_TRY(p.backend->check_stream(stream));
        size_t need = 0;
        SLAY_TRY(slay::check_call_workspace(p, call, workspace, workspace_size, &need));
        SLAY_TRY(slay::check_fwd_memory(call, workspace, need));
        if (slay::writes_nothing(call)) return Status();
        return p.backend->forward(p, call, workspace, stream);
    });
}

slay_status_t slay_attn_bwd(slay_attn_plan_t plan, const slay_attn_bwd_args_t* args, void* workspace,
                            size_t workspace_size, void* stream) {
    return guarded([&]() -> Status {
        PlanUse use;
        SLAY_TRY(PlanUse::enter(plan, &use));
        const slay::Plan& p = plan->plan;
        slay::BwdCall call;
        SLAY_TRY(slay::validate_bwd(p, args, stream, &call));
        SLAY_TRY(p.backend->check_stream(stream));
        size_t need = 0;
        SLAY_TRY(slay::check_call_workspace(p, call, workspace, workspace_size, &need));
        SLAY_TRY(slay::check_bwd_memory(call, workspace, need));
        if (slay::writes_nothing(call)) return Status();
        return p.backend->backward(p, call, workspace, stream);
    });
}

}  // extern "C"
