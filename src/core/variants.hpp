// variants.hpp -- the variant registry: one row per slay_attn_variant_t with
// everything the library derives per variant (SPEC section A): its names,
// its family (exact, O(T^2), no state; or linearized with a (B, H, F, Dv+1)
// state), the features it is built from (PRF of R quadrature nodes, a
// Kronecker polynomial factor of dimension P), its feature dimension F, the
// attributes it reads and their defaults, and its fp32 parameter segments
// with their shapes and distributions. config.cpp (defaults, attribute
// applicability, F, parameter layout), attributes.cpp (names) and
// sampling.cpp (segment distributions) read this table instead of keeping
// their own switches over variants.
//
// Shapes: q, k (B, H, T, D); v (B, H, T, Dv); parameter segments in terms of
// R (quadrature nodes), H (heads), D (head dim), M (features), P (poly dim).
#pragma once

#include <cstdint>

#include "sampling_math.hpp"  // SegmentKind
#include "slay/slay.h"

namespace slay {

// F in terms of the resolved attributes.
enum class FeatureDimRule : uint8_t {
    None,       // exact variants
    RPM,        // Kronecker: f = r*P*M + p*M + m
    RM,         // laplace, hadamard: f = r*M + m
    M,          // performer, rff
    D,          // linear
    TwiceD,     // cosformer: the cos stream, then the sin stream
    Poly2,      // slay_poly2: d(d+1)/2 (+1 with gamma > 0), d from the budget M (poly2_shape)
};

// The feature map of a linearized variant: each backend implements every
// kind once (CPU: make_feature_map in cpu/feature_maps.cpp; CUDA: the map
// policies of cuda/linear_features_kernel.cuh, dispatched by
// SLAY_FOR_EACH_MAP_KIND). None for the exact family.
enum class MapKind : uint8_t {
    None,
    Anchor,
    Nystrom,
    Maclaurin,
    TensorSketch,
    Laplace,
    Hadamard,
    Performer,
    Linear,
    Cosformer,
    RandomFourier,
    Poly2,
};

// The score of an exact variant (SPEC A.3, A.8, A.9); None for the linearized family.
enum class ExactScore : uint8_t { None, Softmax, Yat, Spherical };

// What a parameter segment is to the map that reads it (backends find the
// segments by role, never by name).
enum class SegmentRole : uint8_t {
    Omega,      // PRF omega (R, H, D, M); performer_w / rff omega (H, D, M); poly2 frame (H, D, d)
    RowsA,      // anchors or rm_r1 (P, D)
    RowsB,      // rm_r2 (P, D) or nystrom_w (P, P)
    Phase,      // rff phases (H, M)
    SketchHash1, SketchSign1, SketchHash2, SketchSign2,  // TensorSketch (D,)
};

// The shape of a parameter segment, row-major.
// H_D_Frame: (H, D, d), d the poly2 frame dimension (config.hpp poly2_shape).
enum class SegmentShape : uint8_t { R_H_D_M, H_D_M, H_M, P_D, P_P, D, H_D_Frame };

struct SegmentSpec {
    const char* name;  // the authors' buffer name (slay_param_segment_t.name)
    SegmentShape shape;
    SegmentKind kind;  // how sampling draws it (sampling_math.hpp)
    SegmentRole role;  // what the map reads it as
};

// Bit of one attribute in VariantInfo::attributes (attribute ids are < 64).
constexpr uint64_t attr_bit(slay_attr_t a) { return uint64_t{1} << static_cast<int>(a); }

// Attributes every variant reads.
constexpr uint64_t kCommonAttributes = attr_bit(SLAY_ATTR_NUM_HEADS) | attr_bit(SLAY_ATTR_HEAD_DIM) |
                                       attr_bit(SLAY_ATTR_VALUE_DIM) | attr_bit(SLAY_ATTR_CAUSAL) |
                                       attr_bit(SLAY_ATTR_IO_DTYPE) | attr_bit(SLAY_ATTR_ALLOW_TF32) |
                                       attr_bit(SLAY_ATTR_NUM_KV_HEADS);

constexpr int kMaxSegments = 5;
constexpr int kMaxAliases = 2;

struct VariantInfo {
    slay_attn_variant_t variant;
    const char* name;                 // canonical: slay_attn_variant_name
    const char* aliases[kMaxAliases];  // the reference's registry keys and other accepted names (or nullptr)
    bool exact;                       // exact family: no features, no state
    bool prf;                         // PRF features of R nodes (omega (R, H, D, M))
    bool kronecker;                   // poly (x) pcat features of dimension P
    FeatureDimRule feature_dim;
    uint64_t attributes;              // beyond kCommonAttributes
    // Defaults of the attributes the variant reads (SPEC A; README "Attributes").
    int64_t num_quad_nodes, num_features, poly_dim, chunk_size;
    slay_stabilizer_mode_t stabilizer_mode;
    double epsilon;
    int segment_count;
    SegmentSpec segments[kMaxSegments];
    MapKind map;       // linearized: its feature map
    ExactScore score;  // exact: its score
};

// The registry row of a variant given as its int32 bits (an enum value read
// at the ABI boundary); nullptr for values that are not variants.
const VariantInfo* find_variant(int32_t v);
// The row of a valid variant (plans and configs only hold valid ones).
const VariantInfo& variant_info(slay_attn_variant_t v);
// The variant whose canonical name or alias is `name`; false if none.
bool variant_from_name(const char* name, slay_attn_variant_t* v);
// The canonical name of a variant; nullptr if v is not one.
const char* variant_name(int32_t v);

}  // namespace slay
