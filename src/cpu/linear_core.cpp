// linear_core.cpp -- causal / bidirectional linear attention of one head
// over explicit features, forward and backward (SPEC 0, B, C.3), fp64.
//   phi_q, phi_k (T, F); v (T, Dv); vbar = [v | 1] (T, Dv+1);
//   state (F, Dv+1) = S0 + sum_j phi_k_j vbar_j^T; NZ_i = state_i^T phi_q_i = [N_i | Z_i].
// Backward: with dNZ_i = [g_i/den_i | dZ_i], the suffix carry
//   U_j = dstate_out + sum_{i >= j} phi_q_i dNZ_i^T  (F, Dv+1)
// gives dphi_k_j = U_j vbar_j, dv_j = U_j[:, :Dv]^T phi_k_j, and dstate_in = U_0.
// Forward prefix states and backward suffix carries are the same operation
// (an outer-product accumulation visited in scan order), so one routine does both.
#include "cpu/linear_core.hpp"

#include <algorithm>
#include <functional>
#include <vector>

#include "cpu/stabilizer.hpp"
#include "cpu/vector_ops.hpp"

namespace slay {
namespace cpu {

namespace {

// One head's features and augmented values.
struct LinearInputs {
    int64_t T, F, D, Dv, W;     // W = Dv + 1
    std::vector<double> phi_q;  // (T, F)
    std::vector<double> phi_k;  // (T, F)
    std::vector<double> vbar;   // (T, W): [v_j | 1]
};

LinearInputs gather_inputs(const FeatureMap& map, const AttnConfig& cfg, const HeadSlice& s) {
    LinearInputs in;
    in.T = s.T;
    in.F = map.dim();
    in.D = cfg.head_dim;
    in.Dv = cfg.value_dim;
    in.W = in.Dv + 1;
    // Cosformer positions are global; L = cosformer_length, or T of this call.
    const int64_t length = cfg.cosformer_length > 0 ? cfg.cosformer_length : s.T;
    in.phi_q.resize(in.T * in.F);
    in.phi_k.resize(in.T * in.F);
    in.vbar.resize(in.T * in.W);
    for (int64_t i = 0; i < in.T; ++i) {
        const int64_t pos = s.position_offset + i;
        map.apply(s.head, pos, length, s.q + i * in.D, in.phi_q.data() + i * in.F);
        map.apply(s.head, pos, length, s.k + i * in.D, in.phi_k.data() + i * in.F);
        std::copy(s.v + i * in.Dv, s.v + (i + 1) * in.Dv, in.vbar.data() + i * in.W);
        in.vbar[i * in.W + in.Dv] = 1.0;
    }
    return in;
}

// acc (F, W) starts at `initial` (or 0) and accumulates a_t b_t^T for t in
// scan order (forward: 0..T-1, reverse: T-1..0). visit(t, acc) sees, when
// causal, the accumulation including t; when bidirectional, the total.
// Returns the total in acc.
void accumulate_and_visit(int64_t T, int64_t F, int64_t W, const double* a, const double* b,
                          const double* initial, bool causal, bool reverse, std::vector<double>& acc,
                          const std::function<void(int64_t, const std::vector<double>&)>& visit) {
    acc.assign(F * W, 0.0);
    if (initial) std::copy(initial, initial + F * W, acc.begin());
    auto add = [&](int64_t t) {
        for (int64_t f = 0; f < F; ++f) {
            // No skipping of zero features: 0 * inf must stay NaN, as in IEEE
            // arithmetic and in the reference implementation.
            const double af = a[t * F + f];
            for (int64_t w = 0; w < W; ++w) acc[f * W + w] += af * b[t * W + w];
        }
    };
    for (int64_t n = 0; n < T; ++n) {
        const int64_t t = reverse ? T - 1 - n : n;
        add(t);
        if (causal) visit(t, acc);
    }
    if (!causal)
        for (int64_t t = 0; t < T; ++t) visit(t, acc);
}

// NZ = state^T phi (W values).
void contract_state(const std::vector<double>& state, int64_t F, int64_t W, const double* phi, double* nz) {
    std::fill(nz, nz + W, 0.0);
    for (int64_t f = 0; f < F; ++f) {
        for (int64_t w = 0; w < W; ++w) nz[w] += phi[f] * state[f * W + w];
    }
}

}  // namespace

void linear_attention_forward(const FeatureMap& map, const AttnConfig& cfg, const HeadSlice& s,
                              const double* state_in, double* out, double* state_out) {
    const LinearInputs in = gather_inputs(map, cfg, s);
    std::vector<double> state, nz(in.W);
    accumulate_and_visit(in.T, in.F, in.W, in.phi_k.data(), in.vbar.data(), state_in, cfg.causal, false, state,
                         [&](int64_t i, const std::vector<double>& S) {
                             contract_state(S, in.F, in.W, in.phi_q.data() + i * in.F, nz.data());
                             const Denominator den = stabilized_denominator(nz[in.Dv], cfg);
                             for (int64_t e = 0; e < in.Dv; ++e) out[i * in.Dv + e] = nz[e] / den.value;
                         });
    // state_out may alias state_in: state_in was fully read above.
    if (state_out) std::copy(state.begin(), state.end(), state_out);
}

void linear_attention_backward(const FeatureMap& map, const AttnConfig& cfg, const HeadSlice& s,
                               const double* state_in, const double* dout, const double* dstate_out, double* dq,
                               double* dk, double* dv, double* dstate_in) {
    const LinearInputs in = gather_inputs(map, cfg, s);
    const int64_t T = in.T, F = in.F, W = in.W, Dv = in.Dv, D = in.D;
    const int64_t length = cfg.cosformer_length > 0 ? cfg.cosformer_length : T;

    // Query side: recompute each row's visible state, output and den, then
    // dNZ_i = [g_i/den_i | -(g_i.o_i)/den_i (0 when clamped)] and dphi_q_i = state_i dNZ_i.
    std::vector<double> dnz(T * W), dphi_q(T * F), dphi_k(T * F), state, nz(W), o(Dv);
    accumulate_and_visit(T, F, W, in.phi_k.data(), in.vbar.data(), state_in, cfg.causal, false, state,
                         [&](int64_t i, const std::vector<double>& S) {
                             contract_state(S, F, W, in.phi_q.data() + i * F, nz.data());
                             const Denominator den = stabilized_denominator(nz[Dv], cfg);
                             for (int64_t e = 0; e < Dv; ++e) o[e] = nz[e] / den.value;
                             const double* g = dout + i * Dv;
                             double* d = dnz.data() + i * W;
                             for (int64_t e = 0; e < Dv; ++e) d[e] = g[e] / den.value;
                             d[Dv] = den.passes_gradient ? -dot(g, o.data(), Dv) / den.value : 0.0;
                             for (int64_t f = 0; f < F; ++f) dphi_q[i * F + f] = dot(S.data() + f * W, d, W);
                         });

    // Key side: suffix carries U_j (bidirectional: the full sum for every j).
    std::vector<double> carry;
    accumulate_and_visit(T, F, W, in.phi_q.data(), dnz.data(), dstate_out, cfg.causal, true, carry,
                         [&](int64_t j, const std::vector<double>& U) {
                             const double* vb = in.vbar.data() + j * W;
                             const double* pk = in.phi_k.data() + j * F;
                             for (int64_t f = 0; f < F; ++f) dphi_k[j * F + f] = dot(U.data() + f * W, vb, W);
                             for (int64_t e = 0; e < Dv; ++e) {
                                 double acc = 0.0;
                                 for (int64_t f = 0; f < F; ++f) acc += U[f * W + e] * pk[f];
                                 dv[j * Dv + e] = acc;
                             }
                         });
    if (dstate_in) std::copy(carry.begin(), carry.end(), dstate_in);

    for (int64_t i = 0; i < T; ++i) {
        const int64_t pos = s.position_offset + i;
        map.vjp(s.head, pos, length, s.q + i * D, dphi_q.data() + i * F, dq + i * D);
        map.vjp(s.head, pos, length, s.k + i * D, dphi_k.data() + i * F, dk + i * D);
    }
}

}  // namespace cpu
}  // namespace slay
