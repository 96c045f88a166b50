// quadrature.cpp -- Gauss-Laguerre nodes/weights by Newton iteration on
// L_n (fp64), and the PRF quadrature (s_r, w_r) of SPEC A.1 / A.10.
#include "quadrature.hpp"

#include <cmath>

namespace slay {

namespace {
// (L_n(x), L_{n-1}(x)) by the three-term recurrence.
void laguerre_pair(int n, double x, double* ln, double* lnm1) {
    double p0 = 1.0, p1 = 1.0 - x;
    if (n == 0) {
        *ln = 1.0;
        *lnm1 = 0.0;
        return;
    }
    for (int k = 1; k < n; ++k) {
        double p2 = ((2.0 * k + 1.0 - x) * p1 - k * p0) / (k + 1.0);
        p0 = p1;
        p1 = p2;
    }
    *ln = p1;
    *lnm1 = p0;
}
}  // namespace

GaussLaguerre gauss_laguerre(int n) {
    GaussLaguerre g;
    g.nodes.resize(n);
    g.weights.resize(n);
    double z = 0.0;
    for (int i = 0; i < n; ++i) {
        // Initial guesses of Numerical Recipes' gaulag (alpha = 0): each
        // guess lies in the basin of the i-th root, so Newton converges to it.
        if (i == 0) {
            z = 3.0 / (1.0 + 2.4 * n);
        } else if (i == 1) {
            z += 15.0 / (1.0 + 2.5 * n);
        } else {
            double ai = i - 1;
            z += ((1.0 + 2.55 * ai) / (1.9 * ai)) * (z - g.nodes[i - 2]);
        }
        double ln = 0, lnm1 = 0, deriv = 1;
        for (int it = 0; it < 200; ++it) {
            laguerre_pair(n, z, &ln, &lnm1);
            deriv = n * (ln - lnm1) / z;  // L_n'(z)
            double step = ln / deriv;
            z -= step;
            if (std::fabs(step) <= 1e-15 * std::fabs(z)) break;
        }
        laguerre_pair(n, z, &ln, &lnm1);
        deriv = n * (ln - lnm1) / z;
        g.nodes[i] = z;
        // alpha_i = -1 / (n L_{n-1}(t_i) L_n'(t_i))   (Gamma(n)/Gamma(n) = 1)
        g.weights[i] = -1.0 / (n * lnm1 * deriv);
    }
    return g;
}

PrfQuadrature prf_quadrature(const AttnConfig& c) {
    const double C = 2.0 + c.epsilon;
    GaussLaguerre g = gauss_laguerre(static_cast<int>(c.num_quad_nodes));
    PrfQuadrature q;
    for (size_t r = 0; r < g.nodes.size(); ++r) {
        q.s.push_back(g.nodes[r] / C);
        // Laplace-only targets (C^2/4)/(C-2x): weights alpha_r * C / 4.
        q.w.push_back(c.variant == SLAY_ATTN_SLAY_LAPLACE ? g.weights[r] * C / 4.0
                                                          : g.weights[r] / C);
    }
    return q;
}

}  // namespace slay
