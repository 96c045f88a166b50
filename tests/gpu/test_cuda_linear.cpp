// test_cuda_linear.cpp -- the linearized family (slay_anchor, slay_laplace,
// slay_hadamard, slay_tensorsketch, slay_random_maclaurin, slay_nystrom,
// performer, linear, cosformer, rff) on the CUDA backend against the fp64 CPU
// backend, through the public ABI (harness: gpu_support.hpp):
//   q, k (B, H, T, D); v, out, dout (B, H, T, Dv); state (B, H, F, Dv+1) fp32.
// Covers forward/backward x causal/bidirectional x fp32/bf16 (fp16 too) at
// T = 1, 63, 1000, 4097 (not multiples of any chunk), the anchor's paper
// configuration (R=2, M=16, P=32), (B, T, H, D) strided memory with Dv != D,
// initial/final states and their gradients, a sequence in two pieces (state
// of the first as initial state of the second, gradients chained backwards)
// equal to one call, and T = 65536. Every case prints one table line
//   | variant | pass | mode | dtype | layout | T | shape | max err | PASS/FAIL | per output
// Tolerances (relative L2, gradients too): fp32 1e-5, bf16/fp16 2e-2.
// Cases named *sanitizer* are the small subset run under compute-sanitizer.
// Exits 77 without a device; SLAY_GPU_TEST_EMULATE=1 runs it CPU vs CPU.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "gpu_doctest_main.hpp"
#include "gpu_support.hpp"

namespace {

using namespace slay_gpu;

const slay_attn_variant_t kLinear[] = {
    SLAY_ATTN_SLAY_ANCHOR,    SLAY_ATTN_SLAY_LAPLACE,        SLAY_ATTN_SLAY_HADAMARD, SLAY_ATTN_SLAY_TENSORSKETCH,
    SLAY_ATTN_SLAY_RANDOM_MACLAURIN, SLAY_ATTN_SLAY_NYSTROM, SLAY_ATTN_PERFORMER,     SLAY_ATTN_LINEAR,
    SLAY_ATTN_COSFORMER,      SLAY_ATTN_RFF};

double tol(slay_dtype_t t) { return t == SLAY_DTYPE_FLOAT32 ? 1e-5 : 2e-2; }

bool has(slay_attn_variant_t v, std::initializer_list<slay_attn_variant_t> set) {
    for (slay_attn_variant_t x : set)
        if (x == v) return true;
    return false;
}

// Size attributes of a variant (only those it reads): R quadrature nodes, M
// features per node, P polynomial dim. Small by default so the fp64 oracle
// stays fast; the chunk size is left at the variant's default.
std::vector<Attr> size_attrs(slay_attn_variant_t v, int64_t R = 2, int64_t M = 4, int64_t P = 8) {
    std::vector<Attr> a;
    const bool kron = has(v, {SLAY_ATTN_SLAY_ANCHOR, SLAY_ATTN_SLAY_TENSORSKETCH, SLAY_ATTN_SLAY_RANDOM_MACLAURIN,
                              SLAY_ATTN_SLAY_NYSTROM});
    const bool prf = kron || has(v, {SLAY_ATTN_SLAY_LAPLACE, SLAY_ATTN_SLAY_HADAMARD});
    if (prf) a.push_back(attr_i64(SLAY_ATTR_NUM_QUAD_NODES, R));
    if (prf || has(v, {SLAY_ATTN_PERFORMER, SLAY_ATTN_RFF})) a.push_back(attr_i64(SLAY_ATTR_NUM_FEATURES, M));
    if (kron) a.push_back(attr_i64(SLAY_ATTR_POLY_DIM, P));
    return a;
}

Case base_case(slay_attn_variant_t v, int64_t T, bool causal, slay_dtype_t dtype) {
    Case c;
    c.variant = v;
    c.batch = 2;
    c.heads = 2;
    c.seq_len = T;
    c.head_dim = 16;
    c.causal = causal;
    c.dtype = dtype;
    c.attrs = size_attrs(v);
    c.input_seed = static_cast<uint64_t>(T * 131 + v * 7 + (causal ? 1 : 0) + dtype * 3);
    return c;
}

// Cosformer carries state only with a fixed length L; it must cover
// position_offset + T of every call.
void with_states(Case& c, bool fwd_and_bwd_state = true) {
    c.initial_state = c.final_state = fwd_and_bwd_state;
    c.dfinal_state = c.dinitial_state = fwd_and_bwd_state;
    if (c.variant == SLAY_ATTN_COSFORMER) {
        c.attrs.push_back(attr_i64(SLAY_ATTR_COSFORMER_LENGTH, c.position_offset + c.seq_len + 100));
    }
}

// Runs forward and backward of a case and checks both against the CPU.
void check_both(const Case& c) {
    CAPTURE(c.label());
    const Outcome f = compare_forward(c);
    CHECK_MESSAGE(report(c, "fwd", f, tol(c.dtype)), f.why(), " ", f.err.str());
    const Outcome b = compare_backward(c);
    CHECK_MESSAGE(report(c, "bwd", b, tol(c.dtype)), b.why(), " ", b.err.str());
}

std::vector<double> concat(const std::vector<double>& a, const std::vector<double>& b, int64_t BH, int64_t Ta,
                           int64_t Tb, int64_t C) {
    std::vector<double> y;
    y.reserve(a.size() + b.size());
    for (int64_t bh = 0; bh < BH; ++bh) {
        y.insert(y.end(), a.begin() + bh * Ta * C, a.begin() + (bh + 1) * Ta * C);
        y.insert(y.end(), b.begin() + bh * Tb * C, b.begin() + (bh + 1) * Tb * C);
    }
    return y;
}

std::vector<float> to_float(const std::vector<double>& x) { return std::vector<float>(x.begin(), x.end()); }

// A sequence of T tokens processed on one side as two calls [0, split) and
// [split, T) -- the first's final state as the second's initial state, and
// backwards the second's dinitial_state as the first's dfinal_state -- must
// equal one call of T tokens on the same side. Compares out, final_state,
// dq, dk, dv, dinitial_state; prints one line per pass and returns the
// largest error. The state crosses the split in fp32, so the pieces differ
// from one call by that rounding times the conditioning of the variant
// (signed features make denominators near zero): `floor` is the error the
// fp64 CPU itself shows for the same split, and the tolerance is
// max(tol, 10 * floor).
double check_pieces(const Case& whole, int64_t split, Side side, double floor = 0.0) {
    const double limit = std::max(tol(whole.dtype), 10.0 * floor);
    CAPTURE(whole.label());
    CAPTURE(split);
    Plans plans;
    const Made m = make_plans(whole, &plans);
    REQUIRE_MESSAGE(m.ok(), m.message);
    const bool checked = side == Side::Device;  // the CPU run only measures the floor
    const int64_t BH = whole.batch * whole.heads, T = whole.seq_len, D = whole.head_dim, Dv = whole.dv();
    const Inputs in = make_inputs(whole, plans.features);
    Case first = whole, second = whole;
    first.seq_len = split;
    second.seq_len = T - split;
    // Only cosformer reads positions (others must pass 0).
    if (whole.variant == SLAY_ATTN_COSFORMER) second.position_offset = whole.position_offset + split;
    const Inputs in1 = slice_time(in, whole, 0, split), in2_base = slice_time(in, whole, split, T);

    Outputs one, a, b;
    Outcome fo;
    fo.cpu.status = SLAY_STATUS_SUCCESS;
    fo.device = run_forward(side, plans, whole, in, &one);
    if (fo.device.ok()) fo.device = run_forward(side, plans, first, in1, &a);
    Inputs in2 = in2_base;
    if (fo.device.ok()) {
        in2.initial_state = to_float(a.final_state);  // fp32 state: exact round trip
        fo.device = run_forward(side, plans, second, in2, &b);
    }
    if (fo.device.ok()) {
        Outputs pieces;
        pieces.out = concat(a.out, b.out, BH, split, T - split, Dv);
        pieces.final_state = b.final_state;
        fo.err = compare(pieces, one);
    }
    Case shown = whole;
    const bool fwd_ok = report(shown, checked ? "fwd-pieces" : "fwd-pieces(cpu floor)", fo, checked ? limit : INFINITY);
    if (checked) CHECK_MESSAGE(fwd_ok, fo.why());

    // Backward in pieces: the second piece first (its dinitial_state is the
    // gradient flowing into the split), then the first with that as dfinal.
    Outcome bo;
    Outputs gone, ga, gb;
    if (fo.device.ok()) {
        bo.device = run_backward(side, plans, whole, in, one.out, &gone);
        if (bo.device.ok()) bo.device = run_backward(side, plans, second, in2, b.out, &gb);
        if (bo.device.ok()) {
            Inputs in1g = in1;
            in1g.dfinal_state = to_float(gb.dinitial_state);
            bo.device = run_backward(side, plans, first, in1g, a.out, &ga);
        }
        if (bo.device.ok()) {
            Outputs pieces;
            pieces.dq = concat(ga.dq, gb.dq, BH, split, T - split, D);
            pieces.dk = concat(ga.dk, gb.dk, BH, split, T - split, D);
            pieces.dv = concat(ga.dv, gb.dv, BH, split, T - split, Dv);
            pieces.dinitial_state = ga.dinitial_state;
            bo.err = compare(pieces, gone);
        }
    } else {
        bo.device = fo.device;
    }
    const bool bwd_ok = report(shown, checked ? "bwd-pieces" : "bwd-pieces(cpu floor)", bo, checked ? limit : INFINITY);
    if (checked) CHECK_MESSAGE(bwd_ok, bo.why());
    if (!checked) {
        const bool both_ran = fo.device.ok() && bo.device.ok();
        REQUIRE_MESSAGE(both_ran, fo.why(), bo.why());
    }
    return std::max(fo.err.max(), bo.err.max());
}

}  // namespace

TEST_CASE("linear: every variant x pass x mode x dtype at T = 1, 63, 1000") {
    for (slay_attn_variant_t v : kLinear)
        for (int64_t T : {1, 63, 1000})
            for (bool causal : {true, false})
                for (slay_dtype_t dt : {SLAY_DTYPE_FLOAT32, SLAY_DTYPE_BFLOAT16}) check_both(base_case(v, T, causal, dt));
}

TEST_CASE("linear: T = 4097 (B=1, H=2, small R/M/P)") {
    for (slay_attn_variant_t v : kLinear)
        for (bool causal : {true, false}) {
            Case c = base_case(v, 4097, causal, SLAY_DTYPE_FLOAT32);
            c.batch = 1;
            c.attrs = size_attrs(v, 1, 4, 4);
            check_both(c);
        }
    Case c = base_case(SLAY_ATTN_SLAY_ANCHOR, 4097, true, SLAY_DTYPE_BFLOAT16);
    c.batch = 1;
    c.attrs = size_attrs(c.variant, 1, 4, 4);
    check_both(c);
}

TEST_CASE("linear: slay_anchor paper configuration R=2, M=16, P=32, D=64") {
    for (int64_t T : {63, 1000})
        for (bool causal : {true, false})
            for (slay_dtype_t dt : {SLAY_DTYPE_FLOAT32, SLAY_DTYPE_BFLOAT16}) {
                Case c = base_case(SLAY_ATTN_SLAY_ANCHOR, T, causal, dt);
                c.batch = 1;
                c.head_dim = 64;
                c.attrs = size_attrs(c.variant, 2, 16, 32);
                check_both(c);
            }
}

TEST_CASE("linear: (B, T, H, D) strided memory with Dv != D") {
    for (slay_attn_variant_t v : kLinear)
        for (int64_t T : {63, 257})
            for (bool causal : {true, false}) {
                Case c = base_case(v, T, causal, SLAY_DTYPE_FLOAT32);
                c.layout = Layout::BTHD;
                c.head_dim = 32;
                c.value_dim = 24;
                c.heads = 3;
                check_both(c);
            }
}

TEST_CASE("linear: initial/final state and dinitial/dfinal state") {
    for (slay_attn_variant_t v : kLinear)
        for (bool causal : {true, false})
            for (slay_dtype_t dt : {SLAY_DTYPE_FLOAT32, SLAY_DTYPE_BFLOAT16}) {
                Case c = base_case(v, 130, causal, dt);
                c.value_dim = 8;
                if (v == SLAY_ATTN_COSFORMER) c.position_offset = 37;
                with_states(c);
                check_both(c);
            }
}

TEST_CASE("linear: fp16 inputs") {
    for (slay_attn_variant_t v : kLinear)
        for (bool causal : {true, false}) check_both(base_case(v, 63, causal, SLAY_DTYPE_FLOAT16));
}

TEST_CASE("linear: a sequence in two pieces equals one call on the device") {
    for (slay_attn_variant_t v : kLinear) {
        Case c = base_case(v, 1000, true, SLAY_DTYPE_FLOAT32);
        c.value_dim = 8;
        with_states(c);
        check_pieces(c, 397, Side::Device, check_pieces(c, 397, Side::Cpu));
    }
}

TEST_CASE("linear: T = 65536") {
    // Device vs CPU at B = H = 1 with a small feature dimension.
    for (slay_attn_variant_t v : {SLAY_ATTN_SLAY_ANCHOR, SLAY_ATTN_SLAY_LAPLACE, SLAY_ATTN_LINEAR, SLAY_ATTN_COSFORMER})
        for (bool causal : {true, false}) {
            Case c = base_case(v, 65536, causal, SLAY_DTYPE_FLOAT32);
            c.batch = 1;
            c.heads = 1;
            c.attrs = size_attrs(v, 1, 2, 4);
            check_both(c);
        }
    // Device pieces vs one device call with the paper configuration.
    Case c = base_case(SLAY_ATTN_SLAY_ANCHOR, 65536, true, SLAY_DTYPE_FLOAT32);
    c.batch = 1;
    c.heads = 2;
    c.head_dim = 64;
    c.attrs = size_attrs(c.variant, 2, 16, 32);
    with_states(c);
    check_pieces(c, 40000, Side::Device);
}

TEST_CASE("linear sanitizer: small cases of every variant with states, strided") {
    for (slay_attn_variant_t v : kLinear) {
        Case c = base_case(v, 70, true, SLAY_DTYPE_BFLOAT16);
        c.layout = Layout::BTHD;
        c.value_dim = 8;
        with_states(c);
        check_both(c);
        c.causal = false;
        c.dtype = SLAY_DTYPE_FLOAT32;
        check_both(c);
    }
}

int main(int argc, char** argv) { return slay_gpu::doctest_main(argc, argv); }
