// Per-source shares of what unauthenticated packets can pin on a worker (docs/handshake.md
// "Budgets"): handshake contexts, held packets and slow-path jobs. A source is the address of the
// host that started the flow; sources are hashed (seeded CRC32C, so an attacker cannot aim at a
// bucket) into a fixed array of counters, so a collision can only make a share stricter. Each
// resource still has its global bound; the share keeps one source from taking all of it.
// Worker-only: no locks, no allocation after init().
#pragma once

#include <rte_hash_crc.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

#include "dataplane/packet/parse.hpp"

namespace segwire::dp::identity {

class SourceShare {
  public:
    enum Res : uint8_t { kContexts, kHolds, kJobs, kKept, kResCount };
    static constexpr uint32_t kBuckets = 4096;
    static constexpr uint16_t kNoBucket = 0xffff;  // not charged to any source

    // `bound[r]`: the worker's bound for resource r; each source may hold `percent` of it
    // (at least 2).
    void init(uint32_t seed, const std::array<uint32_t, kResCount> &bound, uint32_t percent) {
        seed_ = seed;
        for (int r = 0; r < kResCount; ++r) {
            limit_[r] =
                std::max<uint32_t>(2, static_cast<uint32_t>(uint64_t(bound[r]) * percent / 100));
            used_[r].assign(kBuckets, 0);
        }
    }
    uint16_t bucket(const IpAddr &a) const noexcept {
        return static_cast<uint16_t>(rte_hash_crc(a.b, sizeof a.b, seed_) & (kBuckets - 1));
    }
    bool room(Res r, uint16_t b) const noexcept {
        return b == kNoBucket || used_[r][b] < limit_[r];
    }
    // Charges one unit to source bucket b; false (nothing charged) when its share is used up.
    bool take(Res r, uint16_t b) noexcept {
        if (b == kNoBucket) return true;
        if (used_[r][b] >= limit_[r]) return false;
        ++used_[r][b];
        return true;
    }
    void give(Res r, uint16_t b) noexcept {
        if (b != kNoBucket && used_[r][b]) --used_[r][b];
    }
    uint32_t limit(Res r) const noexcept { return limit_[r]; }

  private:
    uint32_t seed_ = 0;
    uint32_t limit_[kResCount] = {};
    std::vector<uint32_t> used_[kResCount];
};

// Per-source token buckets for the handshakes a packet from outside starts (B's signed SYN-ACK
// answering a SYN, a UDP SYN-ACK or RESET answering a datagram): a replayed SYN token with a
// forged source reflects at most `rate` signed answers per second (burst `rate`) onto that
// source, whatever the attacker sends. Same buckets as SourceShare; rate 0 = unlimited.
class SourceRate {
  public:
    void init(uint32_t rate_per_s, uint64_t tsc_hz) {
        rate_ = rate_per_s;
        tsc_per_token_ = rate_per_s ? tsc_hz / rate_per_s : 0;
        if (rate_ && !tsc_per_token_) tsc_per_token_ = 1;
        buckets_.assign(rate_ ? SourceShare::kBuckets : 0, Bucket{0, 0});
    }
    // A token for bucket b now (refilled for the time since its last use); does not take it.
    bool ready(uint16_t b, uint64_t now) noexcept {
        if (!rate_ || b == SourceShare::kNoBucket) return true;
        refill(buckets_[b], now);
        return buckets_[b].tokens > 0;
    }
    void take(uint16_t b, uint64_t now) noexcept {
        if (!rate_ || b == SourceShare::kNoBucket) return;
        Bucket &k = buckets_[b];
        refill(k, now);
        if (k.tokens) --k.tokens;
    }

  private:
    struct Bucket {
        uint64_t last;  // TSC of the last refill (0: never used, starts full)
        uint32_t tokens;
    };
    void refill(Bucket &k, uint64_t now) const noexcept {
        if (k.last == 0) {
            k.last = now, k.tokens = rate_;
            return;
        }
        const uint64_t n = (now - k.last) / tsc_per_token_;
        if (!n) return;
        k.tokens = static_cast<uint32_t>(std::min<uint64_t>(rate_, k.tokens + n));
        k.last += n * tsc_per_token_;
    }
    uint32_t rate_ = 0;
    uint64_t tsc_per_token_ = 0;
    std::vector<Bucket> buckets_;
};

}  // namespace segwire::dp::identity
