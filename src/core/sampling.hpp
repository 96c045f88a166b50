// sampling.hpp -- how each segment of the fp32 feature-parameter vector is
// drawn (SPEC A.4-A.14), independent of the backend that draws it. Segment i
// is drawn from cuRAND Philox4x32-10 at (seed, offset + i * kSegmentStride):
// the raw numbers are standard normals or uniforms in (0, 1], which
// finish_segment turns into the segment's distribution with the per-element
// functions of sampling_math.hpp, which the CUDA kernels use as well.
#pragma once

#include <cstdint>

#include "config.hpp"
#include "sampling_math.hpp"

namespace slay {

constexpr uint64_t kSegmentStride = uint64_t{1} << 32;

// RawDraw and SegmentKind live in sampling_math.hpp (shared with the device).

SegmentKind segment_kind(const ParamSegment& s);
RawDraw raw_draw(SegmentKind k);

// Turns the segment's raw draws (fp32, count() values, in place) into the
// segment's values. NystromMatrix is computed by the backend instead.
void finish_segment(const AttnConfig& c, const ParamSegment& s, float* values);

}  // namespace slay
