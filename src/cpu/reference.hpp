// reference.hpp -- the fp64 reference math of every variant, one (b, h) slice
// at a time (SPEC sections A, B, C). This is the oracle: straight from SPEC,
// no chunking, no cleverness. The CPU backend gathers each head's slice of
// the caller's tensors into fp64 row-major arrays, calls this, and scatters
// the results back; tests call it directly for finite differences.
//
// Per head h of a call:
//   q, k        (T, D)      row-major fp64
//   v, out      (T, Dv)
//   state       (F, Dv+1)   columns 0..Dv-1: S = sum_j phi(k_j) v_j^T,
//                           column Dv: z = sum_j phi(k_j)
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/config.hpp"
#include "core/status.hpp"

namespace slay {
namespace cpu {

struct HeadSlice {
    int64_t T = 0;
    int64_t head = 0;             // h: selects per-head parameters (omega[r, h], ...)
    int64_t position_offset = 0;  // cosformer: global position of token 0
    const double* q = nullptr;    // (T, D)
    const double* k = nullptr;    // (T, D)
    const double* v = nullptr;    // (T, Dv)
};

// phi: R^D -> R^F for one variant, with its vector-Jacobian product.
class FeatureMap {
public:
    virtual ~FeatureMap() = default;
    virtual int64_t dim() const = 0;
    // phi(x) of a token of head `head` at global position `pos` in a call of
    // cosformer length `length` (only cosformer looks at pos and length).
    virtual void apply(int64_t head, int64_t pos, int64_t length, const double* x,
                       double* phi) const = 0;
    // dx = (d phi / d x)^T dphi, overwriting dx (D values).
    virtual void vjp(int64_t head, int64_t pos, int64_t length, const double* x,
                     const double* dphi, double* dx) const = 0;
};

class Reference {
public:
    // params: the fp32 parameter vector of param_layout(cfg), widened to
    // fp64 (nullptr when param_count(cfg) == 0). Copied.
    Reference(const AttnConfig& cfg, const double* params);
    ~Reference();

    // out (T, Dv). state_in / state_out (F, Dv+1) may be null; only the
    // linearized family accepts them. state_out may alias state_in.
    // row_stats (T) may be non-null for the exact family only (exact.hpp).
    void forward(const HeadSlice& s, const double* state_in, double* out,
                 double* state_out, double* row_stats = nullptr) const;

    // Gradients given dout (T, Dv) and optionally dstate_out (F, Dv+1).
    // dq, dk (T, D), dv (T, Dv) overwritten; dstate_in (F, Dv+1) overwritten
    // when non-null. The forward is recomputed inside; row_stats (T), the
    // forward's row statistics, may be non-null for the exact family only
    // (exact.hpp).
    void backward(const HeadSlice& s, const double* state_in, const double* dout,
                  const double* dstate_out, double* dq, double* dk, double* dv,
                  double* dstate_in, const double* row_stats = nullptr) const;

    // The feature map of a linearized variant (nullptr for exact variants).
    const FeatureMap* feature_map() const { return map_.get(); }
    const AttnConfig& config() const { return cfg_; }

private:
    AttnConfig cfg_;
    std::vector<double> params_;
    std::unique_ptr<FeatureMap> map_;
};

// The Nystrom matrix W = U diag(max(lambda_i, 1e-6)^{-1/2}) U^T of
// K_AA = (A A^T)^{o2} + reg*I, A (P, D) = anchors (SPEC A.14), by Jacobi
// eigen-decomposition in fp64. w_out is (P, P) row-major.
void nystrom_matrix(const double* anchors, int64_t P, int64_t D, double reg, double* w_out);

}  // namespace cpu
}  // namespace slay
