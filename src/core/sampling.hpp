// sampling.hpp -- how each segment of the fp32 feature-parameter vector is
// drawn (SPEC A.4-A.14), independent of the backend that draws it. Segment i
// is drawn from cuRAND Philox4x32-10 at (seed, offset + i * kSegmentStride):
// the raw numbers are standard normals or uniforms in (0, 1], which
// finish_segment turns into the segment's distribution.
#pragma once

#include <cstdint>

#include "config.hpp"

namespace slay {

constexpr uint64_t kSegmentStride = uint64_t{1} << 32;

enum class RawDraw { Normal, Uniform, Derived };

enum class SegmentKind {
    StandardNormal,  // omega (R,H,D,M) and rff omega (H,D,M): N(0, 1)
    ScaledNormal,    // performer_w (H,D,M), rm_r1/rm_r2 (P,D): N(0, 1/D)
    UnitRows,        // anchors (P, D): g/|g|, g ~ N(0, I_D)
    HashIndex,       // ts_hash* (D,): floor(u * P) in [0, P)
    Sign,            // ts_sign* (D,): -1 if u <= 1/2 else +1
    Phase,           // rff_phase (H, M): 2 pi (1 - u), in [0, 2 pi)
    NystromMatrix,   // nystrom_w (P, P): derived from anchors
};

SegmentKind segment_kind(const ParamSegment& s);
RawDraw raw_draw(SegmentKind k);

// Turns the segment's raw draws (fp32, count() values, in place) into the
// segment's values. NystromMatrix is computed by the backend instead.
void finish_segment(const AttnConfig& c, const ParamSegment& s, float* values);

}  // namespace slay
