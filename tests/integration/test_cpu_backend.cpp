// test_cpu_backend.cpp -- the CPU backend through the public ABI against the
// fp64 Reference called directly, for every variant, causal and
// bidirectional, fp32/bf16/fp16: q, k (B, H, T, D) and v (B, H, T, Dv) live
// in (B, T, H, D) memory (strided views), outputs are poisoned with NaN
// first so an unwritten element fails, parameters come from
// slay_attn_features_sample, and the linearized family runs with initial and
// final states. Also: decoding token by token with the state aliased in
// place equals one call, and T = 0 is a valid empty call; and the exact
// family's backward given the forward's row statistics (ABI 5) equals the
// one without them, reads them and only them (shifted statistics scale dv
// exactly), and leaves them unchanged.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "../reference/support.hpp"
#include "core/dtype.hpp"
#include "slay/slay.h"

namespace {

using slay_test::all_variants;
using slay_test::gaussian;

constexpr int64_t kB = 2, kH = 2, kT = 7, kD = 8, kDv = 6;

#define REQUIRE_OK(call) REQUIRE_MESSAGE((call) == SLAY_STATUS_SUCCESS, slay_last_error_message())

// A host buffer of `n` elements of one dtype, with its typed load/store.
struct Buffer {
    slay_dtype_t dtype;
    std::vector<unsigned char> bytes;
    Buffer(slay_dtype_t t, int64_t n) : dtype(t), bytes(size_t(n) * slay::dtype_size(t)) {}
    void* data() { return bytes.data(); }
    int64_t size() const { return int64_t(bytes.size() / slay::dtype_size(dtype)); }
    double get(int64_t i) const { return slay::load_element(bytes.data(), dtype, i); }
    void set(int64_t i, double x) { slay::store_element(bytes.data(), dtype, i, x); }
    void poison() {  // NaN in every dtype; an empty vector's data() may be NULL, which memset must not get
        if (!bytes.empty()) std::memset(bytes.data(), 0xff, bytes.size());
    }
    std::vector<double> values() const {
        std::vector<double> v(static_cast<size_t>(size()));
        for (int64_t i = 0; i < size(); ++i) v[size_t(i)] = get(i);
        return v;
    }
};

// (B, H, T, C) logical view of a buffer; token_major puts it in (B, T, H, C) memory.
slay_tensor_t view4(Buffer& buf, int64_t B, int64_t H, int64_t T, int64_t C, bool token_major) {
    slay_tensor_t t;
    std::memset(&t, 0, sizeof t);
    t.data = buf.data();
    t.dtype = buf.dtype;
    t.rank = 4;
    const int64_t shape[4] = {B, H, T, C};
    const int64_t strides_bhtc[4] = {H * T * C, T * C, C, 1};
    const int64_t strides_bthc[4] = {T * H * C, C, H * C, 1};
    for (int i = 0; i < 4; ++i) {
        t.shape[i] = shape[i];
        t.strides[i] = token_major ? strides_bthc[i] : strides_bhtc[i];
    }
    return t;
}

slay_tensor_t view1(Buffer& buf) {
    slay_tensor_t t;
    std::memset(&t, 0, sizeof t);
    t.data = buf.data();
    t.dtype = buf.dtype;
    t.rank = 1;
    t.shape[0] = buf.size();
    t.strides[0] = 1;
    return t;
}

// Rows of head (b, h) of a logical (B, H, T, C) tensor as fp64 (T, C).
std::vector<double> head_rows(const slay_tensor_t& t, int64_t b, int64_t h) {
    const int64_t T = t.shape[2], C = t.shape[3];
    std::vector<double> out(static_cast<size_t>(T * C));
    for (int64_t i = 0; i < T; ++i)
        for (int64_t j = 0; j < C; ++j)
            out[size_t(i * C + j)] = slay::load_element(
                t.data, t.dtype, b * t.strides[0] + h * t.strides[1] + i * t.strides[2] + j * t.strides[3]);
    return out;
}

void append(std::vector<double>& to, const std::vector<double>& x) { to.insert(to.end(), x.begin(), x.end()); }

// Relative L2 error of got against the fp64 want. Where want rounds to
// +-inf in the I/O dtype (signed-feature variants divide by a clamped
// denominator, SPEC F.2, and fp16 tops out at 65504) got must be that same
// inf; every other element must be finite (NaN never passes, poison included).
double rel_l2(const std::vector<double>& got, const std::vector<double>& want,
              slay_dtype_t dtype = SLAY_DTYPE_FLOAT32) {
    double num = 0, den = 0;
    for (size_t i = 0; i < want.size(); ++i) {
        double rounded = 0;
        slay::store_element(&rounded, dtype, 0, want[i]);
        rounded = slay::load_element(&rounded, dtype, 0);
        if (std::isinf(rounded)) {
            if (got[i] != rounded) return INFINITY;
            continue;
        }
        if (!std::isfinite(got[i])) return INFINITY;
        num += (got[i] - want[i]) * (got[i] - want[i]);
        den += want[i] * want[i];
    }
    return std::sqrt(num / den);
}

double tolerance(slay_dtype_t t) {
    // The backend computes in fp64 from the same rounded inputs, so the only
    // error left is the rounding of its outputs to the I/O dtype.
    switch (t) {
        case SLAY_DTYPE_FLOAT32: return 1e-6;
        case SLAY_DTYPE_FLOAT16: return 1e-3;
        default: return 5e-3;
    }
}

// A plan of `variant` at the test size, with everything the variant reads.
struct TestPlan {
    slay_handle_t handle = nullptr;
    slay_attn_plan_t plan = nullptr;
    slay::AttnConfig cfg;
    int64_t features = 0;
    TestPlan(slay_attn_variant_t variant, bool causal, slay_dtype_t dtype, int64_t cosformer_length) {
        REQUIRE_OK(slay_handle_create(&handle, SLAY_BACKEND_CPU, 0));
        slay_attn_desc_t desc = nullptr;
        REQUIRE_OK(slay_attn_desc_create(&desc, variant));
        auto set = [&](slay_attr_t a, int64_t x) {
            if (slay::attribute_applies(variant, a)) REQUIRE_OK(slay_attn_desc_set_i64(desc, a, x));
        };
        set(SLAY_ATTR_NUM_HEADS, kH);
        set(SLAY_ATTR_HEAD_DIM, kD);
        set(SLAY_ATTR_VALUE_DIM, kDv);
        set(SLAY_ATTR_CAUSAL, causal);
        set(SLAY_ATTR_IO_DTYPE, dtype);
        set(SLAY_ATTR_NUM_QUAD_NODES, 2);
        set(SLAY_ATTR_NUM_FEATURES, 4);
        set(SLAY_ATTR_POLY_DIM, 4);
        set(SLAY_ATTR_COSFORMER_LENGTH, cosformer_length);
        if (variant == SLAY_ATTN_YAT_SPHERICAL) REQUIRE_OK(slay_attn_desc_set_f64(desc, SLAY_ATTR_EPSILON, 1e-2));
        REQUIRE_OK(slay_attn_plan_create(&plan, handle, desc));
        REQUIRE_OK(slay_attn_desc_destroy(desc));
        REQUIRE_OK(slay_attn_plan_get_feature_dim(plan, &features));
        cfg = slay_test::small_config(variant, causal, 2, 4, 4, kD, kDv, kH);
        cfg.io_dtype = dtype;
        cfg.cosformer_length = cosformer_length;
    }
    ~TestPlan() {
        slay_attn_plan_destroy(plan);
        slay_handle_destroy(handle);
    }
    std::vector<unsigned char> workspace(slay_pass_t pass, int64_t T) const {
        size_t bytes = 0;
        REQUIRE_OK(slay_attn_plan_get_workspace_size(plan, pass, kB, T, &bytes));
        return std::vector<unsigned char>(bytes + 16);
    }
};

void* aligned16(std::vector<unsigned char>& ws) {
    uintptr_t p = reinterpret_cast<uintptr_t>(ws.data());
    return reinterpret_cast<void*>((p + 15) / 16 * 16);
}

// Args of either pass with struct_size, q, k, v, out and params set and every
// other field zero (no states, position 0): each test adds what it exercises.
template <typename Args>
Args attn_args(const slay_tensor_t* q, const slay_tensor_t* k, const slay_tensor_t* v, const slay_tensor_t* out,
               const slay_tensor_t* params) {
    Args a;
    std::memset(&a, 0, sizeof a);
    a.struct_size = sizeof a;
    a.q = q;
    a.k = k;
    a.v = v;
    a.out = out;
    a.params = params;
    return a;
}

// One call of a pass over T tokens, in a fresh workspace handed over 16-byte
// aligned (with 16 bytes of slack kept out of the size given).
void run_fwd(const TestPlan& tp, const slay_attn_fwd_args_t& a, int64_t T) {
    std::vector<unsigned char> ws = tp.workspace(SLAY_PASS_FORWARD, T);
    REQUIRE_OK(slay_attn_fwd(tp.plan, &a, aligned16(ws), ws.size() - 16, nullptr));
}
void run_bwd(const TestPlan& tp, const slay_attn_bwd_args_t& a, int64_t T) {
    std::vector<unsigned char> ws = tp.workspace(SLAY_PASS_BACKWARD, T);
    REQUIRE_OK(slay_attn_bwd(tp.plan, &a, aligned16(ws), ws.size() - 16, nullptr));
}

Buffer sampled_params(const TestPlan& tp) {
    int64_t count = 0;
    REQUIRE_OK(slay_attn_plan_get_param_count(tp.plan, &count));
    Buffer params(SLAY_DTYPE_FLOAT32, count);
    if (count == 0) return params;
    slay_tensor_t view = view1(params);
    std::vector<unsigned char> ws = tp.workspace(SLAY_PASS_SAMPLE, 0);
    REQUIRE_OK(slay_attn_features_sample(tp.plan, 1234, 7, &view, aligned16(ws), ws.size() - 16, nullptr));
    return params;
}

Buffer random_buffer(slay_dtype_t t, int64_t n, std::mt19937_64& rng, double sd = 1.0) {
    Buffer b(t, n);
    const std::vector<double> x = gaussian(rng, n, sd);
    for (int64_t i = 0; i < n; ++i) b.set(i, x[size_t(i)]);
    return b;
}

void check_variant(slay_attn_variant_t variant, bool causal, slay_dtype_t dtype) {
    const bool linearized = !slay::is_exact_variant(variant);
    const bool cosformer = variant == SLAY_ATTN_COSFORMER;
    const int64_t position_offset = cosformer ? 3 : 0;
    TestPlan tp(variant, causal, dtype, cosformer ? kT + 5 : 0);
    const int64_t F = tp.features, S = F * (kDv + 1);
    std::mt19937_64 rng(99 + uint64_t(variant) * 31 + causal);

    Buffer params = sampled_params(tp);
    Buffer q = random_buffer(dtype, kB * kT * kH * kD, rng), k = random_buffer(dtype, kB * kT * kH * kD, rng);
    Buffer v = random_buffer(dtype, kB * kT * kH * kDv, rng), dout = random_buffer(dtype, kB * kT * kH * kDv, rng);
    Buffer state_in = random_buffer(SLAY_DTYPE_FLOAT32, kB * kH * S, rng, 0.1);
    Buffer dstate_out = random_buffer(SLAY_DTYPE_FLOAT32, kB * kH * S, rng, 0.1);
    // Positive z column keeps ADD/CLAMP denominators away from their kinks.
    for (int64_t i = 0; linearized && i < kB * kH * F; ++i) state_in.set(i * (kDv + 1) + kDv, 0.5);

    Buffer out(dtype, kB * kH * kT * kDv), dq(dtype, kB * kH * kT * kD), dk(dtype, kB * kH * kT * kD),
        dv(dtype, kB * kH * kT * kDv), state_out(SLAY_DTYPE_FLOAT32, kB * kH * S),
        dstate_in(SLAY_DTYPE_FLOAT32, kB * kH * S);
    for (Buffer* b : {&out, &dq, &dk, &dv, &state_out, &dstate_in}) b->poison();

    slay_tensor_t tq = view4(q, kB, kH, kT, kD, true), tk = view4(k, kB, kH, kT, kD, true);
    slay_tensor_t tv = view4(v, kB, kH, kT, kDv, true), tdout = view4(dout, kB, kH, kT, kDv, true);
    slay_tensor_t tout = view4(out, kB, kH, kT, kDv, false), tdq = view4(dq, kB, kH, kT, kD, false);
    slay_tensor_t tdk = view4(dk, kB, kH, kT, kD, false), tdv = view4(dv, kB, kH, kT, kDv, false);
    slay_tensor_t tsin = view4(state_in, kB, kH, F, kDv + 1, false), tsout = view4(state_out, kB, kH, F, kDv + 1, false);
    slay_tensor_t tdsout = view4(dstate_out, kB, kH, F, kDv + 1, false), tdsin = view4(dstate_in, kB, kH, F, kDv + 1, false);
    slay_tensor_t tparams = view1(params);

    auto fa = attn_args<slay_attn_fwd_args_t>(&tq, &tk, &tv, &tout, params.size() ? &tparams : nullptr);
    fa.initial_state = linearized ? &tsin : nullptr;
    fa.final_state = linearized ? &tsout : nullptr;
    fa.position_offset = position_offset;
    run_fwd(tp, fa, kT);

    auto ba = attn_args<slay_attn_bwd_args_t>(&tq, &tk, &tv, &tout, fa.params);
    ba.dout = &tdout;
    ba.dq = &tdq;
    ba.dk = &tdk;
    ba.dv = &tdv;
    ba.initial_state = fa.initial_state;
    ba.dfinal_state = linearized ? &tdsout : nullptr;
    ba.dinitial_state = linearized ? &tdsin : nullptr;
    ba.position_offset = position_offset;
    run_bwd(tp, ba, kT);

    // The oracle, head by head, on the very same (rounded) inputs.
    const std::vector<double> p64 = params.values();
    const slay::cpu::Reference ref(tp.cfg, p64.empty() ? nullptr : p64.data());
    std::vector<double> want_out, want_state, want_dq, want_dk, want_dv, want_dstate;
    std::vector<double> got_out, got_state, got_dq, got_dk, got_dv, got_dstate;
    for (int64_t b = 0; b < kB; ++b)
        for (int64_t h = 0; h < kH; ++h) {
            const std::vector<double> hq = head_rows(tq, b, h), hk = head_rows(tk, b, h), hv = head_rows(tv, b, h);
            const std::vector<double> hs = head_rows(tsin, b, h), hg = head_rows(tdout, b, h);
            const std::vector<double> hds = head_rows(tdsout, b, h);
            slay::cpu::HeadSlice slice{kT, h, position_offset, hq.data(), hk.data(), hv.data()};
            std::vector<double> o(static_cast<size_t>(kT * kDv)), st(static_cast<size_t>(S)), gq(static_cast<size_t>(kT * kD)), gk(static_cast<size_t>(kT * kD)),
                gv(static_cast<size_t>(kT * kDv)), gs(static_cast<size_t>(S));
            ref.forward(slice, linearized ? hs.data() : nullptr, o.data(), linearized ? st.data() : nullptr);
            ref.backward(slice, linearized ? hs.data() : nullptr, hg.data(), linearized ? hds.data() : nullptr,
                         gq.data(), gk.data(), gv.data(), linearized ? gs.data() : nullptr);
            append(want_out, o);
            append(want_dq, gq);
            append(want_dk, gk);
            append(want_dv, gv);
            append(got_out, head_rows(tout, b, h));
            append(got_dq, head_rows(tdq, b, h));
            append(got_dk, head_rows(tdk, b, h));
            append(got_dv, head_rows(tdv, b, h));
            if (linearized) {
                append(want_state, st);
                append(want_dstate, gs);
                append(got_state, head_rows(tsout, b, h));
                append(got_dstate, head_rows(tdsin, b, h));
            }
        }
    const double tol = tolerance(dtype);
    CHECK(rel_l2(got_out, want_out, dtype) <= tol);
    CHECK(rel_l2(got_dq, want_dq, dtype) <= tol);
    CHECK(rel_l2(got_dk, want_dk, dtype) <= tol);
    CHECK(rel_l2(got_dv, want_dv, dtype) <= tol);
    if (linearized) {
        CHECK(rel_l2(got_state, want_state) <= 1e-6);  // states are fp32 whatever the I/O dtype
        CHECK(rel_l2(got_dstate, want_dstate) <= 1e-6);
    }
}

}  // namespace

TEST_CASE("CPU backend through the ABI equals the fp64 reference: every variant, mode and dtype") {
    for (slay_attn_variant_t variant : all_variants())
        for (bool causal : {true, false})
            for (slay_dtype_t dtype : {SLAY_DTYPE_FLOAT32, SLAY_DTYPE_BFLOAT16, SLAY_DTYPE_FLOAT16}) {
                const std::string name = slay_test::variant_name(variant), dtype_name = slay::dtype_name(dtype);
                CAPTURE(name);
                CAPTURE(causal);
                CAPTURE(dtype_name);
                check_variant(variant, causal, dtype);
            }
}

namespace {

// (B, H, T) fp32 row statistics with a gap of kStatsGap elements after each
// head's T rows (strided, not contiguous).
constexpr int64_t kStatsGap = 3;
slay_tensor_t stats_view(Buffer& buf, int64_t T) {
    slay_tensor_t t;
    std::memset(&t, 0, sizeof t);
    t.data = buf.data();
    t.dtype = SLAY_DTYPE_FLOAT32;
    t.rank = 3;
    const int64_t shape[3] = {kB, kH, T}, strides[3] = {kH * (T + kStatsGap), T + kStatsGap, 1};
    for (int i = 0; i < 3; ++i) {
        t.shape[i] = shape[i];
        t.strides[i] = strides[i];
    }
    return t;
}

// The backward given the forward's row statistics (slay_attn_bwd_args_t.row_stats):
//   0. in fp64 (the Reference called directly with its own fp64
//      statistics) it equals the backward without them to rounding (1e-12):
//      the given statistic enters the very code that recomputes it;
//   1. through the ABI it equals the backward without them up to the fp32
//      rounding of the statistics (a relative change of about |l_i| 6e-8 in
//      each row's weights, which the cancellation in g_i.v_j - Delta_i
//      amplifies in dq, dk: measured up to 1.2e-6 for yat): within 1e-5
//      (fp32 io) or the io dtype's tolerance (bf16);
//   2. uses them: statistics that halve every row's weights (softmax:
//      l_i + ln 2; yat_spherical under ADD: 2 Z_i + delta, so den doubles)
//      halve dv = sum_i A_ij g_i / den_i exactly, up to the fp32 rounding of
//      the shifted statistics (a relative 1.2e-7 |l_i + ln 2| in a row's
//      weight) and of dv itself;
//   3. leaves them unchanged (they are read).
void check_backward_given_stats(slay_attn_variant_t variant, bool causal, slay_dtype_t dtype) {
    TestPlan tp(variant, causal, dtype, 0);
    std::mt19937_64 rng(7 + uint64_t(variant) * 31 + causal);
    Buffer q = random_buffer(dtype, kB * kT * kH * kD, rng), k = random_buffer(dtype, kB * kT * kH * kD, rng);
    Buffer v = random_buffer(dtype, kB * kT * kH * kDv, rng), dout = random_buffer(dtype, kB * kT * kH * kDv, rng);
    Buffer out(dtype, kB * kH * kT * kDv), stats(SLAY_DTYPE_FLOAT32, kB * kH * (kT + kStatsGap));
    out.poison();
    stats.poison();
    slay_tensor_t tq = view4(q, kB, kH, kT, kD, true), tk = view4(k, kB, kH, kT, kD, true);
    slay_tensor_t tv = view4(v, kB, kH, kT, kDv, true), tdout = view4(dout, kB, kH, kT, kDv, true);
    slay_tensor_t tout = view4(out, kB, kH, kT, kDv, false), tstats = stats_view(stats, kT);
    auto fa = attn_args<slay_attn_fwd_args_t>(&tq, &tk, &tv, &tout, nullptr);
    fa.row_stats = &tstats;
    run_fwd(tp, fa, kT);

    const slay::cpu::Reference ref(tp.cfg, nullptr);
    for (int64_t b = 0; b < kB; ++b)
        for (int64_t h = 0; h < kH; ++h) {
            const std::vector<double> hq = head_rows(tq, b, h), hk = head_rows(tk, b, h), hv = head_rows(tv, b, h);
            const std::vector<double> hg = head_rows(tdout, b, h);
            const slay::cpu::HeadSlice slice{kT, h, 0, hq.data(), hk.data(), hv.data()};
            std::vector<double> o(static_cast<size_t>(kT * kDv)), l(static_cast<size_t>(kT));
            ref.forward(slice, nullptr, o.data(), nullptr, l.data());
            // dq, dk (T, D) and dv (T, Dv), recomputing the statistics (0) or given them (1).
            std::vector<double> dq0(static_cast<size_t>(kT * kD)), dk0(dq0), dv0(o), dq1(dq0), dk1(dq0), dv1(o);
            ref.backward(slice, nullptr, hg.data(), nullptr, dq0.data(), dk0.data(), dv0.data(), nullptr);
            ref.backward(slice, nullptr, hg.data(), nullptr, dq1.data(), dk1.data(), dv1.data(), nullptr, l.data());
            CHECK(slay_test::rel_error(dq1, dq0) <= 1e-12);
            CHECK(slay_test::rel_error(dk1, dk0) <= 1e-12);
            CHECK(slay_test::rel_error(dv1, dv0) <= 1e-12);
        }

    struct Grads {
        std::vector<double> dq, dk, dv;
    };
    // One backward, outputs poisoned first, given `given` (or no) statistics.
    auto backward = [&](Buffer* given) {
        Buffer dq(dtype, kB * kH * kT * kD), dk(dtype, kB * kH * kT * kD), dv(dtype, kB * kH * kT * kDv);
        for (Buffer* b : {&dq, &dk, &dv}) b->poison();
        slay_tensor_t tdq = view4(dq, kB, kH, kT, kD, false), tdk = view4(dk, kB, kH, kT, kD, false);
        slay_tensor_t tdv = view4(dv, kB, kH, kT, kDv, false);
        slay_tensor_t tgiven = given ? stats_view(*given, kT) : slay_tensor_t{};
        auto ba = attn_args<slay_attn_bwd_args_t>(&tq, &tk, &tv, &tout, nullptr);
        ba.dout = &tdout;
        ba.dq = &tdq;
        ba.dk = &tdk;
        ba.dv = &tdv;
        ba.row_stats = given ? &tgiven : nullptr;
        run_bwd(tp, ba, kT);
        return Grads{dq.values(), dk.values(), dv.values()};
    };
    const Grads recomputed = backward(nullptr);
    const std::vector<unsigned char> stats_before = stats.bytes;
    const Grads given = backward(&stats);
    CHECK(stats.bytes == stats_before);
    const double tol = tolerance(dtype), tol_same = dtype == SLAY_DTYPE_FLOAT32 ? 1e-5 : tol;
    CHECK(rel_l2(given.dq, recomputed.dq, dtype) <= tol_same);
    CHECK(rel_l2(given.dk, recomputed.dk, dtype) <= tol_same);
    CHECK(rel_l2(given.dv, recomputed.dv, dtype) <= tol_same);

    Buffer halving(SLAY_DTYPE_FLOAT32, stats.size());
    const bool softmax = variant != SLAY_ATTN_YAT_SPHERICAL;
    for (int64_t i = 0; i < stats.size(); ++i)
        halving.set(i, softmax ? stats.get(i) + std::log(2.0) : 2.0 * stats.get(i) + tp.cfg.stabilizer);
    const Grads halved = backward(&halving);
    std::vector<double> half_dv = given.dv;
    for (double& x : half_dv) x *= 0.5;
    CHECK(rel_l2(halved.dv, half_dv, dtype) <= (dtype == SLAY_DTYPE_FLOAT32 ? 2e-6 : tol));
    CHECK(rel_l2(halved.dq, given.dq, dtype) > 0.1);  // the statistics do reach dq too
}

}  // namespace

TEST_CASE("the exact backward given the forward's row statistics (ABI 5) uses them: CPU backend") {
    for (slay_attn_variant_t variant : {SLAY_ATTN_STANDARD, SLAY_ATTN_YAT, SLAY_ATTN_YAT_SPHERICAL})
        for (bool causal : {true, false})
            for (slay_dtype_t dtype : {SLAY_DTYPE_FLOAT32, SLAY_DTYPE_BFLOAT16}) {
                const std::string name = slay_test::variant_name(variant), dtype_name = slay::dtype_name(dtype);
                CAPTURE(name);
                CAPTURE(causal);
                CAPTURE(dtype_name);
                check_backward_given_stats(variant, causal, dtype);
            }
}

TEST_CASE("decoding token by token with the state updated in place equals one call") {
    for (slay_attn_variant_t variant : slay_test::linearized_variants()) {
        const std::string name = slay_test::variant_name(variant);
        CAPTURE(name);
        TestPlan tp(variant, true, SLAY_DTYPE_FLOAT32, kT);
        std::mt19937_64 rng(5);
        Buffer params = sampled_params(tp);
        slay_tensor_t tparams = view1(params);
        Buffer q = random_buffer(SLAY_DTYPE_FLOAT32, kB * kH * kT * kD, rng);
        Buffer k = random_buffer(SLAY_DTYPE_FLOAT32, kB * kH * kT * kD, rng);
        Buffer v = random_buffer(SLAY_DTYPE_FLOAT32, kB * kH * kT * kDv, rng);
        Buffer whole(SLAY_DTYPE_FLOAT32, kB * kH * kT * kDv), steps(SLAY_DTYPE_FLOAT32, kB * kH * kT * kDv);
        Buffer state(SLAY_DTYPE_FLOAT32, kB * kH * tp.features * (kDv + 1));
        whole.poison();
        steps.poison();
        std::memset(state.data(), 0, state.bytes.size());

        slay_tensor_t tq = view4(q, kB, kH, kT, kD, false), tk = view4(k, kB, kH, kT, kD, false);
        slay_tensor_t tv = view4(v, kB, kH, kT, kDv, false), tw = view4(whole, kB, kH, kT, kDv, false);
        auto a = attn_args<slay_attn_fwd_args_t>(&tq, &tk, &tv, &tw, params.size() ? &tparams : nullptr);
        run_fwd(tp, a, kT);

        // Token t as a T = 1 view into the same buffers; state read and
        // written in place (final_state aliases initial_state).
        slay_tensor_t ts = view4(state, kB, kH, tp.features, kDv + 1, false);
        for (int64_t t = 0; t < kT; ++t) {
            slay_tensor_t sq = tq, sk = tk, sv = tv, so = view4(steps, kB, kH, kT, kDv, false);
            for (slay_tensor_t* x : {&sq, &sk, &sv, &so}) {
                x->shape[2] = 1;
                x->data = static_cast<char*>(x->data) + t * x->strides[2] * 4;
            }
            a.q = &sq;
            a.k = &sk;
            a.v = &sv;
            a.out = &so;
            a.initial_state = &ts;
            a.final_state = &ts;
            a.position_offset = variant == SLAY_ATTN_COSFORMER ? t : 0;
            run_fwd(tp, a, 1);
        }
        CHECK(rel_l2(steps.values(), whole.values()) <= 1e-6);
    }
}

TEST_CASE("T = 0 is an empty call: nothing to compute, final state = initial state") {
    TestPlan tp(SLAY_ATTN_SLAY_ANCHOR, true, SLAY_DTYPE_FLOAT32, 0);
    std::mt19937_64 rng(11);
    Buffer params = sampled_params(tp);
    slay_tensor_t tparams = view1(params);
    Buffer empty(SLAY_DTYPE_FLOAT32, 1);
    Buffer state_in = random_buffer(SLAY_DTYPE_FLOAT32, kB * kH * tp.features * (kDv + 1), rng);
    Buffer state_out(SLAY_DTYPE_FLOAT32, state_in.size());
    state_out.poison();
    slay_tensor_t tq = view4(empty, kB, kH, 0, kD, false), tv = view4(empty, kB, kH, 0, kDv, false);
    slay_tensor_t tsin = view4(state_in, kB, kH, tp.features, kDv + 1, false);
    slay_tensor_t tsout = view4(state_out, kB, kH, tp.features, kDv + 1, false);
    auto a = attn_args<slay_attn_fwd_args_t>(&tq, &tq, &tv, &tv, &tparams);
    a.initial_state = &tsin;
    a.final_state = &tsout;
    run_fwd(tp, a, 0);
    CHECK(state_out.values() == state_in.values());
}
