// kron_kernels_emulated.cpp -- kron-kernel-bench's checks of the Hopper
// Kronecker kernels (map tile, forward, fused-map forward, both backward
// passes against float64) run on the CPU emulation of cuda_emulation.hpp:
// the kernels' index arithmetic, fragment layouts, barrier protocols and
// cluster exchanges, checked without a GPU (run with --check-only).
#include "cuda_emulation.hpp"

#include "tests/bench/kron_kernel_bench.cu"
