// config.cpp -- per-variant facts: exact vs linearized, feature dimension F,
// and the fp32 feature-parameter layout (SPEC A.4-A.14).
#include "config.hpp"

namespace slay {

AttnConfig default_config(slay_attn_variant_t v) {
    AttnConfig c;
    c.variant = v;
    c.softmax_scale = 0.125;  // 1/sqrt(64)
    switch (v) {
        case SLAY_ATTN_YAT: c.epsilon = 1e-6; break;
        case SLAY_ATTN_YAT_SPHERICAL: c.epsilon = 1e-2; break;  // class default, C = 2.01
        case SLAY_ATTN_SLAY_ANCHOR:
        case SLAY_ATTN_SLAY_RANDOM_MACLAURIN:
        case SLAY_ATTN_SLAY_NYSTROM:  // SPEC A.13 constructor defaults
            c.num_quad_nodes = 1;
            c.num_features = 8;
            c.poly_dim = 64;
            c.chunk_size = 128;
            break;
        case SLAY_ATTN_SLAY_TENSORSKETCH:  // SPEC A.12
            c.num_quad_nodes = 1;
            c.num_features = 8;
            c.poly_dim = 64;
            c.chunk_size = 256;
            c.stabilizer_mode = SLAY_STABILIZER_CLAMP;
            break;
        case SLAY_ATTN_SLAY_LAPLACE:   // SPEC A.10
        case SLAY_ATTN_SLAY_HADAMARD:  // SPEC A.11
            c.num_quad_nodes = 2;
            c.num_features = 32;
            c.chunk_size = 512;
            c.stabilizer_mode = SLAY_STABILIZER_CLAMP;
            break;
        case SLAY_ATTN_PERFORMER:
        case SLAY_ATTN_RFF: c.num_features = 64; break;
        default: break;
    }
    return c;
}

bool attribute_applies(slay_attn_variant_t v, slay_attr_t a) {
    const bool exact = is_exact_variant(v), prf = uses_prf(v);
    switch (a) {
        case SLAY_ATTR_NUM_HEADS:
        case SLAY_ATTR_HEAD_DIM:
        case SLAY_ATTR_VALUE_DIM:
        case SLAY_ATTR_CAUSAL:
        case SLAY_ATTR_IO_DTYPE:
        case SLAY_ATTR_ALLOW_TF32: return true;
        case SLAY_ATTR_CHUNK_SIZE: return !exact;
        case SLAY_ATTR_STABILIZER_MODE:
        case SLAY_ATTR_STABILIZER: return !exact || v == SLAY_ATTN_YAT_SPHERICAL;
        case SLAY_ATTR_NUM_QUAD_NODES:
        case SLAY_ATTR_PRF_CLAMP: return prf;
        case SLAY_ATTR_NUM_FEATURES: return prf || v == SLAY_ATTN_PERFORMER || v == SLAY_ATTN_RFF;
        case SLAY_ATTR_POLY_DIM: return is_kronecker_variant(v);
        case SLAY_ATTR_EPSILON: return prf || v == SLAY_ATTN_YAT || v == SLAY_ATTN_YAT_SPHERICAL;
        case SLAY_ATTR_SCORE_SCALE: return v == SLAY_ATTN_YAT || v == SLAY_ATTN_YAT_SPHERICAL;
        case SLAY_ATTR_SOFTMAX_SCALE: return v == SLAY_ATTN_STANDARD;
        case SLAY_ATTR_KERNEL_CLAMP: return v == SLAY_ATTN_YAT_SPHERICAL;
        case SLAY_ATTR_NYSTROM_REG: return v == SLAY_ATTN_SLAY_NYSTROM;
        case SLAY_ATTR_NORM_EPS: return prf || v == SLAY_ATTN_YAT_SPHERICAL;
        case SLAY_ATTR_COSFORMER_LENGTH: return v == SLAY_ATTN_COSFORMER;
        default: return false;
    }
}

bool is_exact_variant(slay_attn_variant_t v) {
    return v == SLAY_ATTN_STANDARD || v == SLAY_ATTN_YAT || v == SLAY_ATTN_YAT_SPHERICAL;
}

bool is_kronecker_variant(slay_attn_variant_t v) {
    return v == SLAY_ATTN_SLAY_ANCHOR || v == SLAY_ATTN_SLAY_TENSORSKETCH ||
           v == SLAY_ATTN_SLAY_RANDOM_MACLAURIN || v == SLAY_ATTN_SLAY_NYSTROM;
}

bool uses_prf(slay_attn_variant_t v) {
    return is_kronecker_variant(v) || v == SLAY_ATTN_SLAY_LAPLACE || v == SLAY_ATTN_SLAY_HADAMARD;
}

int64_t feature_dim(const AttnConfig& c) {
    const int64_t R = c.num_quad_nodes, M = c.num_features, P = c.poly_dim, D = c.head_dim;
    switch (c.variant) {
        case SLAY_ATTN_SLAY_ANCHOR:
        case SLAY_ATTN_SLAY_TENSORSKETCH:
        case SLAY_ATTN_SLAY_RANDOM_MACLAURIN:
        case SLAY_ATTN_SLAY_NYSTROM: return R * P * M;
        case SLAY_ATTN_SLAY_LAPLACE:
        case SLAY_ATTN_SLAY_HADAMARD: return R * M;
        case SLAY_ATTN_PERFORMER:
        case SLAY_ATTN_RFF: return M;
        case SLAY_ATTN_LINEAR: return D;
        case SLAY_ATTN_COSFORMER: return 2 * D;
        default: return 0;
    }
}

int64_t ParamSegment::count() const {
    int64_t n = 1;
    for (int i = 0; i < rank; ++i) n *= shape[i];
    return n;
}

std::vector<ParamSegment> param_layout(const AttnConfig& c) {
    const int64_t R = c.num_quad_nodes, M = c.num_features, P = c.poly_dim, D = c.head_dim,
                  H = c.num_heads;
    std::vector<ParamSegment> segs;
    int64_t offset = 0;
    auto add = [&](const char* name, std::initializer_list<int64_t> shape) {
        ParamSegment s{name, offset, static_cast<int32_t>(shape.size()), {1, 1, 1, 1}};
        int i = 0;
        for (int64_t e : shape) s.shape[i++] = e;
        offset += s.count();
        segs.push_back(s);
    };
    if (uses_prf(c.variant)) add("omega", {R, H, D, M});
    switch (c.variant) {
        case SLAY_ATTN_SLAY_ANCHOR: add("anchors", {P, D}); break;
        case SLAY_ATTN_SLAY_RANDOM_MACLAURIN:
            add("rm_r1", {P, D});
            add("rm_r2", {P, D});
            break;
        case SLAY_ATTN_SLAY_NYSTROM:
            add("anchors", {P, D});
            add("nystrom_w", {P, P});
            break;
        case SLAY_ATTN_SLAY_TENSORSKETCH:
            add("ts_hash1", {D});
            add("ts_sign1", {D});
            add("ts_hash2", {D});
            add("ts_sign2", {D});
            break;
        case SLAY_ATTN_PERFORMER: add("performer_w", {H, D, M}); break;
        case SLAY_ATTN_RFF:
            add("omega", {H, D, M});
            add("rff_phase", {H, M});
            break;
        default: break;
    }
    return segs;
}

int64_t param_count(const AttnConfig& c) {
    int64_t n = 0;
    for (const ParamSegment& s : param_layout(c)) n += s.count();
    return n;
}

}  // namespace slay
