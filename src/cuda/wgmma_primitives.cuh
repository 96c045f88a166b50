// wgmma_primitives.cuh -- warpgroup-level tensor-core building blocks for
// Hopper (sm_90a): wgmma.mma_async m64nNk16 with fp32 accumulation on
// bf16/fp16 operands (N = 64, 128, 256), A from shared memory (SS) or from
// registers (RS), B from shared memory; shared-memory matrix descriptors for
// the 128-byte swizzle; the fences and group waits the asynchronous MMA
// needs. A warpgroup is 4 consecutive warps (128 threads, the first warp's
// index a multiple of 4); every thread of it executes each wgmma.
//
// Fragment layouts (PTX ISA, "Register Fragments" of wgmma .m64nNk16), warp
// w of the warpgroup owning rows 16 w .. 16 w + 15, g = lane / 4, l = lane % 4:
//   D (64 x N fp32, N / 2 registers): d[4 j + 0, 1] = (16 w + g, 8 j + 2 l + 0, 1),
//                                     d[4 j + 2, 3] = (16 w + g + 8, 8 j + 2 l + 0, 1)
//     (the mma.sync m16n8 accumulator of n8 block j, mma_primitives.cuh)
//   A in registers (64 x 16, four 32-bit registers): the mma.sync m16n8k16
//     A fragment of the warp's 16 rows, so the D registers of n8 blocks
//     2 s, 2 s + 1 packed pairwise are the A fragment of k16 step s (as
//     FlashAttention feeds P to P V).
//
// Shared-memory tiles (SW128: the 128-byte swizzle, the densest layout
// wgmma reads without bank conflicts): a tile is a stack of 128-byte rows
// (64 bf16/fp16), the 16-byte chunk c of row r stored at chunk c ^ (r % 8);
// the XOR acts on address bits [4, 7) from bits [7, 10), so tiles start on
// 1024-byte boundaries. A matrix wider than 64 elements along its
// contiguous dimension is split into 64-wide column blocks, each its own
// stack of rows.
//   K-major operand (rows = M or N index, K contiguous: A = Q, B = K of
//     Q K^T): k16 step s of a 64-wide block starts 32 s bytes into it; the
//     8-row groups are 1024 bytes apart (SBO).
//   MN-major operand (rows = K index, N contiguous: B = V of P V, trans-b =
//     1): k16 step s starts 16 s rows (2048 s bytes) into the stack; the
//     8-row groups are 1024 bytes apart (SBO), the 64-wide column blocks
//     LBO bytes apart.
// Writes to a tile by ordinary stores or cp.async reach wgmma (which reads
// through the async proxy) only after fence_proxy_async() by the writing
// threads and a barrier.
#pragma once

#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "cuda/mma_primitives.cuh"

// SLAY_HAS_WGMMA: this device compilation pass has wgmma (sm_90a), or the
// CPU emulation (tests/emu) stands in for it.
#if SLAY_CUDA_EMULATION || (defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL))
#define SLAY_HAS_WGMMA 1
#else
#define SLAY_HAS_WGMMA 0
#endif

namespace slay {
namespace cuda {
namespace wgmma {

constexpr int kWarpgroupThreads = 128;
constexpr int kSwizzleRowBytes = 128;    // one SW128 row: 64 bf16/fp16
constexpr int kSwizzleAtomBytes = 1024;  // 8 rows: the swizzle's period and a tile's alignment

// Byte offset of byte `byte_in_row` of row `row` in an SW128 stack of rows.
__host__ __device__ constexpr int sw128_offset(int row, int byte_in_row) {
    return row * kSwizzleRowBytes + ((((byte_in_row >> 4) ^ (row & 7)) << 4) | (byte_in_row & 15));
}

// The first swizzle-atom (1024-byte) boundary at or after p, a pointer into
// the dynamic shared memory: where a kernel's SW128 tiles start (allocate
// kSwizzleAtomBytes of slack for it). Computed as an offset from p, so that
// the compiler keeps knowing that the result and what is derived from it
// address shared memory (ld/st.shared): aligning through a uintptr_t round
// trip left generic loads (LD) of the exact kernels' staged statistics and
// key factors, each behind its own branch region in the backward sweeps.
// (The shared window's generic base is aligned far past 1024 bytes, so the
// offset of the shared address is the offset of the generic one.)
__device__ __forceinline__ unsigned char* swizzle_atom_aligned(unsigned char* p) {
    const uint32_t offset = static_cast<uint32_t>(__cvta_generic_to_shared(p));
    return p + ((kSwizzleAtomBytes - (offset & (kSwizzleAtomBytes - 1))) & (kSwizzleAtomBytes - 1));
}

// The 64-bit shared-memory matrix descriptor of an SW128 operand starting
// at `start` (16-byte aligned, inside a 1024-byte aligned tile): bits 0-13
// start address / 16, 16-29 LBO / 16, 32-45 SBO / 16, 62-63 layout (1 =
// 128-byte swizzle); base offset 0 (the tile is 1024-byte aligned).
__device__ __forceinline__ uint64_t sw128_descriptor(const void* start, uint32_t lbo_bytes, uint32_t sbo_bytes) {
    const uint32_t addr = smem_addr(start);
    return static_cast<uint64_t>((addr & 0x3FFFFu) >> 4) | static_cast<uint64_t>((lbo_bytes >> 4) & 0x3FFFu) << 16 |
           static_cast<uint64_t>((sbo_bytes >> 4) & 0x3FFFu) << 32 | uint64_t{1} << 62;
}
// The descriptor of the operand `bytes` (a multiple of 16) past d's start:
// the start field plus bytes / 16, added to the low word alone. Shared
// memory ends below 2^18 bytes, so the field (address bits 4-17) never
// carries into LBO. Lets a mainloop form one descriptor a tile and add
// constants for its k16 steps instead of masking and shifting each
// address again (about four uniform instructions a wgmma).
__device__ __forceinline__ uint64_t descriptor_plus(uint64_t d, uint32_t bytes) {
    const uint32_t lo = static_cast<uint32_t>(d) + (bytes >> 4);
    return (d & 0xFFFFFFFF00000000ull) | lo;
}
// K-major operand, k16 step `k16` of the 64-wide column block at `block`.
__device__ __forceinline__ uint64_t k_major_descriptor(const void* block, int k16) {
    return sw128_descriptor(static_cast<const unsigned char*>(block) + 32 * k16, 16, kSwizzleAtomBytes);
}
// MN-major operand, k16 step `k16` of the stack at `stack` (rows = K), its
// 64-wide column blocks `block_bytes` apart.
__device__ __forceinline__ uint64_t mn_major_descriptor(const void* stack, int k16, uint32_t block_bytes) {
    return sw128_descriptor(static_cast<const unsigned char*>(stack) + 16 * kSwizzleRowBytes * k16, block_bytes,
                            kSwizzleAtomBytes);
}

#if SLAY_CUDA_EMULATION
__device__ __forceinline__ void fence() {}
__device__ __forceinline__ void commit_group() { slay_emu::wgmma_commit(); }
template <int kPending>
__device__ __forceinline__ void wait_group() {
    slay_emu::wgmma_wait(kPending);
}
#elif SLAY_HAS_WGMMA
// Orders register and shared-memory accesses before the next wgmma reads
// them (accumulators or A registers written by ordinary instructions).
__device__ __forceinline__ void fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void commit_group() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
// Waits until at most kPending committed groups are in flight.
template <int kPending>
__device__ __forceinline__ void wait_group() {
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(kPending) : "memory");
}
#else
__device__ __forceinline__ void fence() { __trap(); }
__device__ __forceinline__ void commit_group() { __trap(); }
template <int kPending>
__device__ __forceinline__ void wait_group() {
    __trap();
}
#endif
// Generic-proxy writes to shared memory (stores, cp.async) made visible to
// the async proxy wgmma reads through; then a barrier.
__device__ __forceinline__ void fence_proxy_async() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}
// Keeps the compiler from moving accesses of a register across a wgmma
// that reads or writes it asynchronously.
#if SLAY_CUDA_EMULATION  // the emulation's wgmma writes through memory the compiler cannot see into
__device__ __forceinline__ void fence_operand(float&) {}
__device__ __forceinline__ void fence_operand(unsigned&) {}
#else
__device__ __forceinline__ void fence_operand(float& r) { asm volatile("" : "+f"(r)::"memory"); }
__device__ __forceinline__ void fence_operand(unsigned& r) { asm volatile("" : "+r"(r)::"memory"); }
#endif

// Mma<Elem, N>::ss<kTransB, kTransA>(d, a_desc, b_desc, accumulate): d (64 x
// N) = A B (+ d when accumulate), A and B by descriptors; ::rs the same with
// A from registers. kTransB = 0: B K-major; 1: B MN-major; kTransA the same
// for A (ss only: 1 reads an M-major A, e.g. a tile stored K x M). One
// specialization per (operand type, N); the accumulator registers are
// spelled out once per N (SLAY_WGMMA_REGS / _ACC: inline PTX takes no
// register ranges) and shared by both forms (N = 32: ss only, for the
// Kronecker backward's carry_terms). d must hold defined values
// even when accumulate is false (zero it before a chain that starts with
// scale-d 0): ptxas 13.0 miscompiled the Kronecker backward's carry_terms,
// whose chains started from fresh uninitialized arrays (it kept one chain's
// products for all of them; kron_backward_wgmma_kernel.cuh).
template <typename Elem, int N>
struct Mma;

#if SLAY_CUDA_EMULATION
template <typename Elem, int N>
struct Mma {
    static constexpr int kAcc = N / 2;
    static constexpr bool kBf16 = std::is_same<Elem, __nv_bfloat16>::value;
    template <int kTransB, int kTransA = 0>
    static void ss(float (&d)[N / 2], uint64_t a_desc, uint64_t b_desc, bool accumulate) {
        slay_emu::wgmma_ss(d, N, a_desc, b_desc, accumulate, kTransA, kTransB, kBf16);
    }
    template <int kTransB>
    static void rs(float (&d)[N / 2], const unsigned (&a)[4], uint64_t b_desc, bool accumulate) {
        slay_emu::wgmma_rs(d, N, a, b_desc, accumulate, kTransB, kBf16);
    }
};
#elif SLAY_HAS_WGMMA
#define SLAY_WGMMA_ACC32  \
    "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]),  \
    "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]),  \
    "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15])
#define SLAY_WGMMA_REGS32 "%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15"
#define SLAY_WGMMA_N32(ELEM, PTX_TYPE)  \
    template <>  \
    struct Mma<ELEM, 32> {  \
        static constexpr int kAcc = 16;  \
        template <int kTransB, int kTransA = 0>  \
        __device__ static void ss(float (&d)[16], uint64_t a_desc, uint64_t b_desc, bool accumulate) {  \
            asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %18, 0;\n"  \
                         "wgmma.mma_async.sync.aligned.m64n32k16.f32." PTX_TYPE "." PTX_TYPE " {"  \
                         SLAY_WGMMA_REGS32  \
                         "}, %16, %17, p, 1, 1, %20, %19;\n}\n"  \
                         : SLAY_WGMMA_ACC32  \
                         : "l"(a_desc), "l"(b_desc), "r"(static_cast<int>(accumulate)), "n"(kTransB),  \
                           "n"(kTransA));  \
        }  \
    };
#define SLAY_WGMMA_ACC64  \
    "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]),  \
    "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]),  \
    "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]),  \
    "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),  \
    "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]),  \
    "+f"(d[30]), "+f"(d[31])
#define SLAY_WGMMA_REGS64  \
    "%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,"  \
    "%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31"
#define SLAY_WGMMA_N64(ELEM, PTX_TYPE)  \
    template <>  \
    struct Mma<ELEM, 64> {  \
        static constexpr int kAcc = 32;  \
        template <int kTransB, int kTransA = 0>  \
        __device__ static void ss(float (&d)[32], uint64_t a_desc, uint64_t b_desc, bool accumulate) {  \
            asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"  \
                         "wgmma.mma_async.sync.aligned.m64n64k16.f32." PTX_TYPE "." PTX_TYPE " {"  \
                         SLAY_WGMMA_REGS64  \
                         "}, %32, %33, p, 1, 1, %36, %35;\n}\n"  \
                         : SLAY_WGMMA_ACC64  \
                         : "l"(a_desc), "l"(b_desc), "r"(static_cast<int>(accumulate)), "n"(kTransB),  \
                           "n"(kTransA));  \
        }  \
        template <int kTransB>  \
        __device__ static void rs(float (&d)[32], const unsigned (&a)[4], uint64_t b_desc, bool accumulate) {  \
            asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"  \
                         "wgmma.mma_async.sync.aligned.m64n64k16.f32." PTX_TYPE "." PTX_TYPE " {"  \
                         SLAY_WGMMA_REGS64  \
                         "}, {%32,%33,%34,%35}, %36, p, 1, 1, %38;\n}\n"  \
                         : SLAY_WGMMA_ACC64  \
                         : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b_desc), "r"(static_cast<int>(accumulate)),  \
                           "n"(kTransB));  \
        }  \
    };
#define SLAY_WGMMA_ACC128  \
    "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]),  \
    "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]),  \
    "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]),  \
    "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),  \
    "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]),  \
    "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]),  \
    "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]),  \
    "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),  \
    "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]),  \
    "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]),  \
    "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
#define SLAY_WGMMA_REGS128  \
    "%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,"  \
    "%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,"  \
    "%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,"  \
    "%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63"
#define SLAY_WGMMA_N128(ELEM, PTX_TYPE)  \
    template <>  \
    struct Mma<ELEM, 128> {  \
        static constexpr int kAcc = 64;  \
        template <int kTransB, int kTransA = 0>  \
        __device__ static void ss(float (&d)[64], uint64_t a_desc, uint64_t b_desc, bool accumulate) {  \
            asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"  \
                         "wgmma.mma_async.sync.aligned.m64n128k16.f32." PTX_TYPE "." PTX_TYPE " {"  \
                         SLAY_WGMMA_REGS128  \
                         "}, %64, %65, p, 1, 1, %68, %67;\n}\n"  \
                         : SLAY_WGMMA_ACC128  \
                         : "l"(a_desc), "l"(b_desc), "r"(static_cast<int>(accumulate)), "n"(kTransB),  \
                           "n"(kTransA));  \
        }  \
        template <int kTransB>  \
        __device__ static void rs(float (&d)[64], const unsigned (&a)[4], uint64_t b_desc, bool accumulate) {  \
            asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"  \
                         "wgmma.mma_async.sync.aligned.m64n128k16.f32." PTX_TYPE "." PTX_TYPE " {"  \
                         SLAY_WGMMA_REGS128  \
                         "}, {%64,%65,%66,%67}, %68, p, 1, 1, %70;\n}\n"  \
                         : SLAY_WGMMA_ACC128  \
                         : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b_desc), "r"(static_cast<int>(accumulate)),  \
                           "n"(kTransB));  \
        }  \
    };
#define SLAY_WGMMA_ACC256  \
    "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]),  \
    "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]),  \
    "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]),  \
    "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),  \
    "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]),  \
    "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]),  \
    "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]),  \
    "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),  \
    "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]),  \
    "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]),  \
    "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), "+f"(d[64]), "+f"(d[65]),  \
    "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]),  \
    "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]),  \
    "+f"(d[78]), "+f"(d[79]), "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]),  \
    "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), "+f"(d[88]), "+f"(d[89]),  \
    "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]),  \
    "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]),  \
    "+f"(d[102]), "+f"(d[103]), "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]),  \
    "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]), "+f"(d[112]), "+f"(d[113]),  \
    "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]),  \
    "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]),  \
    "+f"(d[126]), "+f"(d[127])
#define SLAY_WGMMA_REGS256  \
    "%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,"  \
    "%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,"  \
    "%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,"  \
    "%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63,"  \
    "%64,%65,%66,%67,%68,%69,%70,%71,%72,%73,%74,%75,%76,%77,%78,%79,"  \
    "%80,%81,%82,%83,%84,%85,%86,%87,%88,%89,%90,%91,%92,%93,%94,%95,"  \
    "%96,%97,%98,%99,%100,%101,%102,%103,%104,%105,%106,%107,%108,%109,%110,%111,"  \
    "%112,%113,%114,%115,%116,%117,%118,%119,%120,%121,%122,%123,%124,%125,%126,%127"
#define SLAY_WGMMA_N256(ELEM, PTX_TYPE)  \
    template <>  \
    struct Mma<ELEM, 256> {  \
        static constexpr int kAcc = 128;  \
        template <int kTransB, int kTransA = 0>  \
        __device__ static void ss(float (&d)[128], uint64_t a_desc, uint64_t b_desc, bool accumulate) {  \
            asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n"  \
                         "wgmma.mma_async.sync.aligned.m64n256k16.f32." PTX_TYPE "." PTX_TYPE " {"  \
                         SLAY_WGMMA_REGS256  \
                         "}, %128, %129, p, 1, 1, %132, %131;\n}\n"  \
                         : SLAY_WGMMA_ACC256  \
                         : "l"(a_desc), "l"(b_desc), "r"(static_cast<int>(accumulate)), "n"(kTransB),  \
                           "n"(kTransA));  \
        }  \
        template <int kTransB>  \
        __device__ static void rs(float (&d)[128], const unsigned (&a)[4], uint64_t b_desc, bool accumulate) {  \
            asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %133, 0;\n"  \
                         "wgmma.mma_async.sync.aligned.m64n256k16.f32." PTX_TYPE "." PTX_TYPE " {"  \
                         SLAY_WGMMA_REGS256  \
                         "}, {%128,%129,%130,%131}, %132, p, 1, 1, %134;\n}\n"  \
                         : SLAY_WGMMA_ACC256  \
                         : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b_desc), "r"(static_cast<int>(accumulate)),  \
                           "n"(kTransB));  \
        }  \
    };
SLAY_WGMMA_N32(__nv_bfloat16, "bf16")
SLAY_WGMMA_N32(__half, "f16")
SLAY_WGMMA_N64(__nv_bfloat16, "bf16")
SLAY_WGMMA_N64(__half, "f16")
SLAY_WGMMA_N128(__nv_bfloat16, "bf16")
SLAY_WGMMA_N128(__half, "f16")
SLAY_WGMMA_N256(__nv_bfloat16, "bf16")
SLAY_WGMMA_N256(__half, "f16")
#undef SLAY_WGMMA_N32
#undef SLAY_WGMMA_N64
#undef SLAY_WGMMA_N128
#undef SLAY_WGMMA_N256
#undef SLAY_WGMMA_ACC32
#undef SLAY_WGMMA_ACC64
#undef SLAY_WGMMA_ACC128
#undef SLAY_WGMMA_ACC256
#undef SLAY_WGMMA_REGS32
#undef SLAY_WGMMA_REGS64
#undef SLAY_WGMMA_REGS128
#undef SLAY_WGMMA_REGS256
#endif  // SLAY_HAS_WGMMA

}  // namespace wgmma
}  // namespace cuda
}  // namespace slay
