// linear_core.hpp -- linear attention of one head over explicit features
// (SPEC 0, B, C.3), fp64, O(T F Dv):
//   phi_q, phi_k (T, F) from the variant's FeatureMap; v (T, Dv); out (T, Dv);
//   state (F, Dv+1) = [S | z], S = S0 + sum_j phi(k_j) v_j^T, z = z0 + sum_j phi(k_j).
//   causal:        query i sees S0 + keys j <= i of this call
//   bidirectional: query i sees S0 + every key of this call
//   o_i = N_i / den(Z_i), N_i = S_i^T phi(q_i), Z_i = z_i . phi(q_i).
// state_out = S0 + all keys of the call in both modes, so pieces chain.
#pragma once

#include "core/config.hpp"
#include "cpu/reference.hpp"

namespace slay {
namespace cpu {

// state_in / state_out may be null; state_out may alias state_in.
void linear_attention_forward(const FeatureMap& map, const AttnConfig& cfg, const HeadSlice& s,
                              const double* state_in, double* out, double* state_out);

// dq, dk (T, D), dv (T, Dv) overwritten; dstate_out (F, Dv+1) may be null
// (zero); dstate_in written when non-null (it is the final suffix carry).
void linear_attention_backward(const FeatureMap& map, const AttnConfig& cfg, const HeadSlice& s,
                               const double* state_in, const double* dout, const double* dstate_out, double* dq,
                               double* dk, double* dv, double* dstate_in);

}  // namespace cpu
}  // namespace slay
