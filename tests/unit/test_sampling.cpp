// test_sampling.cpp -- slay_attn_features_sample on the CPU backend:
// determinism (same seed and offset -> bitwise equal; another seed or offset
// -> different), and the distribution of every segment kind: unit-norm
// anchors, TensorSketch hashes in [0, P) and signs +-1, RFF phases in
// [0, 2 pi), performer_w with std ~ 1/sqrt(D), omega ~ N(0, 1), a finite
// symmetric Nystrom matrix, orthonormal slay_poly2 frames. A variant without
// parameters samples nothing.
#include <cmath>
#include <string>
#include <vector>

#include "support.hpp"

using namespace slay_test;

namespace {

constexpr double kTwoPi = 6.283185307179586;

// One plan's parameter vector, drawn with slay_attn_features_sample.
class SampledParams {
public:
    SampledParams(slay_attn_variant_t variant, std::initializer_list<IntAttr> attrs, uint64_t seed, uint64_t offset)
        : handle_(make_cpu_handle()), plan_(make_plan(handle_, make_desc(variant, attrs))) {
        int64_t count = 0;
        REQUIRE(slay_attn_plan_get_param_count(plan_, &count) == SLAY_STATUS_SUCCESS);
        values.assign(static_cast<size_t>(count), NAN);
        size_t bytes = 0;
        REQUIRE(slay_attn_plan_get_workspace_size(plan_, SLAY_PASS_SAMPLE, 0, 0, &bytes) == SLAY_STATUS_SUCCESS);
        Buffer workspace(bytes);
        slay_tensor_t t = contiguous_tensor(values.data(), SLAY_DTYPE_FLOAT32, {count});
        const slay_status_t s =
            slay_attn_features_sample(plan_, seed, offset, count ? &t : nullptr, workspace.data(), bytes, nullptr);
        const std::string message = slay_last_error_message();
        INFO(message);
        REQUIRE(status_text(s) == "SLAY_STATUS_SUCCESS");
    }

    struct Segment {
        const float* data;
        int64_t count;
        int64_t rows, cols;  // rank-2 view: leading dims x last dim
    };

    Segment segment(const char* name) const {
        const slay_param_segment_t s = find_param_segment(plan_, name);
        int64_t count = 1;
        for (int32_t d = 0; d < s.rank; ++d) count *= s.shape[d];
        const int64_t cols = s.shape[s.rank - 1];
        return {values.data() + s.offset, count, count / cols, cols};
    }

    std::vector<float> values;

private:
    Handle handle_;
    Plan plan_;
};

double mean_of(const SampledParams::Segment& s) {
    double sum = 0;
    for (int64_t i = 0; i < s.count; ++i) sum += s.data[i];
    return sum / static_cast<double>(s.count);
}

double std_of(const SampledParams::Segment& s) {
    const double mean = mean_of(s);
    double sum = 0;
    for (int64_t i = 0; i < s.count; ++i) sum += (s.data[i] - mean) * (s.data[i] - mean);
    return std::sqrt(sum / static_cast<double>(s.count - 1));
}

const std::initializer_list<IntAttr> kAnchorAttrs = {
    {SLAY_ATTR_NUM_HEADS, 2}, {SLAY_ATTR_HEAD_DIM, 16}, {SLAY_ATTR_NUM_QUAD_NODES, 2},
    {SLAY_ATTR_NUM_FEATURES, 8}, {SLAY_ATTR_POLY_DIM, 32}};

}  // namespace

TEST_SUITE("sampling") {

TEST_CASE("sampling is deterministic in (seed, offset) and changes with either") {
    const SampledParams first(SLAY_ATTN_SLAY_ANCHOR, kAnchorAttrs, 42, 0);
    const SampledParams again(SLAY_ATTN_SLAY_ANCHOR, kAnchorAttrs, 42, 0);
    const SampledParams other_seed(SLAY_ATTN_SLAY_ANCHOR, kAnchorAttrs, 43, 0);
    const SampledParams other_offset(SLAY_ATTN_SLAY_ANCHOR, kAnchorAttrs, 42, 1000);
    REQUIRE(first.values.size() == again.values.size());
    CHECK(std::memcmp(first.values.data(), again.values.data(), first.values.size() * sizeof(float)) == 0);
    CHECK(first.values != other_seed.values);
    CHECK(first.values != other_offset.values);
    for (float x : first.values) REQUIRE(std::isfinite(x));
}

TEST_CASE("omega is standard normal and anchors are unit rows") {
    const SampledParams p(SLAY_ATTN_SLAY_ANCHOR, kAnchorAttrs, 7, 0);
    const auto omega = p.segment("omega");  // 2*2*16*8 = 512 draws
    CHECK(std::fabs(mean_of(omega)) < 0.25);
    CHECK(std_of(omega) == doctest::Approx(1.0).epsilon(0.15));
    const auto anchors = p.segment("anchors");
    for (int64_t r = 0; r < anchors.rows; ++r) {
        double norm2 = 0;
        for (int64_t c = 0; c < anchors.cols; ++c) norm2 += double(anchors.data[r * anchors.cols + c]) * anchors.data[r * anchors.cols + c];
        CHECK(std::sqrt(norm2) == doctest::Approx(1.0).epsilon(1e-5));
    }
}

TEST_CASE("TensorSketch hashes are integers in [0, P) and signs are +-1, both values occurring") {
    const int64_t P = 5;
    const SampledParams p(SLAY_ATTN_SLAY_TENSORSKETCH, {{SLAY_ATTR_HEAD_DIM, 64}, {SLAY_ATTR_POLY_DIM, P}}, 9, 3);
    for (const char* name : {"ts_hash1", "ts_hash2"}) {
        const std::string segment = name;
        CAPTURE(segment);
        const auto hash = p.segment(name);
        for (int64_t i = 0; i < hash.count; ++i) {
            const float h = hash.data[i];
            CHECK(h == std::floor(h));
            CHECK(h >= 0);
            CHECK(h < P);
        }
    }
    for (const char* name : {"ts_sign1", "ts_sign2"}) {
        const std::string segment = name;
        CAPTURE(segment);
        const auto sign = p.segment(name);
        int plus = 0;
        for (int64_t i = 0; i < sign.count; ++i) {
            CHECK((sign.data[i] == 1.0f || sign.data[i] == -1.0f));
            plus += sign.data[i] == 1.0f;
        }
        CHECK(plus > 0);
        CHECK(plus < sign.count);
    }
}

TEST_CASE("RFF phases lie in [0, 2 pi)") {
    const SampledParams p(SLAY_ATTN_RFF, {{SLAY_ATTR_NUM_HEADS, 4}, {SLAY_ATTR_HEAD_DIM, 8}, {SLAY_ATTR_NUM_FEATURES, 256}}, 5, 0);
    const auto phase = p.segment("rff_phase");
    double sum = 0;
    for (int64_t i = 0; i < phase.count; ++i) {
        CHECK(phase.data[i] >= 0.0f);
        CHECK(phase.data[i] < kTwoPi);
        sum += phase.data[i];
    }
    CHECK(sum / static_cast<double>(phase.count) == doctest::Approx(kTwoPi / 2).epsilon(0.1));
}

TEST_CASE("performer_w has standard deviation ~ 1/sqrt(D)") {
    const int64_t D = 16;
    const SampledParams p(SLAY_ATTN_PERFORMER, {{SLAY_ATTR_NUM_HEADS, 2}, {SLAY_ATTR_HEAD_DIM, D}, {SLAY_ATTR_NUM_FEATURES, 256}}, 11, 0);
    const auto w = p.segment("performer_w");  // 8192 draws: std within ~1% at 1 sigma
    CHECK(std_of(w) == doctest::Approx(1.0 / std::sqrt(double(D))).epsilon(0.05));
    CHECK(std::fabs(mean_of(w)) < 0.02);
}

TEST_CASE("the Nystrom matrix is finite and symmetric") {
    const SampledParams p(SLAY_ATTN_SLAY_NYSTROM, {{SLAY_ATTR_HEAD_DIM, 8}, {SLAY_ATTR_POLY_DIM, 12}}, 13, 0);
    const auto w = p.segment("nystrom_w");
    REQUIRE(w.rows == w.cols);
    double largest = 0;
    for (int64_t i = 0; i < w.count; ++i) {
        REQUIRE(std::isfinite(w.data[i]));
        largest = std::fmax(largest, std::fabs(w.data[i]));
    }
    CHECK(largest > 0);
    for (int64_t r = 0; r < w.rows; ++r)
        for (int64_t c = r + 1; c < w.cols; ++c)
            CHECK(std::fabs(w.data[r * w.cols + c] - w.data[c * w.cols + r]) <= 1e-5 * largest);
}

TEST_CASE("slay_poly2 frames: (H, D, d) with orthonormal columns per head, heads distinct") {
    // D = 16, budget 100: gamma auto = 0.5 (136 > 100), d = 13 (91 + 1 <= 100).
    const int64_t H = 3, D = 16, d = 13;
    const SampledParams p(SLAY_ATTN_SLAY_POLY2,
                          {{SLAY_ATTR_NUM_HEADS, H}, {SLAY_ATTR_HEAD_DIM, D}, {SLAY_ATTR_NUM_FEATURES, 100}}, 17, 0);
    const auto s = p.segment("poly2_frame");
    REQUIRE(s.count == H * D * d);
    REQUIRE(s.cols == d);
    double worst = 0;  // max |S_h^T S_h - I| over heads (fp32 rounding of an fp64-orthonormal block)
    for (int64_t h = 0; h < H; ++h) {
        const float* S = s.data + h * D * d;
        for (int64_t a = 0; a < d; ++a)
            for (int64_t b = 0; b < d; ++b) {
                double g = 0;
                for (int64_t k = 0; k < D; ++k) g += double(S[k * d + a]) * S[k * d + b];
                worst = std::fmax(worst, std::fabs(g - (a == b ? 1.0 : 0.0)));
            }
    }
    CHECK(worst < 1e-6);
    CHECK(s.data[0] != s.data[D * d]);  // every head draws its own frame
}

TEST_CASE("a variant without parameters samples nothing and succeeds with NULL params") {
    Handle cpu = make_cpu_handle();
    Plan plan = make_plan(cpu, make_desc(SLAY_ATTN_LINEAR));
    CHECK(slay_attn_features_sample(plan, 1, 2, nullptr, nullptr, 0, nullptr) == SLAY_STATUS_SUCCESS);
    slay_tensor_t empty = contiguous_tensor(nullptr, SLAY_DTYPE_FLOAT32, {0});
    CHECK(slay_attn_features_sample(plan, 1, 2, &empty, nullptr, 0, nullptr) == SLAY_STATUS_SUCCESS);
}

}  // TEST_SUITE sampling
