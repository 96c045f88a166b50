// linear_scan_launch.hpp -- launches one scan kernel of linear_scan_kernel.cuh
// for a feature map K: grid (B*H, value slices, a.split.count), kScanThreads threads,
// L.total floats of dynamic shared memory. The template is instantiated once
// per map in linear_scan_<map>.cu, so the ten maps compile in parallel.
#pragma once

#include <cuda_runtime_api.h>

#include "core/status.hpp"
#include "cuda/linear_scan_kernel.cuh"

namespace slay {
namespace cuda {

template <MapKind K>
Status launch_scan(ScanPass pass, const ScanArgs& a, const ScanLayout& L, cudaStream_t stream);

#define SLAY_FOR_EACH_MAP_KIND(X) \
    X(Anchor) X(Nystrom) X(Maclaurin) X(TensorSketch) X(Laplace) X(Hadamard) X(Performer) X(Linear) X(Cosformer) \
        X(RandomFourier) X(Poly2)

#define SLAY_DECLARE_LAUNCH_SCAN(kind)                                                                  \
    extern template Status launch_scan<MapKind::kind>(ScanPass, const ScanArgs&, const ScanLayout&, \
                                                      cudaStream_t);
SLAY_FOR_EACH_MAP_KIND(SLAY_DECLARE_LAUNCH_SCAN)
#undef SLAY_DECLARE_LAUNCH_SCAN

}  // namespace cuda
}  // namespace slay
