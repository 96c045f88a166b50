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
//      dfinal_state; optionally q, k clustered (Case::cluster_noise); for
//      performer no token near a relu kink (make_case_inputs);
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

// The variants of one family, in enum order, as the library's registry
// defines them (through the ABI: a variant is linearized when its plan has
// a feature dimension F > 0), so a new variant is in the suites at once.
std::vector<slay_attn_variant_t> exact_variants();
std::vector<slay_attn_variant_t> linearized_variants();

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
// Blocks until all work on the device is done: calls made on the NULL
// stream run on cudaStreamPerThread, which the harness's non-blocking stream
// does not wait for (no-op on the CPU side).
void sync_whole_device();

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
    // > 0: q and k clustered around one random direction per (b, key/value
    // head) (shared by the query heads of its group),
    // q_t, k_t = mu + cluster_noise * N(0, scale^2) with mu ~ N(0, scale^2),
    // so every kernel value k(q_i, k_j) is near k(mu, mu) > 0 and the
    // denominators Z_i grow like i (bidirectional: like T) for every feature
    // map, signed ones included (make_inputs).
    double cluster_noise = 0.0;
    // Grouped-query heads: k, v, dk, dv have kv_heads heads (0: heads).
    int64_t kv_heads = 0;
    // Packed call (non-empty): sequences of these lengths back to back on
    // the token axis of batch row 0 (batch and seq_len are then ignored),
    // offsets passed as int32 when offsets_int32, else int64.
    std::vector<int64_t> seq_lengths;
    bool offsets_int32 = false;

    int64_t dv() const { return value_dim ? value_dim : head_dim; }
    int64_t kvh() const { return kv_heads ? kv_heads : heads; }
    bool packed() const { return !seq_lengths.empty(); }
    int64_t tensor_batch() const { return packed() ? 1 : batch; }  // batch extent of q, k, v, ...
    int64_t tokens() const;                                         // token extent (packed: the sum)
    int64_t sequences() const { return packed() ? static_cast<int64_t>(seq_lengths.size()) : batch; }
    int64_t longest() const;  // seq_len, or the longest packed sequence
    std::vector<int64_t> offsets() const;  // 0, then the running sums of seq_lengths
    // "slay_anchor causal fp32 BTHD B=1 H=2 T=63 D=16 Dv=16"
    std::string label() const;
};

// The shared tolerance (relative L2, gradients too) of a well-conditioned
// case: fp32 1e-5, bf16/fp16 2e-2.
double tol_for(slay_dtype_t t);

// The base case of the GPU suites: B = H = 2, T tokens, head dim D, the
// given mode and dtype, an input seed made of all of them.
Case base_case(slay_attn_variant_t v, int64_t T, bool causal, slay_dtype_t dtype, int64_t head_dim);

// ------------------------------------------------------------------- plans

// A descriptor made from the case; status and message on failure.
struct Made {
    slay_status_t status = SLAY_STATUS_SUCCESS;
    std::string message;  // "<call>: <last error>" on failure
    bool ok() const { return status == SLAY_STATUS_SUCCESS; }
};

// A rank-1 fp32 view of n elements of buf (feature parameters).
slay_tensor_t view1(const Buffer& buf, int64_t n);

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
// the case's dtype (so every backend reads exactly these numbers); k and v
// have the case's kv heads, states its sequences as rows, and a packed case
// has B = 1 and T = the total tokens.
struct Inputs {
    std::vector<float> q, k, v, dout;
    std::vector<float> initial_state, dfinal_state;  // (B, H, F, Dv+1); empty if unused
};

// Fresh random inputs for the case (seeded by input_seed). The initial
// state has N(0, 0.1^2) entries with the z column (index Dv) set to 0.5, so
// positive-feature denominators stay well away from zero.
Inputs make_inputs(const Case& c, int64_t features);
// The inputs the comparisons use: make_inputs (for a clustered case with
// an initial state: the initial state is the CPU's final state of 16 more
// clustered tokens before the sequence, so that phi(q).z0 > 0 as for real
// tokens), then for performer every q
// and k token redrawn while some pre-activation w_m . x of the plan's
// performer_w lies within 1e-4 |w_m| |x| of zero. There relu' jumps, and
// fp32 rounding of the dot product (~6e-8 |w_m| |x|) could land on the
// other side of the kink than fp64, flipping a whole term of dq or dk: a
// disagreement about which side of a discontinuity a rounded value falls
// on, not an error of either backend. Other variants: make_inputs as is.
Inputs make_case_inputs(const Case& c, const Plans& plans);
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

// One pass on both sides with given plans and inputs (the device first, so
// an unsupported case costs no fp64 oracle time). The backward's `out` is
// the CPU forward of the same inputs (with the initial state when there is
// one), given to both sides.
Outcome compare_on(const Case& c, const Plans& plans, const Inputs& in, bool backward);
// The same with the case's own plans.
Outcome compare_on(const Case& c, const Inputs& in, bool backward);
// Full comparisons: plans, params, inputs (make_case_inputs), both sides, errors.
Outcome compare_forward(const Case& c);
Outcome compare_backward(const Case& c);

// How much the CPU backend's own outputs of a case move when every input
// element (q, k, v, dout, initial state, dfinal state) moves by one fp32
// ulp (2^-24..2^-23 relative, random direction): the largest relative L2
// change over the outputs of the pass and over two such draws. A device
// computing in fp32 perturbs its operands by about that much, so this is
// the error an exact fp32 implementation is expected to show on these
// inputs; where denominators come near zero (signed feature maps) it far
// exceeds the plain tolerance. The case's own inputs (make_case_inputs)
// are used; bf16/fp16 cases run as fp32 (their inputs are exact there) so
// that the one-ulp perturbations survive.
double cpu_sensitivity(const Case& c, bool backward);

// One table line for the lead to quote:
// "| slay_anchor | fwd | causal | fp32 | BTHD | T=63 | ... | 1.2e-07 | PASS |"
std::string table_row(const Case& c, const char* pass, const Outcome& o, double tol);
// Prints table_row (and the note, if any, after it) to stdout (flushed)
// and returns o.pass(tol).
bool report(const Case& c, const char* pass, const Outcome& o, double tol, const std::string& note = "");

}  // namespace slay_gpu
