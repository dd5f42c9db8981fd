#include <gtest/gtest.h>

#include "crypto/cache.hpp"
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
    sc.insert(session_cache_key(a, b), 100, 0).key = HmacKey::from_key(a);
    EXPECT_NE(sc.find(session_cache_key(a, b), 1), nullptr);
    EXPECT_EQ(sc.find(session_cache_key(b, a), 1), nullptr);
}

}  // namespace
}  // namespace segwire::crypto
