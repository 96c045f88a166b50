// linear_scan_poly2.cu -- the scan kernels (forward, backward passes) of the
// slay_poly2 feature map (exact degree-2 features on an orthonormal frame):
// one explicit instantiation of launch_scan, in a file of its own so that the
// maps compile in parallel.
#include "cuda/linear_scan_launch.cuh"

namespace slay {
namespace cuda {

template Status launch_scan<MapKind::Poly2>(ScanPass, const ScanArgs&, const ScanLayout&, cudaStream_t);

}  // namespace cuda
}  // namespace slay
