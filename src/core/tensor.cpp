// tensor.cpp -- slay_tensor_t validation (see tensor.hpp).
#include "tensor.hpp"

#include <string>

#include "dtype.hpp"
#include "limits.hpp"

namespace slay {

int64_t TensorView::numel() const {
    int64_t n = 1;
    for (int i = 0; i < rank; ++i) n *= shape[i];
    return n;
}

bool TensorView::byte_range(uintptr_t* first, uintptr_t* end) const {
    if (rank == 0 || !data || numel() == 0) return false;
    int64_t last = 0;  // fits: check_tensor_rank bounded the largest byte offset
    for (int i = 0; i < rank; ++i) last += strides[i] * (shape[i] - 1);
    const int64_t size = static_cast<int64_t>(dtype_size(dtype));
    *first = reinterpret_cast<uintptr_t>(data);
    *end = *first + static_cast<uintptr_t>(last * size + size);
    return true;
}

static std::string shape_text(const int64_t* shape, int rank) {
    std::string s = "(";
    for (int i = 0; i < rank; ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + ")";
}

// True when distinct indices of the tensor can map to the same element.
// Sort the axes of extent > 1 by stride; each stride must step over the
// whole span of the axes inside it.
static bool self_overlapping(const TensorView& v) {
    int64_t order[SLAY_MAX_RANK];
    int n = 0;
    for (int i = 0; i < v.rank; ++i)
        if (v.shape[i] > 1) order[n++] = i;
    for (int i = 1; i < n; ++i)  // insertion sort by stride: at most 4 axes
        for (int j = i; j > 0 && v.strides[order[j]] < v.strides[order[j - 1]]; --j) {
            const int64_t t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    int64_t span = 1;  // elements covered by the axes handled so far
    for (int i = 0; i < n; ++i) {
        const int64_t ax = order[i];
        if (v.strides[ax] < span) return true;
        span = v.strides[ax] * (v.shape[ax] - 1) + span;
    }
    return false;
}

Status check_tensor_rank(const slay_tensor_t* t, const char* name, slay_dtype_t dtype,
                         int32_t rank, Access access, TensorView* view) {
    if (!t) return error(SLAY_STATUS_INVALID_ARGUMENT, name, " is NULL");
    if (t->rank != rank)
        return error(SLAY_STATUS_BAD_SHAPE, name, ".rank=", t->rank, " but ", rank, " is required");
    const int32_t dtype_bits = enum_bits(t->dtype);  // any int32 may arrive from C
    if (dtype_bits != dtype)
        return error(SLAY_STATUS_BAD_DTYPE, name, ".dtype=", dtype_name(dtype_bits), " (", dtype_bits, ") but ",
                     dtype_name(dtype), " is required");
    TensorView v;
    v.data = t->data;
    v.dtype = dtype;
    v.rank = t->rank;
    for (int i = 0; i < rank; ++i) {
        v.shape[i] = t->shape[i];
        v.strides[i] = t->strides[i];
        if (v.shape[i] < 0)
            return error(SLAY_STATUS_BAD_SHAPE, name, ".shape[", i, "]=", v.shape[i], " is negative");
        if (v.strides[i] < 0)
            return error(SLAY_STATUS_BAD_STRIDE, name, ".strides[", i, "]=", v.strides[i],
                         " is negative");
    }
    // The element count and the largest offset in bytes must fit in int64:
    // 64-bit offsets are used everywhere, so that is the limit of what is
    // addressable (a dtype error above guarantees dtype_size > 0 here).
    int64_t count = 1, last = 0, last_byte = 0;
    bool too_large = false;
    for (int i = 0; i < rank && !too_large; ++i) {
        int64_t reach = 0;
        too_large = __builtin_mul_overflow(count, v.shape[i], &count) ||
                    (v.shape[i] > 0 && (__builtin_mul_overflow(v.strides[i], v.shape[i] - 1, &reach) ||
                                        __builtin_add_overflow(last, reach, &last)));
    }
    if (too_large || __builtin_mul_overflow(last, static_cast<int64_t>(dtype_size(dtype)), &last_byte))
        return error(SLAY_STATUS_BAD_SHAPE, name, " with shape ", shape_text(v.shape, rank), " and strides ",
                     shape_text(v.strides, rank), " reaches beyond what 64-bit byte offsets can address");
    if (v.shape[rank - 1] > 1 && v.strides[rank - 1] != 1)
        return error(SLAY_STATUS_BAD_STRIDE, name, ".strides[", rank - 1, "]=", v.strides[rank - 1],
                     " but the innermost stride must be 1");
    if (count > 0) {
        if (!v.data) return error(SLAY_STATUS_INVALID_ARGUMENT, name, ".data is NULL");
        if (reinterpret_cast<uintptr_t>(v.data) % dtype_size(dtype) != 0)
            return error(SLAY_STATUS_INVALID_ARGUMENT, name, ".data is not aligned to ",
                         dtype_size(dtype), " bytes");
        if (access == Access::Write && self_overlapping(v))
            return error(SLAY_STATUS_BAD_STRIDE, name, " has strides ", shape_text(v.strides, rank),
                         " under which elements of the shape ", shape_text(v.shape, rank),
                         " overlap; outputs must not overlap");
    }
    *view = v;
    return Status();
}

Status check_tensor(const slay_tensor_t* t, const char* name, slay_dtype_t dtype,
                    std::initializer_list<int64_t> expected_shape, const char* dims, Access access,
                    TensorView* view) {
    const int32_t rank = static_cast<int32_t>(expected_shape.size());
    TensorView v;
    SLAY_TRY(check_tensor_rank(t, name, dtype, rank, access, &v));
    int i = 0;
    for (int64_t e : expected_shape) {
        if (v.shape[i] != e)
            return error(SLAY_STATUS_BAD_SHAPE, name, ".shape[", i, "]=", v.shape[i], " but ", e,
                         " is expected: ", name, " is ", shape_text(v.shape, rank), ", expected ",
                         shape_text(std::data(expected_shape), rank), " = ", dims);
        ++i;
    }
    *view = v;
    return Status();
}

}  // namespace slay
