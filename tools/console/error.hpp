// The one error type of the Console layer. Every failure a client can see becomes one of these and
// is sent as a JSON body naming the problem: {"error": ..., "field": ..., ...}. Errors of the
// layers below (policy::PolicyError, crypto::Error, SQLite) are converted at the boundary.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

#include "crypto/result.hpp"

namespace segwire::policy {
class PolicyError;
}

namespace segwire::console {

class ConsoleError : public std::runtime_error {
  public:
    ConsoleError(int status, const std::string &message, std::string field = "")
        : std::runtime_error(message), status_(status), field_(std::move(field)) {}

    // 422 with the policy layer's object/field/reason (validation failures); `note` is appended
    // to the message.
    static ConsoleError from_policy(const policy::PolicyError &e, int status = 422,
                                    const std::string &note = "");

    int status() const { return status_; }
    const std::string &field() const { return field_; }
    const std::string &object() const { return object_; }
    const std::string &reason() const { return reason_; }
    const std::vector<std::string> &candidates() const { return candidates_; }
    bool has_candidates() const { return has_candidates_; }

    ConsoleError &with_candidates(std::vector<std::string> c) {
        candidates_ = std::move(c);
        has_candidates_ = true;
        return *this;
    }

    // {"error": what(), "field"?, "object"?, "reason"?, "candidates"?}
    std::string to_json() const;

  private:
    int status_;
    std::string field_, object_, reason_;
    std::vector<std::string> candidates_;
    bool has_candidates_ = false;
};

// A crypto-layer result or a 500 naming what failed (the Console's own keys and certificates).
template <typename T>
T unwrap(crypto::Result<T> r, const std::string &what) {
    if (!r) throw ConsoleError(500, what + ": " + r.error().what());
    return std::move(r).value();
}

}  // namespace segwire::console
