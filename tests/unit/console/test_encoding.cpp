// Encodings the Console speaks: base64 (app credentials), base64url (JWT), RFC 3339 times, SigV4.
#include <gtest/gtest.h>

#include "tools/console/aws.hpp"
#include "tools/console/util.hpp"

namespace segwire::console {
namespace {

TEST(Base64, RoundTripsEveryLength) {
    std::string data;
    for (int n = 0; n < 40; ++n) {
        std::string out;
        ASSERT_TRUE(base64_decode(base64_encode(data), &out)) << n;
        EXPECT_EQ(out, data);
        ASSERT_TRUE(base64url_decode(base64url_encode(data), &out)) << n;
        EXPECT_EQ(out, data);
        data.push_back(static_cast<char>(0xF0 + n));
    }
}

TEST(Base64, KnownValuesAndAlphabets) {
    EXPECT_EQ(base64_encode("foob"), "Zm9vYg==");
    EXPECT_EQ(base64url_encode("\xfb\xff"), "-_8");
    std::string out;
    EXPECT_FALSE(base64url_decode("+/8", &out));  // standard alphabet is not base64url
    EXPECT_FALSE(base64url_decode("A", &out));    // impossible length
    EXPECT_FALSE(base64_decode("Zm9vY", &out));
}

TEST(Time, ParsesRfc3339AndUnixSeconds) {
    int64_t t = 0;
    ASSERT_TRUE(parse_time("2026-11-22T08:00:00Z", &t));
    EXPECT_EQ(t, 1795334400);
    ASSERT_TRUE(parse_time("2026-11-22T09:30:00.123+01:30", &t));
    EXPECT_EQ(t, 1795334400);
    ASSERT_TRUE(parse_time("1795334400", &t));
    EXPECT_EQ(t, 1795334400);
    EXPECT_EQ(rfc3339(1795334400), "2026-11-22T08:00:00Z");
    EXPECT_FALSE(parse_time("2026-11-22 08:00:00", &t));
    EXPECT_FALSE(parse_time("2026-13-22T08:00:00Z", &t));
    EXPECT_FALSE(parse_time("2026-11-22T08:00:00", &t));  // no zone: ambiguous
    EXPECT_FALSE(parse_time("", &t));
}

}  // namespace
}  // namespace segwire::console
