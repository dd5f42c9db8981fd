// Handshake nonces from OpenSSL's CSPRNG, drawn in bulk. RAND_bytes per 16-byte nonce costs a
// DRBG call each time; one 4 KiB draw serves 256 nonces. rte_rand is not a CSPRNG and must never
// be used for nonces (a predictable server nonce would let a captured SYN be completed).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

namespace segwire::crypto {

inline constexpr size_t kNonceLen = 16;

// One per thread (not thread-safe). OpenSSL 3 keeps per-thread DRBG instances, so refills from
// several workers do not contend.
class NonceSource {
  public:
    explicit NonceSource(size_t buffer_bytes = 4096);
    ~NonceSource();
    NonceSource(const NonceSource &) = delete;
    NonceSource &operator=(const NonceSource &) = delete;

    // Fills `out` with fresh random bytes. False only if the DRBG fails (then `out` is zeroed and
    // the caller must not use it). Consumed buffer bytes are wiped so a memory disclosure later
    // cannot reveal nonces already sent. No allocation, no exceptions.
    bool fill(std::span<uint8_t> out) noexcept;
    bool next(std::span<uint8_t, kNonceLen> out) noexcept { return fill(out); }

    uint64_t refills() const noexcept { return refills_; }

  private:
    bool refill() noexcept;

    std::unique_ptr<uint8_t[]> buf_;
    size_t cap_;
    size_t pos_;  // first unread byte; == cap_ when empty
    uint64_t refills_ = 0;
};

}  // namespace segwire::crypto
