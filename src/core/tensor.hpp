// tensor.hpp -- validated views of caller tensors (slay_tensor_t) and the
// checks every entry point runs before touching an output: presence, rank,
// dtype, shape, strides (innermost 1, none negative, outputs not overlapping
// themselves) and alignment.
#pragma once

#include <cstdint>
#include <initializer_list>

#include "slay/slay.h"
#include "status.hpp"

namespace slay {

struct TensorView {
    void* data = nullptr;
    slay_dtype_t dtype = SLAY_DTYPE_FLOAT32;
    int32_t rank = 0;
    int64_t shape[SLAY_MAX_RANK] = {0, 0, 0, 0};
    int64_t strides[SLAY_MAX_RANK] = {0, 0, 0, 0};

    int64_t numel() const;
    // The bytes [first, end) the view can touch; false when it touches none
    // (absent, or an extent of 0). Only for views check_tensor accepted.
    bool byte_range(uintptr_t* first, uintptr_t* end) const;
    // Element offset of a rank-4 index (b, h, t, d).
    int64_t offset(int64_t i0, int64_t i1, int64_t i2, int64_t i3) const {
        return i0 * strides[0] + i1 * strides[1] + i2 * strides[2] + i3 * strides[3];
    }
};

enum class Access { Read, Write };

// Validates `t` (named `name` in messages) against a dtype and an expected
// shape; `dims` names the axes for the message, e.g. "(B, H, T, D)".
Status check_tensor(const slay_tensor_t* t, const char* name, slay_dtype_t dtype,
                    std::initializer_list<int64_t> expected_shape, const char* dims, Access access,
                    TensorView* view);

// Rank/dtype/strides only, for the first tensor of a call whose shape
// defines B and T (q).
Status check_tensor_rank(const slay_tensor_t* t, const char* name, slay_dtype_t dtype,
                         int32_t rank, Access access, TensorView* view);

}  // namespace slay
