// test_descriptor.cpp -- descriptors and variant names: every variant's SPEC
// defaults read back through get_i64/get_f64; set/get round trips; unknown
// attribute, wrong type, attribute not applicable and out-of-range values
// (stored value unchanged, message set); attribute names; variant names
// round trip, registry aliases, unknown names.
#include <cmath>
#include <limits>
#include <string>

#include "raw_enum_calls.h"
#include "support.hpp"

using namespace slay_test;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

const slay_attn_variant_t kAllVariants[] = {
    SLAY_ATTN_STANDARD, SLAY_ATTN_YAT, SLAY_ATTN_YAT_SPHERICAL, SLAY_ATTN_SLAY_ANCHOR,
    SLAY_ATTN_SLAY_LAPLACE, SLAY_ATTN_SLAY_HADAMARD, SLAY_ATTN_SLAY_TENSORSKETCH,
    SLAY_ATTN_SLAY_RANDOM_MACLAURIN, SLAY_ATTN_SLAY_NYSTROM, SLAY_ATTN_PERFORMER,
    SLAY_ATTN_LINEAR, SLAY_ATTN_COSFORMER, SLAY_ATTN_RFF, SLAY_ATTN_SLAY_POLY2,
};

struct AttrInfo {
    slay_attr_t attr;
    const char* name;
    bool is_integer;
    double valid_nondefault;  // in range for every variant the attribute applies to
};

const AttrInfo kAllAttrs[] = {
    {SLAY_ATTR_NUM_HEADS, "num_heads", true, 3},
    {SLAY_ATTR_HEAD_DIM, "head_dim", true, 48},
    {SLAY_ATTR_VALUE_DIM, "value_dim", true, 24},
    {SLAY_ATTR_CAUSAL, "causal", true, 0},
    {SLAY_ATTR_IO_DTYPE, "io_dtype", true, SLAY_DTYPE_BFLOAT16},
    {SLAY_ATTR_ALLOW_TF32, "allow_tf32", true, 1},
    {SLAY_ATTR_NUM_QUAD_NODES, "num_quad_nodes", true, 16},
    {SLAY_ATTR_NUM_FEATURES, "num_features", true, 4096},
    {SLAY_ATTR_POLY_DIM, "poly_dim", true, 1024},
    {SLAY_ATTR_CHUNK_SIZE, "chunk_size", true, 4096},
    {SLAY_ATTR_STABILIZER_MODE, "stabilizer_mode", true, -1},  // toggled: see round trip
    {SLAY_ATTR_COSFORMER_LENGTH, "cosformer_length", true, 1099511627776.0},
    {SLAY_ATTR_EPSILON, "epsilon", false, 1e3},
    {SLAY_ATTR_STABILIZER, "stabilizer", false, 1.0},
    {SLAY_ATTR_SCORE_SCALE, "score_scale", false, 1e6},
    {SLAY_ATTR_SOFTMAX_SCALE, "softmax_scale", false, 0.3},
    {SLAY_ATTR_PRF_CLAMP, "prf_clamp", false, 80},
    {SLAY_ATTR_KERNEL_CLAMP, "kernel_clamp", false, 1.0},
    {SLAY_ATTR_NYSTROM_REG, "nystrom_reg", false, 0.0},
    {SLAY_ATTR_NORM_EPS, "norm_eps", false, 1e-2},
    {SLAY_ATTR_POLY2_GAMMA, "poly2_gamma", false, 0.0},
};

// Reads an attribute through the getter of its type; false if not readable.
bool read_attr(slay_attn_desc_t d, const AttrInfo& a, double* value) {
    if (a.is_integer) {
        int64_t i = 0;
        if (slay_attn_desc_get_i64(d, a.attr, &i) != SLAY_STATUS_SUCCESS) return false;
        *value = static_cast<double>(i);
        return true;
    }
    return slay_attn_desc_get_f64(d, a.attr, value) == SLAY_STATUS_SUCCESS;
}

slay_status_t write_attr(slay_attn_desc_t d, const AttrInfo& a, double value) {
    return a.is_integer ? slay_attn_desc_set_i64(d, a.attr, static_cast<int64_t>(value))
                        : slay_attn_desc_set_f64(d, a.attr, value);
}

const AttrInfo& info(slay_attr_t attr) {
    for (const AttrInfo& a : kAllAttrs)
        if (a.attr == attr) return a;
    FAIL("attribute missing from kAllAttrs");
    return kAllAttrs[0];
}

struct ExpectedDefault {
    slay_attr_t attr;
    double value;
};

void check_defaults(slay_attn_variant_t variant, std::initializer_list<ExpectedDefault> expected) {
    const std::string variant_name = text(slay_attn_variant_name(variant));
    CAPTURE(variant_name);
    Desc d = make_desc(variant);
    for (const ExpectedDefault& e : expected) {
        const AttrInfo& a = info(e.attr);
        const std::string attr_name = a.name;
        CAPTURE(attr_name);
        double value = kNaN;
        REQUIRE(read_attr(d, a, &value));
        CHECK(value == e.value);
    }
}

}  // namespace

TEST_SUITE("descriptor") {

TEST_CASE("attributes common to all variants default to H=1, D=64, Dv=0 (=D), causal, fp32, no TF32") {
    for (slay_attn_variant_t v : kAllVariants)
        check_defaults(v, {{SLAY_ATTR_NUM_HEADS, 1},
                           {SLAY_ATTR_HEAD_DIM, 64},
                           {SLAY_ATTR_VALUE_DIM, 0},
                           {SLAY_ATTR_CAUSAL, 1},
                           {SLAY_ATTR_IO_DTYPE, SLAY_DTYPE_FLOAT32},
                           {SLAY_ATTR_ALLOW_TF32, 0}});
}

TEST_CASE("per-variant SPEC defaults") {
    const std::initializer_list<ExpectedDefault> kronecker_add = {
        {SLAY_ATTR_NUM_QUAD_NODES, 1}, {SLAY_ATTR_NUM_FEATURES, 8},  {SLAY_ATTR_POLY_DIM, 64},
        {SLAY_ATTR_CHUNK_SIZE, 128},   {SLAY_ATTR_STABILIZER_MODE, SLAY_STABILIZER_ADD},
        {SLAY_ATTR_EPSILON, 1e-6},     {SLAY_ATTR_STABILIZER, 1e-6}, {SLAY_ATTR_PRF_CLAMP, 20},
        {SLAY_ATTR_NORM_EPS, 1e-12}};
    check_defaults(SLAY_ATTN_SLAY_ANCHOR, kronecker_add);
    check_defaults(SLAY_ATTN_SLAY_RANDOM_MACLAURIN, kronecker_add);
    check_defaults(SLAY_ATTN_SLAY_NYSTROM, kronecker_add);
    check_defaults(SLAY_ATTN_SLAY_NYSTROM, {{SLAY_ATTR_NYSTROM_REG, 1e-3}});
    check_defaults(SLAY_ATTN_SLAY_TENSORSKETCH,
                   {{SLAY_ATTR_NUM_QUAD_NODES, 1},
                    {SLAY_ATTR_NUM_FEATURES, 8},
                    {SLAY_ATTR_POLY_DIM, 64},
                    {SLAY_ATTR_CHUNK_SIZE, 256},
                    {SLAY_ATTR_STABILIZER_MODE, SLAY_STABILIZER_CLAMP}});
    for (slay_attn_variant_t v : {SLAY_ATTN_SLAY_LAPLACE, SLAY_ATTN_SLAY_HADAMARD})
        check_defaults(v, {{SLAY_ATTR_NUM_QUAD_NODES, 2},
                           {SLAY_ATTR_NUM_FEATURES, 32},
                           {SLAY_ATTR_CHUNK_SIZE, 512},
                           {SLAY_ATTR_STABILIZER_MODE, SLAY_STABILIZER_CLAMP},
                           {SLAY_ATTR_EPSILON, 1e-6}});
    for (slay_attn_variant_t v : {SLAY_ATTN_PERFORMER, SLAY_ATTN_RFF})
        check_defaults(v, {{SLAY_ATTR_NUM_FEATURES, 64}, {SLAY_ATTR_CHUNK_SIZE, 128}});
    check_defaults(SLAY_ATTN_YAT, {{SLAY_ATTR_EPSILON, 1e-6}, {SLAY_ATTR_SCORE_SCALE, 1}});
    check_defaults(SLAY_ATTN_YAT_SPHERICAL,
                   {{SLAY_ATTR_EPSILON, 1e-2},
                    {SLAY_ATTR_SCORE_SCALE, 1},
                    {SLAY_ATTR_KERNEL_CLAMP, 1e-6},
                    {SLAY_ATTR_STABILIZER, 1e-6},
                    {SLAY_ATTR_NORM_EPS, 1e-12}});
    check_defaults(SLAY_ATTN_STANDARD, {{SLAY_ATTR_SOFTMAX_SCALE, 0}});  // 0 = 1/sqrt(D) at plan time
    check_defaults(SLAY_ATTN_COSFORMER, {{SLAY_ATTR_COSFORMER_LENGTH, 0}, {SLAY_ATTR_CHUNK_SIZE, 128}});
    check_defaults(SLAY_ATTN_LINEAR, {{SLAY_ATTR_CHUNK_SIZE, 128}});
    check_defaults(SLAY_ATTN_SLAY_POLY2, {{SLAY_ATTR_NUM_FEATURES, 1024},  // the feature budget
                                          {SLAY_ATTR_CHUNK_SIZE, 128},
                                          {SLAY_ATTR_STABILIZER_MODE, SLAY_STABILIZER_ADD},
                                          {SLAY_ATTR_STABILIZER, 1e-6},
                                          {SLAY_ATTR_NORM_EPS, 1e-12},
                                          {SLAY_ATTR_POLY2_GAMMA, -1}});  // auto
}

TEST_CASE("attributes a variant does not use are ATTRIBUTE_NOT_APPLICABLE for get and set") {
    struct NotApplicable {
        slay_attn_variant_t variant;
        slay_attr_t attr;
    };
    const NotApplicable cases[] = {
        {SLAY_ATTN_STANDARD, SLAY_ATTR_POLY_DIM},         {SLAY_ATTN_STANDARD, SLAY_ATTR_EPSILON},
        {SLAY_ATTN_STANDARD, SLAY_ATTR_CHUNK_SIZE},       {SLAY_ATTN_YAT, SLAY_ATTR_SOFTMAX_SCALE},
        {SLAY_ATTN_YAT, SLAY_ATTR_STABILIZER},            {SLAY_ATTN_SLAY_ANCHOR, SLAY_ATTR_KERNEL_CLAMP},
        {SLAY_ATTN_SLAY_ANCHOR, SLAY_ATTR_NYSTROM_REG},   {SLAY_ATTN_SLAY_LAPLACE, SLAY_ATTR_POLY_DIM},
        {SLAY_ATTN_PERFORMER, SLAY_ATTR_NUM_QUAD_NODES},  {SLAY_ATTN_LINEAR, SLAY_ATTR_NUM_FEATURES},
        {SLAY_ATTN_LINEAR, SLAY_ATTR_COSFORMER_LENGTH},   {SLAY_ATTN_COSFORMER, SLAY_ATTR_EPSILON},
        {SLAY_ATTN_RFF, SLAY_ATTR_PRF_CLAMP},             {SLAY_ATTN_YAT_SPHERICAL, SLAY_ATTR_POLY_DIM},
        {SLAY_ATTN_SLAY_POLY2, SLAY_ATTR_EPSILON},        {SLAY_ATTN_SLAY_POLY2, SLAY_ATTR_POLY_DIM},
        {SLAY_ATTN_SLAY_POLY2, SLAY_ATTR_PRF_CLAMP},      {SLAY_ATTN_SLAY_ANCHOR, SLAY_ATTR_POLY2_GAMMA},
    };
    for (const NotApplicable& c : cases) {
        const AttrInfo& a = info(c.attr);
        const std::string variant_name = text(slay_attn_variant_name(c.variant));
        CAPTURE(variant_name);
        const std::string attr_name = a.name;
        CAPTURE(attr_name);
        Desc d = make_desc(c.variant);
        double value = 0;
        check_status(SLAY_STATUS_ATTRIBUTE_NOT_APPLICABLE, [&] { return write_attr(d, a, a.valid_nondefault); });
        check_status(SLAY_STATUS_ATTRIBUTE_NOT_APPLICABLE, [&] {
            if (a.is_integer) {
                int64_t i = 0;
                return slay_attn_desc_get_i64(d, a.attr, &i);
            }
            return slay_attn_desc_get_f64(d, a.attr, &value);
        });
    }
}

TEST_CASE("every applicable attribute round-trips through set and get, on every variant") {
    for (slay_attn_variant_t v : kAllVariants) {
        const std::string variant_name = text(slay_attn_variant_name(v));
        CAPTURE(variant_name);
        int applicable = 0;
        for (const AttrInfo& a : kAllAttrs) {
            const std::string attr_name = a.name;
            CAPTURE(attr_name);
            Desc d = make_desc(v);
            double before = kNaN;
            if (!read_attr(d, a, &before)) {
                CHECK(write_attr(d, a, a.valid_nondefault) == SLAY_STATUS_ATTRIBUTE_NOT_APPLICABLE);
                continue;
            }
            ++applicable;
            const double wanted = a.attr == SLAY_ATTR_STABILIZER_MODE ? 1 - before : a.valid_nondefault;
            REQUIRE(wanted != before);
            CHECK(status_text(write_attr(d, a, wanted)) == "SLAY_STATUS_SUCCESS");
            double after = kNaN;
            REQUIRE(read_attr(d, a, &after));
            CHECK(after == wanted);
        }
        CHECK(applicable >= 6);  // the six common attributes at least
    }
}

TEST_CASE("unknown attribute ids are UNKNOWN_ATTRIBUTE") {
    Desc d = make_desc(SLAY_ATTN_SLAY_ANCHOR);
    for (int raw : {13, 31, 41, 1000, -1}) {
        CAPTURE(raw);
        // Through C (raw_enum_calls.c): -1 is no slay_attr_t value in C++.
        int64_t i = 0;
        double f = 0;
        check_status(SLAY_STATUS_UNKNOWN_ATTRIBUTE, [&] { return raw_desc_set_i64(d, raw, 1); });
        CHECK(std::string(slay_last_error_message()) == "unknown attribute id " + std::to_string(raw));
        check_status(SLAY_STATUS_UNKNOWN_ATTRIBUTE, [&] { return raw_desc_set_f64(d, raw, 1.0); });
        check_status(SLAY_STATUS_UNKNOWN_ATTRIBUTE, [&] { return raw_desc_get_i64(d, raw, &i); });
        check_status(SLAY_STATUS_UNKNOWN_ATTRIBUTE, [&] { return raw_desc_get_f64(d, raw, &f); });
        CHECK(raw_attr_name(raw) == nullptr);
    }
}

TEST_CASE("attribute names") {
    for (const AttrInfo& a : kAllAttrs) {
        REQUIRE(slay_attr_name(a.attr) != nullptr);
        CHECK(std::string(slay_attr_name(a.attr)) == a.name);
    }
}

TEST_CASE("accessing an attribute with the other type is ATTRIBUTE_TYPE, value unchanged") {
    Desc d = make_desc(SLAY_ATTN_SLAY_ANCHOR);
    int64_t heads = 0;
    double epsilon = 0;
    check_status(SLAY_STATUS_ATTRIBUTE_TYPE, [&] { return slay_attn_desc_set_f64(d, SLAY_ATTR_NUM_HEADS, 4.0); });
    check_status(SLAY_STATUS_ATTRIBUTE_TYPE, [&] { return slay_attn_desc_set_i64(d, SLAY_ATTR_EPSILON, 1); });
    check_status(SLAY_STATUS_ATTRIBUTE_TYPE, [&] { return slay_attn_desc_get_f64(d, SLAY_ATTR_NUM_HEADS, &epsilon); });
    check_status(SLAY_STATUS_ATTRIBUTE_TYPE, [&] { return slay_attn_desc_get_i64(d, SLAY_ATTR_EPSILON, &heads); });
    REQUIRE(slay_attn_desc_get_i64(d, SLAY_ATTR_NUM_HEADS, &heads) == SLAY_STATUS_SUCCESS);
    REQUIRE(slay_attn_desc_get_f64(d, SLAY_ATTR_EPSILON, &epsilon) == SLAY_STATUS_SUCCESS);
    CHECK(heads == 1);
    CHECK(epsilon == 1e-6);
}

TEST_CASE("out-of-range values are INVALID_VALUE and leave the stored value unchanged") {
    struct OutOfRange {
        slay_attn_variant_t variant;  // one the attribute applies to
        slay_attr_t attr;
        std::initializer_list<double> bad_values;
    };
    const double two_pow_40 = 1099511627776.0;
    const OutOfRange cases[] = {
        {SLAY_ATTN_STANDARD, SLAY_ATTR_NUM_HEADS, {0, -1, 65537}},
        {SLAY_ATTN_STANDARD, SLAY_ATTR_HEAD_DIM, {0, 1025}},
        {SLAY_ATTN_STANDARD, SLAY_ATTR_VALUE_DIM, {-1, 1025}},
        {SLAY_ATTN_STANDARD, SLAY_ATTR_CAUSAL, {-1, 2}},
        {SLAY_ATTN_STANDARD, SLAY_ATTR_IO_DTYPE, {-1, 3}},
        {SLAY_ATTN_STANDARD, SLAY_ATTR_ALLOW_TF32, {2}},
        {SLAY_ATTN_SLAY_ANCHOR, SLAY_ATTR_NUM_QUAD_NODES, {0, 17}},
        {SLAY_ATTN_SLAY_ANCHOR, SLAY_ATTR_NUM_FEATURES, {0, 4097}},
        {SLAY_ATTN_SLAY_ANCHOR, SLAY_ATTR_POLY_DIM, {0, 1025}},
        {SLAY_ATTN_SLAY_ANCHOR, SLAY_ATTR_CHUNK_SIZE, {0, 4097}},
        {SLAY_ATTN_SLAY_ANCHOR, SLAY_ATTR_STABILIZER_MODE, {-1, 2}},
        {SLAY_ATTN_COSFORMER, SLAY_ATTR_COSFORMER_LENGTH, {-1, two_pow_40 + 1}},
        {SLAY_ATTN_SLAY_ANCHOR, SLAY_ATTR_EPSILON, {0, -1e-6, 1000.5, kNaN, kInf}},
        {SLAY_ATTN_SLAY_ANCHOR, SLAY_ATTR_STABILIZER, {-1e-9, 1.5, kNaN, -kInf}},
        {SLAY_ATTN_YAT, SLAY_ATTR_SCORE_SCALE, {0, -1, 2e6, kNaN}},
        {SLAY_ATTN_STANDARD, SLAY_ATTR_SOFTMAX_SCALE, {-0.5, 2e6, kNaN}},
        {SLAY_ATTN_SLAY_ANCHOR, SLAY_ATTR_PRF_CLAMP, {0, 81, kNaN}},
        {SLAY_ATTN_YAT_SPHERICAL, SLAY_ATTR_KERNEL_CLAMP, {0, 1.5, kNaN}},
        {SLAY_ATTN_SLAY_NYSTROM, SLAY_ATTR_NYSTROM_REG, {-1e-3, 1001, kNaN}},
        {SLAY_ATTN_SLAY_ANCHOR, SLAY_ATTR_NORM_EPS, {0, 0.02, kNaN}},
        {SLAY_ATTN_SLAY_POLY2, SLAY_ATTR_POLY2_GAMMA, {-1.5, 1000.5, kNaN, kInf}},
    };
    for (const OutOfRange& c : cases) {
        const AttrInfo& a = info(c.attr);
        const std::string attr_name = a.name;
        CAPTURE(attr_name);
        Desc d = make_desc(c.variant);
        double before = kNaN;
        REQUIRE(read_attr(d, a, &before));
        for (double bad : c.bad_values) {
            CAPTURE(bad);
            check_status(SLAY_STATUS_INVALID_VALUE, [&] { return write_attr(d, a, bad); });
            double after = kNaN;
            REQUIRE(read_attr(d, a, &after));
            CHECK(after == before);
        }
    }
}

TEST_CASE("NULL descriptor and NULL out-pointers are INVALID_ARGUMENT") {
    Desc d = make_desc(SLAY_ATTN_LINEAR);
    int64_t i = 0;
    double f = 0;
    check_status(SLAY_STATUS_INVALID_ARGUMENT, [&] { return slay_attn_desc_set_i64(nullptr, SLAY_ATTR_NUM_HEADS, 2); });
    check_status(SLAY_STATUS_INVALID_ARGUMENT, [&] { return slay_attn_desc_set_f64(nullptr, SLAY_ATTR_STABILIZER, 1e-3); });
    check_status(SLAY_STATUS_INVALID_ARGUMENT, [&] { return slay_attn_desc_get_i64(nullptr, SLAY_ATTR_NUM_HEADS, &i); });
    check_status(SLAY_STATUS_INVALID_ARGUMENT, [&] { return slay_attn_desc_get_f64(nullptr, SLAY_ATTR_STABILIZER, &f); });
    check_status(SLAY_STATUS_INVALID_ARGUMENT, [&] { return slay_attn_desc_get_i64(d, SLAY_ATTR_NUM_HEADS, nullptr); });
    check_status(SLAY_STATUS_INVALID_ARGUMENT, [&] { return slay_attn_desc_get_f64(d, SLAY_ATTR_STABILIZER, nullptr); });
    check_status(SLAY_STATUS_INVALID_ARGUMENT, [&] { return slay_attn_desc_create(nullptr, SLAY_ATTN_LINEAR); });
}

TEST_CASE("creating a descriptor of an unknown variant fails and leaves the out-pointer untouched") {
    for (int raw : {14, -1, 1000}) {
        CAPTURE(raw);
        const auto untouched = reinterpret_cast<slay_attn_desc_t>(uintptr_t{0x1234});
        slay_attn_desc_t d = untouched;
        check_status(SLAY_STATUS_INVALID_ARGUMENT,
                     [&] { return raw_desc_create(&d, raw); });
        CHECK(std::string(slay_last_error_message()).find("variant=" + std::to_string(raw) + " ") == 0);
        CHECK(d == untouched);
    }
}

}  // TEST_SUITE descriptor

TEST_SUITE("variant_names") {

TEST_CASE("canonical variant names round trip") {
    const char* const names[] = {"standard",          "yat",           "yat_spherical",
                                 "slay_anchor",       "slay_laplace",  "slay_hadamard",
                                 "slay_tensorsketch", "slay_random_maclaurin", "slay_nystrom",
                                 "performer",         "linear",        "cosformer",
                                 "rff",               "slay_poly2"};
    for (slay_attn_variant_t v : kAllVariants) {
        const char* name = slay_attn_variant_name(v);
        REQUIRE(name != nullptr);
        CHECK(std::string(name) == names[v]);
        slay_attn_variant_t parsed = SLAY_ATTN_VARIANT_COUNT_;
        CHECK(slay_attn_variant_from_name(name, &parsed) == SLAY_STATUS_SUCCESS);
        CHECK(parsed == v);
    }
    CHECK(slay_attn_variant_name(SLAY_ATTN_VARIANT_COUNT_) == nullptr);
    CHECK(raw_variant_name(-1) == nullptr);
}

TEST_CASE("reference registry keys parse to their variants") {
    struct Alias {
        const char* key;
        slay_attn_variant_t variant;
    };
    const Alias aliases[] = {
        {"yat-performer-anchor", SLAY_ATTN_SLAY_ANCHOR},
        {"yat-performer-anchors", SLAY_ATTN_SLAY_ANCHOR},
        {"yat-spherical", SLAY_ATTN_YAT_SPHERICAL},
        {"yat-exact-spherical", SLAY_ATTN_YAT_SPHERICAL},
        {"yat-performer", SLAY_ATTN_SLAY_HADAMARD},
        {"yat-performer-hadamard", SLAY_ATTN_SLAY_HADAMARD},
        {"yat-performer-laplace", SLAY_ATTN_SLAY_LAPLACE},
        {"yat-performer-laplace-only", SLAY_ATTN_SLAY_LAPLACE},
        {"yat-performer-tensor", SLAY_ATTN_SLAY_TENSORSKETCH},
        {"yat-performer-tensorsketch", SLAY_ATTN_SLAY_TENSORSKETCH},
        {"yat-performer-rm", SLAY_ATTN_SLAY_RANDOM_MACLAURIN},
        {"yat-performer-random-maclaurin", SLAY_ATTN_SLAY_RANDOM_MACLAURIN},
        {"yat-performer-nystrom", SLAY_ATTN_SLAY_NYSTROM},
        {"yat-poly2", SLAY_ATTN_SLAY_POLY2},
    };
    for (const Alias& a : aliases) {
        const std::string key = a.key;
        CAPTURE(key);
        slay_attn_variant_t parsed = SLAY_ATTN_VARIANT_COUNT_;
        CHECK(slay_attn_variant_from_name(a.key, &parsed) == SLAY_STATUS_SUCCESS);
        CHECK(parsed == a.variant);
    }
}

TEST_CASE("unknown variant names are INVALID_VALUE and leave the output untouched") {
    for (const char* bad : {"", "Standard", "slay-anchor", "slay_anchor ", "performer2", "yat_performer"}) {
        const std::string bad_name = bad;
        CAPTURE(bad_name);
        slay_attn_variant_t parsed = SLAY_ATTN_VARIANT_COUNT_;
        check_status(SLAY_STATUS_INVALID_VALUE, [&] { return slay_attn_variant_from_name(bad, &parsed); });
        CHECK(parsed == SLAY_ATTN_VARIANT_COUNT_);
    }
    slay_attn_variant_t parsed = SLAY_ATTN_VARIANT_COUNT_;
    check_status(SLAY_STATUS_INVALID_ARGUMENT, [&] { return slay_attn_variant_from_name(nullptr, &parsed); });
    check_status(SLAY_STATUS_INVALID_ARGUMENT, [&] { return slay_attn_variant_from_name("linear", nullptr); });
}

}  // TEST_SUITE variant_names
