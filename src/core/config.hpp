// config.hpp -- the resolved attributes of one attention variant (AttnConfig)
// and the per-variant facts derived from them: feature dimension F, whether
// the variant is exact (O(T^2), no state) or linearized, and its
// feature-parameter layout (SPEC section A).
//
// Shapes: q, k (B, H, T, D); v, out (B, H, T, Dv); state (B, H, F, Dv+1).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sampling_math.hpp"  // SegmentKind
#include "slay/slay.h"
#include "variants.hpp"  // SegmentRole

namespace slay {

// Every attribute of slay_attr_t, resolved (no "0 means default" left except
// cosformer_length, whose 0 means "T of the call"; descriptors hold the raw
// values, plans the resolved ones).
struct AttnConfig {
    slay_attn_variant_t variant = SLAY_ATTN_STANDARD;
    int64_t num_heads = 1;
    int64_t num_kv_heads = 0;  // H_kv; 0 = H (resolved plans hold H_kv, a divisor of H)
    int64_t head_dim = 64;
    int64_t value_dim = 64;  // resolved Dv
    bool causal = true;
    slay_dtype_t io_dtype = SLAY_DTYPE_FLOAT32;
    bool allow_tf32 = false;
    int64_t num_quad_nodes = 1;    // R
    int64_t num_features = 8;      // M
    int64_t poly_dim = 64;         // P
    int64_t chunk_size = 128;
    slay_stabilizer_mode_t stabilizer_mode = SLAY_STABILIZER_ADD;
    int64_t cosformer_length = 0;  // L; 0 = T of the call
    double epsilon = 1e-6;         // C = 2 + epsilon
    double stabilizer = 1e-6;      // delta
    double score_scale = 1.0;
    double softmax_scale = 0.125;  // resolved (1/sqrt(D) by default)
    double prf_clamp = 20.0;
    double kernel_clamp = 1e-6;
    double nystrom_reg = 1e-3;
    double norm_eps = 1e-12;
    double poly2_gamma = -1.0;     // slay_poly2; negative = auto (poly2_shape)
};

// The variant's SPEC defaults (README "Attributes"), resolved for H = 1,
// D = Dv = 64. Change head_dim / value_dim / num_heads afterwards as needed;
// softmax_scale must then be set to 1/sqrt(D) by the caller (plans do this).
AttnConfig default_config(slay_attn_variant_t v);

// Whether a variant reads an attribute (setting one it ignores is an error).
bool attribute_applies(slay_attn_variant_t v, slay_attr_t a);

bool is_exact_variant(slay_attn_variant_t v);  // standard, yat, yat_spherical
bool is_kronecker_variant(slay_attn_variant_t v);  // poly (x) pcat
bool uses_prf(slay_attn_variant_t v);  // anchor, laplace, hadamard, tensorsketch, rm, nystrom

// slay_poly2's shape from its budget M = num_features and head dim D:
//   gamma = poly2_gamma, or when negative (auto) 0.5 if D(D+1)/2 > M else 0
//     (a constant feature only where the frame cannot span all of R^D);
//   d = the largest value <= D with d(d+1)/2 + [gamma > 0] <= M (0 if none:
//     a plan rejects it);
//   F = d(d+1)/2 + [gamma > 0]: the pairs a <= b of u in the order
//     f = b(b+1)/2 + a, then the constant sqrt(gamma/D) last.
struct Poly2Shape {
    int64_t frame_dim;  // d
    double gamma;
    bool constant;      // gamma > 0: feature F-1 is sqrt(gamma/D)
    int64_t features;   // F
};
Poly2Shape poly2_shape(const AttnConfig& c);

// Feature dimension F (0 for exact variants). Index order of the Kronecker
// variants: f = r*P*M + p*M + m. Laplace/Hadamard: f = r*M + m. Performer,
// rff: M. Linear: D. Cosformer: 2D (cos stream then sin stream). slay_poly2:
// poly2_shape's F.
int64_t feature_dim(const AttnConfig& c);

// The factored form phi(x) = poly(x) (x) pcat(x) of a linearized map (SPEC
// C.4), which both backends contract without forming phi: the widths P of
// poly and C of pcat. Kronecker: P = poly_dim, C = R*M (F = P*C); slay_poly2:
// P = C = d, its frame dimension (F = its d(d+1)/2 pairs, plus the constant);
// plain maps: P = 1, C = F. Exact variants: 0, 0.
struct FactorWidths {
    int64_t P = 0, C = 0;
};
FactorWidths factor_widths(const AttnConfig& c);

// One named block of the fp32 parameter vector, row-major and contiguous.
struct ParamSegment {
    const char* name;
    SegmentKind kind;  // its distribution (sampling_math.hpp)
    SegmentRole role;  // what the map reads it as (variants.hpp)
    int64_t offset;
    int32_t rank;
    int64_t shape[4];
    int64_t count() const;
};

// Segments per variant (all fp32; integers stored as exact float values):
//   slay_anchor, slay_laplace, slay_hadamard: omega (R, H, D, M) ~ N(0,1)
//   slay_anchor additionally:  anchors (P, D), unit rows
//   slay_random_maclaurin:     omega (R,H,D,M); rm_r1 (P, D), rm_r2 (P, D) ~ N(0, 1/D)
//   slay_nystrom:              omega (R,H,D,M); anchors (P, D); nystrom_w (P, P)
//   slay_tensorsketch:         omega (R,H,D,M); ts_hash1 (D,), ts_sign1 (D,),
//                              ts_hash2 (D,), ts_sign2 (D,)  hashes in [0,P), signs +-1
//   performer:                 performer_w (H, D, M) ~ N(0, 1/D)
//   rff:                       omega (H, D, M) ~ N(0,1); rff_phase (H, M) ~ U[0, 2pi)
//   slay_poly2:                poly2_frame (H, D, d), orthonormal columns per head
//   others:                    none
std::vector<ParamSegment> param_layout(const AttnConfig& c);
int64_t param_count(const AttnConfig& c);

}  // namespace slay
