# Slay.jl -- Julia bindings for libslay (SLAY attention: Spherical Linearized
# Attention with Yat kernels, and the variants it is compared with).
#
# Shapes use libslay's (B, H, T, D) notation, row-major: q (B, H, T, D),
# k (B, H_kv, T, D) and v (B, H_kv, T, Dv) (H_kv = H unless the plan sets
# num_kv_heads: grouped-query heads), out (B, H, T, Dv), the linear-attention
# state (B, H, F, Dv+1) fp32, the feature parameters (N,) fp32; a packed call
# (seq_offsets, N+1 Int32/Int64 offsets) has B = 1 and N state rows. Julia
# arrays are column-major, so a (B, H, T, D) tensor is a Julia array of size
# (D, T, H, B): `tensor(x)` takes the logical shape and strides as the
# reverse of size(x) and strides(x), and the memory is the same as C's.
#
# Layers:
#   - slay_* functions: one @ccall per exported C function, same name and
#     argument order as slay.h (abi/julia/check_signatures.py checks every one
#     against the header in CI), with the header's struct layouts
#     (SlayTensor, SlayParamSegment, SlayAttnFwdArgs, SlayAttnBwdArgs) and
#     enum constants (SLAY_STATUS_*, SLAY_ATTR_*, ...).
#   - Handle, Descriptor, Plan: owners of the C objects, released by close()
#     or by their finalizers; the do-block forms (Handle(f), ...) close on
#     exit. A handle is destroyed only after its last plan (slay.h requires
#     the handle to outlive its plans; Julia's finalizers have no order).
#   - forward!, backward!, sample_features!, workspace_size, ...: the calls
#     on Julia arrays (CPU backend) or on SlayTensor views of device memory.
#   - SlayError: thrown for every failing call, with the status, its name and
#     slay_last_error_message().
#
# The library is ENV["SLAY_LIBRARY"] (a path) when set, else "libslay.so.0.1"
# through the system loader's search path; it is read when this file is
# included.
#
#     include("abi/julia/Slay.jl"); using .Slay
#     Slay.Handle(Slay.SLAY_BACKEND_CPU) do handle
#         plan = Slay.Plan(handle, Slay.SLAY_ATTN_YAT_SPHERICAL; num_heads=H, head_dim=D)
#         out = similar(q)                       # q, k, v: Float32 arrays (D, T, H, B)
#         Slay.forward!(plan, out, q, k, v)
#     end
module Slay

using Libdl

const libslay = get(ENV, "SLAY_LIBRARY", "") == "" ? "libslay.so.0.1" : ENV["SLAY_LIBRARY"]

function __init__()
    if Libdl.dlopen(libslay; throw_error=false) === nothing
        error("Slay: cannot load libslay from \"$libslay\"; set ENV[\"SLAY_LIBRARY\"] to the path of " *
              "libslay.so.0.1 (before including Slay.jl), or add its directory to LD_LIBRARY_PATH")
    end
end

# ------------------------------------------------------------- the C ABI

const SLAY_MAX_RANK = 4

const slay_status_t = Cint
const SLAY_STATUS_SUCCESS = Int32(0)
const SLAY_STATUS_INVALID_ARGUMENT = Int32(100)
const SLAY_STATUS_INVALID_VALUE = Int32(101)
const SLAY_STATUS_BAD_SHAPE = Int32(102)
const SLAY_STATUS_BAD_STRIDE = Int32(103)
const SLAY_STATUS_BAD_DTYPE = Int32(104)
const SLAY_STATUS_UNKNOWN_ATTRIBUTE = Int32(105)
const SLAY_STATUS_ATTRIBUTE_TYPE = Int32(106)
const SLAY_STATUS_ATTRIBUTE_NOT_APPLICABLE = Int32(107)
const SLAY_STATUS_WORKSPACE_TOO_SMALL = Int32(108)
const SLAY_STATUS_STRUCT_SIZE = Int32(109)
const SLAY_STATUS_BACKEND_MISMATCH = Int32(110)
const SLAY_STATUS_PLAN_IN_USE = Int32(111)
const SLAY_STATUS_NOT_SUPPORTED = Int32(200)
const SLAY_STATUS_NO_DEVICE = Int32(300)
const SLAY_STATUS_CUDA_ERROR = Int32(301)
const SLAY_STATUS_CURAND_ERROR = Int32(302)
const SLAY_STATUS_CUFFT_ERROR = Int32(303)
const SLAY_STATUS_OUT_OF_MEMORY = Int32(304)
const SLAY_STATUS_INTERNAL_ERROR = Int32(900)

const slay_dtype_t = Cint
const SLAY_DTYPE_FLOAT32 = Int32(0)
const SLAY_DTYPE_BFLOAT16 = Int32(1)
const SLAY_DTYPE_FLOAT16 = Int32(2)
const SLAY_DTYPE_INT32 = Int32(3)
const SLAY_DTYPE_INT64 = Int32(4)

const slay_backend_t = Cint
const SLAY_BACKEND_CPU = Int32(0)
const SLAY_BACKEND_CUDA = Int32(1)

const slay_attn_variant_t = Cint
const SLAY_ATTN_STANDARD = Int32(0)
const SLAY_ATTN_YAT = Int32(1)
const SLAY_ATTN_YAT_SPHERICAL = Int32(2)
const SLAY_ATTN_SLAY_ANCHOR = Int32(3)
const SLAY_ATTN_SLAY_LAPLACE = Int32(4)
const SLAY_ATTN_SLAY_HADAMARD = Int32(5)
const SLAY_ATTN_SLAY_TENSORSKETCH = Int32(6)
const SLAY_ATTN_SLAY_RANDOM_MACLAURIN = Int32(7)
const SLAY_ATTN_SLAY_NYSTROM = Int32(8)
const SLAY_ATTN_PERFORMER = Int32(9)
const SLAY_ATTN_LINEAR = Int32(10)
const SLAY_ATTN_COSFORMER = Int32(11)
const SLAY_ATTN_RFF = Int32(12)
const SLAY_ATTN_SLAY_POLY2 = Int32(13)
const SLAY_ATTN_VARIANT_COUNT_ = Int32(14)

const slay_attr_t = Cint
const SLAY_ATTR_NUM_HEADS = Int32(0)
const SLAY_ATTR_HEAD_DIM = Int32(1)
const SLAY_ATTR_VALUE_DIM = Int32(2)
const SLAY_ATTR_CAUSAL = Int32(3)
const SLAY_ATTR_IO_DTYPE = Int32(4)
const SLAY_ATTR_ALLOW_TF32 = Int32(5)
const SLAY_ATTR_NUM_QUAD_NODES = Int32(6)
const SLAY_ATTR_NUM_FEATURES = Int32(7)
const SLAY_ATTR_POLY_DIM = Int32(8)
const SLAY_ATTR_CHUNK_SIZE = Int32(9)
const SLAY_ATTR_STABILIZER_MODE = Int32(10)
const SLAY_ATTR_COSFORMER_LENGTH = Int32(11)
const SLAY_ATTR_NUM_KV_HEADS = Int32(12)
const SLAY_ATTR_EPSILON = Int32(32)
const SLAY_ATTR_STABILIZER = Int32(33)
const SLAY_ATTR_SCORE_SCALE = Int32(34)
const SLAY_ATTR_SOFTMAX_SCALE = Int32(35)
const SLAY_ATTR_PRF_CLAMP = Int32(36)
const SLAY_ATTR_KERNEL_CLAMP = Int32(37)
const SLAY_ATTR_NYSTROM_REG = Int32(38)
const SLAY_ATTR_NORM_EPS = Int32(39)
const SLAY_ATTR_POLY2_GAMMA = Int32(40)

const slay_stabilizer_mode_t = Cint
const SLAY_STABILIZER_ADD = Int32(0)
const SLAY_STABILIZER_CLAMP = Int32(1)

const slay_pass_t = Cint
const SLAY_PASS_FORWARD = Int32(0)
const SLAY_PASS_BACKWARD = Int32(1)
const SLAY_PASS_SAMPLE = Int32(2)

# Opaque objects cross as pointers.
const slay_handle_t = Ptr{Cvoid}
const slay_attn_desc_t = Ptr{Cvoid}
const slay_attn_plan_t = Ptr{Cvoid}

# slay_tensor_t: a strided view of caller-owned memory (frozen layout).
struct SlayTensor
    data::Ptr{Cvoid}
    dtype::slay_dtype_t
    rank::Int32
    shape::NTuple{SLAY_MAX_RANK,Int64}
    strides::NTuple{SLAY_MAX_RANK,Int64}
end

# slay_param_segment_t: one named segment of the parameter vector.
struct SlayParamSegment
    struct_size::Csize_t
    name::Ptr{UInt8}
    offset::Int64
    rank::Int32
    shape::NTuple{SLAY_MAX_RANK,Int64}
end

# slay_attn_fwd_args_t (size-prefixed; optional tensors may be NULL).
struct SlayAttnFwdArgs
    struct_size::Csize_t
    q::Ptr{SlayTensor}
    k::Ptr{SlayTensor}
    v::Ptr{SlayTensor}
    params::Ptr{SlayTensor}
    out::Ptr{SlayTensor}
    initial_state::Ptr{SlayTensor}
    final_state::Ptr{SlayTensor}
    position_offset::Int64
    seq_offsets::Ptr{SlayTensor}   # ABI 3; NULL: not packed
    row_stats::Ptr{SlayTensor}     # ABI 4; NULL: none (exact family's row statistics)
    merge::Int64                   # ABI 4; 0
end

# slay_attn_bwd_args_t (size-prefixed; optional tensors may be NULL).
struct SlayAttnBwdArgs
    struct_size::Csize_t
    q::Ptr{SlayTensor}
    k::Ptr{SlayTensor}
    v::Ptr{SlayTensor}
    params::Ptr{SlayTensor}
    out::Ptr{SlayTensor}
    dout::Ptr{SlayTensor}
    dq::Ptr{SlayTensor}
    dk::Ptr{SlayTensor}
    dv::Ptr{SlayTensor}
    initial_state::Ptr{SlayTensor}
    dfinal_state::Ptr{SlayTensor}
    dinitial_state::Ptr{SlayTensor}
    position_offset::Int64
    seq_offsets::Ptr{SlayTensor}   # ABI 3; NULL: not packed
    row_stats::Ptr{SlayTensor}     # ABI 5; NULL: none (the forward's row statistics, exact family)
end

# One method per exported function, in slay.h's order. Strings returned by
# the library are static or thread-local: copy them (unsafe_string) at once.
slay_get_version() = @ccall libslay.slay_get_version()::UInt32
slay_get_abi_version() = @ccall libslay.slay_get_abi_version()::UInt32
slay_status_name(status) = @ccall libslay.slay_status_name(status::slay_status_t)::Ptr{UInt8}
slay_status_string(status) = @ccall libslay.slay_status_string(status::slay_status_t)::Ptr{UInt8}
slay_last_error_message() = @ccall libslay.slay_last_error_message()::Ptr{UInt8}
slay_handle_create(handle, backend, device) =
    @ccall libslay.slay_handle_create(handle::Ptr{slay_handle_t}, backend::slay_backend_t, device::Int32)::slay_status_t
slay_handle_destroy(handle) = @ccall libslay.slay_handle_destroy(handle::slay_handle_t)::slay_status_t
slay_handle_get_backend(handle, backend) =
    @ccall libslay.slay_handle_get_backend(handle::slay_handle_t, backend::Ptr{slay_backend_t})::slay_status_t
slay_attn_variant_name(variant) = @ccall libslay.slay_attn_variant_name(variant::slay_attn_variant_t)::Ptr{UInt8}
slay_attn_variant_from_name(name, variant) =
    @ccall libslay.slay_attn_variant_from_name(name::Cstring, variant::Ptr{slay_attn_variant_t})::slay_status_t
slay_attr_name(attr) = @ccall libslay.slay_attr_name(attr::slay_attr_t)::Ptr{UInt8}
slay_attn_desc_create(desc, variant) =
    @ccall libslay.slay_attn_desc_create(desc::Ptr{slay_attn_desc_t}, variant::slay_attn_variant_t)::slay_status_t
slay_attn_desc_destroy(desc) = @ccall libslay.slay_attn_desc_destroy(desc::slay_attn_desc_t)::slay_status_t
slay_attn_desc_set_i64(desc, attr, value) =
    @ccall libslay.slay_attn_desc_set_i64(desc::slay_attn_desc_t, attr::slay_attr_t, value::Int64)::slay_status_t
slay_attn_desc_set_f64(desc, attr, value) =
    @ccall libslay.slay_attn_desc_set_f64(desc::slay_attn_desc_t, attr::slay_attr_t, value::Cdouble)::slay_status_t
slay_attn_desc_get_i64(desc, attr, value) =
    @ccall libslay.slay_attn_desc_get_i64(desc::slay_attn_desc_t, attr::slay_attr_t, value::Ptr{Int64})::slay_status_t
slay_attn_desc_get_f64(desc, attr, value) =
    @ccall libslay.slay_attn_desc_get_f64(desc::slay_attn_desc_t, attr::slay_attr_t, value::Ptr{Cdouble})::slay_status_t
slay_attn_plan_create(plan, handle, desc) =
    @ccall libslay.slay_attn_plan_create(plan::Ptr{slay_attn_plan_t}, handle::slay_handle_t, desc::slay_attn_desc_t)::slay_status_t
slay_attn_plan_destroy(plan) = @ccall libslay.slay_attn_plan_destroy(plan::slay_attn_plan_t)::slay_status_t
slay_attn_plan_get_i64(plan, attr, value) =
    @ccall libslay.slay_attn_plan_get_i64(plan::slay_attn_plan_t, attr::slay_attr_t, value::Ptr{Int64})::slay_status_t
slay_attn_plan_get_f64(plan, attr, value) =
    @ccall libslay.slay_attn_plan_get_f64(plan::slay_attn_plan_t, attr::slay_attr_t, value::Ptr{Cdouble})::slay_status_t
slay_attn_plan_get_variant(plan, variant) =
    @ccall libslay.slay_attn_plan_get_variant(plan::slay_attn_plan_t, variant::Ptr{slay_attn_variant_t})::slay_status_t
slay_attn_plan_get_workspace_size(plan, pass, batch, seq_len, bytes) =
    @ccall libslay.slay_attn_plan_get_workspace_size(plan::slay_attn_plan_t, pass::slay_pass_t, batch::Int64,
                                                     seq_len::Int64, bytes::Ptr{Csize_t})::slay_status_t
slay_attn_plan_get_feature_dim(plan, features) =
    @ccall libslay.slay_attn_plan_get_feature_dim(plan::slay_attn_plan_t, features::Ptr{Int64})::slay_status_t
slay_attn_plan_get_param_count(plan, count) =
    @ccall libslay.slay_attn_plan_get_param_count(plan::slay_attn_plan_t, count::Ptr{Int64})::slay_status_t
slay_attn_plan_get_param_segment_count(plan, count) =
    @ccall libslay.slay_attn_plan_get_param_segment_count(plan::slay_attn_plan_t, count::Ptr{Int32})::slay_status_t
slay_attn_plan_get_param_segment(plan, index, segment) =
    @ccall libslay.slay_attn_plan_get_param_segment(plan::slay_attn_plan_t, index::Int32,
                                                    segment::Ptr{SlayParamSegment})::slay_status_t
slay_attn_features_sample(plan, seed, offset, params, workspace, workspace_size, stream) =
    @ccall libslay.slay_attn_features_sample(plan::slay_attn_plan_t, seed::UInt64, offset::UInt64,
                                             params::Ptr{SlayTensor}, workspace::Ptr{Cvoid},
                                             workspace_size::Csize_t, stream::Ptr{Cvoid})::slay_status_t
slay_attn_fwd(plan, args, workspace, workspace_size, stream) =
    @ccall libslay.slay_attn_fwd(plan::slay_attn_plan_t, args::Ptr{SlayAttnFwdArgs}, workspace::Ptr{Cvoid},
                                 workspace_size::Csize_t, stream::Ptr{Cvoid})::slay_status_t
slay_attn_bwd(plan, args, workspace, workspace_size, stream) =
    @ccall libslay.slay_attn_bwd(plan::slay_attn_plan_t, args::Ptr{SlayAttnBwdArgs}, workspace::Ptr{Cvoid},
                                 workspace_size::Csize_t, stream::Ptr{Cvoid})::slay_status_t
# One call's workspace (ABI 6): at most slay_attn_plan_get_workspace_size's.
slay_attn_fwd_workspace_size(plan, args, stream, bytes) =
    @ccall libslay.slay_attn_fwd_workspace_size(plan::slay_attn_plan_t, args::Ptr{SlayAttnFwdArgs},
                                                stream::Ptr{Cvoid}, bytes::Ptr{Csize_t})::slay_status_t
slay_attn_bwd_workspace_size(plan, args, stream, bytes) =
    @ccall libslay.slay_attn_bwd_workspace_size(plan::slay_attn_plan_t, args::Ptr{SlayAttnBwdArgs},
                                                stream::Ptr{Cvoid}, bytes::Ptr{Csize_t})::slay_status_t

# ---------------------------------------------------------------- errors

"""
    SlayError(status, name, message)

A failed libslay call: `status` is the slay_status_t, `name` its
slay_status_name ("SLAY_STATUS_BAD_SHAPE"), `message` the C function's name
and slay_last_error_message() (or this module's own description).
"""
struct SlayError <: Exception
    status::Int32
    name::String
    message::String
end
Base.showerror(io::IO, e::SlayError) = print(io, e.name, ": ", e.message)

# A C string the library owns, copied; `nothing` for NULL.
c_string(p::Ptr{UInt8}) = p == C_NULL ? nothing : unsafe_string(p)

status_name(status::Integer) = c_string(slay_status_name(status))
status_string(status::Integer) = c_string(slay_status_string(status))

# Throws SlayError unless status is SUCCESS; reads the thread's last-error
# message before anything else can overwrite it.
function check(status::Integer, what::AbstractString)
    status == SLAY_STATUS_SUCCESS && return nothing
    message = c_string(slay_last_error_message())
    if message === nothing || isempty(message)
        message = status_string(status)
    end
    throw(SlayError(Int32(status), status_name(status), string(what, ": ", message)))
end

# An error this module raises before any C call (the name is the library's).
wrapper_error(status::Integer, message::AbstractString) = SlayError(Int32(status), status_name(status), message)

# --------------------------------------------------------- library queries

"libslay's version as a VersionNumber."
function version()
    v = slay_get_version()
    return VersionNumber(v ÷ 10000, v ÷ 100 % 100, v % 100)
end
"slay_get_abi_version()."
abi_version() = Int(slay_get_abi_version())
"The name of a variant (\"slay_anchor\", ...), or `nothing` for an unknown value."
variant_name(variant::Integer) = c_string(slay_attn_variant_name(variant))
"The name of an attribute (\"num_heads\", ...), or `nothing` for an unknown one."
attr_name(attr::Integer) = c_string(slay_attr_name(attr))

"Parses \"slay_anchor\", \"yat-spherical\", ...; SlayError (INVALID_VALUE) for unknown names."
function variant_from_name(name::AbstractString)
    variant = Ref{slay_attn_variant_t}(0)
    check(slay_attn_variant_from_name(name, variant), "slay_attn_variant_from_name")
    return variant[]
end

# Attribute names -> values, from the library itself (so keyword arguments
# follow slay_attr_name): the i64 attributes are 0..31, the f64 ones 32..63.
const ATTRIBUTES = Dict{Symbol,Int32}()
function attribute(name::Symbol)
    if isempty(ATTRIBUTES)
        for a in Int32(0):Int32(63)
            n = attr_name(a)
            n === nothing || (ATTRIBUTES[Symbol(n)] = a)
        end
    end
    haskey(ATTRIBUTES, name) && return ATTRIBUTES[name]
    throw(wrapper_error(SLAY_STATUS_UNKNOWN_ATTRIBUTE,
                        "no attribute named $name (known: $(join(sort!(collect(keys(ATTRIBUTES))), ", ")))"))
end

# ------------------------------------------------------------------ handle

"""
    Handle(backend=SLAY_BACKEND_CPU, device=0)
    Handle(f, backend=SLAY_BACKEND_CPU, device=0)

A backend (and CUDA device ordinal). Released by close(), by its finalizer, or
at the end of the do-block form, but never before its last Plan is closed.
"""
mutable struct Handle
    ptr::slay_handle_t
    live_plans::Int     # plans bound to it and not yet closed
    close_pending::Bool # close() was asked while plans were alive
    function Handle(backend::Integer=SLAY_BACKEND_CPU, device::Integer=0)
        ref = Ref{slay_handle_t}(C_NULL)
        check(slay_handle_create(ref, backend, device), "slay_handle_create")
        return finalizer(close, new(ref[], 0, false))
    end
end

function Base.close(handle::Handle)
    if handle.live_plans > 0
        handle.close_pending = true
    elseif handle.ptr != C_NULL
        slay_handle_destroy(handle.ptr)
        handle.ptr = C_NULL
    end
    return nothing
end

"The handle's slay_backend_t."
function backend(handle::Handle)
    value = Ref{slay_backend_t}(0)
    check(slay_handle_get_backend(live(handle), value), "slay_handle_get_backend")
    return value[]
end

# ------------------------------------------------------------- descriptor

"""
    Descriptor(variant; attributes...)
    Descriptor(f, variant; attributes...)

A variant with its attributes (defaults unless set). Keyword names are the
library's attribute names: `num_heads=4, head_dim=64, epsilon=1e-6`;
integers set i64 attributes, floats f64 ones.
"""
mutable struct Descriptor
    ptr::slay_attn_desc_t
    function Descriptor(variant::Integer; attributes...)
        ref = Ref{slay_attn_desc_t}(C_NULL)
        check(slay_attn_desc_create(ref, variant), "slay_attn_desc_create")
        desc = finalizer(close, new(ref[]))
        for (name, value) in attributes
            set!(desc, attribute(name), value)
        end
        return desc
    end
end

function Base.close(desc::Descriptor)
    if desc.ptr != C_NULL
        slay_attn_desc_destroy(desc.ptr)
        desc.ptr = C_NULL
    end
    return nothing
end

"Sets an i64 (Integer value) or f64 (AbstractFloat value) attribute; returns desc."
function set!(desc::Descriptor, attr::Integer, value::Integer)
    check(slay_attn_desc_set_i64(live(desc), attr, value), "slay_attn_desc_set_i64")
    return desc
end
function set!(desc::Descriptor, attr::Integer, value::AbstractFloat)
    check(slay_attn_desc_set_f64(live(desc), attr, value), "slay_attn_desc_set_f64")
    return desc
end
function get_i64(desc::Descriptor, attr::Integer)
    value = Ref{Int64}(0)
    check(slay_attn_desc_get_i64(live(desc), attr, value), "slay_attn_desc_get_i64")
    return value[]
end
function get_f64(desc::Descriptor, attr::Integer)
    value = Ref{Cdouble}(0)
    check(slay_attn_desc_get_f64(live(desc), attr, value), "slay_attn_desc_get_f64")
    return value[]
end

# -------------------------------------------------------------------- plan

"""
    Plan(handle, desc::Descriptor)
    Plan(handle, variant; attributes...)

A validated descriptor bound to `handle`; keeps the handle alive and open.
One plan is executed by one thread at a time.
"""
mutable struct Plan
    ptr::slay_attn_plan_t
    handle::Handle
    function Plan(handle::Handle, desc::Descriptor)
        ref = Ref{slay_attn_plan_t}(C_NULL)
        check(slay_attn_plan_create(ref, live(handle), live(desc)), "slay_attn_plan_create")
        handle.live_plans += 1
        return finalizer(close, new(ref[], handle))
    end
end

function Plan(handle::Handle, variant::Integer; attributes...)
    desc = Descriptor(variant; attributes...)
    try
        return Plan(handle, desc)
    finally
        close(desc) # the plan holds its own copy
    end
end

function Base.close(plan::Plan)
    if plan.ptr != C_NULL
        slay_attn_plan_destroy(plan.ptr)
        plan.ptr = C_NULL
        handle = plan.handle
        handle.live_plans -= 1
        handle.live_plans == 0 && handle.close_pending && close(handle)
    end
    return nothing
end

# The do-block forms: f(object), then close(object) even if f throws.
for T in (:Handle, :Descriptor, :Plan)
    @eval function $T(f::Function, args...; kwargs...)
        object = $T(args...; kwargs...)
        try
            return f(object)
        finally
            close(object)
        end
    end
end

# The C pointer of an object that is still open.
function live(x::Union{Handle,Descriptor,Plan})
    x.ptr == C_NULL && throw(wrapper_error(SLAY_STATUS_INVALID_ARGUMENT, "$(typeof(x)) used after close()"))
    return x.ptr
end

"The plan's variant."
function variant(plan::Plan)
    value = Ref{slay_attn_variant_t}(0)
    check(slay_attn_plan_get_variant(live(plan), value), "slay_attn_plan_get_variant")
    return value[]
end
"A resolved i64 attribute (VALUE_DIM gives Dv)."
function get_i64(plan::Plan, attr::Integer)
    value = Ref{Int64}(0)
    check(slay_attn_plan_get_i64(live(plan), attr, value), "slay_attn_plan_get_i64")
    return value[]
end
"A resolved f64 attribute (SOFTMAX_SCALE gives the effective scale)."
function get_f64(plan::Plan, attr::Integer)
    value = Ref{Cdouble}(0)
    check(slay_attn_plan_get_f64(live(plan), attr, value), "slay_attn_plan_get_f64")
    return value[]
end
"Bytes of workspace `pass` needs for batch B and sequence length T (0 is valid)."
function workspace_size(plan::Plan, pass::Integer, batch::Integer, seq_len::Integer)
    bytes = Ref{Csize_t}(0)
    check(slay_attn_plan_get_workspace_size(live(plan), pass, batch, seq_len, bytes),
          "slay_attn_plan_get_workspace_size")
    return Int(bytes[])
end
"F of the state (B, H, F, Dv+1); 0 for the exact variants."
function feature_dim(plan::Plan)
    value = Ref{Int64}(0)
    check(slay_attn_plan_get_feature_dim(live(plan), value), "slay_attn_plan_get_feature_dim")
    return value[]
end
"Length of the fp32 feature-parameter vector (0 for deterministic variants)."
function param_count(plan::Plan)
    value = Ref{Int64}(0)
    check(slay_attn_plan_get_param_count(live(plan), value), "slay_attn_plan_get_param_count")
    return value[]
end
"The parameter vector's segments: (name, offset, shape) named tuples, in order."
function param_segments(plan::Plan)
    count = Ref{Int32}(0)
    check(slay_attn_plan_get_param_segment_count(live(plan), count), "slay_attn_plan_get_param_segment_count")
    segments = NamedTuple{(:name, :offset, :shape),Tuple{String,Int64,Vector{Int64}}}[]
    for index in Int32(0):count[]-Int32(1)
        seg = Ref(SlayParamSegment(sizeof(SlayParamSegment), Ptr{UInt8}(C_NULL), 0, 0, (0, 0, 0, 0)))
        check(slay_attn_plan_get_param_segment(plan.ptr, index, seg), "slay_attn_plan_get_param_segment")
        s = seg[]
        push!(segments, (name=something(c_string(s.name), ""), offset=s.offset, shape=collect(s.shape[1:s.rank])))
    end
    return segments
end

# ----------------------------------------------------------------- tensors

dtype_of(::Type{Float32}) = SLAY_DTYPE_FLOAT32
dtype_of(::Type{Float16}) = SLAY_DTYPE_FLOAT16
dtype_of(::Type{Int32}) = SLAY_DTYPE_INT32   # seq_offsets only
dtype_of(::Type{Int64}) = SLAY_DTYPE_INT64
dtype_of(::Type{T}) where {T} =
    throw(wrapper_error(SLAY_STATUS_BAD_DTYPE, "no libslay dtype for element type $T; UInt16 arrays " *
                                               "holding bf16 bits need tensor(x; dtype=SLAY_DTYPE_BFLOAT16)"))

"""
    tensor(x::StridedArray; dtype) -> SlayTensor
    tensor(ptr::Ptr, dtype, shape, strides) -> SlayTensor

A view for the C calls. For a Julia array of size (D, T, H, B) the logical
(B, H, T, D) shape and strides are the reverse of size(x) and strides(x).
The element type gives the dtype (Float32, Float16); UInt16 bits need an
explicit `dtype` (SLAY_DTYPE_BFLOAT16 or SLAY_DTYPE_FLOAT16). The view does
not keep `x` alive: the calls below take arrays and preserve them; keep x
alive yourself (GC.@preserve) if you pass views. The pointer form is for
device memory (CUDA backend); shape and strides are in (B, H, T, D) order.
"""
function tensor(x::StridedArray{T}; dtype::Union{Integer,Nothing}=nothing) where {T}
    if T === UInt16
        dtype in (SLAY_DTYPE_BFLOAT16, SLAY_DTYPE_FLOAT16) ||
            throw(wrapper_error(SLAY_STATUS_BAD_DTYPE, "a UInt16 array holds BFLOAT16 or FLOAT16 bits: pass dtype"))
    elseif dtype === nothing
        dtype = dtype_of(T)
    end
    return tensor(Ptr{Cvoid}(pointer(x)), dtype, reverse(size(x)), reverse(strides(x)))
end

function tensor(ptr::Ptr, dtype::Integer, shape, strides)
    rank = length(shape)
    1 <= rank <= SLAY_MAX_RANK ||
        throw(wrapper_error(SLAY_STATUS_INVALID_ARGUMENT, "tensor rank $rank is not in 1:$SLAY_MAX_RANK"))
    length(strides) == rank ||
        throw(wrapper_error(SLAY_STATUS_INVALID_ARGUMENT, "tensor has $rank extents but $(length(strides)) strides"))
    pad(v) = ntuple(i -> i <= rank ? Int64(v[i]) : Int64(0), SLAY_MAX_RANK)
    return SlayTensor(Ptr{Cvoid}(ptr), dtype, rank, pad(shape), pad(strides))
end

# What a call accepts for a tensor: a Julia array (CPU backend), a prepared
# SlayTensor (device memory), or nothing for an optional one.
const TensorArg = Union{StridedArray,SlayTensor,Nothing}

as_tensor(x::StridedArray) = tensor(x)
as_tensor(x::SlayTensor) = x
# A Ref to the view (its address goes into the argument block), or nothing.
tensor_ref(x::Nothing) = nothing
tensor_ref(x) = Ref(as_tensor(x))
tensor_ptr(r::Nothing) = Ptr{SlayTensor}(C_NULL)
tensor_ptr(r::Base.RefValue{SlayTensor}) = Base.unsafe_convert(Ptr{SlayTensor}, r)

# (B, T) of a (B, H, T, D) view, for workspace queries.
function batch_and_length(x)
    t = as_tensor(x)
    t.rank == 4 ||
        throw(wrapper_error(SLAY_STATUS_BAD_SHAPE, "q must be a rank-4 (B, H, T, D) tensor, got rank $(t.rank)"))
    return (t.shape[1], t.shape[3])
end

# (batch, length) a call's workspace is sized for: q's (B, T), or for a packed
# call (N, longest sequence) of its host offsets. Bad offsets give a size the
# call then rejects with the library's message. Offsets given as a SlayTensor
# (device memory) are not read here: such a call passes its own workspace.
function batch_and_length(q, seq_offsets)
    dense = batch_and_length(q)
    seq_offsets === nothing && return dense
    seq_offsets isa AbstractVector ||
        throw(wrapper_error(SLAY_STATUS_INVALID_ARGUMENT, "seq_offsets is a SlayTensor: pass a workspace of " *
                                                          "workspace_size(plan, pass, N, longest sequence) bytes"))
    n = length(seq_offsets) - 1
    longest = n >= 1 ? maximum(Int64(seq_offsets[i+1]) - Int64(seq_offsets[i]) for i in 1:n) : Int64(0)
    return (Int64(max(n, 0)), max(longest, Int64(0)))
end

# A workspace: a host Vector{UInt8} (Julia aligns array data to at least 16
# bytes, as slay.h requires), (device pointer, bytes), or nothing: then one
# of the size the plan asks for is allocated on the host.
workspace_ptr(ws::Vector{UInt8}) = (isempty(ws) ? C_NULL : Ptr{Cvoid}(pointer(ws)), length(ws))
workspace_ptr(ws::Tuple{Ptr,Integer}) = (Ptr{Cvoid}(ws[1]), Int(ws[2]))

# ---------------------------------------------------------------- calls

"""
    sample_features!(plan, params; seed, offset=0, workspace=nothing, stream=C_NULL)

Fills `params` (a Float32 vector of param_count(plan) elements, or a device
SlayTensor) with the variant's random feature parameters drawn from
(seed, offset), the same on every backend. Returns params.
"""
function sample_features!(plan::Plan, params::TensorArg; seed::Integer, offset::Integer=0,
                          workspace=nothing, stream::Ptr=C_NULL)
    ws = workspace === nothing ? Vector{UInt8}(undef, workspace_size(plan, SLAY_PASS_SAMPLE, 0, 0)) : workspace
    p = tensor_ref(params)
    GC.@preserve params ws p begin
        ws_ptr, ws_bytes = workspace_ptr(ws)
        check(slay_attn_features_sample(live(plan), seed, offset, tensor_ptr(p), ws_ptr, ws_bytes, stream),
              "slay_attn_features_sample")
    end
    return params
end

"""
    forward!(plan, out, q, k, v; params=nothing, initial_state=nothing,
             final_state=nothing, position_offset=0, seq_offsets=nothing, workspace=nothing, stream=C_NULL)

out = attention(q, k, v): q (B, H, T, D), k (B, H_kv, T, D), v (B, H_kv, T, Dv)
and out (B, H, T, Dv), i.e. Julia arrays of size (D, T, H, B), ... in the
plan's io dtype. `params` (param_count,) fp32 for the random-feature variants;
the states (B, H, F, Dv+1) fp32 carry a linear-attention prefix in and out.
`seq_offsets` (a Vector{Int32} or Vector{Int64} of N+1 offsets) makes it a
packed call of N sequences: B = 1, sequence i holding the (0-based) tokens
seq_offsets[i] to seq_offsets[i+1]-1, states with N rows.
Returns out.
"""
function forward!(plan::Plan, out::TensorArg, q::TensorArg, k::TensorArg, v::TensorArg;
                  params::TensorArg=nothing, initial_state::TensorArg=nothing, final_state::TensorArg=nothing,
                  position_offset::Integer=0, seq_offsets::TensorArg=nothing, workspace=nothing,
                  stream::Ptr=C_NULL)
    B, T = batch_and_length(q, seq_offsets)
    ws = workspace === nothing ? Vector{UInt8}(undef, workspace_size(plan, SLAY_PASS_FORWARD, B, T)) : workspace
    rq, rk, rv, rp, ro = tensor_ref(q), tensor_ref(k), tensor_ref(v), tensor_ref(params), tensor_ref(out)
    ri, rf, rs = tensor_ref(initial_state), tensor_ref(final_state), tensor_ref(seq_offsets)
    GC.@preserve out q k v params initial_state final_state seq_offsets ws rq rk rv rp ro ri rf rs begin
        args = Ref(SlayAttnFwdArgs(sizeof(SlayAttnFwdArgs), tensor_ptr(rq), tensor_ptr(rk), tensor_ptr(rv),
                                   tensor_ptr(rp), tensor_ptr(ro), tensor_ptr(ri), tensor_ptr(rf),
                                   position_offset, tensor_ptr(rs), Ptr{SlayTensor}(C_NULL), Int64(0)))
        ws_ptr, ws_bytes = workspace_ptr(ws)
        check(slay_attn_fwd(live(plan), args, ws_ptr, ws_bytes, stream), "slay_attn_fwd")
    end
    return out
end

"""
    backward!(plan, dq, dk, dv, q, k, v, out, dout; params=nothing, initial_state=nothing,
              dfinal_state=nothing, dinitial_state=nothing, position_offset=0,
              seq_offsets=nothing, workspace=nothing, stream=C_NULL)

Gradients of L with respect to q, k, v (written into dq, dk, dv, shaped like
q, k, v; grouped k, v get their group's summed gradient) given out (the
forward's output) and dout = dL/dout; with states, dinitial_state receives
dL/dinitial_state given dfinal_state. `seq_offsets` as in forward!. Returns
(dq, dk, dv).
"""
function backward!(plan::Plan, dq::TensorArg, dk::TensorArg, dv::TensorArg, q::TensorArg, k::TensorArg,
                   v::TensorArg, out::TensorArg, dout::TensorArg; params::TensorArg=nothing,
                   initial_state::TensorArg=nothing, dfinal_state::TensorArg=nothing,
                   dinitial_state::TensorArg=nothing, position_offset::Integer=0, seq_offsets::TensorArg=nothing,
                   workspace=nothing, stream::Ptr=C_NULL)
    B, T = batch_and_length(q, seq_offsets)
    ws = workspace === nothing ? Vector{UInt8}(undef, workspace_size(plan, SLAY_PASS_BACKWARD, B, T)) : workspace
    rq, rk, rv, rp, ro, rdo = tensor_ref(q), tensor_ref(k), tensor_ref(v), tensor_ref(params), tensor_ref(out),
                              tensor_ref(dout)
    rdq, rdk, rdv = tensor_ref(dq), tensor_ref(dk), tensor_ref(dv)
    ri, rdf, rdi = tensor_ref(initial_state), tensor_ref(dfinal_state), tensor_ref(dinitial_state)
    rs = tensor_ref(seq_offsets)
    GC.@preserve dq dk dv q k v out dout params initial_state dfinal_state dinitial_state seq_offsets ws rq rk rv rp ro rdo rdq rdk rdv ri rdf rdi rs begin
        args = Ref(SlayAttnBwdArgs(sizeof(SlayAttnBwdArgs), tensor_ptr(rq), tensor_ptr(rk), tensor_ptr(rv),
                                   tensor_ptr(rp), tensor_ptr(ro), tensor_ptr(rdo), tensor_ptr(rdq),
                                   tensor_ptr(rdk), tensor_ptr(rdv), tensor_ptr(ri), tensor_ptr(rdf),
                                   tensor_ptr(rdi), position_offset, tensor_ptr(rs), Ptr{SlayTensor}(C_NULL)))
        ws_ptr, ws_bytes = workspace_ptr(ws)
        check(slay_attn_bwd(live(plan), args, ws_ptr, ws_bytes, stream), "slay_attn_bwd")
    end
    return (dq, dk, dv)
end

end # module Slay
