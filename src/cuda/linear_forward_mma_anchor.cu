// linear_forward_mma_anchor.cu -- the tensor-core forward of the anchor feature
// map: one explicit instantiation of launch_kron_forward_mma, in a file of its
// own so that the maps compile in parallel.
#include "cuda/linear_forward_mma_launch.cuh"

namespace slay {
namespace cuda {

template Status launch_kron_forward_mma<MapKind::Anchor>(const DeviceInfo&, const KronMmaShape&, const ScanArgs&,
                                                   cudaStream_t, bool*);

}  // namespace cuda
}  // namespace slay
