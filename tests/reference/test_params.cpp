// test_params.cpp -- the parameter-value rule both backends share
// (core/sketch_bucket.hpp, slay.h at slay_attn_features_sample): values are
// never validated; a TensorSketch hash h (ts_hash1/ts_hash2, shape (D,))
// selects the bucket min(max(trunc(h), 0), P-1), NaN selecting 0.
#include <doctest/doctest.h>

#include <limits>

#include "core/sketch_bucket.hpp"
#include "support.hpp"

TEST_SUITE("params") {
    TEST_CASE("every float maps to a bucket in [0, P) by trunc and clamp") {
        const float inf = std::numeric_limits<float>::infinity();
        const float nan = std::numeric_limits<float>::quiet_NaN();
        const int P = 64;
        struct Case {
            float hash;
            int bucket;
        };
        const Case cases[] = {{0.0f, 0},   {3.0f, 3},    {3.99f, 3},   {63.0f, 63},  {63.5f, 63},
                              {64.0f, 63}, {7.5e30f, 63}, {inf, 63},   {-0.5f, 0},   {-1.0f, 0},
                              {-inf, 0},   {nan, 0},     {0.999f, 0},  {1.0f, 1},    {-7.5e30f, 0}};
        for (const Case& c : cases) {
            CAPTURE(c.hash);
            CHECK(slay::sketch_bucket_of(c.hash, P) == c.bucket);
        }
        CHECK(slay::sketch_bucket_of(5.0f, 1) == 0);  // P = 1: a single bucket
    }
}
