// test_gradients.cpp -- central finite differences (fp64, h = 1e-6) against
// the analytic backward of every variant, causal and bidirectional, one head
// (head 1 of H = 2) with q, k (T, D), v (T, Dv), D = 4, Dv = 3.
// Loss L = sum(out * G) + sum(state_out * G_state); linearized variants also
// get an initial state (F, Dv+1) made by a forward over a random prefix, and
// dstate_in is checked. Error: max|fd - analytic| / max(1, max|analytic|).
#include <doctest/doctest.h>

#include <algorithm>
#include <functional>

#include "cpu/feature_maps.hpp"

#include "support.hpp"

using namespace slay_test;
using slay::cpu::Reference;

namespace {

struct GradientCase {
    AttnConfig cfg;
    std::vector<double> params;
    HeadInputs in;
    std::vector<double> state_in;  // empty for exact variants
    std::vector<double> G, G_state;
};

using ConfigTweak = std::function<void(AttnConfig&)>;
using InputTweak = std::function<void(HeadInputs&)>;

GradientCase make_case(slay_attn_variant_t v, bool causal, int64_t T, uint64_t seed, const ConfigTweak& tweak,
                       const InputTweak& tweak_inputs) {
    std::mt19937_64 rng(seed);
    GradientCase c;
    c.cfg = small_config(v, causal);
    if (tweak) tweak(c.cfg);
    c.params = random_params(c.cfg, rng);
    c.in = random_inputs(c.cfg, T, rng);
    if (tweak_inputs) tweak_inputs(c.in);
    c.G = gaussian(rng, T * c.cfg.value_dim);
    if (!slay::is_exact_variant(v)) {
        const Reference ref(c.cfg, c.params.data());
        const int64_t F = slay::feature_dim(c.cfg);
        HeadInputs prefix = random_inputs(c.cfg, 3, rng);
        std::vector<double> out(3 * c.cfg.value_dim);
        c.state_in.resize(F * (c.cfg.value_dim + 1));
        ref.forward(prefix.slice(), nullptr, out.data(), c.state_in.data());
        c.G_state = gaussian(rng, F * (c.cfg.value_dim + 1));
    }
    return c;
}

double loss(const Reference& ref, const GradientCase& c, const HeadInputs& in, const std::vector<double>& state_in) {
    std::vector<double> out(in.T * c.cfg.value_dim), state_out(c.state_in.size());
    const bool stateful = !c.state_in.empty();
    ref.forward(in.slice(), stateful ? state_in.data() : nullptr, out.data(), stateful ? state_out.data() : nullptr);
    double L = 0.0;
    for (size_t i = 0; i < out.size(); ++i) L += out[i] * c.G[i];
    for (size_t i = 0; i < state_out.size(); ++i) L += state_out[i] * c.G_state[i];
    return L;
}

// Central differences of loss() w.r.t. every element of *x.
std::vector<double> finite_difference(std::vector<double>* x, const std::function<double()>& f) {
    const double h = 1e-6;
    std::vector<double> grad(x->size());
    for (size_t i = 0; i < x->size(); ++i) {
        const double saved = (*x)[i];
        (*x)[i] = saved + h;
        const double up = f();
        (*x)[i] = saved - h;
        const double down = f();
        (*x)[i] = saved;
        grad[i] = (up - down) / (2.0 * h);
    }
    return grad;
}

double fd_error(const std::vector<double>& fd, const std::vector<double>& analytic) {
    return max_abs_diff(fd, analytic) / std::max(1.0, max_abs(analytic));
}

// Z_i of each row (the quantity the stabilizer sees): sum_j K_ij for
// yat_spherical, (z0 + sum_j phi(k_j)) . phi(q_i) for linearized variants.
std::vector<double> row_sums(const GradientCase& c) {
    const int64_t T = c.in.T, D = c.cfg.head_dim, W = c.cfg.value_dim + 1;
    std::vector<double> Z(T, 0.0);
    if (c.cfg.variant == SLAY_ATTN_YAT_SPHERICAL) {
        auto norm = [&](const double* x) {
            double n2 = 0.0;
            for (int64_t d = 0; d < D; ++d) n2 += x[d] * x[d];
            return std::sqrt(n2);
        };
        for (int64_t i = 0; i < T; ++i)
            for (int64_t j = 0; j < (c.cfg.causal ? i + 1 : T); ++j) {
                const double* qi = &c.in.q[i * D];
                const double* kj = &c.in.k[j * D];
                double x = 0.0;
                for (int64_t d = 0; d < D; ++d) x += qi[d] * kj[d];
                x /= norm(qi) * norm(kj);
                Z[i] += c.cfg.score_scale * x * x / (2.0 + c.cfg.epsilon - 2.0 * x);
            }
        return Z;
    }
    const auto map = slay::cpu::make_feature_map(c.cfg, c.params.data());
    const int64_t F = map->dim();
    std::vector<double> z(F), phi(F);
    for (int64_t f = 0; f < F; ++f) z[f] = c.state_in[f * W + W - 1];
    auto add_key = [&](int64_t j) {
        map->apply(c.in.head, j, T, &c.in.k[j * D], phi.data());
        for (int64_t f = 0; f < F; ++f) z[f] += phi[f];
    };
    if (!c.cfg.causal)
        for (int64_t j = 0; j < T; ++j) add_key(j);
    for (int64_t i = 0; i < T; ++i) {
        if (c.cfg.causal) add_key(i);
        map->apply(c.in.head, i, T, &c.in.q[i * D], phi.data());
        for (int64_t f = 0; f < F; ++f) Z[i] += z[f] * phi[f];
    }
    return Z;
}

void check_gradients(slay_attn_variant_t v, bool causal, const ConfigTweak& tweak = {},
                     const InputTweak& tweak_inputs = {}) {
    GradientCase c = make_case(v, causal, 6, 1000 + 17 * v + (causal ? 1 : 0), tweak, tweak_inputs);
    const Reference ref(c.cfg, c.params.data());
    const int64_t T = c.in.T, D = c.cfg.head_dim, Dv = c.cfg.value_dim;
    const bool stateful = !c.state_in.empty();

    std::vector<double> dq(T * D), dk(T * D), dv(T * Dv), dstate(c.state_in.size());
    ref.backward(c.in.slice(), stateful ? c.state_in.data() : nullptr, c.G.data(),
                 stateful ? c.G_state.data() : nullptr, dq.data(), dk.data(), dv.data(),
                 stateful ? dstate.data() : nullptr);

    HeadInputs in = c.in;
    std::vector<double> state = c.state_in;
    auto f = [&] { return loss(ref, c, in, state); };
    const double eq = fd_error(finite_difference(&in.q, f), dq);
    const double ek = fd_error(finite_difference(&in.k, f), dk);
    const double ev = fd_error(finite_difference(&in.v, f), dv);
    const double es = stateful ? fd_error(finite_difference(&state, f), dstate) : 0.0;
    INFO(std::string(variant_name(v)), std::string(causal ? " causal" : " bidirectional"), ": dq ", eq, " dk ", ek, " dv ", ev,
         " dstate_in ", es, " (max|dq| ", max_abs(dq), ")");
    MESSAGE(std::string(variant_name(v)), std::string(causal ? " causal" : " bidirectional"), ": dq ", eq, " dk ", ek, " dv ", ev,
            " dstate_in ", es);
    CHECK(eq < 1e-5);
    CHECK(ek < 1e-5);
    CHECK(ev < 1e-5);
    CHECK(es < 1e-5);
    // The gradients must not be trivially zero.
    CHECK(max_abs(dq) > 1e-8);
    CHECK(max_abs(dk) > 1e-8);
    CHECK(max_abs(dv) > 1e-8);
    if (stateful) CHECK(max_abs(dstate) > 1e-8);
}

}  // namespace

TEST_SUITE("fd") {
    TEST_CASE("finite-difference gradients of every variant, causal") {
        for (slay_attn_variant_t v : all_variants()) check_gradients(v, true);
    }
    TEST_CASE("finite-difference gradients of every variant, bidirectional") {
        for (slay_attn_variant_t v : all_variants()) check_gradients(v, false);
    }

    // slay_poly2 at the small configuration's budget M = 3 has a frame of
    // d = 1; these budgets give a partial frame with the constant feature
    // (d = 3 < D, 6 + 1 = 7) and a full frame without it (d = D = 4, 10).
    TEST_CASE("finite-difference gradients of slay_poly2: partial frame + constant, full frame") {
        for (bool causal : {true, false}) {
            check_gradients(SLAY_ATTN_SLAY_POLY2, causal, [](AttnConfig& c) { c.num_features = 7; c.poly2_gamma = 0.5; });
            check_gradients(SLAY_ATTN_SLAY_POLY2, causal, [](AttnConfig& c) { c.num_features = 10; c.poly2_gamma = 0; });
        }
    }

    // The clamp and small-norm branches (SPEC C.1, C.2, F.9), each forced on
    // part of the data; random inputs keep every value away from the kinks.
    TEST_CASE("finite differences through the clamp and small-norm branches") {
        // Rows 0 of q and 2 of k get |x| < norm_eps = 1: x^ = x / eps there.
        const InputTweak shrink = [](HeadInputs& in) {
            for (int64_t d = 0; d < 4; ++d) {
                in.q[0 * 4 + d] *= 0.1;
                in.k[2 * 4 + d] *= 0.1;
            }
        };
        for (bool causal : {true, false}) {
            SUBCASE("PRF exponent clamp and normalisation eps") {
                for (slay_attn_variant_t v :
                     {SLAY_ATTN_SLAY_ANCHOR, SLAY_ATTN_SLAY_HADAMARD, SLAY_ATTN_SLAY_LAPLACE, SLAY_ATTN_SLAY_POLY2})
                    check_gradients(v, causal, [](AttnConfig& c) { c.prf_clamp = 0.3; c.norm_eps = 1.0; }, shrink);
            }
            SUBCASE("stabilizer clamp: den = max(Z, delta) held at delta on about half the rows") {
                for (slay_attn_variant_t v :
                     {SLAY_ATTN_SLAY_LAPLACE, SLAY_ATTN_YAT_SPHERICAL, SLAY_ATTN_SLAY_RANDOM_MACLAURIN}) {
                    const ConfigTweak clamp_mode = [](AttnConfig& c) { c.stabilizer_mode = SLAY_STABILIZER_CLAMP; };
                    const uint64_t seed = 1000 + 17 * v + (causal ? 1 : 0);
                    // delta = the median row sum Z_i, so both branches occur.
                    const std::vector<double> Z = row_sums(make_case(v, causal, 6, seed, clamp_mode, {}));
                    std::vector<double> sorted = Z;
                    std::sort(sorted.begin(), sorted.end());
                    const double delta = 0.5 * (sorted[2] + sorted[3]);
                    check_gradients(v, causal, [&](AttnConfig& c) {
                        clamp_mode(c);
                        c.stabilizer = delta;
                    });
                }
            }
            SUBCASE("yat_spherical kernel clamp max(C - 2x, tau) with tau = 1 and normalisation eps") {
                check_gradients(SLAY_ATTN_YAT_SPHERICAL, causal, [](AttnConfig& c) { c.kernel_clamp = 1.0; c.norm_eps = 1.0; },
                                shrink);
            }
        }
    }
}
