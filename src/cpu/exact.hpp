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

// row_stats (T), when non-null: each row's statistic (slay.h, ABI 4): the
// log-sum-exp of its scores (softmax family) or Z = sum_j K_ij (yat_spherical).
void exact_attention_forward(const AttnConfig& cfg, const HeadSlice& s, double* out, double* row_stats = nullptr);

// Combines a result over other keys (out_a (T, Dv), stats_a (T)) into this
// call's (out_b, stats_b), in place: the softmax family by log-sum-exp,
// yat_spherical by den(Z) (slay.h, row statistics).
void merge_exact_rows(const AttnConfig& cfg, int64_t T, const double* out_a, const double* stats_a, double* out_b,
                      double* stats_b);

// dq, dk (T, D) and dv (T, Dv) overwritten. row_stats (T), when non-null:
// the forward's row statistics (slay.h, ABI 5), used instead of recomputing
// them.
void exact_attention_backward(const AttnConfig& cfg, const HeadSlice& s, const double* dout, double* dq, double* dk,
                              double* dv, const double* row_stats = nullptr);

}  // namespace cpu
}  // namespace slay
