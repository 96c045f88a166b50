// reference.cpp -- the fp64 oracle for one (b, h) slice (SPEC A, B, C):
// q, k (T, D), v (T, Dv) -> out (T, Dv), optional state (F, Dv+1).
// Dispatches exact variants to exact.cpp and linearized ones to the feature
// map (feature_maps.cpp) plus the linear-attention core (linear_core.cpp).
#include "cpu/reference.hpp"

#include "cpu/exact.hpp"
#include "cpu/feature_maps.hpp"
#include "cpu/linear_core.hpp"

namespace slay {
namespace cpu {

Reference::Reference(const AttnConfig& cfg, const double* params) : cfg_(cfg) {
    const int64_t n = param_count(cfg);
    // A missing vector reads as zeros (callers validate before this point).
    params_.assign(n, 0.0);
    if (params && n > 0) params_.assign(params, params + n);
    // The map copies its segments, so it never points into params_.
    if (!is_exact_variant(cfg.variant)) map_ = make_feature_map(cfg_, params_.data());
}

Reference::~Reference() = default;

void Reference::forward(const HeadSlice& s, const double* state_in, double* out, double* state_out,
                        double* row_stats) const {
    if (map_) {
        linear_attention_forward(*map_, cfg_, s, state_in, out, state_out);
    } else {
        exact_attention_forward(cfg_, s, out, row_stats);  // exact variants carry no state
    }
}

void Reference::backward(const HeadSlice& s, const double* state_in, const double* dout, const double* dstate_out,
                         double* dq, double* dk, double* dv, double* dstate_in, const double* row_stats) const {
    if (map_) {
        linear_attention_backward(*map_, cfg_, s, state_in, dout, dstate_out, dq, dk, dv, dstate_in);
    } else {
        exact_attention_backward(cfg_, s, dout, dq, dk, dv, row_stats);
    }
}

}  // namespace cpu
}  // namespace slay
