// Fixed-capacity, set-associative cache keyed by a cryptographic digest, with per-entry expiry.
// All memory is allocated by the constructor; find/insert never allocate, throw or lock.
// Not thread-safe: one owner (a worker's slow path, or the control side) per instance.
//
// Keys are SHA-256 outputs (uniform), so the set index is taken from the key bytes mixed with a
// per-instance random seed; a peer cannot aim all its blobs at one set without knowing the seed.
// Inside a full set the entry expiring first is evicted, so a flood of new entries can evict at
// most `kWays` older ones per set and never grows memory.
//
// Secret = true (key material: SessionKeyCache): a slot's key and value bytes are wiped with
// OPENSSL_cleanse whenever its entry goes — found expired, erased, replaced, evicted, cleared, an
// expired slot met by an insert into its set — and every slot when the cache is destroyed.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <type_traits>

namespace segwire::crypto {

uint64_t cache_seed() noexcept;                // random, from the CSPRNG
void secure_wipe(void *p, size_t n) noexcept;  // OPENSSL_cleanse: zeroes, not optimised away

template <size_t KeyLen, class Value, size_t Ways = 8, bool Secret = false>
class FixedCache {
  public:
    static_assert(KeyLen >= 8);
    static_assert(!Secret || std::is_trivially_copyable_v<Value>, "a wiped value is zero bytes");
    using Key = std::array<uint8_t, KeyLen>;

    struct Stats {
        uint64_t hits = 0, misses = 0, expired = 0, inserts = 0, evictions = 0;
    };

    // Capacity is rounded up to a power-of-two number of sets times Ways.
    explicit FixedCache(size_t capacity) : seed_(cache_seed()) {
        size_t sets = 1;
        while (sets * Ways < capacity) sets <<= 1;
        sets_ = sets;
        slots_ = std::unique_ptr<Slot[], Release>(new Slot[sets_ * Ways](), Release{sets_ * Ways});
    }

    size_t capacity() const noexcept { return sets_ * Ways; }
    size_t size() const noexcept { return used_; }
    const Stats &stats() const noexcept { return stats_; }

    // The live entry for `key`, or nullptr if absent or expired at `now`.
    Value *find(const Key &key, uint32_t now) noexcept {
        Slot *set = set_for(key);
        for (size_t i = 0; i < Ways; ++i) {
            Slot &s = set[i];
            if (s.used && s.key == key) {
                if (s.expires <= now) {
                    expire(s);
                    break;
                }
                ++stats_.hits;
                return &s.value;
            }
        }
        ++stats_.misses;
        return nullptr;
    }

    // Inserts or replaces; returns the slot's value to be filled in. Never fails.
    Value &insert(const Key &key, uint32_t expires, uint32_t now) noexcept {
        Slot *set = set_for(key);
        Slot *free_slot = nullptr, *oldest = nullptr;
        for (size_t i = 0; i < Ways; ++i) {
            Slot &s = set[i];
            if (s.used && s.key == key) return fill(s, key, expires);
            if constexpr (Secret)
                if (s.used && s.expires <= now) expire(s);
            if (!s.used || s.expires <= now) {
                if (!free_slot) free_slot = &s;
            } else if (!oldest || s.expires < oldest->expires) {
                oldest = &s;
            }
        }
        Slot &victim = free_slot ? *free_slot : *oldest;
        if (!victim.used)
            ++used_;
        else if (!free_slot)
            ++stats_.evictions;
        return fill(victim, key, expires);
    }

    bool erase(const Key &key) noexcept {
        Slot *set = set_for(key);
        for (size_t i = 0; i < Ways; ++i)
            if (set[i].used && set[i].key == key) {
                set[i].used = false;
                --used_;
                wipe(set[i]);
                return true;
            }
        return false;
    }

    // Calls f(value) for every slot's value, live or not: a slot keeps its value after the entry
    // expires or is erased, until the slot is reused. For an owner that must release what the
    // values point to when it goes away.
    template <class F>
    void for_each_value(F &&f) {
        for (size_t i = 0; i < sets_ * Ways; ++i) f(slots_[i].value);
    }

    void clear() noexcept {
        for (size_t i = 0; i < sets_ * Ways; ++i) {
            slots_[i].used = false;
            wipe(slots_[i]);
        }
        used_ = 0;
    }

  private:
    struct Slot {
        Key key{};
        uint32_t expires = 0;
        bool used = false;
        Value value{};
    };

    // Frees the slots; in a Secret cache wipes them first (teardown).
    struct Release {
        size_t n = 0;
        void operator()(Slot *s) const noexcept {
            if constexpr (Secret) secure_wipe(s, n * sizeof(Slot));
            delete[] s;
        }
    };

    static void wipe(Slot &s) noexcept {
        if constexpr (Secret) {
            secure_wipe(s.key.data(), s.key.size());
            secure_wipe(&s.value, sizeof(Value));
        }
    }

    void expire(Slot &s) noexcept {
        s.used = false;
        --used_;
        ++stats_.expired;
        wipe(s);
    }

    // The returned value is the caller's to fill: in a Secret cache it no longer holds the bytes
    // of the entry it replaces or evicts.
    Value &fill(Slot &s, const Key &key, uint32_t expires) noexcept {
        wipe(s);
        s.used = true;
        s.key = key;
        s.expires = expires;
        ++stats_.inserts;
        return s.value;
    }

    Slot *set_for(const Key &key) noexcept {
        uint64_t h;
        std::memcpy(&h, key.data(), 8);
        h ^= seed_;
        h *= 0x9e3779b97f4a7c15ULL;
        h ^= h >> 29;
        return &slots_[(h & (sets_ - 1)) * Ways];
    }

    uint64_t seed_;
    size_t sets_ = 0;
    size_t used_ = 0;
    std::unique_ptr<Slot[], Release> slots_;
    Stats stats_;
};

}  // namespace segwire::crypto
