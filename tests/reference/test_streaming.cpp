// test_streaming.cpp -- state semantics of the linearized variants, one head:
//   * a sequence (T = 7) processed in pieces {3, 2, 2}, each piece's
//     state_out (F, Dv+1) feeding the next piece's state_in, equals one call
//     (outputs (T, Dv) and final state); the backward in reverse piece order,
//     each piece's dstate_in feeding the earlier piece's dstate_out, equals
//     one call's dq, dk (T, D), dv (T, Dv) and dstate_in;
//   * causal == bidirectional at T = 1 for all 13 variants.
#include <doctest/doctest.h>

#include <algorithm>

#include "support.hpp"

using namespace slay_test;
using slay::cpu::Reference;

namespace {

struct Pass {
    std::vector<double> out, state_out, dq, dk, dv, dstate_in;
};

// Forward and backward of rows [begin, end) of `in` as one call.
Pass run(const Reference& ref, const HeadInputs& in, int64_t begin, int64_t end, const double* state_in,
         const std::vector<double>& G, const double* dstate_out) {
    const AttnConfig& c = ref.config();
    const int64_t D = c.head_dim, Dv = c.value_dim, T = end - begin;
    const int64_t S = slay::feature_dim(c) * (Dv + 1);
    HeadInputs piece;
    piece.T = T;
    piece.head = in.head;
    piece.position_offset = begin;
    piece.q = rows(in.q, D, begin, end);
    piece.k = rows(in.k, D, begin, end);
    piece.v = rows(in.v, Dv, begin, end);
    const std::vector<double> g = rows(G, Dv, begin, end);
    Pass p;
    p.out.resize(T * Dv);
    p.state_out.resize(S);
    p.dq.resize(T * D);
    p.dk.resize(T * D);
    p.dv.resize(T * Dv);
    p.dstate_in.resize(S);
    ref.forward(piece.slice(), state_in, p.out.data(), p.state_out.data());
    ref.backward(piece.slice(), state_in, g.data(), dstate_out, p.dq.data(), p.dk.data(), p.dv.data(),
                 p.dstate_in.data());
    return p;
}

void append(std::vector<double>* to, const std::vector<double>& x) { to->insert(to->end(), x.begin(), x.end()); }

}  // namespace

TEST_SUITE("pieces") {
    TEST_CASE("a causal sequence in pieces equals one call, forward and backward") {
        const int64_t T = 7;
        const std::vector<int64_t> bounds = {0, 3, 5, 7};
        for (slay_attn_variant_t v : linearized_variants()) {
            std::mt19937_64 rng(500 + v);
            AttnConfig cfg = small_config(v, true);
            if (v == SLAY_ATTN_COSFORMER) cfg.cosformer_length = T;  // position weights of the whole sequence
            const std::vector<double> params = random_params(cfg, rng);
            const Reference ref(cfg, params.data());
            const int64_t S = slay::feature_dim(cfg) * (cfg.value_dim + 1);
            const HeadInputs in = random_inputs(cfg, T, rng);
            const std::vector<double> state0 = gaussian(rng, S);  // any initial state chains linearly
            const std::vector<double> G = gaussian(rng, T * cfg.value_dim), G_state = gaussian(rng, S);

            const Pass whole = run(ref, in, 0, T, state0.data(), G, G_state.data());

            // Forward in order, remembering each piece's initial state.
            std::vector<std::vector<double>> piece_state_in = {state0};
            std::vector<double> out;
            for (size_t p = 0; p + 1 < bounds.size(); ++p) {
                const Pass part = run(ref, in, bounds[p], bounds[p + 1], piece_state_in.back().data(), G, nullptr);
                append(&out, part.out);
                piece_state_in.push_back(part.state_out);
            }
            // Backward in reverse order: dstate_in of piece p+1 is dstate_out of piece p.
            std::vector<double> dstate = G_state, dq, dk, dv;
            std::vector<Pass> parts(bounds.size() - 1);
            for (size_t p = bounds.size() - 1; p-- > 0;) {
                parts[p] = run(ref, in, bounds[p], bounds[p + 1], piece_state_in[p].data(), G, dstate.data());
                dstate = parts[p].dstate_in;
            }
            for (const Pass& part : parts) {
                append(&dq, part.dq);
                append(&dk, part.dk);
                append(&dv, part.dv);
            }
            INFO(std::string(variant_name(v)));
            const double worst = std::max({rel_error(out, whole.out), rel_error(piece_state_in.back(), whole.state_out),
                                           rel_error(dq, whole.dq), rel_error(dk, whole.dk), rel_error(dv, whole.dv),
                                           rel_error(dstate, whole.dstate_in)});
            MESSAGE(std::string(variant_name(v)), ": worst relative difference pieces vs one call ", worst);
            CHECK(rel_error(out, whole.out) < 1e-12);
            CHECK(rel_error(piece_state_in.back(), whole.state_out) < 1e-12);
            CHECK(rel_error(dq, whole.dq) < 1e-12);
            CHECK(rel_error(dk, whole.dk) < 1e-12);
            CHECK(rel_error(dv, whole.dv) < 1e-12);
            CHECK(rel_error(dstate, whole.dstate_in) < 1e-12);
        }
    }

    TEST_CASE("causal equals bidirectional at T = 1 for every variant") {
        for (slay_attn_variant_t v : all_variants()) {
            std::mt19937_64 rng(900 + v);
            const AttnConfig causal = small_config(v, true), bidir = small_config(v, false);
            const std::vector<double> params = random_params(causal, rng);
            const Reference rc(causal, params.data()), rb(bidir, params.data());
            const HeadInputs in = random_inputs(causal, 1, rng);
            const bool stateful = !slay::is_exact_variant(v);
            const int64_t S = stateful ? slay::feature_dim(causal) * (causal.value_dim + 1) : 0;
            const std::vector<double> state0 = gaussian(rng, S), G = gaussian(rng, causal.value_dim),
                                      G_state = gaussian(rng, S);
            const double* s_in = stateful ? state0.data() : nullptr;
            const double* g_state = stateful ? G_state.data() : nullptr;
            Pass a, b;
            for (auto [ref, pass] : {std::pair<const Reference*, Pass*>{&rc, &a}, {&rb, &b}}) {
                pass->out.resize(causal.value_dim);
                pass->state_out.resize(S);
                pass->dq.resize(causal.head_dim);
                pass->dk.resize(causal.head_dim);
                pass->dv.resize(causal.value_dim);
                pass->dstate_in.resize(S);
                ref->forward(in.slice(), s_in, pass->out.data(), stateful ? pass->state_out.data() : nullptr);
                ref->backward(in.slice(), s_in, G.data(), g_state, pass->dq.data(), pass->dk.data(),
                              pass->dv.data(), stateful ? pass->dstate_in.data() : nullptr);
            }
            INFO(std::string(variant_name(v)));
            CHECK(rel_error(a.out, b.out) <= 1e-14);
            CHECK(rel_error(a.dq, b.dq) <= 1e-14);
            CHECK(rel_error(a.dk, b.dk) <= 1e-14);
            CHECK(rel_error(a.dv, b.dv) <= 1e-14);
            if (stateful) {
                CHECK(rel_error(a.state_out, b.state_out) <= 1e-14);
                CHECK(rel_error(a.dstate_in, b.dstate_in) <= 1e-14);
            }
        }
    }

    TEST_CASE("state_out may alias state_in") {
        std::mt19937_64 rng(42);
        const AttnConfig cfg = small_config(SLAY_ATTN_SLAY_ANCHOR, true);
        const std::vector<double> params = random_params(cfg, rng);
        const Reference ref(cfg, params.data());
        const HeadInputs in = random_inputs(cfg, 4, rng);
        const int64_t S = slay::feature_dim(cfg) * (cfg.value_dim + 1);
        std::vector<double> state = gaussian(rng, S), separate(S), out1(4 * 3), out2(4 * 3);
        ref.forward(in.slice(), state.data(), out1.data(), separate.data());
        ref.forward(in.slice(), state.data(), out2.data(), state.data());
        CHECK(max_abs_diff(out1, out2) == 0.0);
        CHECK(max_abs_diff(state, separate) == 0.0);
    }
}
