// exact.cpp -- standard, yat and yat_spherical attention of one head, forward
// and backward, by direct O(T^2) loops in fp64 (SPEC A.3, A.8, A.9, C.1, C.2).
//   q, k (T, D); v, out, dout (T, Dv).
// Every variant is o_i = sum_j A_ij v_j / den_i over the visible j:
//   softmax family (standard, yat): A_ij = softmax_j(s_ij), den_i = 1;
//   kernel family (yat_spherical):  A_ij = K_ij >= 0, den_i = den(sum_j K_ij).
// Backward: dA_ij = g_i.v_j/den_i + dZ_i with dZ_i = -(g_i.o_i)/den_i (0 under
// the stabilizer clamp); the softmax turns dA into ds_ij = A_ij (g_i.v_j - g_i.o_i).
// Each row's statistic (l_i, or Z_i) is the forward's when the caller gives
// it (ABI 5), else recomputed; the rest of the row follows from it alone.
#include "cpu/exact.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/feature_maps.hpp"
#include "cpu/stabilizer.hpp"
#include "cpu/vector_ops.hpp"

namespace slay {
namespace cpu {

namespace {

// The pairwise score of one variant and its gradient w.r.t. the score inputs.
// For yat_spherical the inputs are the normalised q^, k^ and the score is K_ij.
class PairScore {
public:
    PairScore(const AttnConfig& cfg, const HeadSlice& s)
        : cfg_(cfg), score_(variant_info(cfg.variant).score), T_(s.T), D_(cfg.head_dim) {
        if (score_ == ExactScore::Spherical) {
            // Normalise once; the backward maps dq^, dk^ back through the VJP.
            qn_.resize(T_ * D_);
            kn_.resize(T_ * D_);
            for (int64_t i = 0; i < T_; ++i) {
                q_div_.push_back(normalize_vector(s.q + i * D_, D_, cfg.norm_eps, qn_.data() + i * D_));
                k_div_.push_back(normalize_vector(s.k + i * D_, D_, cfg.norm_eps, kn_.data() + i * D_));
            }
            q_ = qn_.data();
            k_ = kn_.data();
        } else {
            q_ = s.q;
            k_ = s.k;
        }
    }

    bool softmax() const { return score_ != ExactScore::Spherical; }
    const double* q(int64_t i) const { return q_ + i * D_; }
    const double* k(int64_t j) const { return k_ + j * D_; }

    // s_ij (softmax family) or K_ij (kernel family); *slope = d value / d(q.k) for
    // standard and yat_spherical (through x), unused for yat.
    double value(int64_t i, int64_t j, double* slope) const {
        const double a = dot(q(i), k(j), D_);
        switch (score_) {
            case ExactScore::Softmax: *slope = cfg_.softmax_scale; return cfg_.softmax_scale * a;
            case ExactScore::Yat: {
                *slope = 0.0;
                const double b = yat_distance(i, j, a);
                return cfg_.score_scale * a * a / b;
            }
            default: {  // ExactScore::Spherical, a = x
                const double C = 2.0 + cfg_.epsilon, t = C - 2.0 * a;
                if (t < cfg_.kernel_clamp) {  // clamped: K = x^2/tau, dK/dx = 2x/tau
                    *slope = cfg_.score_scale * 2.0 * a / cfg_.kernel_clamp;
                    return cfg_.score_scale * a * a / cfg_.kernel_clamp;
                }
                *slope = cfg_.score_scale * 2.0 * a * (C - a) / (t * t);
                return cfg_.score_scale * a * a / t;
            }
        }
    }

    // dq_i += dvalue * d value/dq_i, dk_j += dvalue * d value/dk_j.
    void vjp_add(int64_t i, int64_t j, double dvalue, double* dq_i, double* dk_j) const {
        const double* qi = q(i);
        const double* kj = k(j);
        double slope = 0.0;
        value(i, j, &slope);
        if (score_ == ExactScore::Yat) {
            // s = c a^2/b, b = |q|^2 + |k|^2 - 2a + eps:
            // ds/dq = c (2a k/b - a^2 (2q - 2k)/b^2), symmetric for k.
            const double a = dot(qi, kj, D_), b = yat_distance(i, j, a), c = cfg_.score_scale * dvalue;
            const double lin = 2.0 * a / b, quad = a * a / (b * b);
            for (int64_t d = 0; d < D_; ++d) {
                dq_i[d] += c * (lin * kj[d] - quad * 2.0 * (qi[d] - kj[d]));
                dk_j[d] += c * (lin * qi[d] - quad * 2.0 * (kj[d] - qi[d]));
            }
            return;
        }
        for (int64_t d = 0; d < D_; ++d) {
            dq_i[d] += dvalue * slope * kj[d];
            dk_j[d] += dvalue * slope * qi[d];
        }
    }

    // Spherical: turn gradients w.r.t. q^, k^ (accumulated in place) into
    // gradients w.r.t. the raw q, k. Identity otherwise.
    void finish_input_gradients(double* dq, double* dk) const {
        if (softmax()) return;
        std::vector<double> g(D_);
        for (int64_t i = 0; i < T_; ++i) {
            std::copy(dq + i * D_, dq + (i + 1) * D_, g.begin());
            normalize_vjp(q(i), q_div_[i], cfg_.norm_eps, g.data(), D_, dq + i * D_);
            std::copy(dk + i * D_, dk + (i + 1) * D_, g.begin());
            normalize_vjp(k(i), k_div_[i], cfg_.norm_eps, g.data(), D_, dk + i * D_);
        }
    }

private:
    double yat_distance(int64_t i, int64_t j, double a) const {
        return dot(q(i), q(i), D_) + dot(k(j), k(j), D_) - 2.0 * a + cfg_.epsilon;
    }

    const AttnConfig& cfg_;
    ExactScore score_;  // the registry's score of the variant
    int64_t T_, D_;
    const double* q_;
    const double* k_;
    std::vector<double> qn_, kn_, q_div_, k_div_;
};

// Row i's weights A_ij over the visible keys j < count, its den and whether
// den passes gradient to Z, and its statistic (the log-sum-exp of the
// scores, or Z).
struct RowWeights {
    std::vector<double> a;
    Denominator den{1.0, true};
    double stat = 0.0;
};

// given_stat: row i's statistic from the caller (used as given), or null to
// compute it from the scores.
void row_weights(const PairScore& score, const AttnConfig& cfg, int64_t i, int64_t count, const double* given_stat,
                 RowWeights* row) {
    row->a.resize(count);
    double slope = 0.0;
    for (int64_t j = 0; j < count; ++j) row->a[j] = score.value(i, j, &slope);
    if (score.softmax()) {  // A_ij = exp(s_ij - l_i): normalised, den = 1
        double l = 0.0;
        if (given_stat) {
            l = *given_stat;
        } else {  // the log-sum-exp, max-subtracted
            const double mx = *std::max_element(row->a.begin(), row->a.end());
            double total = 0.0;
            for (double x : row->a) total += std::exp(x - mx);
            l = mx + std::log(total);
        }
        for (double& x : row->a) x = std::exp(x - l);
        row->den = {1.0, true};
        row->stat = l;
    } else {
        double Z = 0.0;
        if (given_stat)
            Z = *given_stat;
        else
            for (double x : row->a) Z += x;
        row->den = stabilized_denominator(Z, cfg);
        row->stat = Z;
    }
}

int64_t visible_keys(const AttnConfig& cfg, int64_t T, int64_t i) { return cfg.causal ? i + 1 : T; }

void row_output(const RowWeights& row, const double* v, int64_t Dv, double* o) {
    std::fill(o, o + Dv, 0.0);
    for (size_t j = 0; j < row.a.size(); ++j)
        for (int64_t e = 0; e < Dv; ++e) o[e] += row.a[j] * v[j * Dv + e];
    for (int64_t e = 0; e < Dv; ++e) o[e] /= row.den.value;
}

}  // namespace

void exact_attention_forward(const AttnConfig& cfg, const HeadSlice& s, double* out, double* row_stats) {
    const PairScore score(cfg, s);
    RowWeights row;
    for (int64_t i = 0; i < s.T; ++i) {
        row_weights(score, cfg, i, visible_keys(cfg, s.T, i), nullptr, &row);
        row_output(row, s.v, cfg.value_dim, out + i * cfg.value_dim);
        if (row_stats) row_stats[i] = row.stat;
    }
}

void merge_exact_rows(const AttnConfig& cfg, int64_t T, const double* out_a, const double* stats_a, double* out_b,
                      double* stats_b) {
    const int64_t Dv = cfg.value_dim;
    const bool softmax = variant_info(cfg.variant).score != ExactScore::Spherical;
    for (int64_t i = 0; i < T; ++i) {
        double wa, wb;  // the weights of out_a and out_b in the combined row
        if (softmax) {
            const double la = stats_a[i], lb = stats_b[i];
            const double m = std::max(la, lb);
            if (m == -HUGE_VAL) continue;  // neither side has a key: nothing to combine
            const double l = m + std::log(std::exp(la - m) + std::exp(lb - m));
            wa = std::exp(la - l);
            wb = std::exp(lb - l);
            stats_b[i] = l;
        } else {
            const double za = stats_a[i], zb = stats_b[i];
            const double den = stabilized_denominator(za + zb, cfg).value;
            wa = stabilized_denominator(za, cfg).value / den;
            wb = stabilized_denominator(zb, cfg).value / den;
            stats_b[i] = za + zb;
        }
        for (int64_t e = 0; e < Dv; ++e) out_b[i * Dv + e] = wa * out_a[i * Dv + e] + wb * out_b[i * Dv + e];
    }
}

void exact_attention_backward(const AttnConfig& cfg, const HeadSlice& s, const double* dout, double* dq, double* dk,
                              double* dv, const double* row_stats) {
    const int64_t T = s.T, D = cfg.head_dim, Dv = cfg.value_dim;
    const PairScore score(cfg, s);
    std::fill(dq, dq + T * D, 0.0);
    std::fill(dk, dk + T * D, 0.0);
    std::fill(dv, dv + T * Dv, 0.0);
    RowWeights row;
    std::vector<double> o(Dv);
    for (int64_t i = 0; i < T; ++i) {
        const int64_t count = visible_keys(cfg, T, i);
        row_weights(score, cfg, i, count, row_stats ? row_stats + i : nullptr, &row);
        row_output(row, s.v, Dv, o.data());
        const double* g = dout + i * Dv;
        const double delta = dot(g, o.data(), Dv);  // g_i . o_i
        for (int64_t j = 0; j < count; ++j) {
            const double gv = dot(g, s.v + j * Dv, Dv);
            for (int64_t e = 0; e < Dv; ++e) dv[j * Dv + e] += row.a[j] * g[e] / row.den.value;
            double dvalue;
            if (score.softmax()) {
                dvalue = row.a[j] * (gv - delta);  // softmax VJP
            } else {
                const double dZ = row.den.passes_gradient ? -delta / row.den.value : 0.0;
                dvalue = gv / row.den.value + dZ;  // dK_ij
            }
            score.vjp_add(i, j, dvalue, dq + i * D, dk + j * D);
        }
    }
    score.finish_input_gradients(dq, dk);
}

}  // namespace cpu
}  // namespace slay
