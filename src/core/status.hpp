// status.hpp -- internal error values and the thread-local last-error message.
//
// Every internal function that can fail returns a Status. The ABI layer turns
// a failed Status into its slay_status_t and records the message for
// slay_last_error_message(). No exception is allowed to cross the ABI; the
// guard in src/abi catches anything that escapes (std::bad_alloc included).
#pragma once

#include <sstream>
#include <string>
#include <utility>

#include "slay/slay.h"

namespace slay {

class Status {
public:
    Status() = default;  // success
    Status(slay_status_t code, std::string message) : code_(code), message_(std::move(message)) {}

    bool ok() const { return code_ == SLAY_STATUS_SUCCESS; }
    slay_status_t code() const { return code_; }
    const std::string& message() const { return message_; }

private:
    slay_status_t code_ = SLAY_STATUS_SUCCESS;
    std::string message_;
};

// Concatenates anything streamable: cat("k.shape[2]=", 511, " but ...").
template <typename... Parts>
std::string cat(const Parts&... parts) {
    std::ostringstream os;
    (os << ... << parts);
    return os.str();
}

template <typename... Parts>
Status error(slay_status_t code, const Parts&... parts) {
    return Status(code, cat(parts...));
}

// Returns early from the enclosing function when a Status-returning
// expression failed.
#define SLAY_TRY(expr)                      \
    do {                                    \
        ::slay::Status slay_try_s_ = (expr); \
        if (!slay_try_s_.ok()) return slay_try_s_; \
    } while (0)

// The thread-local last-error message behind slay_last_error_message().
void set_last_error(const std::string& message);
const char* last_error();

}  // namespace slay
