// Big-endian field access and a bounds-checked cursor used by every codec in crypto/.
// Everything here is allocation-free and noexcept: it runs on the packet path.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

namespace segwire::crypto {

using Digest = std::array<uint8_t, 32>;  // SHA-256 output

inline uint16_t load_be16(const uint8_t *p) noexcept {
    return static_cast<uint16_t>((p[0] << 8) | p[1]);
}
inline uint32_t load_be32(const uint8_t *p) noexcept {
    return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}
inline void store_be16(uint8_t *p, uint16_t v) noexcept {
    p[0] = static_cast<uint8_t>(v >> 8);
    p[1] = static_cast<uint8_t>(v);
}
inline void store_be32(uint8_t *p, uint32_t v) noexcept {
    p[0] = static_cast<uint8_t>(v >> 24);
    p[1] = static_cast<uint8_t>(v >> 16);
    p[2] = static_cast<uint8_t>(v >> 8);
    p[3] = static_cast<uint8_t>(v);
}

// Reads never run past the end: a failed read latches `ok() == false` and returns zeros, so a
// decoder can read a whole header and check once.
class ByteReader {
  public:
    explicit ByteReader(std::span<const uint8_t> buf) noexcept : buf_(buf) {}

    bool ok() const noexcept { return ok_; }
    size_t pos() const noexcept { return pos_; }
    size_t remaining() const noexcept { return buf_.size() - pos_; }

    uint8_t u8() noexcept {
        if (!need(1)) return 0;
        return buf_[pos_++];
    }
    uint16_t u16() noexcept {
        if (!need(2)) return 0;
        uint16_t v = load_be16(buf_.data() + pos_);
        pos_ += 2;
        return v;
    }
    uint32_t u32() noexcept {
        if (!need(4)) return 0;
        uint32_t v = load_be32(buf_.data() + pos_);
        pos_ += 4;
        return v;
    }
    std::span<const uint8_t> bytes(size_t n) noexcept {
        if (!need(n)) return {};
        auto s = buf_.subspan(pos_, n);
        pos_ += n;
        return s;
    }

  private:
    bool need(size_t n) noexcept {
        if (!ok_ || n > remaining()) {
            ok_ = false;
            return false;
        }
        return true;
    }
    std::span<const uint8_t> buf_;
    size_t pos_ = 0;
    bool ok_ = true;
};

class ByteWriter {
  public:
    explicit ByteWriter(std::span<uint8_t> buf) noexcept : buf_(buf) {}

    bool ok() const noexcept { return ok_; }
    size_t pos() const noexcept { return pos_; }

    void u8(uint8_t v) noexcept {
        if (need(1)) buf_[pos_++] = v;
    }
    void u16(uint16_t v) noexcept {
        if (need(2)) {
            store_be16(buf_.data() + pos_, v);
            pos_ += 2;
        }
    }
    void u32(uint32_t v) noexcept {
        if (need(4)) {
            store_be32(buf_.data() + pos_, v);
            pos_ += 4;
        }
    }
    void bytes(std::span<const uint8_t> b) noexcept {
        if (need(b.size())) {
            if (!b.empty()) std::memcpy(buf_.data() + pos_, b.data(), b.size());
            pos_ += b.size();
        }
    }
    // Reserves n bytes to be filled later (e.g. a MAC computed after the rest is written).
    uint8_t *reserve(size_t n) noexcept {
        if (!need(n)) return nullptr;
        uint8_t *p = buf_.data() + pos_;
        pos_ += n;
        return p;
    }

  private:
    bool need(size_t n) noexcept {
        if (!ok_ || n > buf_.size() - pos_) {
            ok_ = false;
            return false;
        }
        return true;
    }
    std::span<uint8_t> buf_;
    size_t pos_ = 0;
    bool ok_ = true;
};

inline std::span<const uint8_t> as_bytes(const char *s, size_t n) noexcept {
    return {reinterpret_cast<const uint8_t *>(s), n};
}

// Constant-time comparison for MACs and tags (CRYPTO_memcmp); never use memcmp on secrets.
bool tag_equal(const uint8_t *a, const uint8_t *b, size_t n) noexcept;

// SHA-256 of a buffer (the claims-blob hash used as cache key and in MAC inputs).
Digest sha256(std::span<const uint8_t> data) noexcept;

}  // namespace segwire::crypto
