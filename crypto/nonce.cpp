#include "crypto/nonce.hpp"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cstring>

namespace segwire::crypto {

NonceSource::NonceSource(size_t buffer_bytes)
    : buf_(new uint8_t[std::max<size_t>(buffer_bytes, 64)]),
      cap_(std::max<size_t>(buffer_bytes, 64)),
      pos_(cap_) {}

NonceSource::~NonceSource() {
    OPENSSL_cleanse(buf_.get(), cap_);
}

bool NonceSource::refill() noexcept {
    if (RAND_bytes(buf_.get(), static_cast<int>(cap_)) != 1) {
        ERR_clear_error();
        return false;
    }
    pos_ = 0;
    ++refills_;
    return true;
}

bool NonceSource::fill(std::span<uint8_t> out) noexcept {
    size_t done = 0;
    while (done < out.size()) {
        if (pos_ == cap_ && !refill()) {
            std::memset(out.data(), 0, out.size());
            return false;
        }
        size_t n = std::min(out.size() - done, cap_ - pos_);
        std::memcpy(out.data() + done, buf_.get() + pos_, n);
        OPENSSL_cleanse(buf_.get() + pos_, n);
        pos_ += n;
        done += n;
    }
    return true;
}

}  // namespace segwire::crypto
