// test_status.cpp -- status codes: slay_status_name / slay_status_string for
// every code and for unknown values, versions, and that the last-error
// message is thread-local ("" on a fresh thread, untouched by failures on
// other threads).
#include <string>
#include <thread>

#include "support.hpp"
#include "raw_enum_calls.h"

using namespace slay_test;

TEST_SUITE("status") {

struct NamedStatus {
    slay_status_t code;
    const char* name;
};

const NamedStatus kAllStatuses[] = {
    {SLAY_STATUS_SUCCESS, "SLAY_STATUS_SUCCESS"},
    {SLAY_STATUS_INVALID_ARGUMENT, "SLAY_STATUS_INVALID_ARGUMENT"},
    {SLAY_STATUS_INVALID_VALUE, "SLAY_STATUS_INVALID_VALUE"},
    {SLAY_STATUS_BAD_SHAPE, "SLAY_STATUS_BAD_SHAPE"},
    {SLAY_STATUS_BAD_STRIDE, "SLAY_STATUS_BAD_STRIDE"},
    {SLAY_STATUS_BAD_DTYPE, "SLAY_STATUS_BAD_DTYPE"},
    {SLAY_STATUS_UNKNOWN_ATTRIBUTE, "SLAY_STATUS_UNKNOWN_ATTRIBUTE"},
    {SLAY_STATUS_ATTRIBUTE_TYPE, "SLAY_STATUS_ATTRIBUTE_TYPE"},
    {SLAY_STATUS_ATTRIBUTE_NOT_APPLICABLE, "SLAY_STATUS_ATTRIBUTE_NOT_APPLICABLE"},
    {SLAY_STATUS_WORKSPACE_TOO_SMALL, "SLAY_STATUS_WORKSPACE_TOO_SMALL"},
    {SLAY_STATUS_STRUCT_SIZE, "SLAY_STATUS_STRUCT_SIZE"},
    {SLAY_STATUS_BACKEND_MISMATCH, "SLAY_STATUS_BACKEND_MISMATCH"},
    {SLAY_STATUS_PLAN_IN_USE, "SLAY_STATUS_PLAN_IN_USE"},
    {SLAY_STATUS_NOT_SUPPORTED, "SLAY_STATUS_NOT_SUPPORTED"},
    {SLAY_STATUS_NO_DEVICE, "SLAY_STATUS_NO_DEVICE"},
    {SLAY_STATUS_CUDA_ERROR, "SLAY_STATUS_CUDA_ERROR"},
    {SLAY_STATUS_CURAND_ERROR, "SLAY_STATUS_CURAND_ERROR"},
    {SLAY_STATUS_CUFFT_ERROR, "SLAY_STATUS_CUFFT_ERROR"},
    {SLAY_STATUS_OUT_OF_MEMORY, "SLAY_STATUS_OUT_OF_MEMORY"},
    {SLAY_STATUS_INTERNAL_ERROR, "SLAY_STATUS_INTERNAL_ERROR"},
};

TEST_CASE("every status code has its name and a description") {
    for (const NamedStatus& s : kAllStatuses) {
        const std::string expected_name = s.name;
        CAPTURE(expected_name);
        CHECK(std::string(slay_status_name(s.code)) == s.name);
        const char* text = slay_status_string(s.code);
        REQUIRE(text != nullptr);
        CHECK(std::string(text).size() > 0);
    }
}

TEST_CASE("unknown status values are named SLAY_STATUS_UNKNOWN") {
    for (int raw : {1, 99, 112, 199, 201, 299, 305, 899, 901, -1, 0x7fffffff}) {
        CAPTURE(raw);
        CHECK(std::string(raw_status_name(raw)) == "SLAY_STATUS_UNKNOWN");  // -1: through C
        REQUIRE(raw_status_string(raw) != nullptr);
        CHECK(std::string(raw_status_string(raw)).size() > 0);
    }
}

TEST_CASE("the library reports the header's versions") {
    CHECK(slay_get_version() == SLAY_VERSION);
    CHECK(slay_get_abi_version() == SLAY_ABI_VERSION);
}

TEST_CASE("the last error message is thread-local") {
    std::string fresh_thread_message = "not run";
    std::thread([&] { fresh_thread_message = slay_last_error_message(); }).join();
    CHECK(fresh_thread_message == "");  // "" before any failure on a thread

    // A failure on this thread...
    slay_attn_variant_t v;
    REQUIRE(slay_attn_variant_from_name("no-such-variant-main-thread", &v) == SLAY_STATUS_INVALID_VALUE);
    const std::string main_message = slay_last_error_message();
    CHECK(main_message.find("no-such-variant-main-thread") != std::string::npos);

    // ...is not seen by another thread, and the other thread's failure does
    // not overwrite this thread's message.
    std::string other_before, other_after;
    std::thread([&] {
        other_before = slay_last_error_message();
        slay_attn_variant_t w;
        slay_attn_variant_from_name("no-such-variant-other-thread", &w);
        other_after = slay_last_error_message();
    }).join();
    CHECK(other_before == "");
    CHECK(other_after.find("no-such-variant-other-thread") != std::string::npos);
    CHECK(std::string(slay_last_error_message()) == main_message);
}

TEST_CASE("a failure's message survives later successful calls on the thread") {
    slay_attn_variant_t v;
    REQUIRE(slay_attn_variant_from_name("no-such-variant-kept", &v) == SLAY_STATUS_INVALID_VALUE);
    REQUIRE(slay_attn_variant_from_name("linear", &v) == SLAY_STATUS_SUCCESS);
    CHECK(std::string(slay_last_error_message()).find("no-such-variant-kept") != std::string::npos);
}

}  // TEST_SUITE
