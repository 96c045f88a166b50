// gpu_support.hpp -- the shared harness of the GPU test suites: it runs one
// attention call on the CPU backend (the fp64 oracle) and on the CUDA backend
// through the PUBLIC ABI only, and reports the relative L2 error of every
// output of the device against the CPU.
//
// Shapes (logical order always (B, H, T, D)):
//   q, k (B, H, T, D); v, out, dout (B, H, T, Dv) in the case's I/O dtype;
//   state, dstate (B, H, F, Dv+1) fp32 contiguous; params (param_count,) fp32.
// q, k, v, out, dout, dq, dk, dv are laid out in memory either as (B, H, T, D)
// contiguous or as (B, T, H, D) through strides (Layout).
//
// What a comparison does (compare_forward / compare_backward):
//   1. one plan per backend from the same descriptor (Case: variant, shape,
//      causal, dtype, attribute overrides);
//   2. feature parameters drawn on the CPU plan (slay_attn_features_sample)
//      and uploaded unchanged to the device, so both sides use the same ones;
//   3. fresh seeded random inputs (never zeros), rounded to the I/O dtype so
//      both backends read the same values; optional initial state / dout /
//      dfinal_state;
//   4. every output buffer poisoned with 0xFF bytes (a NaN in fp32, bf16 and
//      fp16) before each call, so an unwritten element reads as NaN;
//   5. each side's workspace sized by its own plan (get_workspace_size); the
//      CPU runs on stream NULL, the device on a created non-blocking stream;
//   6. outputs downloaded and compared: relative L2 per output, where any
//      NaN/Inf in the device output (poison included) is an infinite error.
// The backward's `out` argument is the CPU forward's output of the same
// inputs, given to both sides.
//
// Debug mode: with SLAY_GPU_TEST_EMULATE=1 in the environment the "device"
// side is a second CPU handle with host buffers, so the harness logic can be
// checked CPU-vs-CPU on a machine without a GPU (every error should be 0).
//
// Infrastructure failures (cudaMalloc, copies) throw std::runtime_error; the
// status of libslay calls is returned in Outcome (NOT_SUPPORTED is a result,
// not a crash).
#pragma once

#include <slay/slay.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "../unit/support.hpp"  // slay_test::Owned / Handle / Desc / Plan

namespace slay_gpu {

// ------------------------------------------------------------- environment

// Process-wide handles: a CPU handle, the device handle (CUDA device 0, or a
// second CPU handle in emulation mode) and the device-side stream.
struct Env {
    slay_handle_t cpu = nullptr;
    slay_handle_t device = nullptr;
    void* stream = nullptr;  // cudaStream_t of the device side; NULL when emulated
    bool emulated = false;
};

// Opens the environment once. Returns 0 when ready, 77 when there is no CUDA
// device (why says the driver's reason; a main should exit 77 so meson
// reports "skipped"), 1 on any other failure.
int open_env(std::string* why);
// The opened environment (open_env must have returned 0).
Env& env();

// A doctest main helper lives in gpu_doctest_main.hpp.

// ----------------------------------------------------------- device memory

// Where a buffer lives: the CPU side (host memory) or the device side (CUDA
// device memory; host memory in emulation mode).
enum class Side { Cpu, Device };
const char* side_name(Side s);

// RAII owner of one buffer on a side. Transfers run on the env stream and
// complete before they return. Throws std::runtime_error on CUDA errors.
class Buffer {
public:
    Buffer() = default;
    Buffer(Side side, size_t bytes);
    ~Buffer();
    Buffer(Buffer&& o) noexcept;
    Buffer& operator=(Buffer&& o) noexcept;
    Buffer(const Buffer&) = delete;
    Buffer& operator=(const Buffer&) = delete;

    void* get() const { return ptr_; }  // NULL for a 0-byte buffer
    size_t size() const { return bytes_; }
    bool on_device() const { return device_; }  // true: cudaMalloc'ed
    void upload(const void* host, size_t bytes);  // bytes <= size()
    void download(void* host, size_t bytes) const;
    std::vector<unsigned char> bytes() const;
    void fill(unsigned char byte);  // memset of the whole buffer
    void poison() { fill(0xFF); }   // NaN in fp32, bf16 and fp16

private:
    void release();
    void* ptr_ = nullptr;
    size_t bytes_ = 0;
    bool device_ = false;
};

// Blocks until the device stream is idle (no-op on the CPU side).
void sync_device();

// --------------------------------------------------------------- dtypes

size_t dtype_bytes(slay_dtype_t t);
const char* dtype_label(slay_dtype_t t);  // "fp32", "bf16", "fp16"
// x rounded to the dtype (round to nearest even), as a float.
float round_to(slay_dtype_t t, float x);

// -------------------------------------------------------------------- cases

enum class Layout { BHTD, BTHD };  // memory order of q, k, v, out, dout, dq, dk, dv

// One attribute override, applied after the case's own fields.
struct Attr {
    slay_attr_t attr;
    bool is_f64;
    int64_t i;
    double f;
};
inline Attr attr_i64(slay_attr_t a, int64_t v) { return Attr{a, false, v, 0.0}; }
inline Attr attr_f64(slay_attr_t a, double v) { return Attr{a, true, 0, v}; }

struct Case {
    slay_attn_variant_t variant = SLAY_ATTN_SLAY_ANCHOR;
    int64_t batch = 1, heads = 2, seq_len = 16, head_dim = 16;
    int64_t value_dim = 0;  // 0: Dv = D
    bool causal = true;
    slay_dtype_t dtype = SLAY_DTYPE_FLOAT32;
    Layout layout = Layout::BHTD;
    std::vector<Attr> attrs;  // R, M, P, chunk size, cosformer length, ...
    // State arguments (linearized family only; ignored when F = 0):
    bool initial_state = false;   // fwd and bwd read a random initial state
    bool final_state = false;     // fwd writes final_state
    bool dfinal_state = false;    // bwd reads a random dL/dfinal_state
    bool dinitial_state = false;  // bwd writes dL/dinitial_state
    int64_t position_offset = 0;  // cosformer only
    uint64_t input_seed = 1;      // q, k, v, dout, states
    uint64_t param_seed = 1234, param_offset = 0;
    double input_scale = 1.0;  // q, k ~ N(0, scale^2); v, dout ~ N(0, 1)

    int64_t dv() const { return value_dim ? value_dim : head_dim; }
    // "slay_anchor causal fp32 BTHD B=1 H=2 T=63 D=16 Dv=16"
    std::string label() const;
};

// ------------------------------------------------------------------- plans

// A descriptor made from the case; status and message on failure.
struct Made {
    slay_status_t status = SLAY_STATUS_SUCCESS;
    std::string message;  // "<call>: <last error>" on failure
    bool ok() const { return status == SLAY_STATUS_SUCCESS; }
};

// One plan per backend from the same descriptor, the feature parameters
// drawn on the CPU plan (Case::param_seed/param_offset) and the same bytes
// uploaded to a device buffer.
struct Plans {
    slay_test::Plan cpu, device;
    int64_t features = 0, param_count = 0;
    std::vector<float> params;  // host copy of the parameters
    Buffer params_cpu, params_device;
    slay_attn_plan_t on(Side s) const { return s == Side::Cpu ? cpu.get() : device.get(); }
    const Buffer& params_on(Side s) const { return s == Side::Cpu ? params_cpu : params_device; }
};

// Makes the descriptor of a case (exposed for tests that need only a desc).
Made make_desc(const Case& c, slay_test::Desc* desc);
// Makes both plans and the shared parameters.
Made make_plans(const Case& c, Plans* plans);

// ------------------------------------------------------------------ inputs

// Logical (B, H, T, C) values in row-major order, already representable in
// the case's dtype (so every backend reads exactly these numbers).
struct Inputs {
    std::vector<float> q, k, v, dout;
    std::vector<float> initial_state, dfinal_state;  // (B, H, F, Dv+1); empty if unused
};

// Fresh random inputs for the case (seeded by input_seed). The initial
// state has N(0, 0.1^2) entries with the z column (index Dv) set to 0.5, so
// positive-feature denominators stay well away from zero.
Inputs make_inputs(const Case& c, int64_t features);
// Tokens [t0, t1) of q, k, v, dout (states are copied unchanged).
Inputs slice_time(const Inputs& in, const Case& c, int64_t t0, int64_t t1);

// Logical outputs as fp64 (NaN where the backend left poison or wrote NaN).
struct Outputs {
    std::vector<double> out, final_state, dq, dk, dv, dinitial_state;
};

// The status of one libslay call (or of the harness around it).
struct CallStatus {
    slay_status_t status = SLAY_STATUS_SUCCESS;
    std::string message;
    bool ok() const { return status == SLAY_STATUS_SUCCESS; }
};

// One forward on a side with the case's flags (initial_state read from
// `in` when c.initial_state; final_state written when c.final_state).
CallStatus run_forward(Side side, const Plans& plans, const Case& c, const Inputs& in, Outputs* out);
// One backward on a side; `fwd_out` is the forward output (B, H, T, Dv)
// logical values (representable in the dtype).
CallStatus run_backward(Side side, const Plans& plans, const Case& c, const Inputs& in,
                        const std::vector<double>& fwd_out, Outputs* out);

// ------------------------------------------------------------- comparisons

// Relative L2 error ||got - want|| / ||want||. Where want is +-inf, got must
// be the same inf; any other non-finite got (NaN poison included) or NaN
// want gives +inf. An all-zero want compares absolutely.
double rel_l2(const std::vector<double>& got, const std::vector<double>& want);

// Relative errors of the device against the CPU per output; -1 where the
// output was not produced by this pass.
struct Errors {
    double out = -1, final_state = -1, dq = -1, dk = -1, dv = -1, dinitial_state = -1;
    double max() const;  // the largest produced error (+inf if NaN)
    std::string str() const;  // "out 1.2e-07 dq 3.4e-07 ..."
};

struct Outcome {
    CallStatus cpu, device;  // status of each side's call
    Errors err;
    bool ran() const { return cpu.ok() && device.ok(); }
    bool pass(double tol) const { return ran() && err.max() <= tol; }
    std::string why() const;  // the failing side's message, or ""
};

// Errors of device outputs against CPU outputs (fields present in both).
Errors compare(const Outputs& got, const Outputs& want);

// Full comparisons: plans, params, inputs, both sides, errors.
Outcome compare_forward(const Case& c);
Outcome compare_backward(const Case& c);

// One table line for the lead to quote:
// "| slay_anchor | fwd | causal | fp32 | BTHD | T=63 | ... | 1.2e-07 | PASS |"
std::string table_row(const Case& c, const char* pass, const Outcome& o, double tol);
// Prints table_row to stdout (flushed) and returns o.pass(tol).
bool report(const Case& c, const char* pass, const Outcome& o, double tol);

}  // namespace slay_gpu
