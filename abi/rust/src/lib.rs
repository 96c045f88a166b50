//! Safe Rust bindings for libslay, loaded at run time with `dlopen`.
//!
//! libslay computes attention for the SLAY family (Spherical Linearized
//! Attention with Yat kernels) and the variants it is compared with, on a CPU
//! reference backend or a CUDA device. Shapes use (B, H, T, D) notation:
//! q is (B, H, T, D), k (B, H_kv, T, D), v (B, H_kv, T, Dv) (H_kv = H unless
//! [`Attr::NUM_KV_HEADS`] sets grouped-query heads), out (B, H, T, Dv), the
//! linear-attention state (B, H, F, Dv+1) fp32, the feature parameters (N,)
//! fp32. A packed call ([`ForwardArgs::with_seq_offsets`]) has B = 1, N
//! sequences back to back on the token axis and N state rows. Strides are in
//! elements; the innermost must be 1.
//!
//! This crate uses std only. [`Library::open`] finds the library through the
//! `SLAY_LIBRARY` environment variable (a path) or else asks the system loader
//! for `libslay.so.0.1`. The wrappers own the C objects and release them on
//! drop: a [`Handle`] and a [`Descriptor`] keep the [`Library`] loaded (an
//! `Arc`), and a [`Plan`] borrows its handle, so the borrow checker enforces
//! the header's rule that a handle outlives its plans. Every failure is an
//! [`Error`] carrying the status code, its `slay_status_name` and the text of
//! `slay_last_error_message`.
//!
//! The safe execution calls ([`Plan::forward`], [`Plan::backward`],
//! [`Plan::sample_features`]) run on the CPU backend with tensors built from
//! slices. For CUDA there is no runtime binding here: build tensors from
//! device pointers with the `unsafe` `from_raw` constructors and call the
//! `*_raw` methods with a device workspace and a `cudaStream_t`.
//!
//! ```no_run
//! use slay::{Attr, Backend, Descriptor, ForwardArgs, Handle, Library, Pass, Plan, Tensor, TensorMut, Variant, Workspace};
//! # fn main() -> Result<(), slay::Error> {
//! let lib = Library::open()?;
//! let handle = Handle::new(&lib, Backend::CPU, 0)?;
//! let (b, h, t, d) = (1i64, 2i64, 8i64, 16i64);
//! let mut desc = Descriptor::new(&lib, Variant::YAT_SPHERICAL)?;
//! desc.set_i64(Attr::NUM_HEADS, h)?.set_i64(Attr::HEAD_DIM, d)?;
//! let plan = Plan::new(&handle, &desc)?;
//! let q = vec![0.5f32; (b * h * t * d) as usize];
//! let mut out = vec![0f32; q.len()];
//! let shape = [b, h, t, d];
//! let mut ws = Workspace::new(plan.workspace_size(Pass::FORWARD, b, t)?);
//! let mut args = ForwardArgs::new(Tensor::new(&q, &shape)?, Tensor::new(&q, &shape)?,
//!                                 Tensor::new(&q, &shape)?, TensorMut::new(&mut out, &shape)?);
//! plan.forward(&mut args, &mut ws)?;
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

pub mod ffi;

use std::ffi::{CStr, CString};
use std::fmt;
use std::marker::PhantomData;
use std::os::raw::{c_char, c_void};
use std::ptr;
use std::sync::Arc;

/// The file name the system loader is asked for when `SLAY_LIBRARY` is unset
/// (the SONAME of this ABI series).
pub const DEFAULT_LIBRARY_NAME: &str = "libslay.so.0.1";
/// The environment variable naming the library to load (a path).
pub const LIBRARY_ENV_VAR: &str = "SLAY_LIBRARY";

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

// ------------------------------------------------------------------ enums

/// Declares a transparent `i32` newtype for a C enum with its named values.
/// Newtypes (not Rust enums) because the library may return values this
/// crate does not know yet (the ABI grows by appending).
macro_rules! c_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $value:ident = $c:ident,)* }) => {
        $(#[$doc])*
        #[repr(transparent)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub struct $name(pub i32);
        impl $name {
            $( $(#[$vdoc])* pub const $value: $name = $name(ffi::$c); )*
        }
    };
}

c_enum! {
    /// A `slay_status_t`. [`Status::LIBRARY_NOT_LOADED`] is this crate's own.
    Status {
        /// The call succeeded.
        SUCCESS = SLAY_STATUS_SUCCESS,
        /// NULL pointer or bad enum value.
        INVALID_ARGUMENT = SLAY_STATUS_INVALID_ARGUMENT,
        /// A value out of its range.
        INVALID_VALUE = SLAY_STATUS_INVALID_VALUE,
        /// Tensor shapes disagree.
        BAD_SHAPE = SLAY_STATUS_BAD_SHAPE,
        /// Innermost stride != 1, negative stride, overlapping output.
        BAD_STRIDE = SLAY_STATUS_BAD_STRIDE,
        /// A dtype other than the one required.
        BAD_DTYPE = SLAY_STATUS_BAD_DTYPE,
        /// Not an attribute of this ABI.
        UNKNOWN_ATTRIBUTE = SLAY_STATUS_UNKNOWN_ATTRIBUTE,
        /// set_f64 on an integer attribute or the reverse.
        ATTRIBUTE_TYPE = SLAY_STATUS_ATTRIBUTE_TYPE,
        /// The variant does not use this attribute.
        ATTRIBUTE_NOT_APPLICABLE = SLAY_STATUS_ATTRIBUTE_NOT_APPLICABLE,
        /// The workspace is smaller than the plan's query says.
        WORKSPACE_TOO_SMALL = SLAY_STATUS_WORKSPACE_TOO_SMALL,
        /// struct_size smaller than the smallest known layout.
        STRUCT_SIZE = SLAY_STATUS_STRUCT_SIZE,
        /// E.g. a stream given to the CPU backend, host memory to CUDA.
        BACKEND_MISMATCH = SLAY_STATUS_BACKEND_MISMATCH,
        /// The plan is executing on another thread (ABI 2).
        PLAN_IN_USE = SLAY_STATUS_PLAN_IN_USE,
        /// A valid request this build or variant does not support.
        NOT_SUPPORTED = SLAY_STATUS_NOT_SUPPORTED,
        /// No usable CUDA device or driver.
        NO_DEVICE = SLAY_STATUS_NO_DEVICE,
        /// A CUDA runtime failure.
        CUDA_ERROR = SLAY_STATUS_CUDA_ERROR,
        /// A cuRAND failure.
        CURAND_ERROR = SLAY_STATUS_CURAND_ERROR,
        /// A cuFFT failure.
        CUFFT_ERROR = SLAY_STATUS_CUFFT_ERROR,
        /// Out of memory.
        OUT_OF_MEMORY = SLAY_STATUS_OUT_OF_MEMORY,
        /// A bug in libslay.
        INTERNAL_ERROR = SLAY_STATUS_INTERNAL_ERROR,
    }
}

impl Status {
    /// Not a libslay status: the library could not be loaded (no status code
    /// of libslay is negative).
    pub const LIBRARY_NOT_LOADED: Status = Status(-1);
}

c_enum! {
    /// Element type of a tensor (`slay_dtype_t`).
    Dtype {
        /// IEEE fp32 (`&[f32]`).
        FLOAT32 = SLAY_DTYPE_FLOAT32,
        /// bfloat16, passed as its bits (`&[u16]`).
        BFLOAT16 = SLAY_DTYPE_BFLOAT16,
        /// IEEE fp16, passed as its bits (`&[u16]`).
        FLOAT16 = SLAY_DTYPE_FLOAT16,
        /// int32 sequence offsets (`&[i32]`; ABI 3).
        INT32 = SLAY_DTYPE_INT32,
        /// int64 sequence offsets (`&[i64]`; ABI 3).
        INT64 = SLAY_DTYPE_INT64,
    }
}

c_enum! {
    /// Where a handle computes (`slay_backend_t`).
    Backend {
        /// The reference backend (fp64 accumulation; host memory).
        CPU = SLAY_BACKEND_CPU,
        /// A CUDA device (device memory).
        CUDA = SLAY_BACKEND_CUDA,
    }
}

c_enum! {
    /// An attention mechanism (`slay_attn_variant_t`).
    Variant {
        /// softmax(q.k * softmax_scale), exact.
        STANDARD = SLAY_ATTN_STANDARD,
        /// Softmax of the Yat score, exact.
        YAT = SLAY_ATTN_YAT,
        /// Kernel-normalised x^2/(C-2x), x = q^.k^, exact.
        YAT_SPHERICAL = SLAY_ATTN_YAT_SPHERICAL,
        /// Anchor polynomial (x) PRF features: the paper's SLAY.
        SLAY_ANCHOR = SLAY_ATTN_SLAY_ANCHOR,
        /// PRF features only.
        SLAY_LAPLACE = SLAY_ATTN_SLAY_LAPLACE,
        /// u^2 * PRF with shared omega.
        SLAY_HADAMARD = SLAY_ATTN_SLAY_HADAMARD,
        /// TensorSketch polynomial (x) PRF.
        SLAY_TENSORSKETCH = SLAY_ATTN_SLAY_TENSORSKETCH,
        /// Random Maclaurin polynomial (x) PRF.
        SLAY_RANDOM_MACLAURIN = SLAY_ATTN_SLAY_RANDOM_MACLAURIN,
        /// Nystrom polynomial (x) PRF.
        SLAY_NYSTROM = SLAY_ATTN_SLAY_NYSTROM,
        /// ReLU random features.
        PERFORMER = SLAY_ATTN_PERFORMER,
        /// elu(x) + 1.
        LINEAR = SLAY_ATTN_LINEAR,
        /// ReLU with cos/sin position reweighting.
        COSFORMER = SLAY_ATTN_COSFORMER,
        /// Random Fourier features.
        RFF = SLAY_ATTN_RFF,
        /// Exact degree-2 features (q^.k^)^2 on a random orthonormal frame (ABI 3).
        SLAY_POLY2 = SLAY_ATTN_SLAY_POLY2,
    }
}

impl Variant {
    /// Number of variants this crate knows (`SLAY_ATTN_VARIANT_COUNT_`).
    pub const COUNT: i32 = ffi::SLAY_ATTN_VARIANT_COUNT_;
}

c_enum! {
    /// A descriptor/plan attribute (`slay_attr_t`); ranges and defaults are
    /// in slay.h and the README.
    Attr {
        /// H (i64).
        NUM_HEADS = SLAY_ATTR_NUM_HEADS,
        /// D (i64).
        HEAD_DIM = SLAY_ATTR_HEAD_DIM,
        /// Dv (i64); 0 means Dv = D.
        VALUE_DIM = SLAY_ATTR_VALUE_DIM,
        /// 0 or 1 (i64).
        CAUSAL = SLAY_ATTR_CAUSAL,
        /// A [`Dtype`] value for q, k, v, out and their gradients (i64).
        IO_DTYPE = SLAY_ATTR_IO_DTYPE,
        /// 0 or 1: GPU fp32 matmuls may use TF32 (i64).
        ALLOW_TF32 = SLAY_ATTR_ALLOW_TF32,
        /// R, Gauss-Laguerre nodes (i64).
        NUM_QUAD_NODES = SLAY_ATTR_NUM_QUAD_NODES,
        /// M, random features per node (i64).
        NUM_FEATURES = SLAY_ATTR_NUM_FEATURES,
        /// P, polynomial feature dimension (i64).
        POLY_DIM = SLAY_ATTR_POLY_DIM,
        /// A hint for the GPU scan's chunk (i64).
        CHUNK_SIZE = SLAY_ATTR_CHUNK_SIZE,
        /// A [`StabilizerMode`] value (i64).
        STABILIZER_MODE = SLAY_ATTR_STABILIZER_MODE,
        /// L of cosformer; 0 means T of each call (i64).
        COSFORMER_LENGTH = SLAY_ATTR_COSFORMER_LENGTH,
        /// H_kv key/value heads, H a multiple of it; 0 means H (i64, ABI 3).
        NUM_KV_HEADS = SLAY_ATTR_NUM_KV_HEADS,
        /// eps of the Yat kernel, C = 2 + eps (f64).
        EPSILON = SLAY_ATTR_EPSILON,
        /// delta of the denominator (f64).
        STABILIZER = SLAY_ATTR_STABILIZER,
        /// Multiplier of the yat / yat_spherical score (f64).
        SCORE_SCALE = SLAY_ATTR_SCORE_SCALE,
        /// Standard softmax scale; 0 means 1/sqrt(D) (f64).
        SOFTMAX_SCALE = SLAY_ATTR_SOFTMAX_SCALE,
        /// PRF exponent clamp (f64).
        PRF_CLAMP = SLAY_ATTR_PRF_CLAMP,
        /// yat_spherical: lower clamp of C - 2x (f64).
        KERNEL_CLAMP = SLAY_ATTR_KERNEL_CLAMP,
        /// lambda of K_AA + lambda I (f64).
        NYSTROM_REG = SLAY_ATTR_NYSTROM_REG,
        /// eps of x / max(|x|, eps) (f64).
        NORM_EPS = SLAY_ATTR_NORM_EPS,
        /// slay_poly2: gamma of the constant feature; negative means auto (f64, ABI 3).
        POLY2_GAMMA = SLAY_ATTR_POLY2_GAMMA,
    }
}

c_enum! {
    /// How a denominator is made safe (`slay_stabilizer_mode_t`).
    StabilizerMode {
        /// Z + delta.
        ADD = SLAY_STABILIZER_ADD,
        /// max(Z, delta).
        CLAMP = SLAY_STABILIZER_CLAMP,
    }
}

c_enum! {
    /// The call a workspace is sized for (`slay_pass_t`).
    Pass {
        /// [`Plan::forward`].
        FORWARD = SLAY_PASS_FORWARD,
        /// [`Plan::backward`].
        BACKWARD = SLAY_PASS_BACKWARD,
        /// [`Plan::sample_features`].
        SAMPLE = SLAY_PASS_SAMPLE,
    }
}

// ------------------------------------------------------------------ errors

/// A failed libslay call (or a request this crate refused before calling).
/// Displays as `SLAY_STATUS_BAD_SHAPE: slay_attn_fwd: k.shape[2]=...`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    status: Status,
    name: String,
    message: String,
}

impl Error {
    /// The status code (`slay_status_t`, or [`Status::LIBRARY_NOT_LOADED`]).
    pub fn status(&self) -> Status {
        self.status
    }
    /// `slay_status_name(status)`, e.g. "SLAY_STATUS_BAD_SHAPE".
    pub fn name(&self) -> &str {
        &self.name
    }
    /// What was wrong: `slay_last_error_message()` prefixed with the C
    /// function's name, or this crate's own description.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.message)
    }
}

impl std::error::Error for Error {}

/// An error this crate raises itself, before any C call. The name is the
/// header constant's own identifier, so it equals `slay_status_name`.
macro_rules! wrapper_error {
    ($c:ident, $($fmt:tt)*) => {
        Error { status: Status(ffi::$c), name: stringify!($c).to_string(), message: format!($($fmt)*) }
    };
}

/// A NUL-terminated C string owned by the library, copied; None for NULL.
///
/// # Safety
/// `text` must be NULL or point to a NUL-terminated string.
unsafe fn copy_c_string(text: *const c_char) -> Option<String> {
    if text.is_null() {
        None
    } else {
        Some(CStr::from_ptr(text).to_string_lossy().into_owned())
    }
}

// ----------------------------------------------------------------- library

/// libslay, opened with `dlopen` and closed (`dlclose`) when the last
/// [`Handle`], [`Descriptor`] or `Arc` holding it is dropped.
pub struct Library {
    api: ffi::Api,
    path: String,
    // Declared last: dropped (dlclosed) after nothing can call into it.
    _dl: ffi::DlHandle,
}

// SAFETY: the table holds plain function pointers and the dl handle is
// process-wide; libslay's version, name and last-error calls are thread-safe
// and the last-error message is thread-local (slay.h, "Threading").
unsafe impl Send for Library {}
unsafe impl Sync for Library {}

impl fmt::Debug for Library {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Library").field("path", &self.path).finish()
    }
}

impl Library {
    /// Opens the library named by `SLAY_LIBRARY`, or `libslay.so.0.1` through
    /// the system loader's search path when the variable is unset or empty.
    pub fn open() -> Result<Arc<Library>> {
        match std::env::var(LIBRARY_ENV_VAR) {
            Ok(path) if !path.is_empty() => Library::open_path(&path),
            _ => Library::open_path(DEFAULT_LIBRARY_NAME),
        }
    }

    /// Opens the library at `path` (a file name is searched for by the system
    /// loader) and checks that its ABI version is at least the one these
    /// bindings were written against.
    pub fn open_path(path: &str) -> Result<Arc<Library>> {
        let not_loaded = |why: String| Error {
            status: Status::LIBRARY_NOT_LOADED,
            name: "SLAY_LIBRARY_NOT_LOADED".to_string(),
            message: format!(
                "cannot load libslay from {:?}: {} (set {} to the path of libslay.so.0.1, \
                 or add its directory to LD_LIBRARY_PATH)",
                path, why, LIBRARY_ENV_VAR
            ),
        };
        let dl = ffi::DlHandle::open(path).map_err(not_loaded)?;
        let api = ffi::Api::load(&dl).map_err(not_loaded)?;
        let library = Library { api, path: path.to_string(), _dl: dl };
        let abi = library.abi_version();
        if abi < ffi::MIN_ABI_VERSION {
            return Err(not_loaded(format!(
                "its ABI version is {}, these bindings need {} or newer",
                abi,
                ffi::MIN_ABI_VERSION
            )));
        }
        Ok(Arc::new(library))
    }

    /// The path or name the library was opened from.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The raw function table, for calls the safe API does not cover.
    pub fn api(&self) -> &ffi::Api {
        &self.api
    }

    /// `slay_get_version()`: MAJOR*10000 + MINOR*100 + PATCH.
    pub fn version(&self) -> u32 {
        // SAFETY: no arguments, always valid.
        unsafe { (self.api.slay_get_version)() }
    }

    /// The version as "MAJOR.MINOR.PATCH".
    pub fn version_string(&self) -> String {
        let v = self.version();
        format!("{}.{}.{}", v / 10000, v / 100 % 100, v % 100)
    }

    /// `slay_get_abi_version()`.
    pub fn abi_version(&self) -> u32 {
        // SAFETY: no arguments, always valid.
        unsafe { (self.api.slay_get_abi_version)() }
    }

    /// `slay_status_name(status)`; "SLAY_STATUS_UNKNOWN" for unlisted values.
    pub fn status_name(&self, status: Status) -> String {
        // SAFETY: returns a static string, never NULL per slay.h.
        unsafe { copy_c_string((self.api.slay_status_name)(status.0)) }.unwrap_or_default()
    }

    /// `slay_status_string(status)`: a one-line description.
    pub fn status_string(&self, status: Status) -> String {
        // SAFETY: as above.
        unsafe { copy_c_string((self.api.slay_status_string)(status.0)) }.unwrap_or_default()
    }

    /// `slay_last_error_message()` of this thread ("" if none yet).
    pub fn last_error_message(&self) -> String {
        // SAFETY: valid until the next libslay call on this thread; copied now.
        unsafe { copy_c_string((self.api.slay_last_error_message)()) }.unwrap_or_default()
    }

    /// `slay_attn_variant_name`: "slay_anchor", ...; None for unknown values.
    pub fn variant_name(&self, variant: Variant) -> Option<String> {
        // SAFETY: returns a static string or NULL.
        unsafe { copy_c_string((self.api.slay_attn_variant_name)(variant.0)) }
    }

    /// `slay_attn_variant_from_name`: parses "slay_anchor", "yat-spherical",
    /// ...; INVALID_VALUE for an unknown name.
    pub fn variant_from_name(&self, name: &str) -> Result<Variant> {
        let c_name = CString::new(name)
            .map_err(|_| wrapper_error!(SLAY_STATUS_INVALID_ARGUMENT, "variant name {:?} contains a NUL byte", name))?;
        let mut variant = 0;
        // SAFETY: c_name is NUL-terminated, variant a valid out-pointer.
        self.check("slay_attn_variant_from_name", unsafe {
            (self.api.slay_attn_variant_from_name)(c_name.as_ptr(), &mut variant)
        })?;
        Ok(Variant(variant))
    }

    /// `slay_attr_name`: "num_heads", ...; None for unknown attributes.
    pub fn attr_name(&self, attr: Attr) -> Option<String> {
        // SAFETY: returns a static string or NULL.
        unsafe { copy_c_string((self.api.slay_attr_name)(attr.0)) }
    }

    /// Ok for SUCCESS; otherwise the [`Error`] of the call `what` just made
    /// on this thread (the last-error message is read before anything else
    /// can overwrite it).
    fn check(&self, what: &str, status: ffi::slay_status_t) -> Result<()> {
        if status == ffi::SLAY_STATUS_SUCCESS {
            return Ok(());
        }
        let status = Status(status);
        let mut message = self.last_error_message();
        if message.is_empty() {
            message = self.status_string(status);
        }
        Err(Error { status, name: self.status_name(status), message: format!("{}: {}", what, message) })
    }
}

// ------------------------------------------------------------------ handle

/// A backend and device (`slay_handle_t`); destroyed on drop.
pub struct Handle {
    raw: ffi::slay_handle_t,
    library: Arc<Library>,
}

// SAFETY: slay.h allows handles to be used from several threads.
unsafe impl Send for Handle {}
unsafe impl Sync for Handle {}

impl Handle {
    /// `slay_handle_create`. `device` is the CUDA ordinal (ignored on CPU).
    /// NO_DEVICE when the CUDA backend has no usable device or driver.
    pub fn new(library: &Arc<Library>, backend: Backend, device: i32) -> Result<Handle> {
        let mut raw = ptr::null_mut();
        // SAFETY: raw is a valid out-pointer.
        library.check("slay_handle_create", unsafe { (library.api.slay_handle_create)(&mut raw, backend.0, device) })?;
        Ok(Handle { raw, library: Arc::clone(library) })
    }

    /// A CPU-backend handle.
    pub fn cpu(library: &Arc<Library>) -> Result<Handle> {
        Handle::new(library, Backend::CPU, 0)
    }

    /// `slay_handle_get_backend`.
    pub fn backend(&self) -> Result<Backend> {
        let mut backend = 0;
        // SAFETY: self.raw is live, backend a valid out-pointer.
        self.library.check("slay_handle_get_backend", unsafe {
            (self.library.api.slay_handle_get_backend)(self.raw, &mut backend)
        })?;
        Ok(Backend(backend))
    }

    /// The library this handle came from.
    pub fn library(&self) -> &Arc<Library> {
        &self.library
    }

    /// The C handle, still owned by `self`.
    pub fn as_raw(&self) -> ffi::slay_handle_t {
        self.raw
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle").field("raw", &self.raw).finish()
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: created by slay_handle_create, destroyed once; every Plan
        // borrowing it is gone (lifetime 'h).
        unsafe {
            (self.library.api.slay_handle_destroy)(self.raw);
        }
    }
}

// -------------------------------------------------------------- descriptor

/// A variant plus its attributes (`slay_attn_desc_t`); host only, destroyed
/// on drop. May be dropped once a [`Plan`] has been made from it.
pub struct Descriptor {
    raw: ffi::slay_attn_desc_t,
    library: Arc<Library>,
}

// SAFETY: host-only object; modification needs &mut self, so concurrent
// modification (the one thing slay.h forbids) cannot happen.
unsafe impl Send for Descriptor {}
unsafe impl Sync for Descriptor {}

impl Descriptor {
    /// `slay_attn_desc_create`: the variant with its default attributes.
    pub fn new(library: &Arc<Library>, variant: Variant) -> Result<Descriptor> {
        let mut raw = ptr::null_mut();
        // SAFETY: raw is a valid out-pointer.
        library.check("slay_attn_desc_create", unsafe { (library.api.slay_attn_desc_create)(&mut raw, variant.0) })?;
        Ok(Descriptor { raw, library: Arc::clone(library) })
    }

    /// `slay_attn_desc_set_i64`; returns `self` for chaining. Errors:
    /// UNKNOWN_ATTRIBUTE, ATTRIBUTE_TYPE, ATTRIBUTE_NOT_APPLICABLE,
    /// INVALID_VALUE (the stored value is then unchanged).
    pub fn set_i64(&mut self, attr: Attr, value: i64) -> Result<&mut Descriptor> {
        // SAFETY: self.raw is live.
        self.library.check("slay_attn_desc_set_i64", unsafe {
            (self.library.api.slay_attn_desc_set_i64)(self.raw, attr.0, value)
        })?;
        Ok(self)
    }

    /// `slay_attn_desc_set_f64`; as [`Descriptor::set_i64`].
    pub fn set_f64(&mut self, attr: Attr, value: f64) -> Result<&mut Descriptor> {
        // SAFETY: self.raw is live.
        self.library.check("slay_attn_desc_set_f64", unsafe {
            (self.library.api.slay_attn_desc_set_f64)(self.raw, attr.0, value)
        })?;
        Ok(self)
    }

    /// `slay_attn_desc_get_i64`: the value set, or the default.
    pub fn get_i64(&self, attr: Attr) -> Result<i64> {
        let mut value = 0;
        // SAFETY: self.raw is live, value a valid out-pointer.
        self.library.check("slay_attn_desc_get_i64", unsafe {
            (self.library.api.slay_attn_desc_get_i64)(self.raw, attr.0, &mut value)
        })?;
        Ok(value)
    }

    /// `slay_attn_desc_get_f64`: the value set, or the default.
    pub fn get_f64(&self, attr: Attr) -> Result<f64> {
        let mut value = 0.0;
        // SAFETY: self.raw is live, value a valid out-pointer.
        self.library.check("slay_attn_desc_get_f64", unsafe {
            (self.library.api.slay_attn_desc_get_f64)(self.raw, attr.0, &mut value)
        })?;
        Ok(value)
    }

    /// The C descriptor, still owned by `self`.
    pub fn as_raw(&self) -> ffi::slay_attn_desc_t {
        self.raw
    }
}

impl fmt::Debug for Descriptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Descriptor").field("raw", &self.raw).finish()
    }
}

impl Drop for Descriptor {
    fn drop(&mut self) {
        // SAFETY: created by slay_attn_desc_create, destroyed once; plans
        // keep their own copy (slay.h).
        unsafe {
            (self.library.api.slay_attn_desc_destroy)(self.raw);
        }
    }
}

// ------------------------------------------------------------------ tensors

/// Where a tensor's data lives. Only host tensors may go to the safe calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Memory {
    /// Borrowed from a Rust slice (host memory).
    Host,
    /// A raw pointer the caller vouched for (device memory for CUDA).
    Raw,
}

/// Row-major strides of a contiguous tensor of `shape`.
fn contiguous_strides(shape: &[i64]) -> Vec<i64> {
    let mut strides = vec![1i64; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * shape[i + 1];
    }
    strides
}

/// Builds the C view after checking what this crate can check: rank
/// 1..=SLAY_MAX_RANK, shape and strides of equal length, no negative extent
/// or stride, and (for slices, `available` = Some(len)) that every element the
/// view addresses lies inside the slice. The library checks the rest
/// (innermost stride, overlap, shapes against the plan).
fn make_view(
    data: *mut c_void,
    dtype: Dtype,
    shape: &[i64],
    strides: &[i64],
    available: Option<usize>,
) -> Result<ffi::slay_tensor_t> {
    let rank = shape.len();
    if rank == 0 || rank > ffi::SLAY_MAX_RANK {
        return Err(wrapper_error!(SLAY_STATUS_INVALID_ARGUMENT, "tensor rank {} is not in 1..={}", rank, ffi::SLAY_MAX_RANK));
    }
    if strides.len() != rank {
        return Err(wrapper_error!(SLAY_STATUS_INVALID_ARGUMENT, "tensor has {} extents but {} strides", rank, strides.len()));
    }
    if let Some(i) = shape.iter().position(|&n| n < 0) {
        return Err(wrapper_error!(SLAY_STATUS_BAD_SHAPE, "tensor shape[{}] = {} is negative", i, shape[i]));
    }
    if let Some(i) = strides.iter().position(|&s| s < 0) {
        return Err(wrapper_error!(SLAY_STATUS_BAD_STRIDE, "tensor strides[{}] = {} is negative", i, strides[i]));
    }
    if let Some(len) = available {
        // Elements addressed: 0 if any extent is 0, else 1 + the largest offset.
        let mut needed: i128 = 1;
        for (&n, &s) in shape.iter().zip(strides) {
            if n == 0 {
                needed = 0;
                break;
            }
            needed += (n as i128 - 1) * s as i128;
        }
        if needed > len as i128 {
            return Err(wrapper_error!(
                SLAY_STATUS_BAD_SHAPE,
                "tensor of shape {:?} and strides {:?} addresses {} elements but the slice holds {}",
                shape, strides, needed, len
            ));
        }
    }
    let mut raw = ffi::slay_tensor_t {
        data,
        dtype: dtype.0,
        rank: rank as i32,
        shape: [0; ffi::SLAY_MAX_RANK],
        strides: [0; ffi::SLAY_MAX_RANK],
    };
    raw.shape[..rank].copy_from_slice(shape);
    raw.strides[..rank].copy_from_slice(strides);
    Ok(raw)
}

/// The dtype of a `&[u16]` view must be one of the 16-bit ones.
fn check_16bit(dtype: Dtype) -> Result<()> {
    if dtype == Dtype::BFLOAT16 || dtype == Dtype::FLOAT16 {
        Ok(())
    } else {
        Err(wrapper_error!(SLAY_STATUS_BAD_DTYPE, "a u16 buffer holds BFLOAT16 or FLOAT16 bits, not dtype {}", dtype.0))
    }
}

/// A read-only strided view (`slay_tensor_t`) of q, k, v, params, a state,
/// dout... Built from a slice (host memory, for the CPU backend) or, unsafely,
/// from a raw pointer (device memory, for CUDA).
#[derive(Clone, Copy, Debug)]
pub struct Tensor<'a> {
    raw: ffi::slay_tensor_t,
    memory: Memory,
    _data: PhantomData<&'a [u8]>,
}

/// A writable strided view (`slay_tensor_t`) of out, dq, dk, dv, a state or
/// params being sampled; borrows its slice mutably.
#[derive(Debug)]
pub struct TensorMut<'a> {
    raw: ffi::slay_tensor_t,
    memory: Memory,
    _data: PhantomData<&'a mut [u8]>,
}

/// Shared accessors and constructors of [`Tensor`] and [`TensorMut`]; the
/// two differ only in the slice's mutability.
macro_rules! tensor_impl {
    ($name:ident, $slice:ty, $slice16:ty, $ptr:ty, $as_ptr:ident) => {
        impl<'a> $name<'a> {
            /// A contiguous row-major fp32 view, e.g. shape `[B, H, T, D]`.
            pub fn new(data: $slice, shape: &[i64]) -> Result<$name<'a>> {
                let strides = contiguous_strides(shape);
                $name::strided(data, shape, &strides)
            }

            /// An fp32 view with explicit element strides, e.g. a (B, T, H, D)
            /// buffer seen as (B, H, T, D): strides `[T*H*D, D, H*D, 1]`.
            pub fn strided(data: $slice, shape: &[i64], strides: &[i64]) -> Result<$name<'a>> {
                let len = data.len();
                let raw = make_view(data.$as_ptr() as *mut c_void, Dtype::FLOAT32, shape, strides, Some(len))?;
                Ok($name { raw, memory: Memory::Host, _data: PhantomData })
            }

            /// A contiguous view of bf16 or fp16 bits (`dtype` says which).
            pub fn new_u16(data: $slice16, dtype: Dtype, shape: &[i64]) -> Result<$name<'a>> {
                let strides = contiguous_strides(shape);
                $name::strided_u16(data, dtype, shape, &strides)
            }

            /// A strided view of bf16 or fp16 bits (`dtype` says which).
            pub fn strided_u16(data: $slice16, dtype: Dtype, shape: &[i64], strides: &[i64]) -> Result<$name<'a>> {
                check_16bit(dtype)?;
                let len = data.len();
                let raw = make_view(data.$as_ptr() as *mut c_void, dtype, shape, strides, Some(len))?;
                Ok($name { raw, memory: Memory::Host, _data: PhantomData })
            }

            /// A view of memory this crate cannot check: typically a CUDA
            /// device pointer, for the `*_raw` calls.
            ///
            /// # Safety
            /// `data` must address every element of `shape`/`strides` in the
            /// handle's memory space, and stay valid (and, for outputs,
            /// unaliased) for `'a`.
            pub unsafe fn from_raw(data: $ptr, dtype: Dtype, shape: &[i64], strides: &[i64]) -> Result<$name<'a>> {
                let raw = make_view(data as *mut c_void, dtype, shape, strides, None)?;
                Ok($name { raw, memory: Memory::Raw, _data: PhantomData })
            }

            /// The extents (rank entries).
            pub fn shape(&self) -> &[i64] {
                &self.raw.shape[..self.raw.rank as usize]
            }
            /// The element strides (rank entries).
            pub fn strides(&self) -> &[i64] {
                &self.raw.strides[..self.raw.rank as usize]
            }
            /// The element type.
            pub fn dtype(&self) -> Dtype {
                Dtype(self.raw.dtype)
            }
            /// The C view.
            pub fn as_raw(&self) -> &ffi::slay_tensor_t {
                &self.raw
            }
        }
    };
}

tensor_impl!(Tensor, &'a [f32], &'a [u16], *const c_void, as_ptr);
tensor_impl!(TensorMut, &'a mut [f32], &'a mut [u16], *mut c_void, as_mut_ptr);

impl<'a> Tensor<'a> {
    /// The (N+1,) int64 offsets of a packed call of N sequences (ABI 3).
    pub fn offsets_i64(data: &'a [i64]) -> Result<Tensor<'a>> {
        let raw = make_view(data.as_ptr() as *mut c_void, Dtype::INT64, &[data.len() as i64], &[1], Some(data.len()))?;
        Ok(Tensor { raw, memory: Memory::Host, _data: PhantomData })
    }

    /// The (N+1,) int32 offsets of a packed call of N sequences (ABI 3).
    pub fn offsets_i32(data: &'a [i32]) -> Result<Tensor<'a>> {
        let raw = make_view(data.as_ptr() as *mut c_void, Dtype::INT32, &[data.len() as i64], &[1], Some(data.len()))?;
        Ok(Tensor { raw, memory: Memory::Host, _data: PhantomData })
    }
}

/// (N, longest sequence) of a packed call's offsets: the batch and sequence
/// length [`Plan::workspace_size`] takes for it. Bad offsets give a size the
/// call then rejects with the library's message.
pub fn packed_batch_and_length(offsets: &[i64]) -> (i64, i64) {
    let longest = offsets.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    (offsets.len().saturating_sub(1) as i64, longest.max(0))
}

/// A C pointer to an optional view (NULL for None).
fn optional<T>(view: Option<&T>, raw: fn(&T) -> &ffi::slay_tensor_t) -> *const ffi::slay_tensor_t {
    view.map_or(ptr::null(), |v| raw(v) as *const _)
}

// ---------------------------------------------------------------- workspace

/// Host scratch memory aligned to 16 bytes (slay.h requires it; a `Vec<u8>`
/// does not promise it), for the CPU backend's safe calls.
#[derive(Clone, Debug, Default)]
pub struct Workspace {
    blocks: Vec<Block>,
}

#[repr(C, align(16))]
#[derive(Clone, Copy, Debug, Default)]
struct Block([u8; 16]);

impl Workspace {
    /// At least `bytes` bytes (a multiple of 16).
    pub fn new(bytes: usize) -> Workspace {
        Workspace { blocks: vec![Block::default(); (bytes + 15) / 16] }
    }
    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.blocks.len() * 16
    }
    /// True when it holds no bytes (fine for a pass that needs none).
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }
    /// Grows to at least `bytes` bytes; never shrinks.
    pub fn reserve(&mut self, bytes: usize) {
        let blocks = (bytes + 15) / 16;
        if blocks > self.blocks.len() {
            self.blocks.resize(blocks, Block::default());
        }
    }
    fn as_mut_ptr(&mut self) -> *mut c_void {
        if self.blocks.is_empty() {
            ptr::null_mut()
        } else {
            self.blocks.as_mut_ptr() as *mut c_void
        }
    }
}

// --------------------------------------------------------------- arguments

/// Arguments of [`Plan::forward`]: out = attention(q, k, v). For the
/// linearized variants `initial_state` is added to the prefix sums and
/// `final_state` receives initial_state + this call's keys' sums.
#[derive(Debug)]
pub struct ForwardArgs<'a> {
    /// (B, H, T, D), the plan's io dtype.
    pub q: Tensor<'a>,
    /// (B, H_kv, T, D).
    pub k: Tensor<'a>,
    /// (B, H_kv, T, Dv).
    pub v: Tensor<'a>,
    /// (param_count,) fp32; None when the plan's param_count is 0.
    pub params: Option<Tensor<'a>>,
    /// (B, H, T, Dv), written.
    pub out: TensorMut<'a>,
    /// Optional (B, H, F, Dv+1) fp32, read.
    pub initial_state: Option<Tensor<'a>>,
    /// Optional (B, H, F, Dv+1) fp32, written.
    pub final_state: Option<TensorMut<'a>>,
    /// cosformer: global position of token 0 of this call.
    pub position_offset: i64,
    /// Optional (N+1,) int32/int64 offsets: a packed call of N sequences
    /// (q, k, v, out with B = 1; states with N rows). ABI 3.
    pub seq_offsets: Option<Tensor<'a>>,
}

impl<'a> ForwardArgs<'a> {
    /// The required tensors; the optional ones None, position_offset 0.
    pub fn new(q: Tensor<'a>, k: Tensor<'a>, v: Tensor<'a>, out: TensorMut<'a>) -> ForwardArgs<'a> {
        ForwardArgs {
            q,
            k,
            v,
            params: None,
            out,
            initial_state: None,
            final_state: None,
            position_offset: 0,
            seq_offsets: None,
        }
    }

    /// Sets the feature parameters.
    pub fn with_params(mut self, params: Tensor<'a>) -> ForwardArgs<'a> {
        self.params = Some(params);
        self
    }

    /// Makes this a packed call ([`Tensor::offsets_i64`], [`Tensor::offsets_i32`]);
    /// its workspace is sized by [`packed_batch_and_length`].
    pub fn with_seq_offsets(mut self, offsets: Tensor<'a>) -> ForwardArgs<'a> {
        self.seq_offsets = Some(offsets);
        self
    }

    fn to_c(&self) -> ffi::slay_attn_fwd_args_t {
        ffi::slay_attn_fwd_args_t {
            struct_size: std::mem::size_of::<ffi::slay_attn_fwd_args_t>(),
            q: &self.q.raw,
            k: &self.k.raw,
            v: &self.v.raw,
            params: optional(self.params.as_ref(), Tensor::as_raw),
            out: &self.out.raw,
            initial_state: optional(self.initial_state.as_ref(), Tensor::as_raw),
            final_state: optional(self.final_state.as_ref(), TensorMut::as_raw),
            position_offset: self.position_offset,
            seq_offsets: optional(self.seq_offsets.as_ref(), Tensor::as_raw),
            row_stats: std::ptr::null(),
            merge: 0,
        }
    }

    fn memories(&self) -> Vec<Memory> {
        let mut m = vec![self.q.memory, self.k.memory, self.v.memory, self.out.memory];
        m.extend(self.params.iter().chain(self.initial_state.iter()).chain(self.seq_offsets.iter()).map(|t| t.memory));
        m.extend(self.final_state.iter().map(|t| t.memory));
        m
    }
}

/// Arguments of [`Plan::backward`]: gradients of L with respect to q, k, v
/// (and initial_state) given dout = dL/dout and dfinal_state.
#[derive(Debug)]
pub struct BackwardArgs<'a> {
    /// (B, H, T, D).
    pub q: Tensor<'a>,
    /// (B, H_kv, T, D).
    pub k: Tensor<'a>,
    /// (B, H_kv, T, Dv).
    pub v: Tensor<'a>,
    /// (param_count,) fp32; None when the plan's param_count is 0.
    pub params: Option<Tensor<'a>>,
    /// The forward's output (B, H, T, Dv).
    pub out: Tensor<'a>,
    /// dL/dout (B, H, T, Dv).
    pub dout: Tensor<'a>,
    /// Written (B, H, T, D).
    pub dq: TensorMut<'a>,
    /// Written (B, H_kv, T, D): summed over each group of query heads.
    pub dk: TensorMut<'a>,
    /// Written (B, H_kv, T, Dv).
    pub dv: TensorMut<'a>,
    /// Optional (B, H, F, Dv+1), as in the forward.
    pub initial_state: Option<Tensor<'a>>,
    /// Optional dL/dfinal_state (B, H, F, Dv+1).
    pub dfinal_state: Option<Tensor<'a>>,
    /// Optional, written dL/dinitial_state (B, H, F, Dv+1).
    pub dinitial_state: Option<TensorMut<'a>>,
    /// As in the forward.
    pub position_offset: i64,
    /// Optional, as in the forward (ABI 3).
    pub seq_offsets: Option<Tensor<'a>>,
}

impl<'a> BackwardArgs<'a> {
    /// The required tensors; the optional ones None, position_offset 0.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        q: Tensor<'a>,
        k: Tensor<'a>,
        v: Tensor<'a>,
        out: Tensor<'a>,
        dout: Tensor<'a>,
        dq: TensorMut<'a>,
        dk: TensorMut<'a>,
        dv: TensorMut<'a>,
    ) -> BackwardArgs<'a> {
        BackwardArgs {
            q,
            k,
            v,
            params: None,
            out,
            dout,
            dq,
            dk,
            dv,
            initial_state: None,
            dfinal_state: None,
            dinitial_state: None,
            position_offset: 0,
            seq_offsets: None,
        }
    }

    /// Sets the feature parameters.
    pub fn with_params(mut self, params: Tensor<'a>) -> BackwardArgs<'a> {
        self.params = Some(params);
        self
    }

    /// Makes this a packed call, as [`ForwardArgs::with_seq_offsets`].
    pub fn with_seq_offsets(mut self, offsets: Tensor<'a>) -> BackwardArgs<'a> {
        self.seq_offsets = Some(offsets);
        self
    }

    fn to_c(&self) -> ffi::slay_attn_bwd_args_t {
        ffi::slay_attn_bwd_args_t {
            struct_size: std::mem::size_of::<ffi::slay_attn_bwd_args_t>(),
            q: &self.q.raw,
            k: &self.k.raw,
            v: &self.v.raw,
            params: optional(self.params.as_ref(), Tensor::as_raw),
            out: &self.out.raw,
            dout: &self.dout.raw,
            dq: &self.dq.raw,
            dk: &self.dk.raw,
            dv: &self.dv.raw,
            initial_state: optional(self.initial_state.as_ref(), Tensor::as_raw),
            dfinal_state: optional(self.dfinal_state.as_ref(), Tensor::as_raw),
            dinitial_state: optional(self.dinitial_state.as_ref(), TensorMut::as_raw),
            position_offset: self.position_offset,
            seq_offsets: optional(self.seq_offsets.as_ref(), Tensor::as_raw),
            row_stats: std::ptr::null(),
        }
    }

    fn memories(&self) -> Vec<Memory> {
        let inputs = [&self.q, &self.k, &self.v, &self.out, &self.dout];
        let mut m: Vec<Memory> = inputs.iter().map(|t| t.memory).collect();
        m.extend([&self.dq, &self.dk, &self.dv].iter().map(|t| t.memory));
        let optional_inputs = self.params.iter().chain(self.initial_state.iter()).chain(self.dfinal_state.iter());
        m.extend(optional_inputs.chain(self.seq_offsets.iter()).map(|t| t.memory));
        m.extend(self.dinitial_state.iter().map(|t| t.memory));
        m
    }
}

// -------------------------------------------------------------------- plan

/// One named segment of the feature-parameter vector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamSegment {
    /// "omega", "anchors", "nystrom_w", ...
    pub name: String,
    /// First element within the parameter vector.
    pub offset: i64,
    /// Row-major, contiguous extents.
    pub shape: Vec<i64>,
}

/// A validated, immutable descriptor bound to a handle (`slay_attn_plan_t`);
/// destroyed on drop. Borrows the handle, which therefore outlives it.
/// One plan is executed by one thread at a time (it is `Send`, not `Sync`).
pub struct Plan<'h> {
    raw: ffi::slay_attn_plan_t,
    handle: &'h Handle,
}

// SAFETY: a plan may move between threads; !Sync keeps its execution calls
// on one thread at a time, as slay.h requires.
unsafe impl<'h> Send for Plan<'h> {}

impl<'h> Plan<'h> {
    /// `slay_attn_plan_create`: resolves and validates `desc` for `handle`.
    pub fn new(handle: &'h Handle, desc: &Descriptor) -> Result<Plan<'h>> {
        let library = handle.library();
        let mut raw = ptr::null_mut();
        // SAFETY: handle and desc are live, raw a valid out-pointer.
        library.check("slay_attn_plan_create", unsafe {
            (library.api.slay_attn_plan_create)(&mut raw, handle.raw, desc.raw)
        })?;
        Ok(Plan { raw, handle })
    }

    fn library(&self) -> &Library {
        &self.handle.library
    }

    /// The handle this plan is bound to.
    pub fn handle(&self) -> &'h Handle {
        self.handle
    }

    /// The C plan, still owned by `self`.
    pub fn as_raw(&self) -> ffi::slay_attn_plan_t {
        self.raw
    }

    /// `slay_attn_plan_get_variant`.
    pub fn variant(&self) -> Result<Variant> {
        let mut variant = 0;
        // SAFETY: self.raw is live, variant a valid out-pointer.
        self.library().check("slay_attn_plan_get_variant", unsafe {
            (self.library().api.slay_attn_plan_get_variant)(self.raw, &mut variant)
        })?;
        Ok(Variant(variant))
    }

    /// `slay_attn_plan_get_i64`: the resolved value (VALUE_DIM gives Dv).
    pub fn get_i64(&self, attr: Attr) -> Result<i64> {
        let mut value = 0;
        // SAFETY: self.raw is live, value a valid out-pointer.
        self.library().check("slay_attn_plan_get_i64", unsafe {
            (self.library().api.slay_attn_plan_get_i64)(self.raw, attr.0, &mut value)
        })?;
        Ok(value)
    }

    /// `slay_attn_plan_get_f64`: the resolved value (SOFTMAX_SCALE gives the
    /// effective scale).
    pub fn get_f64(&self, attr: Attr) -> Result<f64> {
        let mut value = 0.0;
        // SAFETY: self.raw is live, value a valid out-pointer.
        self.library().check("slay_attn_plan_get_f64", unsafe {
            (self.library().api.slay_attn_plan_get_f64)(self.raw, attr.0, &mut value)
        })?;
        Ok(value)
    }

    /// `slay_attn_plan_get_workspace_size`: bytes a pass needs for this batch
    /// and sequence length (ignored for [`Pass::SAMPLE`]); 0 is valid.
    pub fn workspace_size(&self, pass: Pass, batch: i64, seq_len: i64) -> Result<usize> {
        let mut bytes = 0usize;
        // SAFETY: self.raw is live, bytes a valid out-pointer.
        self.library().check("slay_attn_plan_get_workspace_size", unsafe {
            (self.library().api.slay_attn_plan_get_workspace_size)(self.raw, pass.0, batch, seq_len, &mut bytes)
        })?;
        Ok(bytes)
    }

    /// `slay_attn_plan_get_feature_dim`: F of the state (B, H, F, Dv+1); 0
    /// for the exact variants.
    pub fn feature_dim(&self) -> Result<i64> {
        let mut features = 0;
        // SAFETY: self.raw is live, features a valid out-pointer.
        self.library().check("slay_attn_plan_get_feature_dim", unsafe {
            (self.library().api.slay_attn_plan_get_feature_dim)(self.raw, &mut features)
        })?;
        Ok(features)
    }

    /// `slay_attn_plan_get_param_count`: length of the fp32 parameter vector.
    pub fn param_count(&self) -> Result<i64> {
        let mut count = 0;
        // SAFETY: self.raw is live, count a valid out-pointer.
        self.library().check("slay_attn_plan_get_param_count", unsafe {
            (self.library().api.slay_attn_plan_get_param_count)(self.raw, &mut count)
        })?;
        Ok(count)
    }

    /// The named segments of the parameter vector, in order.
    pub fn param_segments(&self) -> Result<Vec<ParamSegment>> {
        let library = self.library();
        let mut count = 0i32;
        // SAFETY: self.raw is live, count a valid out-pointer.
        library.check("slay_attn_plan_get_param_segment_count", unsafe {
            (library.api.slay_attn_plan_get_param_segment_count)(self.raw, &mut count)
        })?;
        (0..count)
            .map(|index| {
                let mut segment = ffi::slay_param_segment_t {
                    struct_size: std::mem::size_of::<ffi::slay_param_segment_t>(),
                    name: ptr::null(),
                    offset: 0,
                    rank: 0,
                    shape: [0; ffi::SLAY_MAX_RANK],
                };
                // SAFETY: self.raw is live, segment a valid, sized out-struct.
                library.check("slay_attn_plan_get_param_segment", unsafe {
                    (library.api.slay_attn_plan_get_param_segment)(self.raw, index, &mut segment)
                })?;
                let rank = (segment.rank.max(0) as usize).min(ffi::SLAY_MAX_RANK);
                Ok(ParamSegment {
                    // SAFETY: the name is a static string per slay.h.
                    name: unsafe { copy_c_string(segment.name) }.unwrap_or_default(),
                    offset: segment.offset,
                    shape: segment.shape[..rank].to_vec(),
                })
            })
            .collect()
    }

    /// The safe calls take host slices only, so they need the CPU backend.
    fn require_host(&self, what: &str, memories: &[Memory]) -> Result<()> {
        if self.handle.backend()? != Backend::CPU {
            return Err(wrapper_error!(
                SLAY_STATUS_BACKEND_MISMATCH,
                "{}: the safe call takes host slices, so it needs a CPU handle; on CUDA use {}_raw with device memory",
                what, what
            ));
        }
        if memories.contains(&Memory::Raw) {
            return Err(wrapper_error!(
                SLAY_STATUS_BACKEND_MISMATCH,
                "{}: a tensor made with from_raw goes to {}_raw, not to the safe call",
                what, what
            ));
        }
        Ok(())
    }

    /// `slay_attn_features_sample` on the CPU backend: fills `params`
    /// (shape (param_count,), fp32) with the variant's random feature
    /// parameters drawn from (seed, offset); the same on every backend.
    pub fn sample_features(&self, seed: u64, offset: u64, params: &mut TensorMut<'_>, workspace: &mut Workspace) -> Result<()> {
        self.require_host("sample_features", &[params.memory])?;
        // SAFETY: host views checked against their slices, CPU handle, the
        // workspace's true size, NULL stream.
        unsafe { self.sample_features_raw(seed, offset, params, workspace.as_mut_ptr(), workspace.len(), ptr::null_mut()) }
    }

    /// `slay_attn_features_sample` with a raw workspace and stream (CUDA).
    ///
    /// # Safety
    /// `params` and `workspace` (of `workspace_size` bytes, 16-byte aligned)
    /// must live in the handle's memory space; `stream` is a `cudaStream_t`
    /// of the handle's device or NULL (NULL on the CPU backend).
    pub unsafe fn sample_features_raw(
        &self,
        seed: u64,
        offset: u64,
        params: &mut TensorMut<'_>,
        workspace: *mut c_void,
        workspace_size: usize,
        stream: *mut c_void,
    ) -> Result<()> {
        self.library().check(
            "slay_attn_features_sample",
            (self.library().api.slay_attn_features_sample)(self.raw, seed, offset, &params.raw, workspace, workspace_size, stream),
        )
    }

    /// `slay_attn_fwd` on the CPU backend with host tensors. The workspace
    /// must hold [`Plan::workspace_size`]`(Pass::FORWARD, B, T)` bytes
    /// (packed: B, T from [`packed_batch_and_length`]).
    pub fn forward(&self, args: &mut ForwardArgs<'_>, workspace: &mut Workspace) -> Result<()> {
        self.require_host("forward", &args.memories())?;
        // SAFETY: as in sample_features.
        unsafe { self.forward_raw(args, workspace.as_mut_ptr(), workspace.len(), ptr::null_mut()) }
    }

    /// `slay_attn_fwd` with a raw workspace and stream (CUDA).
    ///
    /// # Safety
    /// As [`Plan::sample_features_raw`], for every tensor of `args`.
    pub unsafe fn forward_raw(
        &self,
        args: &mut ForwardArgs<'_>,
        workspace: *mut c_void,
        workspace_size: usize,
        stream: *mut c_void,
    ) -> Result<()> {
        let c_args = args.to_c();
        self.library().check("slay_attn_fwd", (self.library().api.slay_attn_fwd)(self.raw, &c_args, workspace, workspace_size, stream))
    }

    /// `slay_attn_fwd_workspace_size` (ABI 6): the bytes of workspace a
    /// forward with exactly these arguments needs, at most
    /// [`Plan::workspace_size`]`(Pass::FORWARD, B, T)` (less where the call's
    /// path needs less, e.g. the CUDA Hopper Kronecker kernels). The
    /// arguments are validated as the call validates them; nothing is written.
    ///
    /// # Safety
    /// For a CUDA plan, `stream` is a `cudaStream_t` of the handle's device
    /// (or null): a packed call's offsets are read on it.
    pub unsafe fn forward_workspace_size_raw(&self, args: &ForwardArgs<'_>, stream: *mut c_void) -> Result<usize> {
        let c_args = args.to_c();
        let mut bytes = 0usize;
        self.library().check(
            "slay_attn_fwd_workspace_size",
            (self.library().api.slay_attn_fwd_workspace_size)(self.raw, &c_args, stream, &mut bytes),
        )?;
        Ok(bytes)
    }

    /// `slay_attn_bwd_workspace_size` (ABI 6): as
    /// [`Plan::forward_workspace_size_raw`], for a backward.
    ///
    /// # Safety
    /// As [`Plan::forward_workspace_size_raw`].
    pub unsafe fn backward_workspace_size_raw(&self, args: &BackwardArgs<'_>, stream: *mut c_void) -> Result<usize> {
        let c_args = args.to_c();
        let mut bytes = 0usize;
        self.library().check(
            "slay_attn_bwd_workspace_size",
            (self.library().api.slay_attn_bwd_workspace_size)(self.raw, &c_args, stream, &mut bytes),
        )?;
        Ok(bytes)
    }

    /// `slay_attn_bwd` on the CPU backend with host tensors. The workspace
    /// must hold [`Plan::workspace_size`]`(Pass::BACKWARD, B, T)` bytes.
    pub fn backward(&self, args: &mut BackwardArgs<'_>, workspace: &mut Workspace) -> Result<()> {
        self.require_host("backward", &args.memories())?;
        // SAFETY: as in sample_features.
        unsafe { self.backward_raw(args, workspace.as_mut_ptr(), workspace.len(), ptr::null_mut()) }
    }

    /// `slay_attn_bwd` with a raw workspace and stream (CUDA).
    ///
    /// # Safety
    /// As [`Plan::sample_features_raw`], for every tensor of `args`.
    pub unsafe fn backward_raw(
        &self,
        args: &mut BackwardArgs<'_>,
        workspace: *mut c_void,
        workspace_size: usize,
        stream: *mut c_void,
    ) -> Result<()> {
        let c_args = args.to_c();
        self.library().check("slay_attn_bwd", (self.library().api.slay_attn_bwd)(self.raw, &c_args, workspace, workspace_size, stream))
    }
}

impl<'h> fmt::Debug for Plan<'h> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plan").field("raw", &self.raw).field("handle", &self.handle).finish()
    }
}

impl<'h> Drop for Plan<'h> {
    fn drop(&mut self) {
        // SAFETY: created by slay_attn_plan_create, destroyed once, before
        // its handle (the borrow 'h).
        unsafe {
            (self.library().api.slay_attn_plan_destroy)(self.raw);
        }
    }
}
