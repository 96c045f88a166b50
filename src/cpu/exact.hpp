// exact.hpp -- the exact O(T^2) variants of one head, fp64 (SPEC A.3, A.8, A.9, C.2):
//   q, k (T, D); v, out, dout (T, Dv).
//   standard:      o_i = sum_j softmax_j(softmax_scale q_i.k_j) v_j
//   yat:           o_i = sum_j softmax_j(score_scale (q.k)^2/(|q|^2+|k|^2-2q.k+eps)) v_j
//   yat_spherical: o_i = sum_j K_ij v_j / den(sum_j K_ij), K = score_scale x^2/max(C-2x, kernel_clamp),
//                  x = q^_i.k^_j, C = 2+eps, den the stabilized denominator.
// Causal: j <= i; bidirectional: all j. Exact variants carry no state.
#pragma once

#include "core/config.hpp"
#include "cpu/reference.hpp"

namespace slay {
namespace cpu {

void exact_attention_forward(const AttnConfig& cfg, const HeadSlice& s, double* out);

// dq, dk (T, D) and dv (T, Dv) overwritten.
void exact_attention_backward(const AttnConfig& cfg, const HeadSlice& s, const double* dout, double* dq, double* dk,
                              double* dv);

}  // namespace cpu
}  // namespace slay
