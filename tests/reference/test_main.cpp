// test_main.cpp -- the doctest runner of the reference suite (fp64 CPU oracle:
// forward/backward of every variant on one (T, D) head slice).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
