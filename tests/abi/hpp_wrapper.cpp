// hpp_wrapper.cpp -- the header-only C++17 wrapper <slay/slay.hpp>: it is
// the first and only libslay include, compiles under -Wall -Wextra
// -Wpedantic -Wshadow -Wconversion -Werror (meson.build), and its pieces
// work on the CPU backend: slay::Error from check() with status and message,
// move-only owners, tensor helpers, plan queries, features_sample, fwd (both
// overloads, states through the argument block) and bwd. Plain main (no
// doctest) so only the wrapper's own warnings count; exits 1 on a failure.
#include <slay/slay.hpp>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace {

int failures = 0;

void expect(bool ok, const char* what) {
    if (!ok) {
        std::printf("FAILED: %s\n", what);
        ++failures;
    }
}

// Runs f, which must throw slay::Error with `status`; returns the error's
// what() text ("" if nothing or something else was thrown).
template <class F>
std::string expect_throws(slay_status_t status, F&& f, const char* what) {
    try {
        f();
    } catch (const slay::Error& e) {
        expect(e.status() == status, what);
        expect(!e.message().empty(), "an Error carries a message");
        expect(std::strcmp(e.name(), slay_status_name(status)) == 0, "Error::name() is the status name");
        return e.what();
    } catch (...) {
    }
    expect(false, what);
    return "";
}

bool starts_with(const std::string& s, const std::string& prefix) { return s.compare(0, prefix.size(), prefix) == 0; }

static_assert(!std::is_copy_constructible<slay::Handle>::value, "Handle is move-only");
static_assert(!std::is_copy_assignable<slay::Plan>::value, "Plan is move-only");
static_assert(std::is_nothrow_move_constructible<slay::Descriptor>::value, "Descriptor moves without throwing");
static_assert(std::is_nothrow_move_assignable<slay::Plan>::value, "Plan move-assigns without throwing");
static_assert(!std::is_constructible<slay::Plan, slay::Handle&&, const slay::Descriptor&>::value,
              "a plan cannot be made on a temporary handle");

void test_errors() {
    slay::check(SLAY_STATUS_SUCCESS);  // no throw
    slay::Descriptor desc(SLAY_ATTN_SLAY_ANCHOR);
    const std::string w = expect_throws(
        SLAY_STATUS_INVALID_VALUE, [&] { desc.set_i64(SLAY_ATTR_HEAD_DIM, 0); }, "HEAD_DIM 0 is INVALID_VALUE");
    expect(starts_with(w, "SLAY_STATUS_INVALID_VALUE: slay_attn_desc_set_i64: "), "what() = name: call: message");
    expect(desc.get_i64(SLAY_ATTR_HEAD_DIM) == 64, "a rejected value leaves the default");
    expect_throws(
        SLAY_STATUS_ATTRIBUTE_TYPE, [&] { desc.set_f64(SLAY_ATTR_NUM_HEADS, 2.0); },
        "set_f64 on an i64 attribute is ATTRIBUTE_TYPE");
    expect_throws(
        SLAY_STATUS_ATTRIBUTE_NOT_APPLICABLE, [&] { desc.set_f64(SLAY_ATTR_SOFTMAX_SCALE, 1.0); },
        "softmax scale on slay_anchor is ATTRIBUTE_NOT_APPLICABLE");
    expect(desc.set_f64(SLAY_ATTR_EPSILON, 1e-3).get_f64(SLAY_ATTR_EPSILON) == 1e-3, "set_f64 chains and stores");
    expect(slay::variant_from_name("yat-performer-anchor") == SLAY_ATTN_SLAY_ANCHOR, "variant_from_name");
    expect(slay::variant_name(SLAY_ATTN_YAT_SPHERICAL) == "yat_spherical", "variant_name");
    expect_throws(
        SLAY_STATUS_INVALID_VALUE, [] { slay::variant_from_name("no-such-variant"); }, "unknown variant name");
    expect(slay::version() == SLAY_VERSION && slay::abi_version() >= 1, "version");
}

void test_ownership() {
    slay::Handle a(SLAY_BACKEND_CPU);
    const slay_handle_t raw = a.get();
    expect(bool(a) && raw != nullptr, "a created handle owns an object");
    slay::Handle b(std::move(a));
    expect(!a && b.get() == raw, "moving transfers ownership");
    slay::Handle c;
    c = std::move(b);
    expect(!b && c.get() == raw && c.backend() == SLAY_BACKEND_CPU, "move assignment transfers ownership");
    expect_throws(
        SLAY_STATUS_INVALID_ARGUMENT, [&] { (void)a.backend(); }, "a moved-from handle throws INVALID_ARGUMENT");
    slay::Plan empty;
    expect_throws(
        SLAY_STATUS_INVALID_ARGUMENT, [&] { (void)empty.param_count(); }, "an empty plan throws INVALID_ARGUMENT");
    // release() hands the object back; the C destroy then owns the job.
    slay::Descriptor d(SLAY_ATTN_LINEAR);
    const slay_attn_desc_t released = d.release();
    expect(!d && slay_attn_desc_destroy(released) == SLAY_STATUS_SUCCESS, "release gives up ownership");
    // Owners of C objects made elsewhere.
    slay_attn_desc_t cdesc = nullptr;
    expect(slay_attn_desc_create(&cdesc, SLAY_ATTN_STANDARD) == SLAY_STATUS_SUCCESS, "C descriptor");
    slay::Descriptor adopted(cdesc);
    expect(adopted.get() == cdesc, "adopting a C descriptor");
    adopted.reset();
    expect(!adopted, "reset() destroys");
}

void test_tensors() {
    float x = 0;
    const slay_tensor_t t = slay::tensor_bhtd(&x, 2, 3, 5, 7);
    expect(t.rank == 4 && t.dtype == SLAY_DTYPE_FLOAT32 && t.data == &x, "tensor_bhtd rank, dtype, data");
    expect(t.shape[0] == 2 && t.shape[1] == 3 && t.shape[2] == 5 && t.shape[3] == 7, "tensor_bhtd shape");
    expect(t.strides[0] == 105 && t.strides[1] == 35 && t.strides[2] == 7 && t.strides[3] == 1, "tensor_bhtd strides");
    const slay_tensor_t s = slay::tensor_bthd(&x, 2, 3, 5, 7, SLAY_DTYPE_BFLOAT16);
    expect(s.dtype == SLAY_DTYPE_BFLOAT16 && s.shape[1] == 3 && s.shape[2] == 5, "tensor_bthd logical shape");
    expect(s.strides[0] == 105 && s.strides[1] == 7 && s.strides[2] == 21 && s.strides[3] == 1, "tensor_bthd strides");
    const slay_tensor_t m = slay::make_tensor(&x, SLAY_DTYPE_FLOAT32, {4, 6});
    expect(m.rank == 2 && m.strides[0] == 6 && m.strides[1] == 1 && slay::numel(m) == 24, "make_tensor contiguous");
    const slay_tensor_t g = slay::make_tensor(&x, SLAY_DTYPE_FLOAT32, {2, 3, 4}, {24, 8, 1});
    expect(g.rank == 3 && g.strides[0] == 24 && g.strides[1] == 8 && g.strides[2] == 1, "make_tensor strides");
    expect_throws(
        SLAY_STATUS_INVALID_VALUE, [&] { slay::make_tensor(&x, SLAY_DTYPE_FLOAT32, {1, 2, 3, 4, 5}); }, "rank 5");
    expect_throws(
        SLAY_STATUS_INVALID_VALUE, [&] { slay::make_tensor(&x, SLAY_DTYPE_FLOAT32, {2, 2}, {2}); }, "stride count");
    const slay_tensor_t p = slay::vector_tensor(&x, 9);
    expect(p.rank == 1 && p.shape[0] == 9 && p.strides[0] == 1, "vector_tensor");
    expect(slay::fwd_args().struct_size == sizeof(slay_attn_fwd_args_t) && slay::fwd_args().q == nullptr, "fwd_args");
    expect(slay::bwd_args().struct_size == sizeof(slay_attn_bwd_args_t) && slay::bwd_args().dq == nullptr, "bwd_args");
}

bool finite_nonzero(const std::vector<float>& x) {
    double sum = 0;
    for (float v : x) {
        if (!std::isfinite(v)) return false;
        sum += std::fabs(double(v));
    }
    return sum > 0;
}

void test_plan_and_calls() {
    const std::int64_t B = 1, H = 2, T = 8, D = 8, R = 1, M = 4, P = 4;
    slay::Handle handle(SLAY_BACKEND_CPU);
    slay::Descriptor desc(SLAY_ATTN_SLAY_ANCHOR);
    desc.set_i64(SLAY_ATTR_NUM_HEADS, H)
        .set_i64(SLAY_ATTR_HEAD_DIM, D)
        .set_i64(SLAY_ATTR_NUM_QUAD_NODES, R)
        .set_i64(SLAY_ATTR_NUM_FEATURES, M)
        .set_i64(SLAY_ATTR_POLY_DIM, P);
    const slay::Plan plan(handle, desc);
    desc.reset();  // the plan keeps its own copy
    expect(plan.variant() == SLAY_ATTN_SLAY_ANCHOR, "plan variant");
    expect(plan.get_i64(SLAY_ATTR_VALUE_DIM) == D, "VALUE_DIM resolves to D");
    expect(plan.get_f64(SLAY_ATTR_STABILIZER) > 0, "plan f64 attribute");
    expect(plan.feature_dim() == R * P * M, "feature dim R*P*M");

    const std::vector<slay_param_segment_t> segments = plan.param_segments();
    expect(std::int64_t(segments.size()) == plan.param_segment_count() && segments.size() == 2, "two segments");
    std::int64_t total = 0;
    for (const slay_param_segment_t& seg : segments) {
        std::int64_t n = 1;
        for (std::int32_t d = 0; d < seg.rank; ++d) n *= seg.shape[d];
        expect(seg.offset == total, "segments lie back to back");
        total += n;
    }
    expect(total == plan.param_count(), "segments cover the parameter vector");
    expect(segments.size() == 2 && std::strcmp(segments[0].name, "omega") == 0 &&
               std::strcmp(segments[1].name, "anchors") == 0,
           "segment names omega, anchors");
    expect_throws(
        SLAY_STATUS_INVALID_VALUE, [&] { (void)plan.param_segment(7); }, "segment index out of range");

    std::vector<float> params(std::size_t(plan.param_count()));
    const slay_tensor_t tp = slay::vector_tensor(params.data(), plan.param_count());
    std::vector<unsigned char> sample_ws(plan.workspace_size(SLAY_PASS_SAMPLE));
    plan.features_sample(7, 0, tp, sample_ws.data(), sample_ws.size());
    expect(finite_nonzero(params), "sampled parameters");

    const std::size_t n = std::size_t(B * H * T * D);
    std::vector<float> q(n), k(n), v(n), out(n), out2(n), dout(n), dq(n), dk(n), dv(n);
    for (std::size_t i = 0; i < n; ++i) {
        q[i] = float(std::sin(0.37 * double(i)));
        k[i] = float(std::cos(0.21 * double(i) + 1.0));
        v[i] = float(std::sin(0.11 * double(i) + 2.0));
        dout[i] = float(std::cos(0.05 * double(i)));
    }
    const slay_tensor_t tq = slay::tensor_bhtd(q.data(), B, H, T, D), tk = slay::tensor_bhtd(k.data(), B, H, T, D),
                        tv = slay::tensor_bhtd(v.data(), B, H, T, D), tout = slay::tensor_bhtd(out.data(), B, H, T, D),
                        tdout = slay::tensor_bhtd(dout.data(), B, H, T, D);
    std::vector<unsigned char> ws(plan.workspace_size(SLAY_PASS_FORWARD, B, T));
    plan.fwd(tq, tk, tv, &tp, tout, ws.data(), ws.size());
    expect(finite_nonzero(out), "forward output");

    // The same forward in two halves through the full argument block, with
    // the state carried between them, matches the single call.
    const std::int64_t F = plan.feature_dim(), half = T / 2;
    std::vector<float> state(std::size_t(B * H * F * (D + 1)));
    const slay_tensor_t tstate = slay::tensor_bhtd(state.data(), B, H, F, D + 1);
    for (std::int64_t piece = 0; piece < 2; ++piece) {
        auto part = [&](std::vector<float>& buf) {
            slay_tensor_t t = slay::tensor_bhtd(buf.data(), B, H, T, D);
            t.data = buf.data() + piece * half * D;
            t.shape[2] = half;
            return t;
        };
        const slay_tensor_t pq = part(q), pk = part(k), pv = part(v), po = part(out2);
        slay_attn_fwd_args_t args = slay::fwd_args();
        args.q = &pq;
        args.k = &pk;
        args.v = &pv;
        args.params = &tp;
        args.out = &po;
        args.initial_state = piece ? &tstate : nullptr;
        args.final_state = &tstate;
        std::vector<unsigned char> ws_half(plan.workspace_size(SLAY_PASS_FORWARD, B, half));
        plan.fwd(args, ws_half.data(), ws_half.size());
    }
    double max_diff = 0;
    for (std::size_t i = 0; i < n; ++i) max_diff = std::fmax(max_diff, std::fabs(double(out[i]) - double(out2[i])));
    expect(max_diff < 1e-4, "two pieces with a state equal one call");

    const slay_tensor_t tdq = slay::tensor_bhtd(dq.data(), B, H, T, D), tdk = slay::tensor_bhtd(dk.data(), B, H, T, D),
                        tdv = slay::tensor_bhtd(dv.data(), B, H, T, D);
    std::vector<unsigned char> ws_bwd(plan.workspace_size(SLAY_PASS_BACKWARD, B, T));
    plan.bwd(tq, tk, tv, &tp, tout, tdout, tdq, tdk, tdv, ws_bwd.data(), ws_bwd.size());
    expect(finite_nonzero(dq) && finite_nonzero(dk) && finite_nonzero(dv), "backward gradients");

    // A library-side validation error surfaces as slay::Error with the
    // library's message, and nothing is written.
    const slay_tensor_t short_k = slay::tensor_bhtd(k.data(), B, H, T - 1, D);
    std::vector<float> before = out;
    const std::string w = expect_throws(
        SLAY_STATUS_BAD_SHAPE, [&] { plan.fwd(tq, short_k, tv, &tp, tout, ws.data(), ws.size()); },
        "a short k is BAD_SHAPE");
    expect(w.find("slay_attn_fwd: ") != std::string::npos && w.find("k.shape") != std::string::npos,
           "the message names the call and the tensor");
    expect(before == out, "a failed call writes nothing");
}

}  // namespace

int main() {
    try {
        test_errors();
        test_ownership();
        test_tensors();
        test_plan_and_calls();
    } catch (const std::exception& e) {
        std::printf("FAILED: unexpected exception: %s\n", e.what());
        ++failures;
    }
    std::printf("%s\n", failures ? "FAILED" : "ok");
    return failures ? 1 : 0;
}
