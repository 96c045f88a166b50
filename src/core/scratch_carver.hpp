// scratch_carver.hpp -- carves a caller's workspace into consecutive
// 16-byte-aligned (rows, cols) blocks. With a null base it only counts, which
// is how both backends answer workspace_size with the same code that lays
// the workspace out in the call.
#pragma once

#include <cstddef>
#include <cstdint>

namespace slay {

// Hands out consecutive 16-byte-aligned blocks of a workspace; with a null
// base it only counts, which is how workspace_size is answered.
class ScratchCarver {
public:
    explicit ScratchCarver(void* base) : base_(static_cast<char*>(base)) {}
    // A (rows, cols) block of T. The size is computed from the factors with
    // overflow checks, so a huge seq_len cannot wrap it around; an overflow
    // is remembered and workspace_size refuses the call.
    template <typename T>
    T* take(int64_t rows, int64_t cols = 1) {
        const size_t at = used_;
        size_t bytes = 0;
        if (rows < 0 || cols < 0 ||
            __builtin_mul_overflow(static_cast<size_t>(rows), static_cast<size_t>(cols), &bytes) ||
            __builtin_mul_overflow(bytes, sizeof(T), &bytes) || __builtin_add_overflow(bytes, size_t{15}, &bytes) ||
            __builtin_add_overflow(used_, bytes / 16 * 16, &used_))
            overflow_ = true;
        return base_ ? reinterpret_cast<T*>(base_ + at) : nullptr;
    }
    size_t used() const { return used_; }
    bool overflowed() const { return overflow_; }

private:
    char* base_;
    size_t used_ = 0;
    bool overflow_ = false;
};

}  // namespace slay
