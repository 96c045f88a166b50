// test_kernels.cpp -- expected-kernel identities of SPEC H by Monte Carlo
// through the FeatureMap (phi: R^D -> R^F for one token), and the Nystrom matrix.
// For unit q^, k^ with x = q^.k^ and fresh parameters per draw:
//   PRF (Laplace, R = 1):  E[phi(q).phi(k)] / w_0^Lap = e^{2 s x}
//   Kronecker variants:    E[phi(q).phi(k)] = kappa_poly(x) * sum_r w_r e^{2 s_r x},
//     anchor (1+2x^2)/(D(D+2)), random Maclaurin x^2/D^2, TensorSketch x^2/P
//   Hadamard:              (1/M) sum_r w_r e^{2 s_r x} [(1+2x^2) + 2c_r^2(1+2x) + c_r^4],
//                          c_r^2 = 2 s_r (1+x)^2
// Tolerance: 5 standard errors of the sample mean (fixed seeds). R = 1 keeps
// the PRF products' lognormal tails light enough for the standard error to be
// trustworthy (the identities hold node by node, so R = 1 loses no generality).
#include <doctest/doctest.h>

#include <functional>
#include <numeric>

#include "core/quadrature.hpp"
#include "cpu/feature_maps.hpp"
#include "support.hpp"

using namespace slay_test;

namespace {

// q^ = e_0, k^ = x e_0 + sqrt(1 - x^2) e_1, passed unnormalised (the maps normalise).
struct UnitPair {
    std::vector<double> q, k;
};

UnitPair unit_pair(int64_t D, double x) {
    UnitPair u{std::vector<double>(D, 0.0), std::vector<double>(D, 0.0)};
    u.q[0] = 2.5;
    u.k[0] = 0.7 * x;
    u.k[1] = 0.7 * std::sqrt(1.0 - x * x);
    return u;
}

struct Estimate {
    double mean, stderr_;
};

// Mean and standard error of phi(q).phi(k) over `draws` fresh parameter vectors.
Estimate monte_carlo(const AttnConfig& cfg, double x, int draws, uint64_t seed) {
    std::mt19937_64 rng(seed);
    const UnitPair u = unit_pair(cfg.head_dim, x);
    const int64_t F = slay::feature_dim(cfg);
    std::vector<double> pq(F), pk(F);
    double sum = 0.0, sum2 = 0.0;
    for (int n = 0; n < draws; ++n) {
        const std::vector<double> params = random_params(cfg, rng);
        const auto map = slay::cpu::make_feature_map(cfg, params.data());
        map->apply(0, 0, 1, u.q.data(), pq.data());
        map->apply(0, 0, 1, u.k.data(), pk.data());
        double s = 0.0;
        for (int64_t f = 0; f < F; ++f) s += pq[f] * pk[f];
        sum += s;
        sum2 += s * s;
    }
    const double mean = sum / draws, var = (sum2 / draws - mean * mean) * draws / (draws - 1.0);
    return {mean, std::sqrt(var / draws)};
}

double prf_mixture(const AttnConfig& cfg, double x) {
    const slay::PrfQuadrature quad = slay::prf_quadrature(cfg);
    double k = 0.0;
    for (size_t r = 0; r < quad.s.size(); ++r) k += quad.w[r] * std::exp(2.0 * quad.s[r] * x);
    return k;
}

void check_estimate(const char* what, const Estimate& e, double target) {
    INFO(std::string(what), ": MC ", e.mean, " +- ", e.stderr_, ", target ", target);
    MESSAGE(std::string(what), ": MC ", e.mean, " +- ", e.stderr_, ", target ", target, " (", (e.mean - target) / e.stderr_,
            " sigma)");
    CHECK(std::fabs(e.mean - target) < 5.0 * e.stderr_);
    CHECK(e.stderr_ < 0.05 * std::fabs(target));  // the test has power
}

const double kX = 0.6;
const int kDraws = 100000;

}  // namespace

TEST_SUITE("mc") {
    TEST_CASE("PRF: E[prf(q).prf(k)] = e^{2 s x}") {
        const AttnConfig cfg = small_config(SLAY_ATTN_SLAY_LAPLACE, true, 1, 16, 1, 4, 3, 1);
        const slay::PrfQuadrature quad = slay::prf_quadrature(cfg);
        Estimate e = monte_carlo(cfg, kX, kDraws, 11);
        e.mean /= quad.w[0];
        e.stderr_ /= quad.w[0];
        check_estimate("PRF", e, std::exp(2.0 * quad.s[0] * kX));
    }
    TEST_CASE("anchor: (1+2x^2)/(D(D+2)) times the PRF mixture") {
        const AttnConfig cfg = small_config(SLAY_ATTN_SLAY_ANCHOR, true, 1, 16, 8, 4, 3, 1);
        const double D = 4;
        check_estimate("anchor", monte_carlo(cfg, kX, kDraws, 12),
                       (1 + 2 * kX * kX) / (D * (D + 2)) * prf_mixture(cfg, kX));
    }
    TEST_CASE("random Maclaurin: x^2/D^2 times the PRF mixture") {
        const AttnConfig cfg = small_config(SLAY_ATTN_SLAY_RANDOM_MACLAURIN, true, 1, 16, 16, 4, 3, 1);
        check_estimate("random Maclaurin", monte_carlo(cfg, kX, kDraws, 13), kX * kX / 16.0 * prf_mixture(cfg, kX));
    }
    TEST_CASE("TensorSketch: x^2/P times the PRF mixture") {
        const AttnConfig cfg = small_config(SLAY_ATTN_SLAY_TENSORSKETCH, true, 1, 16, 4, 4, 3, 1);
        check_estimate("TensorSketch", monte_carlo(cfg, kX, kDraws, 14), kX * kX / 4.0 * prf_mixture(cfg, kX));
    }
    TEST_CASE("Hadamard: the closed form of SPEC A.11") {
        const AttnConfig cfg = small_config(SLAY_ATTN_SLAY_HADAMARD, true, 1, 16, 1, 4, 3, 1);
        const slay::PrfQuadrature quad = slay::prf_quadrature(cfg);
        double target = 0.0;
        for (size_t r = 0; r < quad.s.size(); ++r) {
            const double c2 = 2.0 * quad.s[r] * (1 + kX) * (1 + kX);
            target += quad.w[r] * std::exp(2.0 * quad.s[r] * kX) *
                      ((1 + 2 * kX * kX) + 2 * c2 * (1 + 2 * kX) + c2 * c2);
        }
        target /= double(cfg.num_features);
        check_estimate("Hadamard", monte_carlo(cfg, kX, kDraws, 15), target);
    }
}

// slay_poly2 is exact, not a Monte Carlo estimator: for its (fixed) frame,
// phi(q).phi(k) = (u_q.u_k)^2 + gamma/D with u = sqrt(D/d) S_h^T x^, checked
// against that formula written out in fp64 on random tokens, for a partial
// frame (d < D, with the constant) and a full one (d = D: u_q.u_k = q^.k^).
TEST_SUITE("poly2") {
    TEST_CASE("phi(q).phi(k) = (u_q.u_k)^2 + gamma/D, brute force") {
        struct Shape {
            int64_t D, budget;
            double gamma;
            int64_t d;  // expected frame dimension
        };
        for (const Shape& sh : {Shape{8, 20, 0.5, 5}, Shape{8, 36, 0.0, 8}, Shape{6, 40, 0.25, 6}}) {
            AttnConfig cfg = small_config(SLAY_ATTN_SLAY_POLY2, true, 1, 1, 1, sh.D, 3, 2);
            cfg.num_features = sh.budget;
            cfg.poly2_gamma = sh.gamma;
            const slay::Poly2Shape shape = slay::poly2_shape(cfg);
            CAPTURE(sh.D);
            CAPTURE(sh.budget);
            REQUIRE(shape.frame_dim == sh.d);
            REQUIRE(slay::feature_dim(cfg) == sh.d * (sh.d + 1) / 2 + (sh.gamma > 0 ? 1 : 0));
            std::mt19937_64 rng(21 + sh.D);
            const std::vector<double> params = random_params(cfg, rng);
            const auto map = slay::cpu::make_feature_map(cfg, params.data());
            const int64_t F = map->dim(), D = sh.D, d = sh.d;
            double worst = 0;
            for (int trial = 0; trial < 20; ++trial) {
                const int64_t head = trial % 2;
                const std::vector<double> q = gaussian(rng, D), k = gaussian(rng, D);
                std::vector<double> pq(F), pk(F);
                map->apply(head, 0, 1, q.data(), pq.data());
                map->apply(head, 0, 1, k.data(), pk.data());
                double dot_phi = 0;
                for (int64_t f = 0; f < F; ++f) dot_phi += pq[f] * pk[f];
                const double nq = std::sqrt(std::inner_product(q.begin(), q.end(), q.begin(), 0.0));
                const double nk = std::sqrt(std::inner_product(k.begin(), k.end(), k.begin(), 0.0));
                const double* S = params.data() + head * D * d;  // poly2_frame is the only segment
                double uu = 0, x = 0;
                for (int64_t a = 0; a < d; ++a) {
                    double uq = 0, uk = 0;
                    for (int64_t i = 0; i < D; ++i) {
                        uq += S[i * d + a] * q[i] / nq;
                        uk += S[i * d + a] * k[i] / nk;
                    }
                    uu += (double(D) / double(d)) * uq * uk;
                }
                for (int64_t i = 0; i < D; ++i) x += q[i] * k[i] / (nq * nk);
                const double expected = uu * uu + sh.gamma / double(D);
                worst = std::max(worst, std::fabs(dot_phi - expected) / std::max(1.0, std::fabs(expected)));
                // A full frame is a rotation: u_q.u_k = q^.k^, the kernel x^2 (+ gamma/D).
                if (d == D) CHECK(std::fabs(uu - x) < 1e-6);  // the frame is fp32-rounded
            }
            MESSAGE("poly2 D=", sh.D, " budget=", sh.budget, " d=", d, ": worst relative error ", worst);
            CHECK(worst < 1e-12);
        }
    }
    TEST_CASE("frame dimension and gamma from the budget (auto gamma)") {
        AttnConfig cfg = slay::default_config(SLAY_ATTN_SLAY_POLY2);  // budget 1024, gamma auto
        cfg.head_dim = 64;  // 2080 > 1024: gamma 0.5, d = 44 (990 + 1 <= 1024)
        slay::Poly2Shape s = slay::poly2_shape(cfg);
        CHECK(s.gamma == 0.5);
        CHECK(s.frame_dim == 44);
        CHECK(s.features == 991);
        cfg.head_dim = 32;  // 528 <= 1024: gamma 0, d = D
        s = slay::poly2_shape(cfg);
        CHECK(s.gamma == 0.0);
        CHECK(s.frame_dim == 32);
        CHECK(s.features == 528);
        cfg.num_features = 256;  // 528 > 256: gamma 0.5, d = 22 (253 + 1 <= 256)
        s = slay::poly2_shape(cfg);
        CHECK(s.frame_dim == 22);
        CHECK(s.features == 254);
    }
}

TEST_SUITE("nystrom") {
    TEST_CASE("nystrom_matrix: W symmetric and W K_AA W = I when well conditioned") {
        std::mt19937_64 rng(3);
        const int64_t P = 5, D = 6;  // P below the rank bound D(D+1)/2 = 21
        const double reg = 1e-3;
        std::vector<double> a = gaussian(rng, P * D);
        for (int64_t p = 0; p < P; ++p) {
            double n2 = 0.0;
            for (int64_t d = 0; d < D; ++d) n2 += a[p * D + d] * a[p * D + d];
            for (int64_t d = 0; d < D; ++d) a[p * D + d] /= std::sqrt(n2);
        }
        std::vector<double> w(P * P), k(P * P);
        slay::cpu::nystrom_matrix(a.data(), P, D, reg, w.data());
        for (int64_t i = 0; i < P; ++i)
            for (int64_t j = 0; j < P; ++j) {
                double g = 0.0;
                for (int64_t d = 0; d < D; ++d) g += a[i * D + d] * a[j * D + d];
                k[i * P + j] = g * g + (i == j ? reg : 0.0);
            }
        double asym = 0.0, err = 0.0;
        for (int64_t i = 0; i < P; ++i)
            for (int64_t j = 0; j < P; ++j) {
                asym = std::max(asym, std::fabs(w[i * P + j] - w[j * P + i]));
                double wkw = 0.0;
                for (int64_t s = 0; s < P; ++s)
                    for (int64_t t = 0; t < P; ++t) wkw += w[i * P + s] * k[s * P + t] * w[t * P + j];
                err = std::max(err, std::fabs(wkw - (i == j ? 1.0 : 0.0)));
            }
        MESSAGE("nystrom: max asymmetry ", asym, ", max |WKW - I| ", err);
        CHECK(asym < 1e-13);
        CHECK(err < 1e-10);
    }
    TEST_CASE("nystrom_matrix clamps eigenvalues at 1e-6 on a rank-deficient K_AA") {
        // D = 2: K_AA = (A A^T)^{o2} has rank <= 3, so with P = 5 and reg = 0
        // two eigenvalues are ~0 and get clamped; W stays finite with
        // |W| <= 1e3 = (1e-6)^{-1/2}, and W K W is a projector (W K W)^2 = W K W.
        std::mt19937_64 rng(4);
        const int64_t P = 5, D = 2;
        std::vector<double> a = gaussian(rng, P * D), w(P * P);
        slay::cpu::nystrom_matrix(a.data(), P, D, 0.0, w.data());
        for (double e : w) CHECK(std::isfinite(e));
        CHECK(max_abs(w) <= 1e3 * (1 + 1e-9));
    }
}
