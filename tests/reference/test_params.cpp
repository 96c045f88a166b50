// test_params.cpp -- validate_param_values on fp32 parameter vectors
// (param_layout order): TensorSketch hashes must be integers in [0, P), signs
// +-1, and every value of every segment finite; errors name segment and index.
#include <doctest/doctest.h>

#include <limits>

#include "support.hpp"

using namespace slay_test;

namespace {

std::vector<float> float_params(const AttnConfig& cfg, uint64_t seed) {
    std::mt19937_64 rng(seed);
    const std::vector<double> p = random_params(cfg, rng);
    return std::vector<float>(p.begin(), p.end());
}

int64_t offset_of(const AttnConfig& cfg, const char* name) {
    for (const slay::ParamSegment& s : slay::param_layout(cfg))
        if (std::string(s.name) == name) return s.offset;
    return -1;
}

}  // namespace

TEST_SUITE("params") {
    TEST_CASE("valid random parameters pass for every variant") {
        for (slay_attn_variant_t v : all_variants()) {
            const AttnConfig cfg = small_config(v, true);
            const std::vector<float> p = float_params(cfg, 1);
            const slay::Status st = slay::cpu::validate_param_values(cfg, p.empty() ? nullptr : p.data());
            INFO(std::string(variant_name(v)), ": ", st.message());
            CHECK(st.ok());
        }
    }
    TEST_CASE("TensorSketch hashes and signs") {
        AttnConfig cfg = small_config(SLAY_ATTN_SLAY_TENSORSKETCH, true);
        cfg.poly_dim = 64;
        std::vector<float> p = float_params(cfg, 2);
        p[offset_of(cfg, "ts_hash1") + 3] = 7.5f;
        slay::Status st = slay::cpu::validate_param_values(cfg, p.data());
        CHECK(st.code() == SLAY_STATUS_INVALID_VALUE);
        CHECK(st.message() == "params ts_hash1[3]=7.5 is not an integer in [0, 64)");

        p = float_params(cfg, 2);
        p[offset_of(cfg, "ts_hash2") + 0] = 64.0f;
        st = slay::cpu::validate_param_values(cfg, p.data());
        CHECK(st.message() == "params ts_hash2[0]=64 is not an integer in [0, 64)");

        p = float_params(cfg, 2);
        p[offset_of(cfg, "ts_hash2") + 1] = -1.0f;
        CHECK(slay::cpu::validate_param_values(cfg, p.data()).code() == SLAY_STATUS_INVALID_VALUE);

        p = float_params(cfg, 2);
        p[offset_of(cfg, "ts_sign1") + 2] = 0.5f;
        st = slay::cpu::validate_param_values(cfg, p.data());
        CHECK(st.code() == SLAY_STATUS_INVALID_VALUE);
        CHECK(st.message() == "params ts_sign1[2]=0.5 is not +1 or -1");
    }
    TEST_CASE("non-finite values name their segment and index") {
        const AttnConfig cfg = small_config(SLAY_ATTN_SLAY_NYSTROM, true);
        std::vector<float> p = float_params(cfg, 3);
        p[offset_of(cfg, "nystrom_w") + 4] = std::numeric_limits<float>::infinity();
        slay::Status st = slay::cpu::validate_param_values(cfg, p.data());
        CHECK(st.code() == SLAY_STATUS_INVALID_VALUE);
        CHECK(st.message() == "params nystrom_w[4]=inf is not finite");

        p = float_params(cfg, 3);
        p[5] = std::numeric_limits<float>::quiet_NaN();
        st = slay::cpu::validate_param_values(cfg, p.data());
        CHECK(st.code() == SLAY_STATUS_INVALID_VALUE);
        CHECK(st.message().find("params omega[5]=") == 0);
    }
}
