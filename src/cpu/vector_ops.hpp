// vector_ops.hpp -- the fp64 vector helpers the reference math shares.
#pragma once

#include <cstdint>

namespace slay {
namespace cpu {

// sum_i a[i] b[i] over n entries, accumulated in order (the reference's
// results depend on nothing but this order).
inline double dot(const double* a, const double* b, int64_t n) {
    double s = 0.0;
    for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
    return s;
}

}  // namespace cpu
}  // namespace slay
