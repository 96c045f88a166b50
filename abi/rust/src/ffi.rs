//! The raw C ABI of libslay (`include/slay/slay.h`), mirrored one to one, and
//! the run-time loader that resolves it with `dlopen`/`dlsym`.
//!
//! Shapes follow the header's (B, H, T, D) notation: q (B, H, T, D), k
//! (B, H_kv, T, D), v (B, H_kv, T, Dv), out (B, H, T, Dv), state
//! (B, H, F, Dv+1) fp32, params (N,) fp32, seq_offsets (N+1,) int32/int64.
//!
//! Everything here keeps the header's names so that a reader can grep one
//! against the other, and so that `abi/rust/check_signatures.py` (a CI test)
//! can check every type, constant, struct field and function signature below
//! against the header. The C enums are pinned to 32 bits
//! (`*_FORCE_32BIT_ = 0x7fffffff`), so they cross as `i32`; opaque handles
//! cross as `*mut c_void`. Nothing in this module is safe to call directly:
//! the safe wrappers live in the crate root.
// Items are documented in slay.h, which they mirror name for name.
#![allow(non_camel_case_types, missing_docs)]

use std::ffi::CStr;
use std::os::raw::{c_char, c_int, c_void};

/// Largest tensor rank (`SLAY_MAX_RANK`).
pub const SLAY_MAX_RANK: usize = 4;
/// The oldest library ABI version (`slay_get_abi_version()`) that has every
/// function and struct field declared here (PLAN_IN_USE, added in ABI 2, is
/// only a status value an older library never returns; the ABI 3 tail field
/// seq_offsets is accepted as NULL by older libraries, which reject a
/// non-NULL one with NOT_SUPPORTED, and so is the NUM_KV_HEADS attribute
/// with UNKNOWN_ATTRIBUTE; likewise the ABI 4 tail fields row_stats and
/// merge of the forward block and the ABI 5 tail field row_stats of the
/// backward block, which this crate always passes as NULL / 0).
pub const MIN_ABI_VERSION: u32 = 1;

pub type slay_status_t = i32;
pub const SLAY_STATUS_SUCCESS: slay_status_t = 0;
pub const SLAY_STATUS_INVALID_ARGUMENT: slay_status_t = 100;
pub const SLAY_STATUS_INVALID_VALUE: slay_status_t = 101;
pub const SLAY_STATUS_BAD_SHAPE: slay_status_t = 102;
pub const SLAY_STATUS_BAD_STRIDE: slay_status_t = 103;
pub const SLAY_STATUS_BAD_DTYPE: slay_status_t = 104;
pub const SLAY_STATUS_UNKNOWN_ATTRIBUTE: slay_status_t = 105;
pub const SLAY_STATUS_ATTRIBUTE_TYPE: slay_status_t = 106;
pub const SLAY_STATUS_ATTRIBUTE_NOT_APPLICABLE: slay_status_t = 107;
pub const SLAY_STATUS_WORKSPACE_TOO_SMALL: slay_status_t = 108;
pub const SLAY_STATUS_STRUCT_SIZE: slay_status_t = 109;
pub const SLAY_STATUS_BACKEND_MISMATCH: slay_status_t = 110;
pub const SLAY_STATUS_PLAN_IN_USE: slay_status_t = 111;
pub const SLAY_STATUS_NOT_SUPPORTED: slay_status_t = 200;
pub const SLAY_STATUS_NO_DEVICE: slay_status_t = 300;
pub const SLAY_STATUS_CUDA_ERROR: slay_status_t = 301;
pub const SLAY_STATUS_CURAND_ERROR: slay_status_t = 302;
pub const SLAY_STATUS_CUFFT_ERROR: slay_status_t = 303;
pub const SLAY_STATUS_OUT_OF_MEMORY: slay_status_t = 304;
pub const SLAY_STATUS_INTERNAL_ERROR: slay_status_t = 900;

pub type slay_dtype_t = i32;
pub const SLAY_DTYPE_FLOAT32: slay_dtype_t = 0;
pub const SLAY_DTYPE_BFLOAT16: slay_dtype_t = 1;
pub const SLAY_DTYPE_FLOAT16: slay_dtype_t = 2;
pub const SLAY_DTYPE_INT32: slay_dtype_t = 3;
pub const SLAY_DTYPE_INT64: slay_dtype_t = 4;

pub type slay_backend_t = i32;
pub const SLAY_BACKEND_CPU: slay_backend_t = 0;
pub const SLAY_BACKEND_CUDA: slay_backend_t = 1;

pub type slay_handle_t = *mut c_void;

pub type slay_attn_variant_t = i32;
pub const SLAY_ATTN_STANDARD: slay_attn_variant_t = 0;
pub const SLAY_ATTN_YAT: slay_attn_variant_t = 1;
pub const SLAY_ATTN_YAT_SPHERICAL: slay_attn_variant_t = 2;
pub const SLAY_ATTN_SLAY_ANCHOR: slay_attn_variant_t = 3;
pub const SLAY_ATTN_SLAY_LAPLACE: slay_attn_variant_t = 4;
pub const SLAY_ATTN_SLAY_HADAMARD: slay_attn_variant_t = 5;
pub const SLAY_ATTN_SLAY_TENSORSKETCH: slay_attn_variant_t = 6;
pub const SLAY_ATTN_SLAY_RANDOM_MACLAURIN: slay_attn_variant_t = 7;
pub const SLAY_ATTN_SLAY_NYSTROM: slay_attn_variant_t = 8;
pub const SLAY_ATTN_PERFORMER: slay_attn_variant_t = 9;
pub const SLAY_ATTN_LINEAR: slay_attn_variant_t = 10;
pub const SLAY_ATTN_COSFORMER: slay_attn_variant_t = 11;
pub const SLAY_ATTN_RFF: slay_attn_variant_t = 12;
pub const SLAY_ATTN_SLAY_POLY2: slay_attn_variant_t = 13;
pub const SLAY_ATTN_VARIANT_COUNT_: slay_attn_variant_t = 14;

pub type slay_attr_t = i32;
pub const SLAY_ATTR_NUM_HEADS: slay_attr_t = 0;
pub const SLAY_ATTR_HEAD_DIM: slay_attr_t = 1;
pub const SLAY_ATTR_VALUE_DIM: slay_attr_t = 2;
pub const SLAY_ATTR_CAUSAL: slay_attr_t = 3;
pub const SLAY_ATTR_IO_DTYPE: slay_attr_t = 4;
pub const SLAY_ATTR_ALLOW_TF32: slay_attr_t = 5;
pub const SLAY_ATTR_NUM_QUAD_NODES: slay_attr_t = 6;
pub const SLAY_ATTR_NUM_FEATURES: slay_attr_t = 7;
pub const SLAY_ATTR_POLY_DIM: slay_attr_t = 8;
pub const SLAY_ATTR_CHUNK_SIZE: slay_attr_t = 9;
pub const SLAY_ATTR_STABILIZER_MODE: slay_attr_t = 10;
pub const SLAY_ATTR_COSFORMER_LENGTH: slay_attr_t = 11;
pub const SLAY_ATTR_NUM_KV_HEADS: slay_attr_t = 12;
pub const SLAY_ATTR_EPSILON: slay_attr_t = 32;
pub const SLAY_ATTR_STABILIZER: slay_attr_t = 33;
pub const SLAY_ATTR_SCORE_SCALE: slay_attr_t = 34;
pub const SLAY_ATTR_SOFTMAX_SCALE: slay_attr_t = 35;
pub const SLAY_ATTR_PRF_CLAMP: slay_attr_t = 36;
pub const SLAY_ATTR_KERNEL_CLAMP: slay_attr_t = 37;
pub const SLAY_ATTR_NYSTROM_REG: slay_attr_t = 38;
pub const SLAY_ATTR_NORM_EPS: slay_attr_t = 39;
pub const SLAY_ATTR_POLY2_GAMMA: slay_attr_t = 40;

pub type slay_stabilizer_mode_t = i32;
pub const SLAY_STABILIZER_ADD: slay_stabilizer_mode_t = 0;
pub const SLAY_STABILIZER_CLAMP: slay_stabilizer_mode_t = 1;

pub type slay_attn_desc_t = *mut c_void;
pub type slay_attn_plan_t = *mut c_void;

pub type slay_pass_t = i32;
pub const SLAY_PASS_FORWARD: slay_pass_t = 0;
pub const SLAY_PASS_BACKWARD: slay_pass_t = 1;
pub const SLAY_PASS_SAMPLE: slay_pass_t = 2;

/// A strided view of caller-owned memory (frozen layout).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct slay_tensor_t {
    pub data: *mut c_void,
    pub dtype: slay_dtype_t,
    pub rank: i32,
    pub shape: [i64; SLAY_MAX_RANK],
    pub strides: [i64; SLAY_MAX_RANK],
}

/// One named segment of a plan's feature-parameter vector.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct slay_param_segment_t {
    pub struct_size: usize,
    pub name: *const c_char,
    pub offset: i64,
    pub rank: i32,
    pub shape: [i64; SLAY_MAX_RANK],
}

/// Forward argument block (size-prefixed; optional tensors may be NULL).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct slay_attn_fwd_args_t {
    pub struct_size: usize,
    pub q: *const slay_tensor_t,
    pub k: *const slay_tensor_t,
    pub v: *const slay_tensor_t,
    pub params: *const slay_tensor_t,
    pub out: *const slay_tensor_t,
    pub initial_state: *const slay_tensor_t,
    pub final_state: *const slay_tensor_t,
    pub position_offset: i64,
    pub seq_offsets: *const slay_tensor_t,
    pub row_stats: *const slay_tensor_t,
    pub merge: i64,
}

/// Backward argument block (size-prefixed; optional tensors may be NULL).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct slay_attn_bwd_args_t {
    pub struct_size: usize,
    pub q: *const slay_tensor_t,
    pub k: *const slay_tensor_t,
    pub v: *const slay_tensor_t,
    pub params: *const slay_tensor_t,
    pub out: *const slay_tensor_t,
    pub dout: *const slay_tensor_t,
    pub dq: *const slay_tensor_t,
    pub dk: *const slay_tensor_t,
    pub dv: *const slay_tensor_t,
    pub initial_state: *const slay_tensor_t,
    pub dfinal_state: *const slay_tensor_t,
    pub dinitial_state: *const slay_tensor_t,
    pub position_offset: i64,
    pub seq_offsets: *const slay_tensor_t,
    pub row_stats: *const slay_tensor_t,
}

// The dynamic loader (glibc; in libdl before glibc 2.34, in libc after, and
// libdl.so still exists as a stub there, so linking it works on both).
#[link(name = "dl")]
extern "C" {
    fn dlopen(filename: *const c_char, flags: c_int) -> *mut c_void;
    fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
    fn dlerror() -> *mut c_char;
    fn dlclose(handle: *mut c_void) -> c_int;
}
const RTLD_NOW: c_int = 2;
const RTLD_LOCAL: c_int = 0;

/// The text of the last dlopen/dlsym failure on this thread ("" if none).
fn last_dl_error() -> String {
    // SAFETY: dlerror returns NULL or a NUL-terminated thread-local string.
    unsafe {
        let message = dlerror();
        if message.is_null() {
            String::new()
        } else {
            CStr::from_ptr(message).to_string_lossy().into_owned()
        }
    }
}

/// An open shared object; `dlclose`d on drop.
pub(crate) struct DlHandle(*mut c_void);

impl DlHandle {
    /// `dlopen(path, RTLD_NOW | RTLD_LOCAL)`; a bare file name goes through
    /// the system loader's search (LD_LIBRARY_PATH, ld.so.cache, ...).
    pub(crate) fn open(path: &str) -> Result<DlHandle, String> {
        let c_path = std::ffi::CString::new(path)
            .map_err(|_| format!("library path {:?} contains a NUL byte", path))?;
        // SAFETY: c_path is NUL-terminated; dlopen has no other precondition.
        let handle = unsafe {
            last_dl_error(); // clears a stale message
            dlopen(c_path.as_ptr(), RTLD_NOW | RTLD_LOCAL)
        };
        if handle.is_null() {
            Err(last_dl_error())
        } else {
            Ok(DlHandle(handle))
        }
    }

    /// The address of `name` (NUL-terminated) or the loader's message.
    pub(crate) fn symbol(&self, name: &'static [u8]) -> Result<*mut c_void, String> {
        debug_assert_eq!(name.last(), Some(&0u8));
        // SAFETY: self.0 is an open handle, name is NUL-terminated.
        let address = unsafe {
            last_dl_error();
            dlsym(self.0, name.as_ptr() as *const c_char)
        };
        if address.is_null() {
            Err(last_dl_error())
        } else {
            Ok(address)
        }
    }
}

impl Drop for DlHandle {
    fn drop(&mut self) {
        // SAFETY: opened by dlopen and closed once; the owner (Library) is
        // only dropped after every object holding its Arc is gone.
        unsafe {
            dlclose(self.0);
        }
    }
}

/// Declares `Api`, a table of the library's functions, and its loader from
/// one list, so a function's name and signature are written exactly once.
macro_rules! slay_functions {
    ($( $name:ident : fn($($arg:ident : $ty:ty),*) -> $ret:ty; )*) => {
        /// Every exported libslay function, resolved with dlsym.
        #[allow(missing_docs)]
        pub struct Api {
            $( pub $name: unsafe extern "C" fn($($arg: $ty),*) -> $ret, )*
        }

        impl Api {
            /// Resolves every function; fails naming the first one missing.
            pub(crate) fn load(lib: &DlHandle) -> Result<Api, String> {
                Ok(Api {
                    $( $name: {
                        let address = lib.symbol(concat!(stringify!($name), "\0").as_bytes())
                            .map_err(|e| format!("symbol {} not found: {}", stringify!($name), e))?;
                        // SAFETY: the symbol is the C function declared in
                        // slay.h with this signature (checked in CI by
                        // abi/rust/check_signatures.py).
                        unsafe {
                            std::mem::transmute::<*mut c_void, unsafe extern "C" fn($($ty),*) -> $ret>(address)
                        }
                    }, )*
                })
            }
        }
    };
}

slay_functions! {
    slay_get_version: fn() -> u32;
    slay_get_abi_version: fn() -> u32;
    slay_status_name: fn(status: slay_status_t) -> *const c_char;
    slay_status_string: fn(status: slay_status_t) -> *const c_char;
    slay_last_error_message: fn() -> *const c_char;
    slay_handle_create: fn(handle: *mut slay_handle_t, backend: slay_backend_t, device: i32) -> slay_status_t;
    slay_handle_destroy: fn(handle: slay_handle_t) -> slay_status_t;
    slay_handle_get_backend: fn(handle: slay_handle_t, backend: *mut slay_backend_t) -> slay_status_t;
    slay_attn_variant_name: fn(variant: slay_attn_variant_t) -> *const c_char;
    slay_attn_variant_from_name: fn(name: *const c_char, variant: *mut slay_attn_variant_t) -> slay_status_t;
    slay_attr_name: fn(attr: slay_attr_t) -> *const c_char;
    slay_attn_desc_create: fn(desc: *mut slay_attn_desc_t, variant: slay_attn_variant_t) -> slay_status_t;
    slay_attn_desc_destroy: fn(desc: slay_attn_desc_t) -> slay_status_t;
    slay_attn_desc_set_i64: fn(desc: slay_attn_desc_t, attr: slay_attr_t, value: i64) -> slay_status_t;
    slay_attn_desc_set_f64: fn(desc: slay_attn_desc_t, attr: slay_attr_t, value: f64) -> slay_status_t;
    slay_attn_desc_get_i64: fn(desc: slay_attn_desc_t, attr: slay_attr_t, value: *mut i64) -> slay_status_t;
    slay_attn_desc_get_f64: fn(desc: slay_attn_desc_t, attr: slay_attr_t, value: *mut f64) -> slay_status_t;
    slay_attn_plan_create: fn(plan: *mut slay_attn_plan_t, handle: slay_handle_t, desc: slay_attn_desc_t) -> slay_status_t;
    slay_attn_plan_destroy: fn(plan: slay_attn_plan_t) -> slay_status_t;
    slay_attn_plan_get_i64: fn(plan: slay_attn_plan_t, attr: slay_attr_t, value: *mut i64) -> slay_status_t;
    slay_attn_plan_get_f64: fn(plan: slay_attn_plan_t, attr: slay_attr_t, value: *mut f64) -> slay_status_t;
    slay_attn_plan_get_variant: fn(plan: slay_attn_plan_t, variant: *mut slay_attn_variant_t) -> slay_status_t;
    slay_attn_plan_get_workspace_size: fn(plan: slay_attn_plan_t, pass: slay_pass_t, batch: i64, seq_len: i64, bytes: *mut usize) -> slay_status_t;
    slay_attn_plan_get_feature_dim: fn(plan: slay_attn_plan_t, features: *mut i64) -> slay_status_t;
    slay_attn_plan_get_param_count: fn(plan: slay_attn_plan_t, count: *mut i64) -> slay_status_t;
    slay_attn_plan_get_param_segment_count: fn(plan: slay_attn_plan_t, count: *mut i32) -> slay_status_t;
    slay_attn_plan_get_param_segment: fn(plan: slay_attn_plan_t, index: i32, segment: *mut slay_param_segment_t) -> slay_status_t;
    slay_attn_features_sample: fn(plan: slay_attn_plan_t, seed: u64, offset: u64, params: *const slay_tensor_t, workspace: *mut c_void, workspace_size: usize, stream: *mut c_void) -> slay_status_t;
    slay_attn_fwd: fn(plan: slay_attn_plan_t, args: *const slay_attn_fwd_args_t, workspace: *mut c_void, workspace_size: usize, stream: *mut c_void) -> slay_status_t;
    slay_attn_bwd: fn(plan: slay_attn_plan_t, args: *const slay_attn_bwd_args_t, workspace: *mut c_void, workspace_size: usize, stream: *mut c_void) -> slay_status_t;
    slay_attn_fwd_workspace_size: fn(plan: slay_attn_plan_t, args: *const slay_attn_fwd_args_t, stream: *mut c_void, bytes: *mut usize) -> slay_status_t;
    slay_attn_bwd_workspace_size: fn(plan: slay_attn_plan_t, args: *const slay_attn_bwd_args_t, stream: *mut c_void, bytes: *mut usize) -> slay_status_t;
}
