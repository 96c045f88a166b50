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
// Tolerances (relative L2, gradients too): fp32 1e-5, bf16/fp16 2e-2, with
// three documented exceptions, each printed on its table line:
//  - signed feature maps (slay_random_maclaurin, rff, slay_tensorsketch) on
//    random q, k: Z_i = phi(q_i).sum_j phi(k_j) can come near zero and
//    amplify fp32 rounding; the tolerance is max(bar, 10 * floor), floor the
//    CPU backend's own sensitivity to one-ulp input perturbations
//    (cpu_sensitivity). The same variants on clustered q, k (every kernel
//    value near k(mu, mu) > 0) must meet the plain bar.
//  - T = 1 at the default stabilizer: o = v Z/den(Z) is v up to delta, so
//    the exact dq, dk are 0 (clamp) or a delta-sized cancellation residue
//    (add); they are bounded absolutely against the size of the cancelling
//    terms (check_single_token). dv, out and a conditioned T = 1 case (add,
//    delta = 1: dq, dk of order 1) keep the relative bar.
//  - performer inputs keep every pre-activation w_m . x away from the relu
//    kink (make_case_inputs), so fp32 and fp64 agree on relu'.
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

const std::vector<slay_attn_variant_t> kLinear = linearized_variants();

// The maps of the Kronecker tensor-core kernels (bf16/fp16 io,
// src/cuda/linear_mma.hpp: kron_tensor_core_map): the cases below that aim
// at those kernels (the sequence split, the paper R/M/P at D = 64, packed
// and multi-query calls, the sanitizer's split case) run for each
// (slay_nystrom with two bf16 planes per operand, random Maclaurin and
// TensorSketch with three, bf16 io only: their poly policies'; shapes
// without a three-plane instantiation take the fp32 kernels, and the case
// "three-plane Kronecker shapes" below covers each one that has).
const std::vector<slay_attn_variant_t> kKronTensorCore = {SLAY_ATTN_SLAY_ANCHOR, SLAY_ATTN_SLAY_NYSTROM,
                                                          SLAY_ATTN_SLAY_RANDOM_MACLAURIN,
                                                          SLAY_ATTN_SLAY_TENSORSKETCH};

// Feature maps with negative entries: their kernel estimates, and so the
// denominators Z_i, can be near zero or negative on random inputs.
bool is_signed_map(slay_attn_variant_t v) {
    return v == SLAY_ATTN_SLAY_RANDOM_MACLAURIN || v == SLAY_ATTN_RFF || v == SLAY_ATTN_SLAY_TENSORSKETCH;
}

// A derived floor above this (a tolerance above 1e-2 for fp32) would let
// gross errors pass: such a setup is too ill-conditioned to test and fails
// instead of being waved through.
const double kMaxFloor = 1e-3;

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
    // slay_poly2: the Kronecker maps' F as its budget (64 at D = 16: a frame
    // of d = 10 < D plus the constant feature, 56 features).
    if (v == SLAY_ATTN_SLAY_POLY2) a.push_back(attr_i64(SLAY_ATTR_NUM_FEATURES, R * P * M));
    return a;
}

// The harness's base case (B = H = 2) at D = 16 with the small R/M/P.
Case base_case(slay_attn_variant_t v, int64_t T, bool causal, slay_dtype_t dtype) {
    Case c = slay_gpu::base_case(v, T, causal, dtype, 16);
    c.attrs = size_attrs(v);
    return c;
}

// q, k clustered around one direction per head (Case::cluster_noise): the
// well-conditioned setup of the signed feature maps. The spread 0.1 is a
// balance: all q, k equal would make o_i the plain mean of v and dq, dk a
// cancellation of size ~spread (the CPU's fp32-rounding floor grows like
// 1/spread: 2e-6 at 0.05), a wide spread brings back kernel estimates near
// zero. rff's estimate also carries (1/M) sum_m cos(w_m.(q+k) + 2 b_m),
// which clustering does not make positive: M = 16 keeps it small (at M = 4
// some seeds gave floors of 1e-4). With these the floors measured 0.7e-6 to
// 1.3e-6 over seeds, T = 63 and 1000, both modes.
Case clustered(Case c) {
    c.cluster_noise = 0.1;
    if (c.variant == SLAY_ATTN_RFF)
        for (Attr& a : c.attrs)
            if (a.attr == SLAY_ATTR_NUM_FEATURES) a.i = 16;
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

// The tolerance of one pass of a case: the bar, or for a signed feature map
// on random q, k max(bar, 10 * floor) with the CPU's own fp32-rounding
// sensitivity as the floor (a device in fp32 is expected to be off by about
// that much: on an H200 the fp32 cases with floors above 1e-6 were off by
// 0.07 to 4.5 times their floor; the factor 10 covers that spread). `note`
// says which, for the table line.
bool needs_floor(const Case& c) { return is_signed_map(c.variant) && c.cluster_noise == 0; }

double tolerance_with_floor(const Case& c, double floor, std::string* note) {
    const double bar = tol_for(c.dtype);
    if (!needs_floor(c)) return bar;
    const double tol = std::max(bar, 10.0 * floor);
    char buf[160];
    std::snprintf(buf, sizeof buf, "signed features, random q/k: cpu fp32-rounding floor %.1e -> tol %.1e", floor,
                  tol);
    *note = buf;
    CHECK_MESSAGE(floor <= kMaxFloor, "too ill-conditioned to test: floor ", floor);
    return tol;
}

double pass_tolerance(const Case& c, bool backward, std::string* note) {
    return tolerance_with_floor(c, needs_floor(c) ? cpu_sensitivity(c, backward) : 0.0, note);
}

// A signed feature map on random q, k whose CPU floor (either pass) exceeds
// kMaxFloor -- Z_i of some row within rounding of zero, common at long T
// since the kernel of two random tokens is ~0 and Z_i is then a sum of
// signed noise -- can not be compared meaningfully; when `may_switch`, the
// case runs on clustered q, k (plain bar) instead, said on stdout. The
// floors of the returned case go to *ff, *fb (0 when none applies).
Case conditioned(const Case& c, bool may_switch, double* ff, double* fb) {
    *ff = *fb = 0;
    if (!needs_floor(c)) return c;
    *ff = cpu_sensitivity(c, false);
    *fb = cpu_sensitivity(c, true);
    if (std::max(*ff, *fb) <= kMaxFloor || !may_switch) return c;
    std::printf("| %s: random q/k floors fwd %.1e bwd %.1e > %.0e, too ill-conditioned to compare: "
                "clustered q/k (plain tolerance) instead\n",
                c.label().c_str(), *ff, *fb, kMaxFloor);
    *ff = *fb = 0;
    return clustered(c);
}

// Runs one pass of a case and checks it against the CPU at the tolerance
// of `floor` (tolerance_with_floor).
void check_pass(const Case& c, bool backward, double floor, const std::string& what = "") {
    std::string note;
    const double tol = tolerance_with_floor(c, floor, &note);
    if (!what.empty()) note = note.empty() ? what : what + "; " + note;
    const Outcome o = backward ? compare_backward(c) : compare_forward(c);
    CHECK_MESSAGE(report(c, backward ? "bwd" : "fwd", o, tol, note), o.why(), " ", o.err.str());
}

// Runs forward and backward of a case (conditioned) and checks both
// against the CPU.
void check_both(const Case& c0, bool may_switch = true, const std::string& what = "") {
    double ff, fb;
    const Case c = conditioned(c0, may_switch, &ff, &fb);
    CAPTURE(c.label());
    check_pass(c, false, ff, what);
    check_pass(c, true, fb, what);
}

double norm(const double* x, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += x[i] * x[i];
    return std::sqrt(s);
}

// One token (T = 1), where o = N/den(Z) with N = Z v: o = v Z/(Z + delta)
// (add) or exactly v (clamp, Z >= delta). Checked:
//  - forward (out) at the relative bar: o is well conditioned;
//  - backward at the variant's default stabilizer: dv relative; dq, dk are
//    the difference of two terms (g.v) grad Z/den and (g.o) grad Z/den that
//    agree up to delta/den, so the exact dq, dk are 0 (clamp) or a residue
//    (g.v) delta grad Z/den^2 (add, delta = 1e-6), and fp32 rounding of
//    either term (~6e-8 of it) dwarfs that: a relative error means nothing.
//    Instead ||dq_device - dq_cpu|| <= tol * S_q, S_q the size of those
//    terms, |g.v| |grad_q Z|/|den| per head (likewise dk), read off the CPU
//    backward of the conditioned case below: there dq = (g.v) grad Z/(Z+1)^2
//    and o = v Z/(Z+1) gives Z, so S_q = |dq_1| (Z+1)^2/|den|;
//  - the conditioned case, stabilizer add with delta = 1: dq, dk are then
//    (g.v) grad Z/(Z+1)^2, of the order of the terms themselves (relative
//    rounding ~eps Z), so forward and backward keep the relative bar.
void check_single_token(slay_attn_variant_t v, bool causal, slay_dtype_t dt) {
    const Case c = base_case(v, 1, causal, dt);
    CAPTURE(c.label());
    std::string note;
    check_pass(c, false, needs_floor(c) ? cpu_sensitivity(c, false) : 0.0, "T = 1, default stabilizer");

    Case one = c;  // the conditioned case
    one.attrs.push_back(attr_i64(SLAY_ATTR_STABILIZER_MODE, SLAY_STABILIZER_ADD));
    one.attrs.push_back(attr_f64(SLAY_ATTR_STABILIZER, 1.0));
    check_both(one, false, "T = 1 conditioned: stabilizer add, delta = 1");

    Plans plans;
    const Made m = make_plans(c, &plans);
    REQUIRE_MESSAGE(m.ok(), m.message);
    const Inputs in = make_case_inputs(c, plans);
    int64_t mode = 0;
    double delta = 0;
    REQUIRE(slay_attn_plan_get_i64(plans.cpu, SLAY_ATTR_STABILIZER_MODE, &mode) == SLAY_STATUS_SUCCESS);
    REQUIRE(slay_attn_plan_get_f64(plans.cpu, SLAY_ATTR_STABILIZER, &delta) == SLAY_STATUS_SUCCESS);

    // Both sides at the default stabilizer.
    Outputs fwd, want, got;
    Outcome o;
    o.cpu = run_forward(Side::Cpu, plans, c, in, &fwd);
    REQUIRE_MESSAGE(o.cpu.ok(), o.cpu.message);
    o.device = run_backward(Side::Device, plans, c, in, fwd.out, &got);
    if (o.device.ok()) o.cpu = run_backward(Side::Cpu, plans, c, in, fwd.out, &want);

    // The scales from the conditioned case on the CPU, run in fp32 on the
    // same values (they are exact there) so that o_1 is read to ~1e-7.
    Case f1 = one;
    f1.dtype = SLAY_DTYPE_FLOAT32;
    Plans plans1;
    const Made m1 = make_plans(f1, &plans1);
    REQUIRE_MESSAGE(m1.ok(), m1.message);
    Outputs fwd1, bwd1;
    REQUIRE(run_forward(Side::Cpu, plans1, f1, in, &fwd1).ok());
    REQUIRE(run_backward(Side::Cpu, plans1, f1, in, fwd1.out, &bwd1).ok());
    const int64_t D = c.head_dim, Dv = c.dv();
    double sq = 0, sk = 0;  // squared natural scales, summed over heads
    for (int64_t bh = 0; bh < c.batch * c.heads; ++bh) {
        double ov = 0, vv = 0;
        for (int64_t e = 0; e < Dv; ++e) {
            const double ve = in.v[static_cast<size_t>(bh * Dv + e)];
            ov += fwd1.out[static_cast<size_t>(bh * Dv + e)] * ve;
            vv += ve * ve;
        }
        const double r = ov / vv, Z = r / (1.0 - r);  // r = Z/(Z+1)
        const double den = mode == SLAY_STABILIZER_ADD ? Z + delta : std::max(Z, delta);
        const double gain = (Z + 1) * (Z + 1) / std::fabs(den);
        sq += std::pow(norm(bwd1.dq.data() + bh * D, D) * gain, 2);
        sk += std::pow(norm(bwd1.dk.data() + bh * D, D) * gain, 2);
    }
    const double tol = pass_tolerance(c, true, &note);
    if (o.ran()) {
        auto scaled = [](const std::vector<double>& g, const std::vector<double>& w, double scale) {
            std::vector<double> diff(w.size());
            for (size_t i = 0; i < w.size(); ++i) diff[i] = g[i] - w[i];
            const double n = rel_l2(diff, std::vector<double>(w.size(), 0.0));  // inf if g had NaN
            if (scale == 0) return n == 0 ? 0.0 : INFINITY;  // no term to cancel: both must be exactly 0
            return n / std::sqrt(scale);
        };
        o.err.dq = scaled(got.dq, want.dq, sq);
        o.err.dk = scaled(got.dk, want.dk, sk);
        o.err.dv = rel_l2(got.dv, want.dv);
    }
    char buf[200];
    std::snprintf(buf, sizeof buf,
                  "T = 1, default stabilizer: dq, dk are |err| / natural scale %.1e, %.1e (exact gradient ~0, "
                  "see check_single_token), dv relative",
                  std::sqrt(sq), std::sqrt(sk));
    CHECK_MESSAGE(report(c, "bwd", o, tol, note.empty() ? buf : note + "; " + buf), o.why(), " ", o.err.str());
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
// max(tol, 10 * floor), tol that of one call of the whole case
// (pass_tolerance: for a signed feature map on random q, k it already holds
// the fp32 rounding each device call makes, amplified by the conditioning).
double check_pieces(const Case& whole, int64_t split, Side side, double floor = 0.0) {
    const bool checked = side == Side::Device;  // the CPU run only measures the floor
    std::string fnote, bnote;
    const double flimit = checked ? std::max(pass_tolerance(whole, false, &fnote), 10.0 * floor) : INFINITY;
    const double blimit = checked ? std::max(pass_tolerance(whole, true, &bnote), 10.0 * floor) : INFINITY;
    CAPTURE(whole.label());
    CAPTURE(split);
    Plans plans;
    const Made m = make_plans(whole, &plans);
    REQUIRE_MESSAGE(m.ok(), m.message);
    const int64_t BH = whole.batch * whole.heads, T = whole.seq_len, D = whole.head_dim, Dv = whole.dv();
    const Inputs in = make_case_inputs(whole, plans);
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
    const bool fwd_ok = report(shown, checked ? "fwd-pieces" : "fwd-pieces(cpu floor)", fo, flimit, fnote);
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
    const bool bwd_ok = report(shown, checked ? "bwd-pieces" : "bwd-pieces(cpu floor)", bo, blimit, bnote);
    if (checked) CHECK_MESSAGE(bwd_ok, bo.why());
    if (!checked) {
        const bool both_ran = fo.device.ok() && bo.device.ok();
        REQUIRE_MESSAGE(both_ran, fo.why(), bo.why());
    }
    return std::max(fo.err.max(), bo.err.max());
}

}  // namespace

TEST_CASE("linear: every variant x pass x mode x dtype at T = 63, 1000") {
    for (slay_attn_variant_t v : kLinear)
        for (int64_t T : {63, 1000})
            for (bool causal : {true, false})
                for (slay_dtype_t dt : {SLAY_DTYPE_FLOAT32, SLAY_DTYPE_BFLOAT16}) {
                    // The signed maps' random-input cases at T = 63 in fp32
                    // stay random (derived-floor tolerance) whatever the floor.
                    const bool keep_random = T == 63 && dt == SLAY_DTYPE_FLOAT32;
                    check_both(base_case(v, T, causal, dt), !keep_random);
                }
}

TEST_CASE("linear: every variant x mode x dtype at T = 1 (default and add delta = 1 stabilizers)") {
    for (slay_attn_variant_t v : kLinear)
        for (bool causal : {true, false})
            for (slay_dtype_t dt : {SLAY_DTYPE_FLOAT32, SLAY_DTYPE_BFLOAT16}) check_single_token(v, causal, dt);
}

TEST_CASE("linear: signed feature maps on clustered q, k meet the plain tolerance") {
    // The well-conditioned counterpart of their random-input cases: every
    // q_i, k_j near one direction mu per head, so each kernel estimate is
    // near phi(mu).phi(mu) > 0 and Z_i grows like i (like T bidirectional).
    for (slay_attn_variant_t v : {SLAY_ATTN_SLAY_RANDOM_MACLAURIN, SLAY_ATTN_RFF, SLAY_ATTN_SLAY_TENSORSKETCH})
        for (int64_t T : {63, 1000})
            for (bool causal : {true, false})
                for (slay_dtype_t dt : {SLAY_DTYPE_FLOAT32, SLAY_DTYPE_BFLOAT16}) {
                    Case c = clustered(base_case(v, T, causal, dt));
                    if (T == 63) with_states(c);
                    // Their CPU floors, shown (not applied): the evidence
                    // that clustering conditions them.
                    std::printf("| %s: clustered q/k, cpu floors fwd %.1e bwd %.1e (not applied)\n",
                                c.label().c_str(), cpu_sensitivity(c, false), cpu_sensitivity(c, true));
                    check_both(c);
                }
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

TEST_CASE("linear: Kronecker tensor-core maps, bf16, the sequence split into segments (few heads, long T), states") {
    // B*H*slices CTAs far below one wave and T = 4097 (65 chunks): the
    // tensor-core kernels split the sequence into 8 segments (segment sums,
    // then each segment from the sums before / after it), forward and
    // backward, with initial/final states and their gradients.
    for (slay_attn_variant_t v : kKronTensorCore) {
        for (bool causal : {true, false})
            for (int64_t D : {16, 64}) {
                Case c = base_case(v, 4097, causal, SLAY_DTYPE_BFLOAT16);
                c.batch = 1;
                c.head_dim = D;
                c.value_dim = D == 16 ? 24 : 64;  // 2 slices (a partial one) or 5
                if (D == 64) c.attrs = size_attrs(c.variant, 2, 16, 32);
                with_states(c);
                check_both(c);
            }
    }
}

TEST_CASE("linear: three-plane Kronecker shapes (random Maclaurin, TensorSketch; bf16, segments, states)") {
    // Every (p per warp, c16) shape instantiated for three planes
    // (linear_mma_launch.cuh: with_kron_instance), as (R, M, P): (2, 4, 8)
    // -> (1, 1); (2, 16, 8) -> (1, 2); the paper's (2, 8, 16) -> (2, 1);
    // (2, 16, 16) -> (2, 2), whose state copy exceeds 48 KiB: the backward's
    // factor gradients from the state's owners (kron_gradients_from_copy).
    // One head, T = 1100: the sequence split into segments.
    struct Shape {
        int64_t R, M, P;
    };
    for (slay_attn_variant_t v : {SLAY_ATTN_SLAY_RANDOM_MACLAURIN, SLAY_ATTN_SLAY_TENSORSKETCH})
        for (Shape sh : {Shape{2, 4, 8}, Shape{2, 16, 8}, Shape{2, 8, 16}, Shape{2, 16, 16}})
            for (bool causal : {true, false}) {
                Case c = base_case(v, 1100, causal, SLAY_DTYPE_BFLOAT16);
                c.batch = 1;
                c.head_dim = 32;
                c.value_dim = 32;
                c.attrs = size_attrs(v, sh.R, sh.M, sh.P);
                with_states(c);
                check_both(c);
            }
}

TEST_CASE("linear: the dense tensor-core engine at its limits (F = 128, 256; Dv = 32, 64; segments, states)") {
    // The positive maps (and slay_poly2 with its constant feature) with
    // bf16/fp16 io and F <= 256 run on the dense
    // engine (linear_dense_mma_kernel.cuh): up to 128 and 256 features (one
    // and two feature tiles per warp), Dv + 1 up to 48 and 80 (its two value
    // widths), and B*H = 2 at T = 4097, so the sequence is split into 8
    // segments (segment sums, then each segment from the sums before or
    // after it), with initial/final states and their gradients.
    struct Shape {
        slay_attn_variant_t v;
        int64_t R, M, P, D, Dv;
    };
    const Shape shapes[] = {
        // slay_anchor takes the Kronecker kernels when P % 8 == 0: these
        // P leave it to the dense engine.
        {SLAY_ATTN_SLAY_ANCHOR, 2, 8, 12, 32, 32},     // F = 192
        {SLAY_ATTN_SLAY_ANCHOR, 2, 16, 4, 64, 64},     // F = 128, Dv = 64
        {SLAY_ATTN_SLAY_LAPLACE, 2, 128, 1, 32, 47},   // F = 256, Dv + 1 = 48
        {SLAY_ATTN_SLAY_HADAMARD, 2, 64, 1, 64, 79},   // F = 128, Dv + 1 = 80
        {SLAY_ATTN_PERFORMER, 1, 256, 1, 32, 32},      // F = 256
        {SLAY_ATTN_COSFORMER, 1, 1, 1, 128, 64},       // F = 2D = 256
        {SLAY_ATTN_LINEAR, 1, 1, 1, 128, 16},          // F = D = 128
        // slay_poly2 with its constant feature (gamma = 0.5: D(D+1)/2 exceeds
        // the budget M): d = 22, F = 254; d = 15, F = 121 at D = 64.
        {SLAY_ATTN_SLAY_POLY2, 1, 256, 1, 32, 32},
        {SLAY_ATTN_SLAY_POLY2, 1, 128, 1, 64, 64},
    };
    for (const Shape& s : shapes)
        for (bool causal : {true, false})
            for (slay_dtype_t dt : {SLAY_DTYPE_BFLOAT16, SLAY_DTYPE_FLOAT16}) {
                Case c = base_case(s.v, 4097, causal, dt);
                c.batch = 1;
                c.head_dim = s.D;
                c.value_dim = s.Dv;
                c.attrs = size_attrs(s.v, s.R, s.M, s.P);
                if (s.v == SLAY_ATTN_COSFORMER) c.position_offset = 11;
                with_states(c);
                check_both(c);
            }
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

// 32 (b, h) pairs at F = 1024, Dv = 64, bf16, causal: the calls the Hopper
// Kronecker kernels serve in a build with meson's kron_wgmma option
// (src/cuda/kron_wgmma.hpp), the mma.sync engine's otherwise; T 64 (one
// chunk of theirs), 65, 300 (partial chunks, both ring stages reused).
TEST_CASE("linear: slay_anchor at F = 1024 on 32 heads, bf16, causal (the Hopper Kronecker kernels' calls)") {
    // head dim 64: the map fused into the kernels (q and k in, dq and dk out);
    // 32: the kernels on the map kernel's factor rows (kron_wgmma.hpp)
    for (int64_t D : {64, 32})
        for (int64_t T : {64, 65, 300}) {
            Case c = base_case(SLAY_ATTN_SLAY_ANCHOR, T, true, SLAY_DTYPE_BFLOAT16);
            c.batch = 2;
            c.heads = 16;
            c.head_dim = D;
            c.value_dim = 64;
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
        double ff, fb;
        c = conditioned(c, true, &ff, &fb);
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

// Packed sequences of mixed lengths (an empty one, one token, partial and
// whole chunks) with grouped-query heads (H = 4, H_kv = 2), states for
// each sequence, int32 and int64 offsets; the longest is 130 tokens.
Case packed_case(slay_attn_variant_t v, bool causal, slay_dtype_t dt) {
    Case c = base_case(v, 130, causal, dt);
    c.heads = 4;
    c.kv_heads = 2;
    c.seq_lengths = {70, 0, 1, 130, 64};
    c.offsets_int32 = v % 2 == 0;
    with_states(c);
    return c;
}

TEST_CASE("linear: packed variable-length batches with grouped-query heads and states") {
    for (slay_attn_variant_t v : kLinear)
        for (bool causal : {true, false})
            for (slay_dtype_t dt : {SLAY_DTYPE_FLOAT32, SLAY_DTYPE_BFLOAT16}) check_both(packed_case(v, causal, dt));
    // The Kronecker tensor-core kernels (bf16, paper R/M/P, D = 64):
    // packed (no sequence split) and dense multi-query (H_kv = 1) with the split.
    for (slay_attn_variant_t v : kKronTensorCore) {
        for (bool causal : {true, false}) {
            Case c = packed_case(v, causal, SLAY_DTYPE_BFLOAT16);
            c.head_dim = 64;
            c.attrs = size_attrs(c.variant, 2, 16, 32);
            c.seq_lengths = {1000, 37, 0, 300};
            check_both(c);
            Case mqa = base_case(v, 4097, causal, SLAY_DTYPE_BFLOAT16);
            mqa.batch = 1;
            mqa.heads = 2;
            mqa.kv_heads = 1;
            with_states(mqa);
            check_both(mqa);
        }
    }
}

// slay_poly2 at a budget of 1024 features and D = 64 (gamma = 0.5, frame
// d = 44, F = 991): the Kronecker kernels' pairs triangle
// (linear_forward_mma_kernel.cuh: KronBlock's kTri, Poly2Pairs).
Case with_poly2_pairs(Case c) {
    c.head_dim = 64;
    c.attrs = {attr_i64(SLAY_ATTR_NUM_FEATURES, 1024)};
    return c;
}
Case poly2_pairs_case(int64_t T, bool causal, slay_dtype_t dt) {
    Case c = with_poly2_pairs(base_case(SLAY_ATTN_SLAY_POLY2, T, causal, dt));
    c.value_dim = 64;  // 5 value slices
    return c;
}

TEST_CASE("linear: slay_poly2 on the Kronecker kernels' pairs triangle (F = 991; segments, states, packed)") {
    // One sequence of 4097 tokens and 2 heads: the sequence split into
    // segments, states in and out and their gradients, bf16 and fp16.
    for (bool causal : {true, false})
        for (slay_dtype_t dt : {SLAY_DTYPE_BFLOAT16, SLAY_DTYPE_FLOAT16}) {
            Case c = poly2_pairs_case(4097, causal, dt);
            c.batch = 1;
            with_states(c);
            check_both(c);
        }
    // Packed sequences with grouped heads (no split), and several heads.
    for (bool causal : {true, false}) {
        Case c = with_poly2_pairs(packed_case(SLAY_ATTN_SLAY_POLY2, causal, SLAY_DTYPE_BFLOAT16));
        c.seq_lengths = {1000, 37, 0, 300};
        check_both(c);
        check_both(poly2_pairs_case(1000, causal, SLAY_DTYPE_BFLOAT16));
    }
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
    // The Kronecker tensor-core kernels with the sequence split (2 segments of 9 chunks).
    for (slay_attn_variant_t v : kKronTensorCore) {
        for (bool causal : {true, false}) {
            Case c = base_case(v, 1100, causal, SLAY_DTYPE_BFLOAT16);
            c.batch = 1;
            c.value_dim = 8;
            with_states(c);
            check_both(c);
        }
    }
    // slay_poly2's pairs triangle (F = 991) with the split and states.
    for (bool causal : {true, false}) {
        Case c = poly2_pairs_case(1100, causal, SLAY_DTYPE_BFLOAT16);
        c.batch = 1;
        c.value_dim = 8;
        with_states(c);
        check_both(c);
    }
    // The fp32 scans with the sequence split (one head, T 1100: 2 segments;
    // segment sums, the state and the carry across them, states in and out).
    for (slay_dtype_t dt : {SLAY_DTYPE_FLOAT32, SLAY_DTYPE_BFLOAT16})
        for (bool causal : {true, false}) {
            Case c = clustered(base_case(SLAY_ATTN_RFF, 1100, causal, dt));  // conditioned: see clustered()
            c.batch = 1;
            c.heads = 1;
            c.value_dim = 8;
            with_states(c);
            check_both(c);
        }
    // Packed sequences with grouped heads: SIMT (fp32) and tensor-core (bf16) paths.
    for (slay_dtype_t dt : {SLAY_DTYPE_FLOAT32, SLAY_DTYPE_BFLOAT16}) {
        Case c = packed_case(SLAY_ATTN_SLAY_ANCHOR, true, dt);
        c.seq_lengths = {70, 0, 5};
        check_both(c);
    }
}

int main(int argc, char** argv) { return slay_gpu::doctest_main(argc, argv); }
