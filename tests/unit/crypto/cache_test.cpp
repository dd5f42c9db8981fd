#include <gtest/gtest.h>

#include <algorithm>

#include "crypto/cache.hpp"
#include "crypto/keys.hpp"
#include "crypto/verifier.hpp"

namespace segwire::crypto {
namespace {

using Cache = FixedCache<32, int, 4>;

Cache::Key key(uint32_t i) {
    Cache::Key k{};
    // Spread like a digest would.
    Digest d = sha256(std::span(reinterpret_cast<const uint8_t *>(&i), 4));
    std::copy(d.begin(), d.end(), k.begin());
    return k;
}

TEST(FixedCache, FindInsertExpire) {
    Cache c(64);
    EXPECT_EQ(c.capacity(), 64u);
    EXPECT_EQ(c.find(key(1), 100), nullptr);
    c.insert(key(1), 200, 100) = 11;
    ASSERT_NE(c.find(key(1), 150), nullptr);
    EXPECT_EQ(*c.find(key(1), 150), 11);
    EXPECT_EQ(c.find(key(1), 200), nullptr) << "expired exactly at expires";
    EXPECT_EQ(c.size(), 0u);
    c.insert(key(2), 300, 100) = 22;
    c.insert(key(2), 400, 100) = 23;  // replace, not duplicate
    EXPECT_EQ(c.size(), 1u);
    EXPECT_EQ(*c.find(key(2), 350), 23);
    EXPECT_TRUE(c.erase(key(2)));
    EXPECT_FALSE(c.erase(key(2)));
    EXPECT_EQ(c.size(), 0u);
}

TEST(FixedCache, NeverGrowsBeyondCapacityAndEvictsSoonestExpiring) {
    Cache c(64);
    for (uint32_t i = 0; i < 10'000; ++i) c.insert(key(i), 1000 + i, 0) = static_cast<int>(i);
    EXPECT_EQ(c.size(), c.capacity());
    EXPECT_GT(c.stats().evictions, 9'000u);
    // The most recent (latest-expiring) entries survive; the earliest are gone.
    size_t recent = 0;
    for (uint32_t i = 9'900; i < 10'000; ++i) recent += c.find(key(i), 1) != nullptr;
    EXPECT_GT(recent, 50u);
    EXPECT_EQ(c.find(key(0), 1), nullptr);
}

TEST(FixedCache, ExpiredSlotsAreReusedBeforeEvictingLiveOnes) {
    Cache c(4);  // one set of 4 ways
    for (uint32_t i = 0; i < 4; ++i) c.insert(key(i), 10, 0);
    c.insert(key(100), 1000, 20);  // all four expired at t=20
    EXPECT_EQ(c.stats().evictions, 0u);
    EXPECT_NE(c.find(key(100), 21), nullptr);
}

TEST(FixedCache, SessionKeyCacheKeyIsOrdered) {
    Digest a{}, b{};
    a[0] = 1;
    b[0] = 2;
    EXPECT_NE(session_cache_key(a, b), session_cache_key(b, a));
    SessionKeyCache sc(1024);
    sc.insert(session_cache_key(a, b), 100, 0).key.set(a);
    EXPECT_NE(sc.find(session_cache_key(a, b), 1), nullptr);
    EXPECT_EQ(sc.find(session_cache_key(b, a), 1), nullptr);
}

SessionKey skey(uint8_t i) {
    X25519Public a{}, b{};
    a[0] = i;
    b[0] = static_cast<uint8_t>(i + 100);
    return session_cache_key(a, b);
}

void set_secret_key(HmacKey &k, uint8_t i) {
    std::array<uint8_t, 32> raw;
    raw.fill(i);
    k.set(raw);
}

bool wiped(const SessionKeyEntry &e) {
    const auto *b = reinterpret_cast<const uint8_t *>(&e);
    return std::all_of(b, b + sizeof(e), [](uint8_t x) { return x == 0; });
}

// The worker inserts a derived key with the lifetime the control thread puts in IdentityRuntime
// (SignerOptions::session_key_lifetime() of handshake.key_rotation_s): the key is found until
// rotation + grace and not at it, and its slot is zeroed when the entry is found expired. (The
// signer itself refuses the local key at the same moment: SignerTest.SessionKeyFromBothSides...)
TEST(SessionKeyCache, ExpiresAtRotationPlusGraceAndIsWiped) {
    SignerOptions so{300, 900, 60};  // the appliance's defaults (key_rotation_s 300)
    EXPECT_EQ(so.grace_period(), 300u);
    const uint32_t life = so.session_key_lifetime();
    EXPECT_EQ(life, 600u);
    const uint32_t t0 = 1'800'000'000;
    SessionKeyCache sc(4);
    set_secret_key(sc.insert(skey(1), t0 + life, t0).key, 1);
    SessionKeyEntry *e = sc.find(skey(1), t0 + life - 1);
    ASSERT_NE(e, nullptr);
    ASSERT_FALSE(wiped(*e));
    EXPECT_EQ(sc.find(skey(1), t0 + life), nullptr) << "expired at rotation + grace";
    EXPECT_TRUE(wiped(*e)) << "the expired entry's key bytes are zeroed";
    EXPECT_EQ(sc.size(), 0u);
}

TEST(SessionKeyCache, EvictedReplacedErasedAndClearedSlotsAreZeroed) {
    SessionKeyCache sc(4);  // one set of 4 ways
    ASSERT_EQ(sc.capacity(), 4u);
    SessionKeyEntry *slot[4];
    for (uint8_t i = 0; i < 4; ++i) {
        SessionKeyEntry &e = sc.insert(skey(i), 100 + i, 0);
        set_secret_key(e.key, static_cast<uint8_t>(i + 1));
        slot[i] = &e;
    }
    // A full set: the fifth key evicts the soonest-expiring entry (0). The slot handed back for
    // the new key no longer holds the evicted key's bytes.
    SessionKeyEntry &fresh = sc.insert(skey(9), 1000, 1);
    EXPECT_EQ(sc.stats().evictions, 1u);
    ASSERT_EQ(&fresh, slot[0]);
    EXPECT_TRUE(wiped(fresh)) << "evicted key wiped";
    set_secret_key(fresh.key, 9);
    // Replacing an entry (same key) hands back a zeroed value too.
    SessionKeyEntry &again = sc.insert(skey(1), 2000, 1);
    ASSERT_EQ(&again, slot[1]);
    EXPECT_TRUE(wiped(again)) << "replaced key wiped";
    set_secret_key(again.key, 1);
    EXPECT_TRUE(sc.erase(skey(2)));
    EXPECT_TRUE(wiped(*slot[2])) << "erased key wiped";
    // An insert into the set wipes expired entries it meets, even when it does not take their slot.
    SessionKeyEntry &other = sc.insert(skey(2), 3000, 104);  // 3 expired at 103
    EXPECT_NE(&other, slot[3]);
    EXPECT_TRUE(wiped(*slot[3])) << "expired key met by an insert wiped";
    sc.clear();
    for (SessionKeyEntry *e : slot) EXPECT_TRUE(wiped(*e)) << "cleared";
}

}  // namespace
}  // namespace segwire::crypto
