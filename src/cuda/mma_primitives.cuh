// mma_primitives.cuh -- warp-level tensor-core building blocks shared by the
// tensor-core kernels (exact_forward_mma_kernel.cuh, linear_forward_mma_kernel.cuh):
// cp.async 16-byte copies, ldmatrix loads and mma.sync m16n8k16 with fp32
// accumulation on bf16/fp16 operands, and packing of two floats into one
// operand register. Fragment layouts are the PTX ISA's for m16n8k16:
//   A (16x16, row-major): a0 (g, 2l..2l+1), a1 (g+8, 2l..), a2 (g, 2l+8..), a3 (g+8, 2l+8..)
//   B (16x8, column-major): b0 (k = 2l..2l+1, n = g), b1 (k = 2l+8.., n = g)
//   C (16x8): c0,c1 (g, 2l..2l+1), c2,c3 (g+8, 2l..2l+1)
// with g = lane / 4 and l = lane % 4.
// Under SLAY_CUDA_EMULATION (tests/emu/cuda_emulation.hpp, included first by
// a CPU-emulated workbench) the instructions are the emulation's functions.
#pragma once

#include <type_traits>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "cuda/sfu_math.cuh"  // fast_exp2

namespace slay {
namespace cuda {
__device__ __forceinline__ unsigned smem_addr(const void* p) {
    return static_cast<unsigned>(__cvta_generic_to_shared(p));
}

// kBytes (4, 8 or 16) global -> shared copy; zero-fills when !valid (src
// not read). 16-byte copies skip L1 (.cg: the streamed tiles); .ca is the
// only cache mode of the smaller ones.
template <int kBytes>
__device__ __forceinline__ void cp_async(void* dst, const void* src, bool valid) {
    static_assert(kBytes == 4 || kBytes == 8 || kBytes == 16, "cp.async copies 4, 8 or 16 bytes");
#if SLAY_CUDA_EMULATION
    slay_emu::cp_async(dst, src, kBytes, valid);
#else
    if constexpr (kBytes == 16)
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src),
                     "r"(valid ? 16 : 0));
    else
        asm volatile("cp.async.ca.shared.global [%0], [%1], %2, %3;\n" ::"r"(smem_addr(dst)), "l"(src),
                     "n"(kBytes), "r"(valid ? kBytes : 0));
#endif
}
__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool valid) { cp_async<16>(dst, src, valid); }
#if SLAY_CUDA_EMULATION  // the emulation's copies land at once
__device__ __forceinline__ void cp_async_commit() {}
template <int kPending>
__device__ __forceinline__ void cp_async_wait() {}
#else
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int kPending>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending));
}
#endif

__device__ __forceinline__ void ldmatrix_x4(unsigned r[4], const void* p) {
#if SLAY_CUDA_EMULATION
    slay_emu::ldmatrix_x4(r, p, false);
#else
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p)));
#endif
}
__device__ __forceinline__ void ldmatrix_x4_trans(unsigned r[4], const void* p) {
#if SLAY_CUDA_EMULATION
    slay_emu::ldmatrix_x4(r, p, true);
#else
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p)));
#endif
}

// The elementwise product of two bf16x2 pairs (HMUL2): the Kronecker
// kernels scale factor fragments by a splat or by token pairs with it.
__device__ __forceinline__ unsigned bf16x2_mul(unsigned a, unsigned b) {
    __nv_bfloat162 r = __hmul2(*reinterpret_cast<__nv_bfloat162*>(&a), *reinterpret_cast<__nv_bfloat162*>(&b));
    return *reinterpret_cast<unsigned*>(&r);
}
// c += a b for one m16n8k16 tile (a row-major 16x16, b column-major 16x8).
template <typename Elem>
__device__ __forceinline__ void mma_16816(float c[4], const unsigned a[4], unsigned b0, unsigned b1);
// One specialization per operand type; only the PTX type name differs.
#if SLAY_CUDA_EMULATION
#define SLAY_MMA_16816(ELEM, PTX_TYPE)                                                                        \
    template <>                                                                                              \
    __device__ __forceinline__ void mma_16816<ELEM>(float c[4], const unsigned a[4], unsigned b0, unsigned b1) { \
        slay_emu::mma_16816(c, a, b0, b1, std::is_same<ELEM, __nv_bfloat16>::value);                         \
    }
#else
#define SLAY_MMA_16816(ELEM, PTX_TYPE)                                                                        \
    template <>                                                                                              \
    __device__ __forceinline__ void mma_16816<ELEM>(float c[4], const unsigned a[4], unsigned b0, unsigned b1) { \
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32." PTX_TYPE "." PTX_TYPE                         \
                     ".f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"                         \
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])                                          \
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));                         \
    }
#endif
SLAY_MMA_16816(__nv_bfloat16, "bf16")
SLAY_MMA_16816(__half, "f16")
#undef SLAY_MMA_16816

// Two floats as one register of the input type (lo in the low half).
template <typename Elem>
__device__ __forceinline__ unsigned pack2(float lo, float hi);
template <>
__device__ __forceinline__ unsigned pack2<__nv_bfloat16>(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<unsigned*>(&v);
}
template <>
__device__ __forceinline__ unsigned pack2<__half>(float lo, float hi) {
    __half2 v = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<unsigned*>(&v);
}

// The A fragment of k16 step `step` made from accumulators in the C layout
// (acc[n][0..3]: n8 block n): blocks 2 step and 2 step + 1 packed pairwise
// and rounded to Elem, so one product's result is the next one's A (P of
// P V, the backward's coefficients), for mma.sync and wgmma RS alike.
template <typename Elem>
__device__ __forceinline__ void accumulator_to_a(const float (*acc)[4], int step, unsigned (&a)[4]) {
    a[0] = pack2<Elem>(acc[2 * step][0], acc[2 * step][1]);
    a[1] = pack2<Elem>(acc[2 * step][2], acc[2 * step][3]);
    a[2] = pack2<Elem>(acc[2 * step + 1][0], acc[2 * step + 1][1]);
    a[3] = pack2<Elem>(acc[2 * step + 1][2], acc[2 * step + 1][3]);
}

// Split-precision operands: a value x as kPlanes bf16 planes, plane 0 =
// bf16(x), plane i = bf16(x - planes 0..i-1) (round to nearest each): two
// planes carry 16 significand bits, three fp32's 24. A product of two
// split operands keeps the plane pairs i + j < kPlanes (the dropped ones
// are below the last plane's rounding). kPlanes == 1 is pack2's bf16.
template <int kPlanes>
__device__ __forceinline__ void split_bf16x2(float x0, float x1, unsigned (&out)[kPlanes]) {
#pragma unroll
    for (int i = 0; i < kPlanes; ++i) {
        __nv_bfloat162 v = __floats2bfloat162_rn(x0, x1);
        out[i] = *reinterpret_cast<unsigned*>(&v);
        if (i + 1 < kPlanes) {
            const float2 f = __bfloat1622float2(v);
            x0 -= f.x;
            x1 -= f.y;
        }
    }
}
// The value pair of plane registers (bf16x2 each), summed from the
// smallest plane up.
template <int kPlanes>
__device__ __forceinline__ float2 join_bf16x2(const unsigned (&r)[kPlanes]) {
    float2 s = make_float2(0.f, 0.f);
#pragma unroll
    for (int i = kPlanes - 1; i >= 0; --i) {
        const float2 f = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&r[i]));
        s.x += f.x;
        s.y += f.y;
    }
    return s;
}
// c0, c1 (two n8 tiles) += sum over plane pairs i + j < kPlanes of A_i B_j
// (bf16): a[i] an A fragment, b[j] the B fragments of both tiles as
// ldmatrix_x4 gives them ((b0, b1) of tile 0, then of tile 1). An operand
// with fewer planes (kA or kB < kPlanes) is exact in bf16 beyond them.
template <int kPlanes, int kA, int kB>
__device__ __forceinline__ void mma_planes(float c0[4], float c1[4], const unsigned (&a)[kA][4],
                                           const unsigned (&b)[kB][4]) {
#pragma unroll
    for (int i = 0; i < kA; ++i)
#pragma unroll
        for (int j = 0; j < kB; ++j)
            if (i + j < kPlanes) {
                mma_16816<__nv_bfloat16>(c0, a[i], b[j][0], b[j][1]);
                mma_16816<__nv_bfloat16>(c1, a[i], b[j][2], b[j][3]);
            }
}

// The transpose of an 8 x 8 matrix of 16-bit values spread over a warp as
// an mma fragment (lane holds row lane / 4, columns 2 (lane % 4) and +1):
// the same lane then holds that row of the transpose (sm_75+).
__device__ __forceinline__ unsigned movmatrix_trans(unsigned x) {
#if SLAY_CUDA_EMULATION
    return slay_emu::movmatrix_trans(x);
#else
    unsigned y;
    asm volatile("movmatrix.sync.aligned.m8n8.trans.b16 %0, %1;\n" : "=r"(y) : "r"(x));
    return y;
#endif
}

// A register of two fp16 values as two bf16 values (B fragments of fp16
// weights against bf16 operands that may leave fp16's range).
__device__ __forceinline__ unsigned half2_to_bf16x2(unsigned x) {
    const float2 f = __half22float2(*reinterpret_cast<__half2*>(&x));
    return pack2<__nv_bfloat16>(f.x, f.y);
}

}  // namespace cuda
}  // namespace slay
