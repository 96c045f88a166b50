// nystrom.cpp -- the Nystrom matrix of SPEC A.14, fp64:
//   A (P, D) anchors; K_AA = (A A^T)^{o2} + reg I  (P, P, symmetric PSD + reg);
//   K_AA = U diag(lambda) U^T by cyclic Jacobi rotations;
//   W = U diag(max(lambda_i, 1e-6)^{-1/2}) U^T  (P, P, symmetric).
// Jacobi is slow (O(P^3) per sweep) but accurate to fp64 rounding for every
// symmetric matrix, which is what an oracle needs.
#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/reference.hpp"

namespace slay {
namespace cpu {

namespace {

// Eigen-decomposition of the symmetric (n, n) matrix a (destroyed): on return
// the diagonal of a holds the eigenvalues and the columns of u the eigenvectors.
void jacobi_eigen(std::vector<double>& a, int64_t n, std::vector<double>& u) {
    u.assign(n * n, 0.0);
    for (int64_t i = 0; i < n; ++i) u[i * n + i] = 1.0;
    for (int sweep = 0; sweep < 100; ++sweep) {
        double off = 0.0, total = 0.0;
        for (int64_t i = 0; i < n; ++i)
            for (int64_t j = 0; j < n; ++j) {
                total += a[i * n + j] * a[i * n + j];
                if (i != j) off += a[i * n + j] * a[i * n + j];
            }
        if (off <= 1e-30 * total || off == 0.0) break;
        for (int64_t p = 0; p < n; ++p)
            for (int64_t q = p + 1; q < n; ++q) {
                const double apq = a[p * n + q];
                if (apq == 0.0) continue;
                // Rotation angle that zeroes a[p][q] (Golub & Van Loan 8.5.2).
                const double theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                const double t = (theta >= 0 ? 1.0 : -1.0) / (std::fabs(theta) + std::sqrt(theta * theta + 1.0));
                const double c = 1.0 / std::sqrt(t * t + 1.0), s = t * c;
                for (int64_t k = 0; k < n; ++k) {  // a <- a J (columns p, q)
                    const double akp = a[k * n + p], akq = a[k * n + q];
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for (int64_t k = 0; k < n; ++k) {  // a <- J^T a (rows p, q)
                    const double apk = a[p * n + k], aqk = a[q * n + k];
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for (int64_t k = 0; k < n; ++k) {  // u <- u J
                    const double ukp = u[k * n + p], ukq = u[k * n + q];
                    u[k * n + p] = c * ukp - s * ukq;
                    u[k * n + q] = s * ukp + c * ukq;
                }
            }
    }
}

}  // namespace

void nystrom_matrix(const double* anchors, int64_t P, int64_t D, double reg, double* w_out) {
    std::vector<double> kaa(P * P), u;
    for (int64_t i = 0; i < P; ++i)
        for (int64_t j = 0; j < P; ++j) {
            double g = 0.0;
            for (int64_t d = 0; d < D; ++d) g += anchors[i * D + d] * anchors[j * D + d];
            kaa[i * P + j] = g * g + (i == j ? reg : 0.0);
        }
    jacobi_eigen(kaa, P, u);
    std::vector<double> scale(P);
    for (int64_t i = 0; i < P; ++i) scale[i] = 1.0 / std::sqrt(std::max(kaa[i * P + i], 1e-6));
    for (int64_t i = 0; i < P; ++i)
        for (int64_t j = 0; j < P; ++j) {
            double acc = 0.0;
            for (int64_t e = 0; e < P; ++e) acc += u[i * P + e] * scale[e] * u[j * P + e];
            w_out[i * P + j] = acc;
        }
}

}  // namespace cpu
}  // namespace slay
