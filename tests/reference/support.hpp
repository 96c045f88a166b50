// support.hpp -- shared helpers of the reference tests: small configurations
// of every variant (H = 2, D = 4, Dv = 3, R = 2, M = 3, P = 3), random
// parameter vectors in param_layout order, random (T, D) inputs, and a
// callable wrapper around one head's forward/backward.
#pragma once

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "core/attributes.hpp"
#include "core/config.hpp"
#include "core/sampling_math.hpp"
#include "cpu/reference.hpp"

namespace slay_test {

using slay::AttnConfig;

inline std::vector<slay_attn_variant_t> all_variants() {
    std::vector<slay_attn_variant_t> v;
    for (int i = 0; i < SLAY_ATTN_VARIANT_COUNT_; ++i) v.push_back(static_cast<slay_attn_variant_t>(i));
    return v;
}

inline std::vector<slay_attn_variant_t> linearized_variants() {
    std::vector<slay_attn_variant_t> v;
    for (slay_attn_variant_t x : all_variants())
        if (!slay::is_exact_variant(x)) v.push_back(x);
    return v;
}

// The canonical name ("slay_anchor", ...), for test messages.
inline const char* variant_name(slay_attn_variant_t v) { return slay::variant_name(v); }

// The variant's defaults at test size; yat_spherical keeps its eps = 1e-2.
inline AttnConfig small_config(slay_attn_variant_t v, bool causal, int64_t R = 2, int64_t M = 3, int64_t P = 3,
                               int64_t D = 4, int64_t Dv = 3, int64_t H = 2) {
    AttnConfig c = slay::default_config(v);
    c.num_heads = H;
    c.head_dim = D;
    c.value_dim = Dv;
    c.causal = causal;
    c.num_quad_nodes = R;
    c.num_features = M;
    c.poly_dim = P;
    c.softmax_scale = 1.0 / std::sqrt(double(D));
    return c;
}

inline std::vector<double> gaussian(std::mt19937_64& rng, int64_t n, double sd = 1.0) {
    std::normal_distribution<double> g(0.0, sd);
    std::vector<double> x(n);
    for (double& e : x) e = g(rng);
    return x;
}

// A fresh draw of every parameter segment (SPEC A): Gaussian omega, unit-norm
// anchors, RM N(0, 1/D), Nystrom W from the anchors, integer TensorSketch
// hashes in [0, P) and +-1 signs, performer N(0, 1/D), rff phases in [0, 2 pi),
// poly2 frames with orthonormal columns (the library's own orthonormalization
// of Gaussian blocks).
inline std::vector<double> random_params(const AttnConfig& c, std::mt19937_64& rng) {
    std::vector<double> params(slay::param_count(c));
    std::normal_distribution<double> normal(0.0, 1.0);
    std::uniform_int_distribution<int> hash(0, int(c.poly_dim) - 1), coin(0, 1);
    std::uniform_real_distribution<double> phase(0.0, 2.0 * 3.14159265358979323846);
    const int64_t D = c.head_dim;
    int64_t anchors_at = -1;
    for (const slay::ParamSegment& s : slay::param_layout(c)) {
        const std::string name = s.name;
        double* seg = params.data() + s.offset;
        for (int64_t i = 0; i < s.count(); ++i) {
            if (name == "omega") seg[i] = normal(rng);
            else if (name == "rm_r1" || name == "rm_r2" || name == "performer_w") seg[i] = normal(rng) / std::sqrt(double(D));
            else if (name == "anchors") seg[i] = normal(rng);
            else if (name == "ts_hash1" || name == "ts_hash2") seg[i] = hash(rng);
            else if (name == "ts_sign1" || name == "ts_sign2") seg[i] = coin(rng) ? 1.0 : -1.0;
            else if (name == "rff_phase") seg[i] = phase(rng);
        }
        if (name == "anchors") {
            anchors_at = s.offset;
            for (int64_t p = 0; p < s.shape[0]; ++p) {
                double n2 = 0.0;
                for (int64_t d = 0; d < D; ++d) n2 += seg[p * D + d] * seg[p * D + d];
                for (int64_t d = 0; d < D; ++d) seg[p * D + d] /= std::sqrt(n2);
            }
        }
        if (name == "poly2_frame") {
            const int64_t heads = s.shape[0], d = s.shape[2];
            std::vector<float> block(D * d);
            std::vector<double> work(D * d);
            for (int64_t h = 0; h < heads; ++h) {
                for (float& e : block) e = static_cast<float>(normal(rng));
                slay::sampling::orthonormal_columns(block.data(), D, d, work.data(), block.data());
                for (int64_t i = 0; i < D * d; ++i) seg[h * D * d + i] = block[i];
            }
        }
        if (name == "nystrom_w")
            slay::cpu::nystrom_matrix(params.data() + anchors_at, c.poly_dim, D, c.nystrom_reg, seg);
    }
    return params;
}

inline double max_abs(const std::vector<double>& x) {
    double m = 0.0;
    for (double e : x) m = std::max(m, std::fabs(e));
    return m;
}

inline double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
    double m = 0.0;
    for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
    return m;
}

// max|a - b| / max(floor, max|b|)
inline double rel_error(const std::vector<double>& a, const std::vector<double>& b, double floor = 1e-300) {
    return max_abs_diff(a, b) / std::max(floor, max_abs(b));
}

// One head's inputs with owned storage.
struct HeadInputs {
    int64_t T = 0, head = 1, position_offset = 0;
    std::vector<double> q, k, v;
    slay::cpu::HeadSlice slice() const {
        slay::cpu::HeadSlice s;
        s.T = T;
        s.head = head;
        s.position_offset = position_offset;
        s.q = q.data();
        s.k = k.data();
        s.v = v.data();
        return s;
    }
};

inline HeadInputs random_inputs(const AttnConfig& c, int64_t T, std::mt19937_64& rng) {
    HeadInputs in;
    in.T = T;
    in.q = gaussian(rng, T * c.head_dim);
    in.k = gaussian(rng, T * c.head_dim);
    in.v = gaussian(rng, T * c.value_dim);
    return in;
}

// Rows [begin, end) of a (T, width) matrix.
inline std::vector<double> rows(const std::vector<double>& x, int64_t width, int64_t begin, int64_t end) {
    return std::vector<double>(x.begin() + begin * width, x.begin() + end * width);
}

}  // namespace slay_test
