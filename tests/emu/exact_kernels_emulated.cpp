// exact_kernels_emulated.cpp -- exact-kernel-bench's checks of the exact
// attention kernels (the wgmma forward with two and three consumer
// warpgroups and its ping-pong candidates, the mma.sync forward, both
// backward sweeps; standard against float64, yat and yat_spherical against
// mma.sync) run on the CPU emulation of cuda_emulation.hpp. These kernels
// passed on an H200, so this run is also the emulation's own calibration:
// its fragment layouts, descriptors and TMA agree with the hardware's where
// these kernels use them.
#include "cuda_emulation.hpp"

#include "tests/bench/exact_kernel_bench.cu"
