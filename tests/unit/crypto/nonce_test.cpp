#include <gtest/gtest.h>

#include <set>

#include "crypto/nonce.hpp"

namespace segwire::crypto {
namespace {

TEST(Nonce, DistinctAndRefilledInBulk) {
    NonceSource ns(256);
    std::set<std::array<uint8_t, 16>> seen;
    for (int i = 0; i < 1000; ++i) {
        std::array<uint8_t, 16> n{};
        ASSERT_TRUE(ns.next(n));
        EXPECT_TRUE(seen.insert(n).second) << "repeated nonce at " << i;
    }
    // 16000 bytes from a 256-byte buffer: about 63 bulk draws, not 1000.
    EXPECT_GE(ns.refills(), 62u);
    EXPECT_LE(ns.refills(), 64u);
}

TEST(Nonce, FillsRequestsLargerThanTheBuffer) {
    NonceSource ns(64);
    std::vector<uint8_t> big(1000, 0);
    ASSERT_TRUE(ns.fill(big));
    size_t zeros = 0;
    for (uint8_t b : big) zeros += b == 0;
    EXPECT_LT(zeros, 20u);  // ~4 expected
}

}  // namespace
}  // namespace segwire::crypto
