// stabilizer.hpp -- the stabilized denominator den(Z) of o_i = N_i / den(Z_i)
// (SPEC A.2, C.1), shared by the linearized core and exact yat_spherical.
//   SLAY_STABILIZER_ADD:   den = Z + delta           dden/dZ = 1
//   SLAY_STABILIZER_CLAMP: den = max(Z, delta)       dden/dZ = 0 while Z < delta
#pragma once

#include "core/config.hpp"

namespace slay {
namespace cpu {

struct Denominator {
    double value;
    bool passes_gradient;  // false when the clamp holds den at delta
};

inline Denominator stabilized_denominator(double Z, const AttnConfig& cfg) {
    if (cfg.stabilizer_mode == SLAY_STABILIZER_CLAMP) {
        // torch clamp_min convention: the gradient flows for Z >= delta.
        if (Z < cfg.stabilizer) return {cfg.stabilizer, false};
        return {Z, true};
    }
    return {Z + cfg.stabilizer, true};
}

}  // namespace cpu
}  // namespace slay
