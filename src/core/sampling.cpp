// sampling.cpp -- raw cuRAND draws -> feature-parameter values (see sampling.hpp).
#include "sampling.hpp"

#include <cmath>
#include <cstring>

namespace slay {

SegmentKind segment_kind(const ParamSegment& s) {
    const char* n = s.name;
    if (!std::strcmp(n, "performer_w") || !std::strcmp(n, "rm_r1") || !std::strcmp(n, "rm_r2"))
        return SegmentKind::ScaledNormal;
    if (!std::strcmp(n, "anchors")) return SegmentKind::UnitRows;
    if (!std::strcmp(n, "ts_hash1") || !std::strcmp(n, "ts_hash2")) return SegmentKind::HashIndex;
    if (!std::strcmp(n, "ts_sign1") || !std::strcmp(n, "ts_sign2")) return SegmentKind::Sign;
    if (!std::strcmp(n, "rff_phase")) return SegmentKind::Phase;
    if (!std::strcmp(n, "nystrom_w")) return SegmentKind::NystromMatrix;
    return SegmentKind::StandardNormal;  // omega
}

RawDraw raw_draw(SegmentKind k) {
    switch (k) {
        case SegmentKind::StandardNormal:
        case SegmentKind::ScaledNormal:
        case SegmentKind::UnitRows: return RawDraw::Normal;
        case SegmentKind::NystromMatrix: return RawDraw::Derived;
        default: return RawDraw::Uniform;
    }
}

void finish_segment(const AttnConfig& c, const ParamSegment& s, float* x) {
    const int64_t n = s.count();
    switch (segment_kind(s)) {
        case SegmentKind::StandardNormal:
        case SegmentKind::NystromMatrix: break;
        case SegmentKind::ScaledNormal: {
            const double scale = 1.0 / std::sqrt(static_cast<double>(c.head_dim));
            for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>(x[i] * scale);
            break;
        }
        case SegmentKind::UnitRows: {
            const int64_t rows = s.shape[0], D = s.shape[1];
            for (int64_t p = 0; p < rows; ++p) {
                double norm2 = 0;
                for (int64_t d = 0; d < D; ++d) norm2 += static_cast<double>(x[p * D + d]) * x[p * D + d];
                // A Gaussian row is zero with probability 0; guard anyway so
                // no NaN can enter the parameters.
                const double inv = norm2 > 0 ? 1.0 / std::sqrt(norm2) : 0.0;
                for (int64_t d = 0; d < D; ++d) x[p * D + d] = static_cast<float>(x[p * D + d] * inv);
            }
            break;
        }
        case SegmentKind::HashIndex: {
            const int64_t P = c.poly_dim;
            for (int64_t i = 0; i < n; ++i) {
                int64_t h = static_cast<int64_t>(std::floor(static_cast<double>(x[i]) * P));
                x[i] = static_cast<float>(h < 0 ? 0 : h >= P ? P - 1 : h);  // u = 1 maps to P-1
            }
            break;
        }
        case SegmentKind::Sign:
            for (int64_t i = 0; i < n; ++i) x[i] = x[i] <= 0.5f ? -1.0f : 1.0f;
            break;
        case SegmentKind::Phase: {
            const double two_pi = 6.283185307179586476925286766559;
            // u in (0, 1] -> 2 pi (1 - u) in [0, 2 pi)
            for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>(two_pi * (1.0 - x[i]));
            break;
        }
    }
}

}  // namespace slay
