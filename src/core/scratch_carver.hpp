// scratch_carver.hpp -- carves a caller's workspace into consecutive
// 16-byte-aligned (rows, cols) blocks. With a null base it only counts, which
// is how both backends answer workspace_size with the same code that lays
// the workspace out in the call.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>

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
    // One block for alternative carvings of which a call uses one: as
    // large as the largest of `alternatives` (carvers that counted from a
    // null base); an overflow in any of them is remembered. Carve the one
    // used with a ScratchCarver on the returned base.
    void* take_union(std::initializer_list<const ScratchCarver*> alternatives) {
        size_t bytes = 0;
        for (const ScratchCarver* c : alternatives) {
            overflow_ = overflow_ || c->overflow_;
            bytes = c->used_ > bytes ? c->used_ : bytes;
        }
        return take<unsigned char>(static_cast<int64_t>(bytes > INT64_MAX ? INT64_MAX : bytes));
    }
    size_t used() const { return used_; }
    bool overflowed() const { return overflow_; }

private:
    char* base_;
    size_t used_ = 0;
    bool overflow_ = false;
};

}  // namespace slay
