// test_lifecycle.cpp -- object lifetimes: destroy(NULL) succeeds; handles,
// descriptors and plans can be created and destroyed many times without the
// resident set growing (a leak check without external tools); handle
// creation rejects NULL and unknown backends without touching the output.
#include <unistd.h>

#include <cstdio>

#include "support.hpp"
#include "raw_enum_calls.h"

using namespace slay_test;

namespace {

// Resident set size in bytes (Linux /proc/self/statm), 0 if unreadable.
long resident_bytes() {
    long pages_total = 0, pages_resident = 0;
    FILE* f = std::fopen("/proc/self/statm", "r");
    if (!f) return 0;
    const int read = std::fscanf(f, "%ld %ld", &pages_total, &pages_resident);
    std::fclose(f);
    return read == 2 ? pages_resident * sysconf(_SC_PAGESIZE) : 0;
}

// One full object cycle: a handle, a descriptor, a plan with parameters,
// a failing call (which records an error message), then destruction.
void create_and_destroy_everything() {
    slay_handle_t h = nullptr;
    slay_attn_desc_t d = nullptr;
    slay_attn_plan_t p = nullptr;
    REQUIRE(slay_handle_create(&h, SLAY_BACKEND_CPU, 0) == SLAY_STATUS_SUCCESS);
    REQUIRE(slay_attn_desc_create(&d, SLAY_ATTN_SLAY_NYSTROM) == SLAY_STATUS_SUCCESS);
    REQUIRE(slay_attn_desc_set_i64(d, SLAY_ATTR_HEAD_DIM, 8) == SLAY_STATUS_SUCCESS);
    REQUIRE(slay_attn_plan_create(&p, h, d) == SLAY_STATUS_SUCCESS);
    REQUIRE(slay_attn_fwd(p, nullptr, nullptr, 0, nullptr) == SLAY_STATUS_INVALID_ARGUMENT);
    REQUIRE(slay_attn_plan_destroy(p) == SLAY_STATUS_SUCCESS);
    REQUIRE(slay_attn_desc_destroy(d) == SLAY_STATUS_SUCCESS);
    REQUIRE(slay_handle_destroy(h) == SLAY_STATUS_SUCCESS);
}

}  // namespace

TEST_SUITE("lifecycle") {

TEST_CASE("destroying NULL succeeds") {
    CHECK(slay_handle_destroy(nullptr) == SLAY_STATUS_SUCCESS);
    CHECK(slay_attn_desc_destroy(nullptr) == SLAY_STATUS_SUCCESS);
    CHECK(slay_attn_plan_destroy(nullptr) == SLAY_STATUS_SUCCESS);
}

// Under AddressSanitizer freed memory sits in a quarantine and the resident
// set grows by design; ASan's own leak checker covers this case there.
#if defined(__SANITIZE_ADDRESS__)
#define SLAY_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SLAY_TEST_ASAN 1
#endif
#endif

TEST_CASE("many create/destroy cycles do not grow the resident set") {
#ifdef SLAY_TEST_ASAN
    for (int i = 0; i < 200; ++i) create_and_destroy_everything();  // leaks are LeakSanitizer's to report
    return;
#endif
    for (int i = 0; i < 200; ++i) create_and_destroy_everything();  // warm up allocator pools
    const long before = resident_bytes();
    for (int i = 0; i < 20000; ++i) create_and_destroy_everything();
    const long after = resident_bytes();
    INFO("resident set before ", before, " after ", after);
    // A plan alone holds a few hundred bytes; 20000 leaked cycles would add
    // several MiB.
    CHECK(after - before < 2 * 1024 * 1024);
}

TEST_CASE("a CPU handle reports its backend") {
    Handle h = make_cpu_handle();
    slay_backend_t backend = SLAY_BACKEND_CUDA;
    CHECK(slay_handle_get_backend(h, &backend) == SLAY_STATUS_SUCCESS);
    CHECK(backend == SLAY_BACKEND_CPU);
    check_status(SLAY_STATUS_INVALID_ARGUMENT, [&] { return slay_handle_get_backend(h, nullptr); });
    check_status(SLAY_STATUS_INVALID_ARGUMENT, [&] { return slay_handle_get_backend(nullptr, &backend); });
}

TEST_CASE("handle creation rejects a NULL out-pointer and unknown backends, leaving the output untouched") {
    check_status(SLAY_STATUS_INVALID_ARGUMENT, [] { return slay_handle_create(nullptr, SLAY_BACKEND_CPU, 0); });
    for (int raw : {2, -1, 1000}) {
        CAPTURE(raw);
        const auto untouched = reinterpret_cast<slay_handle_t>(uintptr_t{0x9abc});
        slay_handle_t h = untouched;
        check_status(SLAY_STATUS_INVALID_ARGUMENT,
                     [&] { return raw_handle_create(&h, raw, 0); });
        CHECK(std::string(slay_last_error_message()) == "backend=" + std::to_string(raw) + " is not a slay_backend_t");
        CHECK(h == untouched);
    }
}

TEST_CASE("the CPU backend ignores the device argument") {
    for (int32_t device : {0, 5, -3}) {
        slay_handle_t h = nullptr;
        CHECK(slay_handle_create(&h, SLAY_BACKEND_CPU, device) == SLAY_STATUS_SUCCESS);
        CHECK(slay_handle_destroy(h) == SLAY_STATUS_SUCCESS);
    }
}

}  // TEST_SUITE lifecycle
