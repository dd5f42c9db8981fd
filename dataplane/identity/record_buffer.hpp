// Reassembly of one L4 record (docs/l4-mode.md, "Records") from the TCP segments that carry the
// start of a direction's byte stream: in any order, with duplicates and overlaps, bounded by the
// largest record. An overlapping byte must equal the byte already held (a retransmission carries
// the same bytes; anything else is refused, so a path or an attacker that rewrites retransmitted
// bytes cannot change a record after part of it was read). Sequence numbers wrap modulo 2^32.
//
// Header-only, fixed size (no allocation), noexcept: it lives in a handshake context.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "crypto/l4_wire.hpp"

namespace segwire::dp::identity {

class RecordBuffer {
  public:
    static constexpr size_t kCap = crypto::l4::kMaxRecordLen;

    enum class Add : uint8_t {
        kOk,        // at least one byte of the segment lies in the record's window
        kOutside,   // none does (before the stream's first byte, or past kCap): ignored
        kConflict,  // a byte differs from the one already held: refuse the exchange
    };

    // The stream's first byte is `first_seq` (the sender's ISN + 1); nothing held.
    void reset(uint32_t first_seq) noexcept {
        first_ = first_seq;
        std::memset(have_, 0, sizeof have_);
        contiguous_ = 0;
        past_ = 0;
    }

    // The payload of one segment whose first byte has sequence number `seq`.
    Add add(uint32_t seq, std::span<const uint8_t> data) noexcept {
        // Offset of the segment in the stream; a segment starting before the first byte (a
        // retransmitted SYN's data, a keep-alive probe) contributes only what lies after it.
        const uint32_t rel = seq - first_;
        size_t skip = 0, off = rel;
        if (rel > UINT32_MAX / 2) {  // starts before first_ (modulo 2^32)
            skip = uint32_t(0) - rel;
            off = 0;
            if (skip >= data.size()) return Add::kOutside;
        }
        if (off >= kCap) return Add::kOutside;
        const size_t n = std::min(data.size() - skip, kCap - off);
        const uint8_t *src = data.data() + skip;
        if (off == contiguous_ && past_ <= contiguous_) {
            // The common case, the next bytes in order with nothing held past them: no byte to
            // compare, no bit to set (held() counts every byte below contiguous_).
            std::memcpy(buf_ + off, src, n);
            contiguous_ = static_cast<uint32_t>(off + n);
            past_ = contiguous_;
            return Add::kOk;
        }
        for (size_t i = 0; i < n; ++i) {  // check first: a conflict changes nothing
            const size_t at = off + i;
            if (held(at) && buf_[at] != src[i]) return Add::kConflict;
        }
        for (size_t i = 0; i < n; ++i) {
            const size_t at = off + i;
            buf_[at] = src[i];
            have_[at / 64] |= uint64_t(1) << (at % 64);
        }
        past_ = std::max<uint32_t>(past_, static_cast<uint32_t>(off + n));
        while (contiguous_ < kCap && held(contiguous_)) ++contiguous_;
        return Add::kOk;
    }

    // The bytes held without a gap from the stream's first byte: what parse_record reads.
    std::span<const uint8_t> bytes() const noexcept { return {buf_, contiguous_}; }
    size_t contiguous() const noexcept { return contiguous_; }
    uint32_t first_seq() const noexcept { return first_; }

  private:
    bool held(size_t at) const noexcept {
        return at < contiguous_ || (have_[at / 64] >> (at % 64) & 1);
    }

    uint32_t first_ = 0;
    uint32_t contiguous_ = 0;
    uint32_t past_ = 0;  // one past the last byte held
    uint64_t have_[(kCap + 63) / 64] = {};
    uint8_t buf_[kCap] = {};
};

}  // namespace segwire::dp::identity
