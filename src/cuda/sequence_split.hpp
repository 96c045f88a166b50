// sequence_split.hpp -- how a call with few heads splits its T tokens into
// segments, so that B*H*slices blocks per segment fill the GPU: the
// tensor-core engines (kron_mma::split_sequence, the dense engine) and the
// fp32 scans (linear_scan_kernel.cuh's ScanSplit) plan with this one rule.
// Segments are whole chunks of 64 tokens (kSplitChunkTokens), so chunks of
// 32 or 64 tokens never straddle two segments.
#pragma once

#include <cstdint>

namespace slay {
namespace cuda {

constexpr int64_t kSplitChunkTokens = 64;

// As many segments as fill one wave of 132 SMs (an H100/H200; a constant, so
// that workspace sizes do not depend on the device) times the blocks an SM
// holds, each of at least kSegmentMinChunks chunks (the segment sums cost
// about 40% of a forward over the same tokens).
constexpr int64_t kSegmentTargetCtas = 132;
constexpr int64_t kSegmentMinChunks = 8;

struct SequenceSplit {
    int count = 1;        // segments (1: no split)
    int64_t chunks = 0;   // chunks of kSplitChunkTokens per segment (the last may have fewer)
};

// The split of T tokens for `ctas` blocks a segment, per_sm of them resident
// an SM; count 1 when one segment it is. No segment is empty.
inline SequenceSplit split_sequence_chunks(int64_t ctas, int per_sm, int64_t T) {
    SequenceSplit s;
    const int64_t chunks = (T + kSplitChunkTokens - 1) / kSplitChunkTokens;
    int64_t count = ctas > 0 ? kSegmentTargetCtas * per_sm / ctas : 1;
    count = count < chunks / kSegmentMinChunks ? count : chunks / kSegmentMinChunks;
    if (count <= 1) return s;
    s.chunks = (chunks + count - 1) / count;
    s.count = static_cast<int>((chunks + s.chunks - 1) / s.chunks);
    return s;
}

}  // namespace cuda
}  // namespace slay
