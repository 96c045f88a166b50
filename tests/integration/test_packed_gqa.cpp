// test_packed_gqa.cpp -- packed variable-length calls (seq_offsets) and
// grouped-query heads (num_kv_heads) on the CPU backend, the oracle that
// defines their semantics, through the public ABI only:
//   * a packed call of N sequences (some empty, int32 and int64 offsets)
//     equals N separate calls: outputs, final states, every gradient and
//     dinitial_state, for every variant, causal and bidirectional, with and
//     without grouped heads;
//   * grouped-query attention (H_kv = H/2 and H_kv = 1) equals multi-head
//     attention with k and v repeated per group, with dk, dv the sums of
//     the repeated heads' gradients;
//   * every malformed packed or grouped call fails with its status and a
//     message, and writes nothing.
// Shapes: q (B, H, T, D); k (B, H_kv, T, D); v (B, H_kv, T, Dv); states
// (B, H, F, Dv+1); a packed call has B = 1 on the tensors and N state rows.
// All tensors fp32, contiguous; outputs are poisoned with NaN first.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "../reference/support.hpp"  // all_variants
#include "slay/slay.h"

namespace {

#define REQUIRE_OK(call) REQUIRE_MESSAGE((call) == SLAY_STATUS_SUCCESS, slay_last_error_message())

constexpr int64_t kD = 8, kDv = 6;

// A contiguous fp32 (B, H, T, C) host tensor.
struct Tensor4 {
    int64_t B = 0, H = 0, T = 0, C = 0;
    std::vector<float> data;
    Tensor4() = default;
    Tensor4(int64_t b, int64_t h, int64_t t, int64_t c) : B(b), H(h), T(t), C(c), data(size_t(b * h * t * c)) {}
    float& at(int64_t b, int64_t h, int64_t t, int64_t c) { return data[size_t(((b * H + h) * T + t) * C + c)]; }
    float at(int64_t b, int64_t h, int64_t t, int64_t c) const {
        return data[size_t(((b * H + h) * T + t) * C + c)];
    }
    slay_tensor_t view() {
        slay_tensor_t v;
        std::memset(&v, 0, sizeof v);
        v.data = data.empty() ? nullptr : data.data();
        v.dtype = SLAY_DTYPE_FLOAT32;
        v.rank = 4;
        const int64_t shape[4] = {B, H, T, C}, strides[4] = {H * T * C, T * C, C, 1};
        for (int i = 0; i < 4; ++i) {
            v.shape[i] = shape[i];
            v.strides[i] = strides[i];
        }
        return v;
    }
    void fill_normal(std::mt19937_64& rng, double sd) {
        std::normal_distribution<float> n(0.f, static_cast<float>(sd));
        for (float& x : data) x = n(rng);
    }
    void poison() { std::fill(data.begin(), data.end(), NAN); }
};

// A rank-1 offsets tensor of either integer dtype.
struct Offsets {
    std::vector<int32_t> i32;
    std::vector<int64_t> i64;
    slay_dtype_t dtype;
    Offsets(const std::vector<int64_t>& o, slay_dtype_t t) : i64(o), dtype(t) {
        for (int64_t x : o) i32.push_back(static_cast<int32_t>(x));
    }
    slay_tensor_t view() {
        slay_tensor_t v;
        std::memset(&v, 0, sizeof v);
        v.data = dtype == SLAY_DTYPE_INT32 ? static_cast<void*>(i32.data()) : static_cast<void*>(i64.data());
        v.dtype = dtype;
        v.rank = 1;
        v.shape[0] = static_cast<int64_t>(i64.size());
        v.strides[0] = 1;
        return v;
    }
};

// A CPU plan of a variant at the test size (R=2, M=4, P=4 where read), with
// H query heads and H_kv key/value heads, and its sampled parameters.
struct TestPlan {
    slay_handle_t handle = nullptr;
    slay_attn_plan_t plan = nullptr;
    slay_attn_variant_t variant;
    int64_t H, Hkv, features = 0;
    std::vector<float> params;
    TestPlan(slay_attn_variant_t v, bool causal, int64_t heads, int64_t kv_heads)
        : variant(v), H(heads), Hkv(kv_heads) {
        REQUIRE_OK(slay_handle_create(&handle, SLAY_BACKEND_CPU, 0));
        slay_attn_desc_t desc = nullptr;
        REQUIRE_OK(slay_attn_desc_create(&desc, v));
        auto set = [&](slay_attr_t a, int64_t x) {
            if (slay::attribute_applies(v, a)) REQUIRE_OK(slay_attn_desc_set_i64(desc, a, x));
        };
        set(SLAY_ATTR_NUM_HEADS, heads);
        set(SLAY_ATTR_NUM_KV_HEADS, kv_heads);
        set(SLAY_ATTR_HEAD_DIM, kD);
        set(SLAY_ATTR_VALUE_DIM, kDv);
        set(SLAY_ATTR_CAUSAL, causal);
        set(SLAY_ATTR_NUM_QUAD_NODES, 2);
        set(SLAY_ATTR_NUM_FEATURES, 4);
        set(SLAY_ATTR_POLY_DIM, 4);
        set(SLAY_ATTR_COSFORMER_LENGTH, 64);  // packing needs a fixed length
        REQUIRE_OK(slay_attn_plan_create(&plan, handle, desc));
        REQUIRE_OK(slay_attn_desc_destroy(desc));
        REQUIRE_OK(slay_attn_plan_get_feature_dim(plan, &features));
        int64_t count = 0;
        REQUIRE_OK(slay_attn_plan_get_param_count(plan, &count));
        params.resize(size_t(count));
        if (count > 0) {
            slay_tensor_t p = params_view();
            size_t bytes = 0;
            REQUIRE_OK(slay_attn_plan_get_workspace_size(plan, SLAY_PASS_SAMPLE, 0, 0, &bytes));
            std::vector<unsigned char> ws(bytes + 16);
            REQUIRE_OK(slay_attn_features_sample(plan, 7, 0, &p, align(ws), bytes, nullptr));
        }
    }
    ~TestPlan() {
        slay_attn_plan_destroy(plan);
        slay_handle_destroy(handle);
    }
    bool stateful() const { return features > 0; }
    slay_tensor_t params_view() {
        slay_tensor_t v;
        std::memset(&v, 0, sizeof v);
        v.data = params.empty() ? nullptr : params.data();
        v.dtype = SLAY_DTYPE_FLOAT32;
        v.rank = 1;
        v.shape[0] = static_cast<int64_t>(params.size());
        v.strides[0] = 1;
        return v;
    }
    static void* align(std::vector<unsigned char>& ws) {
        const uintptr_t p = reinterpret_cast<uintptr_t>(ws.data());
        return reinterpret_cast<void*>((p + 15) / 16 * 16);
    }
    std::vector<unsigned char> workspace(slay_pass_t pass, int64_t batch, int64_t T, size_t* bytes) const {
        REQUIRE_OK(slay_attn_plan_get_workspace_size(plan, pass, batch, T, bytes));
        return std::vector<unsigned char>(*bytes + 16);
    }
};

// A forward argument block over the given views (null: absent).
slay_attn_fwd_args_t fwd_block(const slay_tensor_t* q, const slay_tensor_t* k, const slay_tensor_t* v,
                               const slay_tensor_t* out, const slay_tensor_t* params, const slay_tensor_t* s0,
                               const slay_tensor_t* s1, const slay_tensor_t* offsets) {
    slay_attn_fwd_args_t f;
    std::memset(&f, 0, sizeof f);
    f.struct_size = sizeof f;
    f.q = q;
    f.k = k;
    f.v = v;
    f.out = out;
    f.params = params;
    f.initial_state = s0;
    f.final_state = s1;
    f.seq_offsets = offsets;
    return f;
}

// Inputs and outputs of one call (B batch rows of T tokens; `states` rows
// of state). Outputs start as NaN.
struct Call {
    Tensor4 q, k, v, out, dout, dq, dk, dv, s0, s1, ds1, ds0;
    Call(const TestPlan& p, int64_t B, int64_t T, int64_t states)
        : q(B, p.H, T, kD), k(B, p.Hkv, T, kD), v(B, p.Hkv, T, kDv), out(B, p.H, T, kDv), dout(B, p.H, T, kDv),
          dq(B, p.H, T, kD), dk(B, p.Hkv, T, kD), dv(B, p.Hkv, T, kDv) {
        if (p.stateful()) {
            for (Tensor4* s : {&s0, &s1, &ds1, &ds0}) *s = Tensor4(states, p.H, p.features, kDv + 1);
        }
    }
    void randomize(std::mt19937_64& rng) {
        q.fill_normal(rng, 0.5);
        k.fill_normal(rng, 0.5);
        v.fill_normal(rng, 1.0);
        dout.fill_normal(rng, 1.0);
        s0.fill_normal(rng, 0.1);
        ds1.fill_normal(rng, 0.1);
        // z column positive: denominators of signed maps stay away from zero.
        for (Tensor4* s : {&s0})
            for (int64_t b = 0; b < s->B; ++b)
                for (int64_t h = 0; h < s->H; ++h)
                    for (int64_t f = 0; f < s->T; ++f) s->at(b, h, f, kDv) = 0.5f;
    }
    // Runs forward then backward; offsets may be null (dense call).
    void run(TestPlan& p, int64_t batch, int64_t seq_len, Offsets* offsets) {
        for (Tensor4* t : {&out, &dq, &dk, &dv, &s1, &ds0}) t->poison();
        slay_tensor_t tq = q.view(), tk = k.view(), tv = v.view(), to = out.view(), tg = dout.view();
        slay_tensor_t tdq = dq.view(), tdk = dk.view(), tdv = dv.view(), ts0 = s0.view(), ts1 = s1.view();
        slay_tensor_t tds1 = ds1.view(), tds0 = ds0.view(), tp = p.params_view();
        slay_tensor_t toff{};
        if (offsets) toff = offsets->view();
        const bool st = p.stateful();
        const slay_attn_fwd_args_t f = fwd_block(&tq, &tk, &tv, &to, p.params.empty() ? nullptr : &tp,
                                                 st ? &ts0 : nullptr, st ? &ts1 : nullptr, offsets ? &toff : nullptr);
        size_t bytes = 0;
        std::vector<unsigned char> ws = p.workspace(SLAY_PASS_FORWARD, batch, seq_len, &bytes);
        REQUIRE_OK(slay_attn_fwd(p.plan, &f, TestPlan::align(ws), bytes, nullptr));
        slay_attn_bwd_args_t b;
        std::memset(&b, 0, sizeof b);
        b.struct_size = sizeof b;
        b.q = &tq;
        b.k = &tk;
        b.v = &tv;
        b.params = f.params;
        b.out = &to;
        b.dout = &tg;
        b.dq = &tdq;
        b.dk = &tdk;
        b.dv = &tdv;
        b.initial_state = f.initial_state;
        b.dfinal_state = st ? &tds1 : nullptr;
        b.dinitial_state = st ? &tds0 : nullptr;
        b.seq_offsets = f.seq_offsets;
        ws = p.workspace(SLAY_PASS_BACKWARD, batch, seq_len, &bytes);
        REQUIRE_OK(slay_attn_bwd(p.plan, &b, TestPlan::align(ws), bytes, nullptr));
    }
};

// Copies tokens [t0, t0 + n) of batch row sb of src into batch row db of
// dst, starting at token d0.
void copy_tokens(const Tensor4& src, int64_t sb, int64_t t0, Tensor4& dst, int64_t db, int64_t d0, int64_t n) {
    for (int64_t h = 0; h < src.H; ++h)
        for (int64_t t = 0; t < n; ++t)
            for (int64_t c = 0; c < src.C; ++c) dst.at(db, h, d0 + t, c) = src.at(sb, h, t0 + t, c);
}

// Sequence n of a packed call (tokens [t0, t0 + T) of batch row 0, state
// row n of F features) copied into the one-sequence call `one`: the token
// tensors and state tensors named.
void cut_sequence(const Call& packed, int64_t n, int64_t t0, int64_t T, int64_t F,
                  std::initializer_list<Tensor4 Call::*> tokens, std::initializer_list<Tensor4 Call::*> states,
                  Call& one) {
    for (Tensor4 Call::*t : tokens) copy_tokens(packed.*t, 0, t0, one.*t, 0, 0, T);
    if (F > 0)
        for (Tensor4 Call::*s : states) copy_tokens(packed.*s, n, 0, one.*s, 0, 0, F);
}

// Relative L2 of got against want; any non-finite value fails.
double rel_l2(const std::vector<float>& got, const std::vector<float>& want) {
    double num = 0, den = 0;
    for (size_t i = 0; i < want.size(); ++i) {
        if (!std::isfinite(got[i]) || !std::isfinite(want[i])) return INFINITY;
        num += double(got[i] - want[i]) * double(got[i] - want[i]);
        den += double(want[i]) * double(want[i]);
    }
    return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

std::string label(const TestPlan& p, bool causal) {
    return std::string(slay_attn_variant_name(p.variant)) + (causal ? " causal" : " bidirectional") +
           " H=" + std::to_string(p.H) + " H_kv=" + std::to_string(p.Hkv);
}

}  // namespace

TEST_CASE("a packed call equals one call per sequence: outputs, states and gradients") {
    const std::vector<int64_t> lengths = {5, 0, 9, 1};
    std::vector<int64_t> offsets = {0};
    for (int64_t n : lengths) offsets.push_back(offsets.back() + n);
    const int64_t N = static_cast<int64_t>(lengths.size()), total = offsets.back();
    const int64_t longest = *std::max_element(lengths.begin(), lengths.end());
    for (slay_attn_variant_t variant : slay_test::all_variants())
        for (bool causal : {true, false})
            for (int64_t kv_heads : {int64_t{2}, int64_t{1}})
                for (slay_dtype_t offset_dtype : {SLAY_DTYPE_INT64, SLAY_DTYPE_INT32}) {
                    TestPlan p(variant, causal, 2, kv_heads);
                    INFO(label(p, causal), offset_dtype == SLAY_DTYPE_INT32 ? " int32" : " int64", " offsets");
                    std::mt19937_64 rng(42 + variant);
                    Call packed(p, 1, total, N);
                    packed.randomize(rng);
                    Offsets off(offsets, offset_dtype);
                    packed.run(p, N, longest, &off);
                    for (int64_t n = 0; n < N; ++n) {
                        CAPTURE(n);
                        const int64_t T = lengths[size_t(n)], t0 = offsets[size_t(n)];
                        // Sequence n's inputs as a call of its own...
                        Call one(p, 1, T, 1);
                        cut_sequence(packed, n, t0, T, p.features, {&Call::q, &Call::k, &Call::v, &Call::dout},
                                     {&Call::s0, &Call::ds1}, one);
                        one.run(p, 1, T, nullptr);
                        // ... and the packed call's outputs of sequence n, cut out the same way.
                        Call cut(p, 1, T, 1);
                        cut_sequence(packed, n, t0, T, p.features, {&Call::out, &Call::dq, &Call::dk, &Call::dv},
                                     {&Call::s1, &Call::ds0}, cut);
                        // Each sequence is computed exactly as its own call: equal bits.
                        CHECK(rel_l2(cut.out.data, one.out.data) == 0.0);
                        CHECK(rel_l2(cut.dq.data, one.dq.data) == 0.0);
                        CHECK(rel_l2(cut.dk.data, one.dk.data) == 0.0);
                        CHECK(rel_l2(cut.dv.data, one.dv.data) == 0.0);
                        CHECK(rel_l2(cut.s1.data, one.s1.data) == 0.0);
                        CHECK(rel_l2(cut.ds0.data, one.ds0.data) == 0.0);
                    }
                }
}

TEST_CASE("grouped-query heads equal multi-head attention with k, v repeated and dk, dv summed") {
    constexpr int64_t B = 2, T = 7, H = 4;
    for (slay_attn_variant_t variant : slay_test::all_variants())
        for (bool causal : {true, false})
            for (int64_t kv_heads : {int64_t{2}, int64_t{1}}) {
                TestPlan gqa(variant, causal, H, kv_heads), mha(variant, causal, H, H);
                INFO(label(gqa, causal));
                REQUIRE(gqa.params == mha.params);  // same H, same draws
                const int64_t G = H / kv_heads;
                std::mt19937_64 rng(7 + variant);
                Call grouped(gqa, B, T, B);
                grouped.randomize(rng);
                grouped.run(gqa, B, T, nullptr);
                Call repeated(mha, B, T, B);
                repeated.q = grouped.q;
                repeated.dout = grouped.dout;
                repeated.s0 = grouped.s0;
                repeated.ds1 = grouped.ds1;
                for (int64_t b = 0; b < B; ++b)
                    for (int64_t h = 0; h < H; ++h)
                        for (int64_t t = 0; t < T; ++t) {
                            for (int64_t c = 0; c < kD; ++c) repeated.k.at(b, h, t, c) = grouped.k.at(b, h / G, t, c);
                            for (int64_t c = 0; c < kDv; ++c) repeated.v.at(b, h, t, c) = grouped.v.at(b, h / G, t, c);
                        }
                repeated.run(mha, B, T, nullptr);
                CHECK(rel_l2(grouped.out.data, repeated.out.data) == 0.0);
                CHECK(rel_l2(grouped.dq.data, repeated.dq.data) == 0.0);
                CHECK(rel_l2(grouped.s1.data, repeated.s1.data) == 0.0);
                CHECK(rel_l2(grouped.ds0.data, repeated.ds0.data) == 0.0);
                // dk, dv: the group sums of the repeated heads' gradients (fp32
                // outputs summed here in fp64, there before rounding).
                Tensor4 dk_sum(B, kv_heads, T, kD), dv_sum(B, kv_heads, T, kDv);
                for (int64_t b = 0; b < B; ++b)
                    for (int64_t j = 0; j < kv_heads; ++j)
                        for (int64_t t = 0; t < T; ++t) {
                            for (int64_t c = 0; c < kD; ++c) {
                                double s = 0;
                                for (int64_t g = 0; g < G; ++g) s += repeated.dk.at(b, j * G + g, t, c);
                                dk_sum.at(b, j, t, c) = static_cast<float>(s);
                            }
                            for (int64_t c = 0; c < kDv; ++c) {
                                double s = 0;
                                for (int64_t g = 0; g < G; ++g) s += repeated.dv.at(b, j * G + g, t, c);
                                dv_sum.at(b, j, t, c) = static_cast<float>(s);
                            }
                        }
                CHECK(rel_l2(grouped.dk.data, dk_sum.data) <= 1e-6);
                CHECK(rel_l2(grouped.dv.data, dv_sum.data) <= 1e-6);
            }
}

TEST_CASE("malformed packed and grouped calls fail with a status and a message, writing nothing") {
    SUBCASE("num_heads not a multiple of num_kv_heads fails at plan creation") {
        slay_handle_t handle = nullptr;
        REQUIRE_OK(slay_handle_create(&handle, SLAY_BACKEND_CPU, 0));
        slay_attn_desc_t desc = nullptr;
        REQUIRE_OK(slay_attn_desc_create(&desc, SLAY_ATTN_STANDARD));
        REQUIRE_OK(slay_attn_desc_set_i64(desc, SLAY_ATTR_NUM_HEADS, 6));
        REQUIRE_OK(slay_attn_desc_set_i64(desc, SLAY_ATTR_NUM_KV_HEADS, 4));
        slay_attn_plan_t plan = nullptr;
        CHECK(slay_attn_plan_create(&plan, handle, desc) == SLAY_STATUS_INVALID_VALUE);
        CHECK(std::string(slay_last_error_message()).find("num_kv_heads=4") != std::string::npos);
        CHECK(plan == nullptr);
        int64_t h_kv = -1;
        CHECK(slay_attn_desc_get_i64(desc, SLAY_ATTR_NUM_KV_HEADS, &h_kv) == SLAY_STATUS_SUCCESS);
        CHECK(h_kv == 4);
        slay_attn_desc_destroy(desc);
        slay_handle_destroy(handle);
    }
    struct Bad {
        const char* what;
        slay_status_t status;
        std::vector<int64_t> offsets;
        slay_dtype_t dtype;
        int64_t q_batch, states, k_heads;
        slay_attn_variant_t variant;
    };
    const std::vector<Bad> cases = {
        {"first offset not 0", SLAY_STATUS_INVALID_VALUE, {1, 4, 8}, SLAY_DTYPE_INT64, 1, 2, 1, SLAY_ATTN_SLAY_ANCHOR},
        {"offsets decrease", SLAY_STATUS_INVALID_VALUE, {0, 6, 4, 8}, SLAY_DTYPE_INT32, 1, 3, 1, SLAY_ATTN_STANDARD},
        {"last offset not T_total", SLAY_STATUS_INVALID_VALUE, {0, 4, 7}, SLAY_DTYPE_INT64, 1, 2, 1, SLAY_ATTN_LINEAR},
        {"float offsets", SLAY_STATUS_BAD_DTYPE, {0, 4, 8}, SLAY_DTYPE_FLOAT32, 1, 2, 1, SLAY_ATTN_SLAY_ANCHOR},
        {"packed q with batch 2", SLAY_STATUS_BAD_SHAPE, {0, 4, 8}, SLAY_DTYPE_INT64, 2, 2, 1, SLAY_ATTN_STANDARD},
        {"states of the wrong count", SLAY_STATUS_BAD_SHAPE, {0, 4, 8}, SLAY_DTYPE_INT64, 1, 1, 1, SLAY_ATTN_SLAY_ANCHOR},
        {"k with H heads in a grouped plan", SLAY_STATUS_BAD_SHAPE, {0, 4, 8}, SLAY_DTYPE_INT64, 1, 2, 2,
         SLAY_ATTN_SLAY_LAPLACE},
        {"packed cosformer without a fixed length", SLAY_STATUS_NOT_SUPPORTED, {0, 4, 8}, SLAY_DTYPE_INT64, 1, 2, 1,
         SLAY_ATTN_COSFORMER},
    };
    for (const Bad& c : cases) {
        CAPTURE(c.what);
        TestPlan p(c.variant, true, 2, 1);
        if (c.variant == SLAY_ATTN_COSFORMER) {  // a plan of length 0
            slay_attn_plan_destroy(p.plan);
            slay_attn_desc_t desc = nullptr;
            REQUIRE_OK(slay_attn_desc_create(&desc, c.variant));
            REQUIRE_OK(slay_attn_desc_set_i64(desc, SLAY_ATTR_NUM_HEADS, 2));
            REQUIRE_OK(slay_attn_desc_set_i64(desc, SLAY_ATTR_NUM_KV_HEADS, 1));
            REQUIRE_OK(slay_attn_desc_set_i64(desc, SLAY_ATTR_HEAD_DIM, kD));
            REQUIRE_OK(slay_attn_desc_set_i64(desc, SLAY_ATTR_VALUE_DIM, kDv));
            REQUIRE_OK(slay_attn_plan_create(&p.plan, p.handle, desc));
            slay_attn_desc_destroy(desc);
        }
        const int64_t total = 8;
        Tensor4 q(c.q_batch, 2, total, kD), k(c.q_batch, c.k_heads, total, kD), v(c.q_batch, c.k_heads, total, kDv);
        Tensor4 out(c.q_batch, 2, total, kDv), s0, s1;
        std::mt19937_64 rng(3);
        q.fill_normal(rng, 0.5);
        k.fill_normal(rng, 0.5);
        v.fill_normal(rng, 1.0);
        out.poison();
        slay_tensor_t tq = q.view(), tk = k.view(), tv = v.view(), to = out.view(), tp = p.params_view(), ts0{}, ts1{};
        if (p.stateful()) {
            s0 = Tensor4(c.states, 2, p.features, kDv + 1);
            s1 = Tensor4(c.states, 2, p.features, kDv + 1);
            s1.poison();
            ts0 = s0.view();
            ts1 = s1.view();
        }
        Offsets off(c.offsets, c.dtype == SLAY_DTYPE_FLOAT32 ? SLAY_DTYPE_INT64 : c.dtype);
        slay_tensor_t toff = off.view();
        if (c.dtype == SLAY_DTYPE_FLOAT32) toff.dtype = SLAY_DTYPE_FLOAT32;
        const slay_attn_fwd_args_t f =
            fwd_block(&tq, &tk, &tv, &to, p.params.empty() ? nullptr : &tp, p.stateful() ? &ts0 : nullptr,
                      p.stateful() ? &ts1 : nullptr, &toff);
        std::vector<unsigned char> ws(1 << 20);
        slay_attn_variant_t name_probe;
        slay_attn_variant_from_name("sentinel-that-is-no-variant", &name_probe);  // a stale message
        const slay_status_t s = slay_attn_fwd(p.plan, &f, TestPlan::align(ws), ws.size() - 16, nullptr);
        const std::string message = slay_last_error_message();
        INFO("message: ", message);
        CHECK(std::string(slay_status_name(s)) == slay_status_name(c.status));
        CHECK(message.find("sentinel") == std::string::npos);
        for (float x : out.data) REQUIRE(std::isnan(x));
        for (float x : s1.data) REQUIRE(std::isnan(x));
    }
}
