// status.cpp -- the thread-local last-error message.
#include "status.hpp"

namespace slay {

namespace {
thread_local std::string t_last_error;
}

void set_last_error(const std::string& message) {
    // Assigning may allocate; a failure here must not escape the ABI guard,
    // so fall back to a static text.
    try {
        t_last_error = message;
    } catch (...) {
        t_last_error.clear();
    }
}

const char* last_error() { return t_last_error.c_str(); }

}  // namespace slay
