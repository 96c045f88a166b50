// attributes.cpp -- attribute table, checked get/set and plan-time
// resolution (variant names live in the registry, variants.cpp).
#include "attributes.hpp"

#include <cmath>
#include <cstring>

namespace slay {

namespace {

const AttrSpec kAttrs[] = {
    {SLAY_ATTR_NUM_HEADS, "num_heads", true, 1, 65536, false},
    {SLAY_ATTR_HEAD_DIM, "head_dim", true, 1, 1024, false},
    {SLAY_ATTR_VALUE_DIM, "value_dim", true, 0, 1024, false},
    {SLAY_ATTR_CAUSAL, "causal", true, 0, 1, false},
    {SLAY_ATTR_IO_DTYPE, "io_dtype", true, 0, 2, false},
    {SLAY_ATTR_ALLOW_TF32, "allow_tf32", true, 0, 1, false},
    {SLAY_ATTR_NUM_QUAD_NODES, "num_quad_nodes", true, 1, 16, false},
    {SLAY_ATTR_NUM_FEATURES, "num_features", true, 1, 4096, false},
    {SLAY_ATTR_POLY_DIM, "poly_dim", true, 1, 1024, false},
    {SLAY_ATTR_CHUNK_SIZE, "chunk_size", true, 1, 4096, false},
    {SLAY_ATTR_STABILIZER_MODE, "stabilizer_mode", true, 0, 1, false},
    {SLAY_ATTR_COSFORMER_LENGTH, "cosformer_length", true, 0, 1099511627776.0, false},
    {SLAY_ATTR_NUM_KV_HEADS, "num_kv_heads", true, 0, 65536, false},
    {SLAY_ATTR_EPSILON, "epsilon", false, 0, 1e3, true},
    {SLAY_ATTR_STABILIZER, "stabilizer", false, 0, 1, true},
    {SLAY_ATTR_SCORE_SCALE, "score_scale", false, 0, 1e6, true},
    {SLAY_ATTR_SOFTMAX_SCALE, "softmax_scale", false, 0, 1e6, false},
    {SLAY_ATTR_PRF_CLAMP, "prf_clamp", false, 0, 80, true},
    {SLAY_ATTR_KERNEL_CLAMP, "kernel_clamp", false, 0, 1, true},
    {SLAY_ATTR_NYSTROM_REG, "nystrom_reg", false, 0, 1e3, false},
    {SLAY_ATTR_NORM_EPS, "norm_eps", false, 0, 1e-2, true},
    {SLAY_ATTR_POLY2_GAMMA, "poly2_gamma", false, -1, 1e3, false},  // negative: auto
};

// Largest feature dimension a plan accepts: the fp32 state F x (Dv+1) of
// one head must stay addressable and sane (2^20 features = 4 MiB per row).
constexpr int64_t kMaxFeatureDim = int64_t{1} << 20;

}  // namespace

const AttrSpec* find_attr(int32_t id) {
    for (const AttrSpec& a : kAttrs)
        if (a.id == id) return &a;
    return nullptr;
}

double read_attr(const AttnConfig& c, slay_attr_t id) {
    switch (id) {
        case SLAY_ATTR_NUM_HEADS: return static_cast<double>(c.num_heads);
        case SLAY_ATTR_HEAD_DIM: return static_cast<double>(c.head_dim);
        case SLAY_ATTR_VALUE_DIM: return static_cast<double>(c.value_dim);
        case SLAY_ATTR_CAUSAL: return c.causal ? 1 : 0;
        case SLAY_ATTR_IO_DTYPE: return c.io_dtype;
        case SLAY_ATTR_ALLOW_TF32: return c.allow_tf32 ? 1 : 0;
        case SLAY_ATTR_NUM_QUAD_NODES: return static_cast<double>(c.num_quad_nodes);
        case SLAY_ATTR_NUM_FEATURES: return static_cast<double>(c.num_features);
        case SLAY_ATTR_POLY_DIM: return static_cast<double>(c.poly_dim);
        case SLAY_ATTR_CHUNK_SIZE: return static_cast<double>(c.chunk_size);
        case SLAY_ATTR_STABILIZER_MODE: return c.stabilizer_mode;
        case SLAY_ATTR_COSFORMER_LENGTH: return static_cast<double>(c.cosformer_length);
        case SLAY_ATTR_NUM_KV_HEADS: return static_cast<double>(c.num_kv_heads);
        case SLAY_ATTR_EPSILON: return c.epsilon;
        case SLAY_ATTR_STABILIZER: return c.stabilizer;
        case SLAY_ATTR_SCORE_SCALE: return c.score_scale;
        case SLAY_ATTR_SOFTMAX_SCALE: return c.softmax_scale;
        case SLAY_ATTR_PRF_CLAMP: return c.prf_clamp;
        case SLAY_ATTR_KERNEL_CLAMP: return c.kernel_clamp;
        case SLAY_ATTR_NYSTROM_REG: return c.nystrom_reg;
        case SLAY_ATTR_NORM_EPS: return c.norm_eps;
        case SLAY_ATTR_POLY2_GAMMA: return c.poly2_gamma;
        default: return NAN;
    }
}

void write_attr(AttnConfig& c, slay_attr_t id, double x) {
    const int64_t i = static_cast<int64_t>(x);
    switch (id) {
        case SLAY_ATTR_NUM_HEADS: c.num_heads = i; break;
        case SLAY_ATTR_HEAD_DIM: c.head_dim = i; break;
        case SLAY_ATTR_VALUE_DIM: c.value_dim = i; break;
        case SLAY_ATTR_CAUSAL: c.causal = i != 0; break;
        case SLAY_ATTR_IO_DTYPE: c.io_dtype = static_cast<slay_dtype_t>(i); break;
        case SLAY_ATTR_ALLOW_TF32: c.allow_tf32 = i != 0; break;
        case SLAY_ATTR_NUM_QUAD_NODES: c.num_quad_nodes = i; break;
        case SLAY_ATTR_NUM_FEATURES: c.num_features = i; break;
        case SLAY_ATTR_POLY_DIM: c.poly_dim = i; break;
        case SLAY_ATTR_CHUNK_SIZE: c.chunk_size = i; break;
        case SLAY_ATTR_STABILIZER_MODE: c.stabilizer_mode = static_cast<slay_stabilizer_mode_t>(i); break;
        case SLAY_ATTR_COSFORMER_LENGTH: c.cosformer_length = i; break;
        case SLAY_ATTR_NUM_KV_HEADS: c.num_kv_heads = i; break;
        case SLAY_ATTR_EPSILON: c.epsilon = x; break;
        case SLAY_ATTR_STABILIZER: c.stabilizer = x; break;
        case SLAY_ATTR_SCORE_SCALE: c.score_scale = x; break;
        case SLAY_ATTR_SOFTMAX_SCALE: c.softmax_scale = x; break;
        case SLAY_ATTR_PRF_CLAMP: c.prf_clamp = x; break;
        case SLAY_ATTR_KERNEL_CLAMP: c.kernel_clamp = x; break;
        case SLAY_ATTR_NYSTROM_REG: c.nystrom_reg = x; break;
        case SLAY_ATTR_NORM_EPS: c.norm_eps = x; break;
        case SLAY_ATTR_POLY2_GAMMA: c.poly2_gamma = x; break;
        default: break;
    }
}

// Existence, type and applicability: shared by get and set.
static Status check_attr_access(const AttnConfig& c, int32_t id, bool as_integer,
                                const AttrSpec** spec) {
    const AttrSpec* a = find_attr(id);
    if (!a) return error(SLAY_STATUS_UNKNOWN_ATTRIBUTE, "unknown attribute id ", id);
    if (a->is_integer != as_integer)
        return error(SLAY_STATUS_ATTRIBUTE_TYPE, "attribute ", a->name, " is ",
                     a->is_integer ? "an integer: use slay_attn_desc_set_i64/get_i64"
                                   : "a float: use slay_attn_desc_set_f64/get_f64");
    if (!attribute_applies(c.variant, a->id))
        return error(SLAY_STATUS_ATTRIBUTE_NOT_APPLICABLE, "attribute ", a->name,
                     " does not apply to variant ", variant_name(c.variant));
    *spec = a;
    return Status();
}

Status set_attr_checked(AttnConfig& c, int32_t id, bool as_integer, double value) {
    const AttrSpec* a = nullptr;
    SLAY_TRY(check_attr_access(c, id, as_integer, &a));
    const bool below = a->lo_open ? !(value > a->lo) : !(value >= a->lo);
    if (std::isnan(value) || below || value > a->hi)
        return error(SLAY_STATUS_INVALID_VALUE, "attribute ", a->name, "=", value, " is out of range ",
                     a->lo_open ? "(" : "[", a->lo, ", ", a->hi, "]");
    write_attr(c, a->id, value);
    return Status();
}

Status get_attr_checked(const AttnConfig& c, int32_t id, bool as_integer, double* value) {
    const AttrSpec* a = nullptr;
    SLAY_TRY(check_attr_access(c, id, as_integer, &a));
    *value = read_attr(c, a->id);
    return Status();
}

Status resolve_config(const AttnConfig& raw, AttnConfig* resolved) {
    AttnConfig c = raw;
    if (c.value_dim == 0) c.value_dim = c.head_dim;
    if (c.softmax_scale == 0) c.softmax_scale = 1.0 / std::sqrt(static_cast<double>(c.head_dim));
    if (c.num_kv_heads == 0) c.num_kv_heads = c.num_heads;
    if (c.num_heads % c.num_kv_heads != 0)
        return error(SLAY_STATUS_INVALID_VALUE, "num_heads=", c.num_heads, " is not a multiple of num_kv_heads=",
                     c.num_kv_heads, " (grouped-query attention shares each key/value head among H/H_kv "
                     "query heads)");
    if (variant_info(c.variant).feature_dim == FeatureDimRule::Poly2 && poly2_shape(c).frame_dim == 0)
        return error(SLAY_STATUS_INVALID_VALUE, "num_features=", c.num_features, " leaves ", variant_name(c.variant),
                     " no frame dimension: d(d+1)/2 + 1 (the constant feature of gamma > 0) <= num_features needs "
                     "num_features >= 2, or set poly2_gamma to 0");
    const int64_t F = feature_dim(c);
    if (F > kMaxFeatureDim)
        return error(SLAY_STATUS_INVALID_VALUE, "feature dimension F=", F, " of variant ",
                     variant_name(c.variant), " exceeds the limit ", kMaxFeatureDim,
                     " (F = R*P*M for Kronecker variants)");
    *resolved = c;
    return Status();
}

}  // namespace slay
