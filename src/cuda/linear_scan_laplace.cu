// linear_scan_laplace.cu -- the scan kernels (forward, backward passes) of the
// laplace feature map: one explicit instantiation of launch_scan, in a file of
// its own so that the ten maps compile in parallel.
#include "cuda/linear_scan_launch.cuh"

namespace slay {
namespace cuda {

template Status launch_scan<MapKind::Laplace>(ScanPass, const ScanArgs&, const ScanLayout&, cudaStream_t);

}  // namespace cuda
}  // namespace slay
