// feature_maps.cpp -- phi(x) and its VJP for the eleven linearized variants
// (SPEC A.4-A.14, C.3 step 2), fp64, one token x (D) of one head at a time.
// Parameter segments are read in param_layout order: omega (R,H,D,M),
// anchors / rm_r1 / rm_r2 (P,D), nystrom_w (P,P), ts_* (D), performer_w (H,D,M),
// rff omega (H,D,M), rff_phase (H,M), poly2_frame (H,D,d). Only the per-head
// segments are indexed by head.
#include "cpu/feature_maps.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "core/quadrature.hpp"
#include "core/sketch_bucket.hpp"
#include "cpu/vector_ops.hpp"

namespace slay {
namespace cpu {

namespace {

const double kPi = 3.14159265358979323846;

// A copy of the named segment of the parameter vector.
std::vector<double> segment(const AttnConfig& cfg, const double* params, SegmentRole role) {
    for (const ParamSegment& s : param_layout(cfg)) {
        if (s.role == role) return std::vector<double>(params + s.offset, params + s.offset + s.count());
    }
    return {};  // unreachable for a consistent (cfg, variant) pair
}

// exp(clamp(a, -bound, bound)); `passes` says whether the gradient flows
// (torch clamp convention: it does for -bound <= a <= bound).
struct ClampedExp {
    double value;
    bool passes;
};

ClampedExp clamped_exp(double a, double bound) {
    const double c = std::min(std::max(a, -bound), bound);
    return {std::exp(c), -bound <= a && a <= bound};
}

// ---------------------------------------------------------------------------
// Weighted positive random features pcat_{r,m} = sqrt(w_r) prf_{r,m}(x^),
// shared by every PRF variant (SPEC A.1). Index c = r*M + m.
class PositiveRandomFeatures {
public:
    PositiveRandomFeatures(const AttnConfig& cfg, const double* params)
        : R_(cfg.num_quad_nodes), H_(cfg.num_heads), D_(cfg.head_dim), M_(cfg.num_features),
          clamp_(cfg.prf_clamp), omega_(segment(cfg, params, SegmentRole::Omega)) {
        const PrfQuadrature quad = prf_quadrature(cfg);
        for (int64_t r = 0; r < R_; ++r) {
            s_.push_back(quad.s[r]);
            sqrt_2s_.push_back(std::sqrt(2.0 * std::max(quad.s[r], 0.0)));
            sqrt_w_.push_back(std::sqrt(std::max(quad.w[r], 0.0)));
        }
    }

    int64_t size() const { return R_ * M_; }
    int64_t R() const { return R_; }
    int64_t M() const { return M_; }
    double s(int64_t r) const { return s_[r]; }
    double sqrt_2s(int64_t r) const { return sqrt_2s_[r]; }
    double sqrt_w(int64_t r) const { return sqrt_w_[r]; }

    // u[r*M + m] = omega_{r,h,:,m} . xhat
    void project(int64_t head, const double* xhat, double* u) const {
        for (int64_t r = 0; r < R_; ++r) {
            const double* om = omega_.data() + (r * H_ + head) * D_ * M_;
            for (int64_t m = 0; m < M_; ++m) {
                double acc = 0.0;
                for (int64_t d = 0; d < D_; ++d) acc += om[d * M_ + m] * xhat[d];
                u[r * M_ + m] = acc;
            }
        }
    }

    // dxhat += sum_{r,m} du[r*M+m] omega_{r,h,:,m}
    void project_transpose_add(int64_t head, const double* du, double* dxhat) const {
        for (int64_t r = 0; r < R_; ++r) {
            const double* om = omega_.data() + (r * H_ + head) * D_ * M_;
            for (int64_t d = 0; d < D_; ++d) dxhat[d] += dot(om + d * M_, du + r * M_, M_);
        }
    }

    // exp(clamp(sqrt(2 s_r) u - s_r)) for the projection u of node r.
    ClampedExp exponential(int64_t r, double u) const { return clamped_exp(sqrt_2s_[r] * u - s_[r], clamp_); }

    void apply(int64_t head, const double* xhat, double* pcat) const {
        std::vector<double> u(size());
        project(head, xhat, u.data());
        const double inv_sqrt_m = 1.0 / std::sqrt(double(M_));
        for (int64_t r = 0; r < R_; ++r)
            for (int64_t m = 0; m < M_; ++m)
                pcat[r * M_ + m] = sqrt_w_[r] * exponential(r, u[r * M_ + m]).value * inv_sqrt_m;
    }

    // dxhat += (d pcat / d xhat)^T dpcat: d pcat / d a = pcat where unclamped.
    void vjp_add(int64_t head, const double* xhat, const double* dpcat, double* dxhat) const {
        std::vector<double> u(size()), du(size());
        project(head, xhat, u.data());
        const double inv_sqrt_m = 1.0 / std::sqrt(double(M_));
        for (int64_t r = 0; r < R_; ++r)
            for (int64_t m = 0; m < M_; ++m) {
                const int64_t c = r * M_ + m;
                const ClampedExp e = exponential(r, u[c]);
                du[c] = e.passes ? dpcat[c] * sqrt_w_[r] * e.value * inv_sqrt_m * sqrt_2s_[r] : 0.0;
            }
        project_transpose_add(head, du.data(), dxhat);
    }

private:
    int64_t R_, H_, D_, M_;
    double clamp_;
    std::vector<double> omega_;
    std::vector<double> s_, sqrt_2s_, sqrt_w_;
};

// ---------------------------------------------------------------------------
// Feature maps that act on x^ = x / max(|x|, norm_eps): every PRF variant.
// Subclasses define phi(x^) and its VJP w.r.t. x^; this class adds the
// normalisation and its VJP so that no variant repeats it.
class NormalizedFeatureMap : public FeatureMap {
public:
    NormalizedFeatureMap(int64_t D, double norm_eps) : D_(D), norm_eps_(norm_eps) {}

    void apply(int64_t head, int64_t, int64_t, const double* x, double* phi) const final {
        std::vector<double> xhat(D_);
        normalize_vector(x, D_, norm_eps_, xhat.data());
        apply_unit(head, xhat.data(), phi);
    }

    void vjp(int64_t head, int64_t, int64_t, const double* x, const double* dphi, double* dx) const final {
        std::vector<double> xhat(D_), dxhat(D_, 0.0);
        const double divisor = normalize_vector(x, D_, norm_eps_, xhat.data());
        vjp_unit_add(head, xhat.data(), dphi, dxhat.data());
        normalize_vjp(xhat.data(), divisor, norm_eps_, dxhat.data(), D_, dx);
    }

protected:
    virtual void apply_unit(int64_t head, const double* xhat, double* phi) const = 0;
    // dxhat += (d phi / d xhat)^T dphi
    virtual void vjp_unit_add(int64_t head, const double* xhat, const double* dphi, double* dxhat) const = 0;

    int64_t D_;
    double norm_eps_;
};

// ---------------------------------------------------------------------------
// Polynomial maps poly: x^ (D) -> R^P of the Kronecker variants (SPEC A.12, A.14).
class PolyMap {
public:
    virtual ~PolyMap() = default;
    virtual void apply(const double* xhat, double* poly) const = 0;
    // dxhat += (d poly / d xhat)^T dpoly
    virtual void vjp_add(const double* xhat, const double* dpoly, double* dxhat) const = 0;
};

// kappa[p] = (a_p . x^)^2 for the rows a_p of A (P, D): shared by anchor and Nystrom.
struct SquaredProjections {
    std::vector<double> rows;  // (P, D)
    int64_t P, D;

    void apply(const double* xhat, double* kappa) const {
        for (int64_t p = 0; p < P; ++p) {
            const double t = dot(rows.data() + p * D, xhat, D);
            kappa[p] = t * t;
        }
    }
    // dxhat += sum_p dkappa[p] * 2 (a_p . x^) a_p
    void vjp_add(const double* xhat, const double* dkappa, double* dxhat) const {
        for (int64_t p = 0; p < P; ++p) {
            const double* a = rows.data() + p * D;
            const double c = 2.0 * dkappa[p] * dot(a, xhat, D);
            for (int64_t d = 0; d < D; ++d) dxhat[d] += c * a[d];
        }
    }
};

// anchor: poly[p] = (a_p . x^)^2 / sqrt(P), anchors used as stored.
class AnchorPoly : public PolyMap {
public:
    AnchorPoly(std::vector<double> anchors, int64_t P, int64_t D)
        : proj_{std::move(anchors), P, D}, inv_sqrt_p_(1.0 / std::sqrt(double(P))) {}
    void apply(const double* xhat, double* poly) const override {
        proj_.apply(xhat, poly);
        for (int64_t p = 0; p < proj_.P; ++p) poly[p] *= inv_sqrt_p_;
    }
    void vjp_add(const double* xhat, const double* dpoly, double* dxhat) const override {
        std::vector<double> dkappa(dpoly, dpoly + proj_.P);
        for (double& g : dkappa) g *= inv_sqrt_p_;
        proj_.vjp_add(xhat, dkappa.data(), dxhat);
    }

private:
    SquaredProjections proj_;
    double inv_sqrt_p_;
};

// Nystrom: poly[p] = sum_{p'} kappa[p'] W[p', p] / sqrt(P), W (P, P) as stored.
class NystromPoly : public PolyMap {
public:
    NystromPoly(std::vector<double> anchors, std::vector<double> w, int64_t P, int64_t D)
        : proj_{std::move(anchors), P, D}, w_(std::move(w)), inv_sqrt_p_(1.0 / std::sqrt(double(P))) {}
    void apply(const double* xhat, double* poly) const override {
        const int64_t P = proj_.P;
        std::vector<double> kappa(P);
        proj_.apply(xhat, kappa.data());
        for (int64_t p = 0; p < P; ++p) {
            double acc = 0.0;
            for (int64_t q = 0; q < P; ++q) acc += kappa[q] * w_[q * P + p];
            poly[p] = acc * inv_sqrt_p_;
        }
    }
    void vjp_add(const double* xhat, const double* dpoly, double* dxhat) const override {
        const int64_t P = proj_.P;
        std::vector<double> dkappa(P);
        for (int64_t q = 0; q < P; ++q) dkappa[q] = dot(w_.data() + q * P, dpoly, P) * inv_sqrt_p_;
        proj_.vjp_add(xhat, dkappa.data(), dxhat);
    }

private:
    SquaredProjections proj_;
    std::vector<double> w_;
    double inv_sqrt_p_;
};

// random Maclaurin: poly[p] = (r1_p . x^)(r2_p . x^) / sqrt(P).
class MaclaurinPoly : public PolyMap {
public:
    MaclaurinPoly(std::vector<double> r1, std::vector<double> r2, int64_t P, int64_t D)
        : r1_(std::move(r1)), r2_(std::move(r2)), P_(P), D_(D), inv_sqrt_p_(1.0 / std::sqrt(double(P))) {}
    void apply(const double* xhat, double* poly) const override {
        for (int64_t p = 0; p < P_; ++p)
            poly[p] = dot(r1_.data() + p * D_, xhat, D_) * dot(r2_.data() + p * D_, xhat, D_) * inv_sqrt_p_;
    }
    void vjp_add(const double* xhat, const double* dpoly, double* dxhat) const override {
        for (int64_t p = 0; p < P_; ++p) {
            const double* a = r1_.data() + p * D_;
            const double* b = r2_.data() + p * D_;
            const double ua = dot(a, xhat, D_), ub = dot(b, xhat, D_), g = dpoly[p] * inv_sqrt_p_;
            for (int64_t d = 0; d < D_; ++d) dxhat[d] += g * (ub * a[d] + ua * b[d]);
        }
    }

private:
    std::vector<double> r1_, r2_;
    int64_t P_, D_;
    double inv_sqrt_p_;
};

// TensorSketch: poly = (CS1 (*) CS2) / sqrt(P), a circular convolution of two
// count sketches CS_a[p] = sum_{d: h_a(d) = p} s_a(d) x^_d. Direct O(P^2) here:
// this is the oracle, the FFT belongs to the fast backends.
class TensorSketchPoly : public PolyMap {
public:
    TensorSketchPoly(const std::vector<double>& h1, std::vector<double> s1, const std::vector<double>& h2,
                     std::vector<double> s2, int64_t P, int64_t D)
        : s1_(std::move(s1)), s2_(std::move(s2)), P_(P), D_(D), inv_sqrt_p_(1.0 / std::sqrt(double(P))) {
        // Any value maps to a bucket by the rule the CUDA backend uses too.
        for (double h : h1) h1_.push_back(sketch_bucket_of(static_cast<float>(h), static_cast<int>(P)));
        for (double h : h2) h2_.push_back(sketch_bucket_of(static_cast<float>(h), static_cast<int>(P)));
    }
    void apply(const double* xhat, double* poly) const override {
        std::vector<double> cs1, cs2;
        sketches(xhat, &cs1, &cs2);
        for (int64_t p = 0; p < P_; ++p) {
            double acc = 0.0;
            for (int64_t a = 0; a < P_; ++a) acc += cs1[a] * cs2[(p - a + P_) % P_];
            poly[p] = acc * inv_sqrt_p_;
        }
    }
    void vjp_add(const double* xhat, const double* dpoly, double* dxhat) const override {
        std::vector<double> cs1, cs2, dcs1(P_, 0.0), dcs2(P_, 0.0);
        sketches(xhat, &cs1, &cs2);
        // Circular cross-correlations of dpoly with the other sketch.
        for (int64_t a = 0; a < P_; ++a)
            for (int64_t p = 0; p < P_; ++p) {
                dcs1[a] += dpoly[p] * cs2[(p - a + P_) % P_] * inv_sqrt_p_;
                dcs2[a] += dpoly[p] * cs1[(p - a + P_) % P_] * inv_sqrt_p_;
            }
        for (int64_t d = 0; d < D_; ++d) dxhat[d] += s1_[d] * dcs1[h1_[d]] + s2_[d] * dcs2[h2_[d]];
    }

private:
    void sketches(const double* xhat, std::vector<double>* cs1, std::vector<double>* cs2) const {
        cs1->assign(P_, 0.0);
        cs2->assign(P_, 0.0);
        for (int64_t d = 0; d < D_; ++d) {
            (*cs1)[h1_[d]] += s1_[d] * xhat[d];
            (*cs2)[h2_[d]] += s2_[d] * xhat[d];
        }
    }

    std::vector<int64_t> h1_, h2_;
    std::vector<double> s1_, s2_;
    int64_t P_, D_;
    double inv_sqrt_p_;
};

// phi[r*P*M + p*M + m] = poly_p(x^) * pcat_{r*M+m}(x^)  (SPEC A.1 Kronecker feature).
class KroneckerMap : public NormalizedFeatureMap {
public:
    KroneckerMap(const AttnConfig& cfg, const double* params, std::unique_ptr<PolyMap> poly)
        : NormalizedFeatureMap(cfg.head_dim, cfg.norm_eps), prf_(cfg, params), poly_(std::move(poly)),
          P_(cfg.poly_dim) {}

    int64_t dim() const override { return prf_.size() * P_; }

protected:
    void apply_unit(int64_t head, const double* xhat, double* phi) const override {
        const int64_t R = prf_.R(), M = prf_.M();
        std::vector<double> poly(P_), pcat(prf_.size());
        poly_->apply(xhat, poly.data());
        prf_.apply(head, xhat, pcat.data());
        for (int64_t r = 0; r < R; ++r)
            for (int64_t p = 0; p < P_; ++p)
                for (int64_t m = 0; m < M; ++m) phi[(r * P_ + p) * M + m] = poly[p] * pcat[r * M + m];
    }

    void vjp_unit_add(int64_t head, const double* xhat, const double* dphi, double* dxhat) const override {
        const int64_t R = prf_.R(), M = prf_.M();
        std::vector<double> poly(P_), pcat(prf_.size()), dpoly(P_, 0.0), dpcat(prf_.size(), 0.0);
        poly_->apply(xhat, poly.data());
        prf_.apply(head, xhat, pcat.data());
        for (int64_t r = 0; r < R; ++r)
            for (int64_t p = 0; p < P_; ++p)
                for (int64_t m = 0; m < M; ++m) {
                    const double g = dphi[(r * P_ + p) * M + m];
                    dpoly[p] += g * pcat[r * M + m];
                    dpcat[r * M + m] += g * poly[p];
                }
        poly_->vjp_add(xhat, dpoly.data(), dxhat);
        prf_.vjp_add(head, xhat, dpcat.data(), dxhat);
    }

private:
    PositiveRandomFeatures prf_;
    std::unique_ptr<PolyMap> poly_;
    int64_t P_;
};

// Laplace-only: phi = pcat with the Laplace weights (prf_quadrature picks them).
class LaplaceMap : public NormalizedFeatureMap {
public:
    LaplaceMap(const AttnConfig& cfg, const double* params)
        : NormalizedFeatureMap(cfg.head_dim, cfg.norm_eps), prf_(cfg, params) {}
    int64_t dim() const override { return prf_.size(); }

protected:
    void apply_unit(int64_t head, const double* xhat, double* phi) const override { prf_.apply(head, xhat, phi); }
    void vjp_unit_add(int64_t head, const double* xhat, const double* dphi, double* dxhat) const override {
        prf_.vjp_add(head, xhat, dphi, dxhat);
    }

private:
    PositiveRandomFeatures prf_;
};

// Hadamard: phi[r*M+m] = sqrt(w_r) (u^2/sqrt(M)) exp(clamp(sqrt(2 s_r) u - s_r))/sqrt(M),
// u = omega_{r,h,:,m} . x^ (the same omega feeds the square and the exponential).
class HadamardMap : public NormalizedFeatureMap {
public:
    HadamardMap(const AttnConfig& cfg, const double* params)
        : NormalizedFeatureMap(cfg.head_dim, cfg.norm_eps), prf_(cfg, params) {}
    int64_t dim() const override { return prf_.size(); }

protected:
    void apply_unit(int64_t head, const double* xhat, double* phi) const override {
        const int64_t M = prf_.M();
        std::vector<double> u(prf_.size());
        prf_.project(head, xhat, u.data());
        for (int64_t r = 0; r < prf_.R(); ++r)
            for (int64_t m = 0; m < M; ++m) {
                const double uc = u[r * M + m];
                phi[r * M + m] = prf_.sqrt_w(r) * uc * uc * prf_.exponential(r, uc).value / double(M);
            }
    }
    void vjp_unit_add(int64_t head, const double* xhat, const double* dphi, double* dxhat) const override {
        const int64_t M = prf_.M();
        std::vector<double> u(prf_.size()), du(prf_.size());
        prf_.project(head, xhat, u.data());
        for (int64_t r = 0; r < prf_.R(); ++r)
            for (int64_t m = 0; m < M; ++m) {
                const int64_t c = r * M + m;
                const ClampedExp e = prf_.exponential(r, u[c]);
                const double de_du = e.passes ? e.value * prf_.sqrt_2s(r) : 0.0;
                du[c] = dphi[c] * prf_.sqrt_w(r) / double(M) * (2.0 * u[c] * e.value + u[c] * u[c] * de_du);
            }
        prf_.project_transpose_add(head, du.data(), dxhat);
    }

private:
    PositiveRandomFeatures prf_;
};

// performer: phi[m] = relu(x . W_h[:, m]) on raw x; W (H, D, M).
class PerformerMap : public FeatureMap {
public:
    PerformerMap(const AttnConfig& cfg, const double* params)
        : D_(cfg.head_dim), M_(cfg.num_features), w_(segment(cfg, params, SegmentRole::Omega)) {}
    int64_t dim() const override { return M_; }
    void apply(int64_t head, int64_t, int64_t, const double* x, double* phi) const override {
        for (int64_t m = 0; m < M_; ++m) phi[m] = std::max(pre(head, x, m), 0.0);
    }
    void vjp(int64_t head, int64_t, int64_t, const double* x, const double* dphi, double* dx) const override {
        std::fill(dx, dx + D_, 0.0);
        const double* w = w_.data() + head * D_ * M_;
        for (int64_t m = 0; m < M_; ++m) {
            if (pre(head, x, m) <= 0.0) continue;  // relu'(t) = 0 for t <= 0 (torch)
            for (int64_t d = 0; d < D_; ++d) dx[d] += dphi[m] * w[d * M_ + m];
        }
    }

private:
    double pre(int64_t head, const double* x, int64_t m) const {
        const double* w = w_.data() + head * D_ * M_;
        double acc = 0.0;
        for (int64_t d = 0; d < D_; ++d) acc += x[d] * w[d * M_ + m];
        return acc;
    }
    int64_t D_, M_;
    std::vector<double> w_;
};

// linear: phi = elu(x) + 1 on raw x (x+1 for x > 0, e^x otherwise).
class EluMap : public FeatureMap {
public:
    explicit EluMap(const AttnConfig& cfg) : D_(cfg.head_dim) {}
    int64_t dim() const override { return D_; }
    void apply(int64_t, int64_t, int64_t, const double* x, double* phi) const override {
        for (int64_t d = 0; d < D_; ++d) phi[d] = x[d] > 0.0 ? x[d] + 1.0 : std::exp(x[d]);
    }
    void vjp(int64_t, int64_t, int64_t, const double* x, const double* dphi, double* dx) const override {
        for (int64_t d = 0; d < D_; ++d) dx[d] = dphi[d] * (x[d] > 0.0 ? 1.0 : std::exp(x[d]));
    }

private:
    int64_t D_;
};

// cosformer: phi = [c_i relu(x), s_i relu(x)] with c_i = cos(pi i/(2L)),
// s_i = sin(pi i/(2L)), i the global position, L the cosformer length.
class CosformerMap : public FeatureMap {
public:
    explicit CosformerMap(const AttnConfig& cfg) : D_(cfg.head_dim) {}
    int64_t dim() const override { return 2 * D_; }
    void apply(int64_t, int64_t pos, int64_t length, const double* x, double* phi) const override {
        const double angle = kPi * double(pos) / (2.0 * double(length));
        const double c = std::cos(angle), s = std::sin(angle);
        for (int64_t d = 0; d < D_; ++d) {
            const double relu = std::max(x[d], 0.0);
            phi[d] = c * relu;
            phi[D_ + d] = s * relu;
        }
    }
    void vjp(int64_t, int64_t pos, int64_t length, const double* x, const double* dphi, double* dx) const override {
        const double angle = kPi * double(pos) / (2.0 * double(length));
        const double c = std::cos(angle), s = std::sin(angle);
        for (int64_t d = 0; d < D_; ++d) dx[d] = x[d] > 0.0 ? c * dphi[d] + s * dphi[D_ + d] : 0.0;
    }

private:
    int64_t D_;
};

// rff: phi[m] = sqrt(2/M) cos(x . omega_h[:, m] + b_h[m]) on raw x; omega (H,D,M), b (H,M).
class RandomFourierMap : public FeatureMap {
public:
    RandomFourierMap(const AttnConfig& cfg, const double* params)
        : D_(cfg.head_dim), M_(cfg.num_features), omega_(segment(cfg, params, SegmentRole::Omega)),
          phase_(segment(cfg, params, SegmentRole::Phase)), scale_(std::sqrt(2.0 / double(cfg.num_features))) {}
    int64_t dim() const override { return M_; }
    void apply(int64_t head, int64_t, int64_t, const double* x, double* phi) const override {
        for (int64_t m = 0; m < M_; ++m) phi[m] = scale_ * std::cos(angle(head, x, m));
    }
    void vjp(int64_t head, int64_t, int64_t, const double* x, const double* dphi, double* dx) const override {
        std::fill(dx, dx + D_, 0.0);
        const double* om = omega_.data() + head * D_ * M_;
        for (int64_t m = 0; m < M_; ++m) {
            const double g = -dphi[m] * scale_ * std::sin(angle(head, x, m));
            for (int64_t d = 0; d < D_; ++d) dx[d] += g * om[d * M_ + m];
        }
    }

private:
    double angle(int64_t head, const double* x, int64_t m) const {
        const double* om = omega_.data() + head * D_ * M_;
        double acc = phase_[head * M_ + m];
        for (int64_t d = 0; d < D_; ++d) acc += x[d] * om[d * M_ + m];
        return acc;
    }
    int64_t D_, M_;
    std::vector<double> omega_, phase_;
    double scale_;
};

// slay_poly2 (issue 17): u = sqrt(D/d) S_h^T x^ with S_h (D, d) the head's
// orthonormal frame (poly2_frame (H, D, d)); phi[b(b+1)/2 + a] = w_ab u_a u_b
// for a <= b, w_aa = 1 and w_ab = sqrt(2), so sum_f phi(q)_f phi(k)_f =
// (u_q . u_k)^2; with gamma > 0 a last feature sqrt(gamma/D) adds gamma/D.
class Poly2Map : public NormalizedFeatureMap {
public:
    Poly2Map(const AttnConfig& cfg, const double* params)
        : NormalizedFeatureMap(cfg.head_dim, cfg.norm_eps), shape_(poly2_shape(cfg)), d_(shape_.frame_dim),
          scale_(std::sqrt(double(cfg.head_dim) / double(shape_.frame_dim))),
          constant_(std::sqrt(shape_.gamma / double(cfg.head_dim))), frame_(segment(cfg, params, SegmentRole::Omega)) {}
    int64_t dim() const override { return shape_.features; }

protected:
    void apply_unit(int64_t head, const double* xhat, double* phi) const override {
        std::vector<double> u(d_);
        project(head, xhat, u.data());
        for (int64_t b = 0; b < d_; ++b)
            for (int64_t a = 0; a <= b; ++a) phi[b * (b + 1) / 2 + a] = weight(a, b) * u[a] * u[b];
        if (shape_.constant) phi[shape_.features - 1] = constant_;
    }
    void vjp_unit_add(int64_t head, const double* xhat, const double* dphi, double* dxhat) const override {
        std::vector<double> u(d_), du(d_, 0.0);
        project(head, xhat, u.data());
        for (int64_t b = 0; b < d_; ++b)
            for (int64_t a = 0; a <= b; ++a) {
                const double g = dphi[b * (b + 1) / 2 + a] * weight(a, b);
                du[a] += g * u[b];
                du[b] += g * u[a];
            }
        // dxhat += sqrt(D/d) S_h du (the constant feature has no gradient).
        const double* s = frame_.data() + head * D_ * d_;
        for (int64_t k = 0; k < D_; ++k) dxhat[k] += scale_ * dot(s + k * d_, du.data(), d_);
    }

private:
    static double weight(int64_t a, int64_t b) { return a == b ? 1.0 : std::sqrt(2.0); }
    // u[a] = sqrt(D/d) sum_k S_h[k][a] x^_k
    void project(int64_t head, const double* xhat, double* u) const {
        const double* s = frame_.data() + head * D_ * d_;
        for (int64_t a = 0; a < d_; ++a) {
            double acc = 0.0;
            for (int64_t k = 0; k < D_; ++k) acc += s[k * d_ + a] * xhat[k];
            u[a] = scale_ * acc;
        }
    }

    Poly2Shape shape_;
    int64_t d_;
    double scale_, constant_;
    std::vector<double> frame_;
};

}  // namespace

double normalize_vector(const double* x, int64_t D, double eps, double* xhat) {
    const double divisor = std::max(std::sqrt(dot(x, x, D)), eps);
    for (int64_t d = 0; d < D; ++d) xhat[d] = x[d] / divisor;
    return divisor;
}

void normalize_vjp(const double* xhat, double divisor, double eps, const double* dxhat, int64_t D, double* dx) {
    if (divisor <= eps) {  // |x| <= eps: x^ = x / eps, a constant divisor
        for (int64_t d = 0; d < D; ++d) dx[d] = dxhat[d] / eps;
        return;
    }
    const double radial = dot(dxhat, xhat, D);
    for (int64_t d = 0; d < D; ++d) dx[d] = (dxhat[d] - radial * xhat[d]) / divisor;
}

std::unique_ptr<FeatureMap> make_feature_map(const AttnConfig& cfg, const double* params) {
    const int64_t P = cfg.poly_dim, D = cfg.head_dim;
    switch (variant_info(cfg.variant).map) {
        case MapKind::Anchor:
            return std::make_unique<KroneckerMap>(
                cfg, params, std::make_unique<AnchorPoly>(segment(cfg, params, SegmentRole::RowsA), P, D));
        case MapKind::Nystrom:
            return std::make_unique<KroneckerMap>(
                cfg, params,
                std::make_unique<NystromPoly>(segment(cfg, params, SegmentRole::RowsA), segment(cfg, params, SegmentRole::RowsB), P, D));
        case MapKind::Maclaurin:
            return std::make_unique<KroneckerMap>(
                cfg, params,
                std::make_unique<MaclaurinPoly>(segment(cfg, params, SegmentRole::RowsA), segment(cfg, params, SegmentRole::RowsB), P, D));
        case MapKind::TensorSketch:
            return std::make_unique<KroneckerMap>(
                cfg, params,
                std::make_unique<TensorSketchPoly>(segment(cfg, params, SegmentRole::SketchHash1), segment(cfg, params, SegmentRole::SketchSign1),
                                                   segment(cfg, params, SegmentRole::SketchHash2), segment(cfg, params, SegmentRole::SketchSign2), P,
                                                   D));
        case MapKind::Laplace: return std::make_unique<LaplaceMap>(cfg, params);
        case MapKind::Hadamard: return std::make_unique<HadamardMap>(cfg, params);
        case MapKind::Performer: return std::make_unique<PerformerMap>(cfg, params);
        case MapKind::Linear: return std::make_unique<EluMap>(cfg);
        case MapKind::Cosformer: return std::make_unique<CosformerMap>(cfg);
        case MapKind::RandomFourier: return std::make_unique<RandomFourierMap>(cfg, params);
        case MapKind::Poly2: return std::make_unique<Poly2Map>(cfg, params);
        case MapKind::None: break;
    }
    return nullptr;
}

}  // namespace cpu
}  // namespace slay
