// gpu_doctest_main.hpp -- the main() of a doctest GPU suite: opens the
// harness environment (gpu_support.hpp) and exits 77 (meson: skipped) when
// there is no CUDA device, else runs doctest with the command line
// (filters like -tc=*sanitizer* work as usual). Include once, in the file
// that defines DOCTEST_CONFIG_IMPLEMENT before including doctest.
#pragma once

#include <doctest/doctest.h>

#include <cstdio>
#include <string>

#include "gpu_support.hpp"

namespace slay_gpu {

inline int doctest_main(int argc, char** argv) {
    std::string why;
    const int env_code = open_env(&why);
    if (env_code == 77) {
        std::printf("%s: skipped\n", why.c_str());
        return 77;
    }
    if (env_code != 0) {
        std::printf("GPU test environment failed: %s\n", why.c_str());
        return 1;
    }
    if (!why.empty()) std::printf("%s\n", why.c_str());
    doctest::Context ctx;
    ctx.applyCommandLine(argc, argv);
    return ctx.run();
}

}  // namespace slay_gpu
