// feature_maps.hpp -- the feature maps phi: R^D -> R^F of the eleven linearized
// variants (SPEC A.4-A.14) and their vector-Jacobian products (SPEC C.3 step 2),
// in fp64, one token at a time.
//
// Per head h, a token x (D) of q or k (T, D) maps to phi(x) (F):
//   Kronecker (anchor, tensorsketch, random Maclaurin, Nystrom):
//       phi[r*P*M + p*M + m] = poly_p(x^) * sqrt(w_r) * prf_{r,m}(x^)      F = R*P*M
//   Laplace:   phi[r*M + m] = sqrt(w_r^Lap) * prf_{r,m}(x^)               F = R*M
//   Hadamard:  phi[r*M + m] = sqrt(w_r) * u_{rm}^2/sqrt(M) * prf_{r,m}(x^) F = R*M
//   performer: relu(x^T W_h) (F = M); linear: elu(x)+1 (F = D);
//   cosformer: [c_i relu(x), s_i relu(x)] (F = 2D); rff: sqrt(2/M) cos(x^T omega_h + b_h) (F = M)
//   slay_poly2: w_ab u_a u_b at b(b+1)/2 + a for a <= b (w = 1 on the diagonal, sqrt(2) off it),
//              u = sqrt(D/d) S_h^T x^, then sqrt(gamma/D) if gamma > 0   (F = d(d+1)/2 [+1])
// where x^ = x / max(|x|, norm_eps) and prf_{r,m}(x^) = exp(clamp(sqrt(2 s_r) omega_{r,h,:,m}.x^ - s_r))/sqrt(M).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/config.hpp"
#include "cpu/reference.hpp"

namespace slay {
namespace cpu {

// x^ = x / max(|x|, eps) (F.normalize). Returns the divisor max(|x|, eps).
double normalize_vector(const double* x, int64_t D, double eps, double* xhat);

// dx = d(x^)/dx ^T dxhat. When |x| <= eps the divisor is the constant eps,
// so the VJP is dxhat/eps; otherwise the projection onto the tangent plane
// of the unit sphere, divided by |x| (SPEC C.2).
void normalize_vjp(const double* xhat, double divisor, double eps, const double* dxhat, int64_t D,
                   double* dx);

// Builds the feature map of a linearized variant from the fp64 parameter
// vector (param_layout order). The map copies what it needs. nullptr for
// exact variants.
std::unique_ptr<FeatureMap> make_feature_map(const AttnConfig& cfg, const double* params);

}  // namespace cpu
}  // namespace slay
