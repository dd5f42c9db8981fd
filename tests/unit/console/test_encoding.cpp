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

// The worked example of AWS's SigV4 documentation (S3 GET Object, examplebucket): proves the
// canonical request, string to sign and key derivation the AWS realm relies on.
TEST(SigV4, MatchesTheAwsDocumentationExample) {
    AwsCredentials c{"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", ""};
    std::map<std::string, std::string> h = {
        {"Host", "examplebucket.s3.amazonaws.com"},
        {"Range", "bytes=0-9"},
        {"x-amz-content-sha256",
         "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"x-amz-date", "20130524T000000Z"},
    };
    std::string auth = sigv4_authorization("GET", "/test.txt", "", h, "", c, "us-east-1", "s3",
                                           "20130524T000000Z");
    EXPECT_EQ(auth,
              "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/"
              "aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
              "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

}  // namespace
}  // namespace segwire::console
