// sampling.cpp -- raw cuRAND draws -> feature-parameter values (see sampling.hpp).
#include "sampling.hpp"

#include <vector>

namespace slay {

SegmentKind segment_kind(const ParamSegment& s) { return s.kind; }

RawDraw raw_draw(SegmentKind k) {
    switch (k) {
        case SegmentKind::StandardNormal:
        case SegmentKind::ScaledNormal:
        case SegmentKind::UnitRows:
        case SegmentKind::OrthonormalFrame: return RawDraw::Normal;
        case SegmentKind::NystromMatrix: return RawDraw::Derived;
        default: return RawDraw::Uniform;
    }
}

void finish_segment(const AttnConfig& c, const ParamSegment& s, float* x) {
    const int64_t n = s.count();
    const SegmentKind kind = segment_kind(s);
    switch (kind) {
        case SegmentKind::NystromMatrix: break;  // derived by the backend
        case SegmentKind::UnitRows: {
            const int64_t rows = s.shape[0], D = s.shape[1];
            for (int64_t p = 0; p < rows; ++p) {
                const double inv = sampling::row_inv_norm(x + p * D, D);
                for (int64_t d = 0; d < D; ++d) x[p * D + d] = sampling::unit_row_element(x[p * D + d], inv);
            }
            break;
        }
        case SegmentKind::OrthonormalFrame: {  // (H, D, d): one (D, d) block per head
            const int64_t heads = s.shape[0], D = s.shape[1], d = s.shape[2];
            std::vector<double> work(static_cast<size_t>(D * d));
            for (int64_t h = 0; h < heads; ++h)
                sampling::orthonormal_columns(x + h * D * d, D, d, work.data(), x + h * D * d);
            break;
        }
        default: {
            const double scale = sampling::normal_scale(c.head_dim);
            for (int64_t i = 0; i < n; ++i) x[i] = sampling::finish_element(kind, x[i], scale, c.poly_dim);
            break;
        }
    }
}

}  // namespace slay
