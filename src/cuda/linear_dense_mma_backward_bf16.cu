// linear_dense_mma_backward_bf16.cu -- the dense tensor-core engine's backward
// launches for bf16 inputs (linear_dense_mma_backward.cuh).
#include "cuda/linear_dense_mma_backward.cuh"

namespace slay {
namespace cuda {
namespace dense_mma {

template Status dense_backward_launch<__nv_bfloat16>(const DenseLaunch& k, MapKind kind, const ScanArgs& a,
                                                  cudaStream_t stream);

}  // namespace dense_mma
}  // namespace cuda
}  // namespace slay
