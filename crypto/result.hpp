// The one error type of the crypto layer's slow-path API (key/cert handling, signing,
// verification set-up). Hot-path functions never use it: they return small enums instead, so they
// cannot allocate.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace segwire::crypto {

enum class Errc {
    Ok = 0,
    InvalidArgument,  // caller passed something unusable (empty name, bad size, ...)
    OpenSsl,          // an OpenSSL call failed; message carries the OpenSSL error string
    BadPem,           // PEM/DER could not be parsed
    CertVerify,       // chain, expiry, key usage or subject check failed
    NotFound,
    Unsupported,
};

const char *to_string(Errc e) noexcept;

struct Error {
    Errc code = Errc::Ok;
    std::string message;  // names the object (certificate subject, field, key) and the problem

    std::string what() const { return std::string(to_string(code)) + ": " + message; }
};

// Minimal expected<T, Error> (C++20 has no std::expected).
template <class T>
class [[nodiscard]] Result {
  public:
    Result(T value) : v_(std::move(value)) {}
    Result(Error e) : v_(std::move(e)) {}

    bool ok() const noexcept { return v_.index() == 0; }
    explicit operator bool() const noexcept { return ok(); }
    T &value() & { return std::get<0>(v_); }
    const T &value() const & { return std::get<0>(v_); }
    T &&value() && { return std::get<0>(std::move(v_)); }
    T &operator*() & { return value(); }
    const T &operator*() const & { return value(); }
    T *operator->() { return &value(); }
    const T *operator->() const { return &value(); }
    const Error &error() const { return std::get<1>(v_); }

  private:
    std::variant<T, Error> v_;
};

// Result<void>.
class [[nodiscard]] Status {
  public:
    Status() = default;
    Status(Error e) : err_(std::move(e)) {}
    bool ok() const noexcept { return err_.code == Errc::Ok; }
    explicit operator bool() const noexcept { return ok(); }
    const Error &error() const { return err_; }

  private:
    Error err_;
};

// The last OpenSSL error queue entry as text (and clears the queue), for Error::message.
std::string openssl_error_string();

inline Error openssl_error(const std::string &what) {
    return Error{Errc::OpenSsl, what + ": " + openssl_error_string()};
}

}  // namespace segwire::crypto
