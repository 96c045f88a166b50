// config.cpp -- per-variant facts: exact vs linearized, feature dimension F,
// and the fp32 feature-parameter layout (SPEC A.4-A.14), all read from the
// variant registry (variants.hpp).
#include "config.hpp"

#include "variants.hpp"

namespace slay {

AttnConfig default_config(slay_attn_variant_t v) {
    const VariantInfo& row = variant_info(v);
    AttnConfig c;
    c.variant = v;
    c.softmax_scale = 0.125;  // 1/sqrt(64)
    c.num_quad_nodes = row.num_quad_nodes;
    c.num_features = row.num_features;
    c.poly_dim = row.poly_dim;
    c.chunk_size = row.chunk_size;
    c.stabilizer_mode = row.stabilizer_mode;
    c.epsilon = row.epsilon;
    return c;
}

bool attribute_applies(slay_attn_variant_t v, slay_attr_t a) {
    const int id = static_cast<int>(a);
    if (id < 0 || id >= 64) return false;
    return ((kCommonAttributes | variant_info(v).attributes) & attr_bit(a)) != 0;
}

bool is_exact_variant(slay_attn_variant_t v) { return variant_info(v).exact; }

bool is_kronecker_variant(slay_attn_variant_t v) { return variant_info(v).kronecker; }

bool uses_prf(slay_attn_variant_t v) { return variant_info(v).prf; }

Poly2Shape poly2_shape(const AttnConfig& c) {
    const int64_t M = c.num_features, D = c.head_dim;
    Poly2Shape s;
    s.gamma = c.poly2_gamma >= 0 ? c.poly2_gamma : (D * (D + 1) / 2 > M ? 0.5 : 0.0);
    s.constant = s.gamma > 0;
    const int64_t extra = s.constant ? 1 : 0;
    s.frame_dim = 0;
    while (s.frame_dim < D && (s.frame_dim + 1) * (s.frame_dim + 2) / 2 + extra <= M) ++s.frame_dim;
    s.features = s.frame_dim * (s.frame_dim + 1) / 2 + extra;
    return s;
}

FactorWidths factor_widths(const AttnConfig& c) {
    const int64_t R = c.num_quad_nodes, M = c.num_features, D = c.head_dim;
    switch (variant_info(c.variant).feature_dim) {
        case FeatureDimRule::RPM: return {c.poly_dim, R * M};
        case FeatureDimRule::RM: return {1, R * M};
        case FeatureDimRule::M: return {1, M};
        case FeatureDimRule::D: return {1, D};
        case FeatureDimRule::TwiceD: return {1, 2 * D};
        case FeatureDimRule::Poly2: {
            const int64_t d = poly2_shape(c).frame_dim;
            return {d, d};
        }
        case FeatureDimRule::None: break;
    }
    return {};
}

int64_t feature_dim(const AttnConfig& c) {
    if (variant_info(c.variant).feature_dim == FeatureDimRule::Poly2) return poly2_shape(c).features;
    const FactorWidths w = factor_widths(c);
    return w.P * w.C;
}

int64_t ParamSegment::count() const {
    int64_t n = 1;
    for (int i = 0; i < rank; ++i) n *= shape[i];
    return n;
}

std::vector<ParamSegment> param_layout(const AttnConfig& c) {
    const int64_t R = c.num_quad_nodes, M = c.num_features, P = c.poly_dim, D = c.head_dim,
                  H = c.num_heads;
    const VariantInfo& row = variant_info(c.variant);
    std::vector<ParamSegment> segs;
    int64_t offset = 0;
    for (int i = 0; i < row.segment_count; ++i) {
        const SegmentSpec& spec = row.segments[i];
        ParamSegment s{spec.name, spec.kind, spec.role, offset, 0, {1, 1, 1, 1}};
        auto set_shape = [&s](std::initializer_list<int64_t> shape) {
            for (int64_t e : shape) s.shape[s.rank++] = e;
        };
        switch (spec.shape) {
            case SegmentShape::R_H_D_M: set_shape({R, H, D, M}); break;
            case SegmentShape::H_D_M: set_shape({H, D, M}); break;
            case SegmentShape::H_M: set_shape({H, M}); break;
            case SegmentShape::P_D: set_shape({P, D}); break;
            case SegmentShape::P_P: set_shape({P, P}); break;
            case SegmentShape::D: set_shape({D}); break;
            case SegmentShape::H_D_Frame: set_shape({H, D, poly2_shape(c).frame_dim}); break;
        }
        offset += s.count();
        segs.push_back(s);
    }
    return segs;
}

int64_t param_count(const AttnConfig& c) {
    int64_t n = 0;
    for (const ParamSegment& s : param_layout(c)) n += s.count();
    return n;
}

}  // namespace slay
