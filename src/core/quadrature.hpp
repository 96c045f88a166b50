// quadrature.hpp -- Gauss-Laguerre nodes and weights (SPEC A.1) and the
// per-variant quadrature of the spherical Yat kernel kappa(x) = x^2/(C-2x):
//   s_r = t_r / C,   w_r = alpha_r / C      (anchor, hadamard, tensorsketch, rm, nystrom)
//   w_r^Lap = alpha_r * C / 4               (slay_laplace, SPEC A.10)
// where (t_r, alpha_r) integrate  int_0^inf e^{-t} f(t) dt.
#pragma once

#include <vector>

#include "config.hpp"

namespace slay {

struct GaussLaguerre {
    std::vector<double> nodes;    // t_r, increasing
    std::vector<double> weights;  // alpha_r, sum to 1
};

// R in [1, 64]; Newton iteration on the Laguerre polynomial in fp64.
GaussLaguerre gauss_laguerre(int n);

struct PrfQuadrature {
    std::vector<double> s;  // s_r  (exponent scales)
    std::vector<double> w;  // w_r  (weights; the feature carries sqrt(w_r))
};

// The (s_r, w_r) a PRF variant of config c uses (SPEC A.1, A.10).
PrfQuadrature prf_quadrature(const AttnConfig& c);

}  // namespace slay
