// test_no_device.cpp -- the CUDA handle on a machine (or an environment)
// without a usable device: slay_handle_create(CUDA) returns NO_DEVICE with a
// message and leaves *handle untouched. Run twice by meson: once with
// CUDA_VISIBLE_DEVICES='' (no device visible anywhere: must be NO_DEVICE),
// once in the normal environment (NO_DEVICE asserted only where
// /dev/nvidia0 does not exist; with a device, an out-of-range ordinal must
// still be rejected without touching *handle).
#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "support.hpp"

using namespace slay_test;

namespace {

bool cuda_hidden_by_environment() {
    const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
    return visible && std::string(visible).empty();
}

bool nvidia_device_node_exists() { return access("/dev/nvidia0", F_OK) == 0; }

// Whether the CUDA driver library (libcuda.so.1, part of the NVIDIA driver)
// can be loaded; without it the runtime cannot reach any driver at all.
bool driver_library_loads() {
    void* library = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (library) dlclose(library);
    return library != nullptr;
}

void check_cuda_handle_is_no_device(int32_t device) {
    CAPTURE(device);
    const auto untouched = reinterpret_cast<slay_handle_t>(uintptr_t{0xdead0});
    slay_handle_t h = untouched;
    check_status(SLAY_STATUS_NO_DEVICE, [&] { return slay_handle_create(&h, SLAY_BACKEND_CUDA, device); });
    CHECK(h == untouched);
    // The message says which case it is: no driver installed, a driver older
    // than the runtime, or a driver that sees no device; each names the driver.
    const std::string message = slay_last_error_message();
    if (message == "libslay was built without the CUDA backend") return;  // a host-only build (-Dgpu=disabled)
    CHECK_MESSAGE(message.find("driver") != std::string::npos, message);
    if (!driver_library_loads()) CHECK_MESSAGE(message.find("no NVIDIA driver is installed") != std::string::npos, message);
}

}  // namespace

TEST_SUITE("no_device") {

TEST_CASE("a CUDA handle without a usable device is NO_DEVICE with a message") {
    if (!cuda_hidden_by_environment() && nvidia_device_node_exists()) {
        MESSAGE("a GPU is present and visible: the NO_DEVICE path is covered by the CUDA_VISIBLE_DEVICES='' run");
        const auto untouched = reinterpret_cast<slay_handle_t>(uintptr_t{0xdead0});
        slay_handle_t h = untouched;
        check_status(SLAY_STATUS_INVALID_VALUE, [&] { return slay_handle_create(&h, SLAY_BACKEND_CUDA, 4096); });
        CHECK(h == untouched);
        return;
    }
    check_cuda_handle_is_no_device(0);
    check_cuda_handle_is_no_device(3);
    check_cuda_handle_is_no_device(0);  // a second attempt fails the same way
}

TEST_CASE("the CPU backend still works when CUDA has no device") {
    Handle cpu = make_cpu_handle();
    Plan plan = make_plan(cpu, make_desc(SLAY_ATTN_LINEAR));
    int64_t features = 0;
    CHECK(slay_attn_plan_get_feature_dim(plan, &features) == SLAY_STATUS_SUCCESS);
    CHECK(features == 64);
}

}  // TEST_SUITE no_device
