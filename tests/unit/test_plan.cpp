// test_plan.cpp -- plans: feature dimension F and the parameter layout
// (segment names, offsets, shapes, total count) of every variant against the
// documented layouts; resolved attributes (VALUE_DIM -> D, SOFTMAX_SCALE ->
// 1/sqrt(D)); workspace size queries; plan-time rejection of a too large F;
// NULL and out-of-range arguments of the plan queries.
#include <cmath>
#include <string>
#include <vector>

#include "support.hpp"

using namespace slay_test;

namespace {

// The small configuration every layout below is written for.
constexpr int64_t kHeads = 2, kHeadDim = 8, kQuadNodes = 2, kFeatures = 4, kPolyDim = 3;

// Sets an attribute when the variant uses it; others must answer NOT_APPLICABLE.
void set_if_applicable(slay_attn_desc_t d, slay_attr_t attr, int64_t value) {
    const slay_status_t s = slay_attn_desc_set_i64(d, attr, value);
    CHECK((s == SLAY_STATUS_SUCCESS || s == SLAY_STATUS_ATTRIBUTE_NOT_APPLICABLE));
}

Desc make_small_desc(slay_attn_variant_t variant) {
    Desc d = make_desc(variant, {{SLAY_ATTR_NUM_HEADS, kHeads}, {SLAY_ATTR_HEAD_DIM, kHeadDim}});
    set_if_applicable(d, SLAY_ATTR_NUM_QUAD_NODES, kQuadNodes);
    set_if_applicable(d, SLAY_ATTR_NUM_FEATURES, kFeatures);
    set_if_applicable(d, SLAY_ATTR_POLY_DIM, kPolyDim);
    return d;
}

struct ExpectedSegment {
    const char* name;
    int64_t offset;
    std::vector<int64_t> shape;
};

struct ExpectedLayout {
    slay_attn_variant_t variant;
    int64_t feature_dim;
    int64_t param_count;
    std::vector<ExpectedSegment> segments;
};

std::vector<ExpectedLayout> documented_layouts() {
    const int64_t H = kHeads, D = kHeadDim, R = kQuadNodes, M = kFeatures, P = kPolyDim;
    const int64_t omega = R * H * D * M;  // (R, H, D, M)
    const ExpectedSegment prf_omega{"omega", 0, {R, H, D, M}};
    return {
        {SLAY_ATTN_STANDARD, 0, 0, {}},
        {SLAY_ATTN_YAT, 0, 0, {}},
        {SLAY_ATTN_YAT_SPHERICAL, 0, 0, {}},
        {SLAY_ATTN_SLAY_ANCHOR, R * P * M, omega + P * D, {prf_omega, {"anchors", omega, {P, D}}}},
        {SLAY_ATTN_SLAY_LAPLACE, R * M, omega, {prf_omega}},
        {SLAY_ATTN_SLAY_HADAMARD, R * M, omega, {prf_omega}},
        {SLAY_ATTN_SLAY_TENSORSKETCH, R * P * M, omega + 4 * D,
         {prf_omega,
          {"ts_hash1", omega, {D}},
          {"ts_sign1", omega + D, {D}},
          {"ts_hash2", omega + 2 * D, {D}},
          {"ts_sign2", omega + 3 * D, {D}}}},
        {SLAY_ATTN_SLAY_RANDOM_MACLAURIN, R * P * M, omega + 2 * P * D,
         {prf_omega, {"rm_r1", omega, {P, D}}, {"rm_r2", omega + P * D, {P, D}}}},
        {SLAY_ATTN_SLAY_NYSTROM, R * P * M, omega + P * D + P * P,
         {prf_omega, {"anchors", omega, {P, D}}, {"nystrom_w", omega + P * D, {P, P}}}},
        {SLAY_ATTN_PERFORMER, M, H * D * M, {{"performer_w", 0, {H, D, M}}}},
        {SLAY_ATTN_LINEAR, D, 0, {}},
        {SLAY_ATTN_COSFORMER, 2 * D, 0, {}},
        {SLAY_ATTN_RFF, M, H * D * M + H * M, {{"omega", 0, {H, D, M}}, {"rff_phase", H * D * M, {H, M}}}},
        // Budget M = 4 < D(D+1)/2: gamma 0.5, frame d = 2 (3 pairs + the constant = 4 features).
        {SLAY_ATTN_SLAY_POLY2, 4, H * D * 2, {{"poly2_frame", 0, {H, D, 2}}}},
    };
}

slay_param_segment_t query_segment(slay_attn_plan_t plan, int32_t index) {
    slay_param_segment_t seg{};
    seg.struct_size = sizeof(seg);
    REQUIRE(slay_attn_plan_get_param_segment(plan, index, &seg) == SLAY_STATUS_SUCCESS);
    return seg;
}

}  // namespace

TEST_SUITE("plan") {

TEST_CASE("feature dimension and parameter layout of every variant match the documented layouts") {
    Handle cpu = make_cpu_handle();
    for (const ExpectedLayout& e : documented_layouts()) {
        const std::string variant_name = text(slay_attn_variant_name(e.variant));
        CAPTURE(variant_name);
        Plan plan = make_plan(cpu, make_small_desc(e.variant));
        slay_attn_variant_t variant = SLAY_ATTN_VARIANT_COUNT_;
        CHECK(slay_attn_plan_get_variant(plan, &variant) == SLAY_STATUS_SUCCESS);
        CHECK(variant == e.variant);

        int64_t features = -1, count = -1;
        int32_t segment_count = -1;
        REQUIRE(slay_attn_plan_get_feature_dim(plan, &features) == SLAY_STATUS_SUCCESS);
        REQUIRE(slay_attn_plan_get_param_count(plan, &count) == SLAY_STATUS_SUCCESS);
        REQUIRE(slay_attn_plan_get_param_segment_count(plan, &segment_count) == SLAY_STATUS_SUCCESS);
        CHECK(features == e.feature_dim);
        CHECK(count == e.param_count);
        REQUIRE(segment_count == static_cast<int32_t>(e.segments.size()));

        int64_t next_offset = 0;  // segments are back to back
        for (int32_t i = 0; i < segment_count; ++i) {
            const ExpectedSegment& want = e.segments[static_cast<size_t>(i)];
            const slay_param_segment_t got = query_segment(plan, i);
            const std::string segment_name = want.name;
            CAPTURE(segment_name);
            REQUIRE(got.name != nullptr);
            CHECK(std::string(got.name) == want.name);
            CHECK(got.offset == want.offset);
            CHECK(got.offset == next_offset);
            REQUIRE(got.rank == static_cast<int32_t>(want.shape.size()));
            int64_t elements = 1;
            for (int32_t d = 0; d < got.rank; ++d) {
                CHECK(got.shape[d] == want.shape[static_cast<size_t>(d)]);
                elements *= got.shape[d];
            }
            next_offset += elements;
        }
        CHECK(next_offset == count);
    }
}

TEST_CASE("param segment queries: index out of range, struct_size too small, NULL pointers") {
    Handle cpu = make_cpu_handle();
    Plan plan = make_plan(cpu, make_small_desc(SLAY_ATTN_SLAY_ANCHOR));
    for (int32_t bad_index : {-1, 2, 1000}) {
        CAPTURE(bad_index);
        slay_param_segment_t seg{};
        seg.struct_size = sizeof(seg);
        check_status(SLAY_STATUS_INVALID_VALUE, [&] { return slay_attn_plan_get_param_segment(plan, bad_index, &seg); });
        CHECK(seg.name == nullptr);
    }
    slay_param_segment_t small{};
    small.struct_size = sizeof(small) - 8;
    check_status(SLAY_STATUS_STRUCT_SIZE, [&] { return slay_attn_plan_get_param_segment(plan, 0, &small); });
    CHECK(small.name == nullptr);
    check_status(SLAY_STATUS_INVALID_ARGUMENT, [&] { return slay_attn_plan_get_param_segment(plan, 0, nullptr); });
    check_status(SLAY_STATUS_INVALID_ARGUMENT, [&] { return slay_attn_plan_get_param_segment(nullptr, 0, &small); });
    int64_t i64 = 0;
    int32_t i32 = 0;
    check_status(SLAY_STATUS_INVALID_ARGUMENT, [&] { return slay_attn_plan_get_param_count(nullptr, &i64); });
    check_status(SLAY_STATUS_INVALID_ARGUMENT, [&] { return slay_attn_plan_get_param_count(plan, nullptr); });
    check_status(SLAY_STATUS_INVALID_ARGUMENT, [&] { return slay_attn_plan_get_param_segment_count(plan, nullptr); });
    check_status(SLAY_STATUS_INVALID_ARGUMENT, [&] { return slay_attn_plan_get_param_segment_count(nullptr, &i32); });
    check_status(SLAY_STATUS_INVALID_ARGUMENT, [&] { return slay_attn_plan_get_feature_dim(plan, nullptr); });
    check_status(SLAY_STATUS_INVALID_ARGUMENT, [&] { return slay_attn_plan_get_feature_dim(nullptr, &i64); });
    check_status(SLAY_STATUS_INVALID_ARGUMENT, [&] { return slay_attn_plan_get_variant(plan, nullptr); });
}

TEST_CASE("plans resolve VALUE_DIM to D and SOFTMAX_SCALE to 1/sqrt(D) when unset") {
    Handle cpu = make_cpu_handle();
    Plan standard = make_plan(cpu, make_desc(SLAY_ATTN_STANDARD, {{SLAY_ATTR_HEAD_DIM, 16}}));
    int64_t value_dim = 0;
    double softmax_scale = 0;
    REQUIRE(slay_attn_plan_get_i64(standard, SLAY_ATTR_VALUE_DIM, &value_dim) == SLAY_STATUS_SUCCESS);
    REQUIRE(slay_attn_plan_get_f64(standard, SLAY_ATTR_SOFTMAX_SCALE, &softmax_scale) == SLAY_STATUS_SUCCESS);
    CHECK(value_dim == 16);
    CHECK(softmax_scale == doctest::Approx(0.25).epsilon(1e-15));

    Desc explicit_desc = make_desc(SLAY_ATTN_STANDARD, {{SLAY_ATTR_HEAD_DIM, 16}, {SLAY_ATTR_VALUE_DIM, 5}});
    REQUIRE(slay_attn_desc_set_f64(explicit_desc, SLAY_ATTR_SOFTMAX_SCALE, 0.7) == SLAY_STATUS_SUCCESS);
    Plan explicit_plan = make_plan(cpu, explicit_desc);
    REQUIRE(slay_attn_plan_get_i64(explicit_plan, SLAY_ATTR_VALUE_DIM, &value_dim) == SLAY_STATUS_SUCCESS);
    REQUIRE(slay_attn_plan_get_f64(explicit_plan, SLAY_ATTR_SOFTMAX_SCALE, &softmax_scale) == SLAY_STATUS_SUCCESS);
    CHECK(value_dim == 5);
    CHECK(softmax_scale == 0.7);
}

TEST_CASE("a plan is an immutable copy: later descriptor changes and its destruction do not reach it") {
    Handle cpu = make_cpu_handle();
    Desc d = make_desc(SLAY_ATTN_SLAY_ANCHOR, {{SLAY_ATTR_NUM_HEADS, 2}});
    Plan plan = make_plan(cpu, d);
    REQUIRE(slay_attn_desc_set_i64(d, SLAY_ATTR_NUM_HEADS, 7) == SLAY_STATUS_SUCCESS);
    d = Desc();  // destroyed
    int64_t heads = 0;
    REQUIRE(slay_attn_plan_get_i64(plan, SLAY_ATTR_NUM_HEADS, &heads) == SLAY_STATUS_SUCCESS);
    CHECK(heads == 2);
}

TEST_CASE("plan attribute queries keep the descriptor's error rules") {
    Handle cpu = make_cpu_handle();
    Plan plan = make_plan(cpu, make_desc(SLAY_ATTN_LINEAR));
    int64_t i = 0;
    double f = 0;
    check_status(SLAY_STATUS_ATTRIBUTE_NOT_APPLICABLE, [&] { return slay_attn_plan_get_i64(plan, SLAY_ATTR_POLY_DIM, &i); });
    check_status(SLAY_STATUS_ATTRIBUTE_TYPE, [&] { return slay_attn_plan_get_f64(plan, SLAY_ATTR_HEAD_DIM, &f); });
    check_status(SLAY_STATUS_UNKNOWN_ATTRIBUTE, [&] { return slay_attn_plan_get_i64(plan, static_cast<slay_attr_t>(99), &i); });
    check_status(SLAY_STATUS_INVALID_ARGUMENT, [&] { return slay_attn_plan_get_i64(nullptr, SLAY_ATTR_HEAD_DIM, &i); });
    check_status(SLAY_STATUS_INVALID_ARGUMENT, [&] { return slay_attn_plan_get_f64(plan, SLAY_ATTR_STABILIZER, nullptr); });
}

TEST_CASE("workspace size queries succeed for every pass; sampling needs workspace iff there are params") {
    Handle cpu = make_cpu_handle();
    for (const ExpectedLayout& e : documented_layouts()) {
        const std::string variant_name = text(slay_attn_variant_name(e.variant));
        CAPTURE(variant_name);
        Plan plan = make_plan(cpu, make_small_desc(e.variant));
        for (slay_pass_t pass : {SLAY_PASS_FORWARD, SLAY_PASS_BACKWARD, SLAY_PASS_SAMPLE}) {
            CAPTURE(pass);
            size_t bytes = 12345;
            CHECK(slay_attn_plan_get_workspace_size(plan, pass, 2, 5, &bytes) == SLAY_STATUS_SUCCESS);
            CHECK(bytes != 12345);
            if (pass == SLAY_PASS_SAMPLE && e.param_count > 0) CHECK(bytes > 0);
        }
        size_t empty = 0;  // an empty batch is a valid question
        CHECK(slay_attn_plan_get_workspace_size(plan, SLAY_PASS_FORWARD, 0, 0, &empty) == SLAY_STATUS_SUCCESS);
    }
}

TEST_CASE("workspace size queries reject bad passes, negative sizes and NULL") {
    Handle cpu = make_cpu_handle();
    Plan plan = make_plan(cpu, make_small_desc(SLAY_ATTN_SLAY_ANCHOR));
    size_t bytes = 777;
    check_status(SLAY_STATUS_INVALID_ARGUMENT,
                 [&] { return slay_attn_plan_get_workspace_size(plan, static_cast<slay_pass_t>(3), 1, 1, &bytes); });
    check_status(SLAY_STATUS_INVALID_VALUE,
                 [&] { return slay_attn_plan_get_workspace_size(plan, SLAY_PASS_FORWARD, -1, 4, &bytes); });
    check_status(SLAY_STATUS_INVALID_VALUE,
                 [&] { return slay_attn_plan_get_workspace_size(plan, SLAY_PASS_BACKWARD, 1, -4, &bytes); });
    CHECK(bytes == 777);
    check_status(SLAY_STATUS_INVALID_ARGUMENT,
                 [&] { return slay_attn_plan_get_workspace_size(plan, SLAY_PASS_FORWARD, 1, 1, nullptr); });
    check_status(SLAY_STATUS_INVALID_ARGUMENT,
                 [&] { return slay_attn_plan_get_workspace_size(nullptr, SLAY_PASS_FORWARD, 1, 1, &bytes); });
}

TEST_CASE("workspace sizes never under-report: sizes that overflow are rejected") {
    Handle cpu = make_cpu_handle();
    Plan plan = make_plan(cpu, make_small_desc(SLAY_ATTN_LINEAR));
    // (T, D) fp64 slices of q, k, v and out alone need 4 * 8 * 8 * T bytes:
    // beyond 2^64 for these T, so no size_t answer is right.
    for (int64_t seq_len : {int64_t{1} << 58, int64_t{1} << 60, INT64_MAX}) {
        CAPTURE(seq_len);
        for (slay_pass_t pass : {SLAY_PASS_FORWARD, SLAY_PASS_BACKWARD}) {
            CAPTURE(pass);
            size_t bytes = 0;
            const slay_status_t s = slay_attn_plan_get_workspace_size(plan, pass, 1, seq_len, &bytes);
            CAPTURE(bytes);
            CHECK(status_text(s) == "SLAY_STATUS_INVALID_VALUE");
        }
    }
}

TEST_CASE("a feature dimension beyond the limit is INVALID_VALUE at plan creation") {
    Handle cpu = make_cpu_handle();
    Desc huge = make_desc(SLAY_ATTN_SLAY_ANCHOR,
                          {{SLAY_ATTR_NUM_QUAD_NODES, 16}, {SLAY_ATTR_POLY_DIM, 1024}, {SLAY_ATTR_NUM_FEATURES, 4096}});
    const auto untouched = reinterpret_cast<slay_attn_plan_t>(uintptr_t{0x5678});
    slay_attn_plan_t plan = untouched;
    check_status(SLAY_STATUS_INVALID_VALUE, [&] { return slay_attn_plan_create(&plan, cpu, huge); });
    CHECK(plan == untouched);
}

TEST_CASE("a slay_poly2 budget that leaves no frame dimension is INVALID_VALUE at plan creation") {
    Handle cpu = make_cpu_handle();
    // Budget 1 with the (auto) constant feature leaves d = 0; with gamma = 0 it is d = 1.
    Desc none = make_desc(SLAY_ATTN_SLAY_POLY2, {{SLAY_ATTR_NUM_FEATURES, 1}});
    const auto untouched = reinterpret_cast<slay_attn_plan_t>(uintptr_t{0x5678});
    slay_attn_plan_t plan = untouched;
    check_status(SLAY_STATUS_INVALID_VALUE, [&] { return slay_attn_plan_create(&plan, cpu, none); });
    CHECK(std::string(slay_last_error_message()).find("num_features=1") != std::string::npos);
    CHECK(plan == untouched);
    REQUIRE(slay_attn_desc_set_f64(none, SLAY_ATTR_POLY2_GAMMA, 0.0) == SLAY_STATUS_SUCCESS);
    Plan one = make_plan(cpu, none);
    int64_t features = 0;
    REQUIRE(slay_attn_plan_get_feature_dim(one, &features) == SLAY_STATUS_SUCCESS);
    CHECK(features == 1);
}

TEST_CASE("plan creation rejects NULL arguments") {
    Handle cpu = make_cpu_handle();
    Desc d = make_desc(SLAY_ATTN_LINEAR);
    slay_attn_plan_t plan = nullptr;
    check_status(SLAY_STATUS_INVALID_ARGUMENT, [&] { return slay_attn_plan_create(nullptr, cpu, d); });
    check_status(SLAY_STATUS_INVALID_ARGUMENT, [&] { return slay_attn_plan_create(&plan, nullptr, d); });
    check_status(SLAY_STATUS_INVALID_ARGUMENT, [&] { return slay_attn_plan_create(&plan, cpu, nullptr); });
    CHECK(plan == nullptr);
}

}  // TEST_SUITE plan
