// variants.cpp -- the registry table (see variants.hpp): one row per variant,
// in enum order. Defaults are SPEC A's constructor defaults; segment shapes
// and distributions SPEC A.4-A.14.
#include "variants.hpp"

#include <cstring>

namespace slay {

namespace {

// Attribute groups shared by several rows.
constexpr uint64_t kLinearized = attr_bit(SLAY_ATTR_CHUNK_SIZE) | attr_bit(SLAY_ATTR_STABILIZER_MODE) |
                                 attr_bit(SLAY_ATTR_STABILIZER);
constexpr uint64_t kPrf = attr_bit(SLAY_ATTR_NUM_QUAD_NODES) | attr_bit(SLAY_ATTR_NUM_FEATURES) |
                          attr_bit(SLAY_ATTR_PRF_CLAMP) | attr_bit(SLAY_ATTR_EPSILON) | attr_bit(SLAY_ATTR_NORM_EPS);
constexpr uint64_t kKronecker = kLinearized | kPrf | attr_bit(SLAY_ATTR_POLY_DIM);

// Segments shared by several rows.
constexpr SegmentSpec kOmega = {"omega", SegmentShape::R_H_D_M, SegmentKind::StandardNormal, SegmentRole::Omega};
constexpr SegmentSpec kAnchors = {"anchors", SegmentShape::P_D, SegmentKind::UnitRows, SegmentRole::RowsA};

constexpr slay_stabilizer_mode_t kAdd = SLAY_STABILIZER_ADD, kClamp = SLAY_STABILIZER_CLAMP;

// Columns: variant, name, aliases, exact, prf, kronecker, F rule, attributes,
// R, M, P, chunk, stabilizer mode, epsilon, segments, map, exact score.
constexpr VariantInfo kVariants[] = {
    {SLAY_ATTN_STANDARD, "standard", {nullptr, nullptr}, true, false, false, FeatureDimRule::None,
     attr_bit(SLAY_ATTR_SOFTMAX_SCALE), 1, 8, 64, 128, kAdd, 1e-6, 0, {}, MapKind::None, ExactScore::Softmax},
    {SLAY_ATTN_YAT, "yat", {nullptr, nullptr}, true, false, false, FeatureDimRule::None,
     attr_bit(SLAY_ATTR_EPSILON) | attr_bit(SLAY_ATTR_SCORE_SCALE), 1, 8, 64, 128, kAdd, 1e-6, 0, {}, MapKind::None,
     ExactScore::Yat},
    // epsilon: the class default, C = 2.01.
    {SLAY_ATTN_YAT_SPHERICAL, "yat_spherical", {"yat-spherical", "yat-exact-spherical"}, true, false, false,
     FeatureDimRule::None,
     attr_bit(SLAY_ATTR_EPSILON) | attr_bit(SLAY_ATTR_SCORE_SCALE) | attr_bit(SLAY_ATTR_KERNEL_CLAMP) |
         attr_bit(SLAY_ATTR_NORM_EPS) | attr_bit(SLAY_ATTR_STABILIZER_MODE) | attr_bit(SLAY_ATTR_STABILIZER),
     1, 8, 64, 128, kAdd, 1e-2, 0, {}, MapKind::None, ExactScore::Spherical},
    // SPEC A.13 constructor defaults (anchor, random Maclaurin, Nystrom).
    {SLAY_ATTN_SLAY_ANCHOR, "slay_anchor", {"yat-performer-anchor", "yat-performer-anchors"}, false, true, true,
     FeatureDimRule::RPM, kKronecker, 1, 8, 64, 128, kAdd, 1e-6, 2, {kOmega, kAnchors}, MapKind::Anchor,
     ExactScore::None},
    // SPEC A.10.
    {SLAY_ATTN_SLAY_LAPLACE, "slay_laplace", {"yat-performer-laplace", "yat-performer-laplace-only"}, false, true,
     false, FeatureDimRule::RM, kLinearized | kPrf, 2, 32, 64, 512, kClamp, 1e-6, 1, {kOmega}, MapKind::Laplace,
     ExactScore::None},
    // SPEC A.11.
    {SLAY_ATTN_SLAY_HADAMARD, "slay_hadamard", {"yat-performer", "yat-performer-hadamard"}, false, true, false,
     FeatureDimRule::RM, kLinearized | kPrf, 2, 32, 64, 512, kClamp, 1e-6, 1, {kOmega}, MapKind::Hadamard,
     ExactScore::None},
    // SPEC A.12: hashes in [0, P), signs +-1.
    {SLAY_ATTN_SLAY_TENSORSKETCH, "slay_tensorsketch", {"yat-performer-tensor", "yat-performer-tensorsketch"}, false,
     true, true, FeatureDimRule::RPM, kKronecker, 1, 8, 64, 256, kClamp, 1e-6, 5,
     {kOmega,
      {"ts_hash1", SegmentShape::D, SegmentKind::HashIndex, SegmentRole::SketchHash1},
      {"ts_sign1", SegmentShape::D, SegmentKind::Sign, SegmentRole::SketchSign1},
      {"ts_hash2", SegmentShape::D, SegmentKind::HashIndex, SegmentRole::SketchHash2},
      {"ts_sign2", SegmentShape::D, SegmentKind::Sign, SegmentRole::SketchSign2}},
     MapKind::TensorSketch, ExactScore::None},
    {SLAY_ATTN_SLAY_RANDOM_MACLAURIN, "slay_random_maclaurin", {"yat-performer-rm", "yat-performer-random-maclaurin"},
     false, true, true, FeatureDimRule::RPM, kKronecker, 1, 8, 64, 128, kAdd, 1e-6, 3,
     {kOmega,
      {"rm_r1", SegmentShape::P_D, SegmentKind::ScaledNormal, SegmentRole::RowsA},
      {"rm_r2", SegmentShape::P_D, SegmentKind::ScaledNormal, SegmentRole::RowsB}},
     MapKind::Maclaurin, ExactScore::None},
    {SLAY_ATTN_SLAY_NYSTROM, "slay_nystrom", {"yat-performer-nystrom", nullptr}, false, true, true,
     FeatureDimRule::RPM, kKronecker | attr_bit(SLAY_ATTR_NYSTROM_REG), 1, 8, 64, 128, kAdd, 1e-6, 3,
     {kOmega, kAnchors, {"nystrom_w", SegmentShape::P_P, SegmentKind::NystromMatrix, SegmentRole::RowsB}},
     MapKind::Nystrom, ExactScore::None},
    {SLAY_ATTN_PERFORMER, "performer", {nullptr, nullptr}, false, false, false, FeatureDimRule::M,
     kLinearized | attr_bit(SLAY_ATTR_NUM_FEATURES), 1, 64, 64, 128, kAdd, 1e-6, 1,
     {{"performer_w", SegmentShape::H_D_M, SegmentKind::ScaledNormal, SegmentRole::Omega}}, MapKind::Performer,
     ExactScore::None},
    {SLAY_ATTN_LINEAR, "linear", {nullptr, nullptr}, false, false, false, FeatureDimRule::D, kLinearized, 1, 8, 64,
     128, kAdd, 1e-6, 0, {}, MapKind::Linear, ExactScore::None},
    {SLAY_ATTN_COSFORMER, "cosformer", {nullptr, nullptr}, false, false, false, FeatureDimRule::TwiceD,
     kLinearized | attr_bit(SLAY_ATTR_COSFORMER_LENGTH), 1, 8, 64, 128, kAdd, 1e-6, 0, {}, MapKind::Cosformer,
     ExactScore::None},
    {SLAY_ATTN_RFF, "rff", {nullptr, nullptr}, false, false, false, FeatureDimRule::M,
     kLinearized | attr_bit(SLAY_ATTR_NUM_FEATURES), 1, 64, 64, 128, kAdd, 1e-6, 2,
     {{"omega", SegmentShape::H_D_M, SegmentKind::StandardNormal, SegmentRole::Omega},
      {"rff_phase", SegmentShape::H_M, SegmentKind::Phase, SegmentRole::Phase}},
     MapKind::RandomFourier, ExactScore::None},
    // Issue 17: phi = the degree-2 monomials of u = sqrt(D/d) S_h^T x^ (+ a
    // constant), S_h (D, d) orthonormal columns per head. M is the feature
    // budget (default 1024, the budget of the comparison), gamma the
    // constant feature's weight. The kernel is a sum of squares, so ADD.
    {SLAY_ATTN_SLAY_POLY2, "slay_poly2", {"yat-poly2", nullptr}, false, false, false, FeatureDimRule::Poly2,
     kLinearized | attr_bit(SLAY_ATTR_NUM_FEATURES) | attr_bit(SLAY_ATTR_NORM_EPS) | attr_bit(SLAY_ATTR_POLY2_GAMMA),
     1, 1024, 64, 128, kAdd, 1e-6, 1,
     {{"poly2_frame", SegmentShape::H_D_Frame, SegmentKind::OrthonormalFrame, SegmentRole::Omega}}, MapKind::Poly2,
     ExactScore::None},
};

// Rows are in enum order, one per enumerator of slay_attn_variant_t, so a
// variant's row is kVariants[variant].
constexpr int kVariantCount = sizeof(kVariants) / sizeof(kVariants[0]);
constexpr bool rows_in_enum_order() {
    for (int i = 0; i < kVariantCount; ++i)
        if (kVariants[i].variant != i) return false;
    return true;
}
static_assert(kVariantCount == SLAY_ATTN_VARIANT_COUNT_, "one registry row per variant");
static_assert(rows_in_enum_order(), "registry rows in enum order");
constexpr bool one_map_or_score() {
    for (const VariantInfo& row : kVariants)
        if ((row.map == MapKind::None) != row.exact || (row.score == ExactScore::None) == row.exact) return false;
    return true;
}
static_assert(one_map_or_score(), "a linearized variant names its feature map, an exact one its score");

}  // namespace

const VariantInfo* find_variant(int32_t v) {
    if (v < 0 || v >= kVariantCount) return nullptr;
    return &kVariants[v];
}

const VariantInfo& variant_info(slay_attn_variant_t v) { return kVariants[static_cast<int>(v)]; }

bool variant_from_name(const char* name, slay_attn_variant_t* v) {
    for (const VariantInfo& row : kVariants) {
        bool match = std::strcmp(row.name, name) == 0;
        for (const char* alias : row.aliases) match = match || (alias && std::strcmp(alias, name) == 0);
        if (match) {
            *v = row.variant;
            return true;
        }
    }
    return false;
}

const char* variant_name(int32_t v) {
    const VariantInfo* row = find_variant(v);
    return row ? row->name : nullptr;
}

}  // namespace slay
