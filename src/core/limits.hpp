// limits.hpp -- the library's hard limits on call sizes and on values read
// from C at the ABI boundary, each named once. Every limit is checked in
// core/ before a backend sees a call (so both backends give the same status
// for it) and reported as a status with a message naming the limit.
#pragma once

#include <cstdint>
#include <cstring>

namespace slay {

// CUDA's largest gridDim.x. Launchers that put more than B*H blocks on the x
// axis (the exact family: B*H*ceil(T/64)) check their own count against it.
constexpr int64_t kMaxGridX = (int64_t{1} << 31) - 1;

// B*H of a call: the per-(b, h) CUDA kernels put B*H on gridDim.x, so it is
// bounded by kMaxGridX; the CPU backend applies the same limit so that a call
// gets one status on both backends (INVALID_VALUE beyond it).
constexpr int64_t kMaxBatchHeads = kMaxGridX;

// struct_size of a size-prefixed block (fwd/bwd args, param segment). A
// newer caller's block may be larger than this library's struct, but never
// by more than this: the unknown tail is read byte by byte, and a garbage
// size must not send that read past the caller's allocation (STRUCT_SIZE).
constexpr size_t kMaxStructSize = 1024;

// The int32 behind an enum value that came from C. A C caller may store any
// int32 in an enum parameter or field, but in C++ loading an enum object
// whose value lies outside its enumerators' range is undefined behaviour;
// the bits are copied instead and validated as an integer. All of the ABI's
// enums are pinned to 32 bits by their *_FORCE_32BIT_ member.
template <typename Enum>
int32_t enum_bits(const Enum& e) {
    static_assert(sizeof(Enum) == sizeof(int32_t), "ABI enums are 32 bits");
    int32_t bits;
    std::memcpy(&bits, &e, sizeof bits);
    return bits;
}

}  // namespace slay
