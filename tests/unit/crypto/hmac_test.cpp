#define OPENSSL_SUPPRESS_DEPRECATED 1
#define NO_COMPAT_IMB_API_053 1
#include <cpuid.h>
#include <gtest/gtest.h>
#include <intel-ipsec-mb.h>
#include <openssl/sha.h>

#include <random>

#include "crypto/hmac.hpp"
#include "tests/unit/crypto/test_util.hpp"

namespace segwire::crypto {
namespace {

using test::hex;
using test::unhex;

struct Rfc4231Case {
    const char *key, *data, *mac;
    size_t tag_len;
};

// RFC 4231 §4.2-4.8 (HMAC-SHA-256 results). Case 5 is the 128-bit truncation case.
const Rfc4231Case kRfc4231[] = {
    {"0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "4869205468657265",
     "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7", 32},
    {"4a656665", "7768617420646f2079612077616e7420666f72206e6f7468696e673f",
     "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843", 32},
    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
     "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"
     "dddddddddddd",
     "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe", 32},
    {"0102030405060708090a0b0c0d0e0f10111213141516171819",
     "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd"
     "cdcdcdcdcdcd",
     "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b", 32},
    {"0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c", "546573742057697468205472756e636174696f6e",
     "a3b6167473100ee06e0c796c2955552b", 16},
    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
     "54657374205573696e67204c6172676572205468616e20426c6f636b2d53697a65204b6579202d2048617368"
     "204b6579204669727374",
     "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54", 32},
    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
     "5468697320697320612074657374207573696e672061206c6172676572207468616e20626c6f636b2d73697a"
     "65206b657920616e642061206c6172676572207468616e20626c6f636b2d73697a6520646174612e20546865"
     "206b6579206e6565647320746f20626520686173686564206265666f7265206265696e672075736564206279"
     "2074686520484d414320616c676f726974686d2e",
     "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2", 32},
};

class HmacBackends : public ::testing::TestWithParam<HmacBackend> {};

TEST_P(HmacBackends, Rfc4231VectorsInOneBurst) {
    HmacBatch batch(GetParam());
    batch.set_min_burst(1);  // 7 jobs: force them through the library, not the small-burst path
    if (GetParam() != HmacBackend::Auto && GetParam() != HmacBackend::OpenSsl &&
        batch.backend() != GetParam())
        GTEST_SKIP() << batch.backend_note();
    constexpr size_t n = std::size(kRfc4231);
    std::vector<std::vector<uint8_t>> keys, msgs;
    std::vector<HmacKey> hk(n);
    std::vector<HmacJob> jobs(n);
    uint8_t out[n][32] = {};
    for (size_t i = 0; i < n; ++i) {
        keys.push_back(unhex(kRfc4231[i].key));
        msgs.push_back(unhex(kRfc4231[i].data));
    }
    for (size_t i = 0; i < n; ++i) {
        hk[i].set(keys[i]);
        jobs[i] = HmacJob{&hk[i], msgs[i].data(), static_cast<uint32_t>(msgs[i].size()), out[i],
                          static_cast<uint8_t>(kRfc4231[i].tag_len)};
    }
    ASSERT_TRUE(batch.compute(jobs));
    for (size_t i = 0; i < n; ++i) {
        EXPECT_EQ(hex(std::span(out[i], kRfc4231[i].tag_len)), kRfc4231[i].mac) << "case " << i + 1;
        auto ref = hmac_sha256(keys[i], msgs[i]);
        EXPECT_EQ(hex(std::span(ref.data(), kRfc4231[i].tag_len)), kRfc4231[i].mac);
    }
}

TEST_P(HmacBackends, MatchesOpenSslOnRandomInputsAcrossBurstBoundaries) {
    HmacBatch batch(GetParam());
    std::mt19937_64 rng(42);
    constexpr size_t n = 300;  // > 2 bursts of 128
    std::vector<std::vector<uint8_t>> keys(n), msgs(n);
    std::vector<HmacKey> hk(n);
    std::vector<HmacJob> jobs(n);
    std::vector<std::array<uint8_t, 32>> out(n);
    for (size_t i = 0; i < n; ++i) {
        keys[i].resize(rng() % 100);  // includes keys longer than a block
        msgs[i].resize(i % 7 == 0 ? 0 : rng() % 600);
        for (auto &b : keys[i]) b = static_cast<uint8_t>(rng());
        for (auto &b : msgs[i]) b = static_cast<uint8_t>(rng());
        hk[i].set(keys[i]);
        uint8_t tl = static_cast<uint8_t>(i % 3 == 0 ? 16 : i % 3 == 1 ? 32 : 1 + rng() % 32);
        jobs[i] = HmacJob{&hk[i], msgs[i].data(), static_cast<uint32_t>(msgs[i].size()),
                          out[i].data(), tl};
    }
    ASSERT_TRUE(batch.compute(jobs));
    for (size_t i = 0; i < n; ++i) {
        auto ref = hmac_sha256(keys[i], msgs[i]);
        ASSERT_EQ(hex(std::span(out[i].data(), jobs[i].tag_len)),
                  hex(std::span(ref.data(), jobs[i].tag_len)))
            << "job " << i << " msg_len " << msgs[i].size() << " tag_len " << int(jobs[i].tag_len);
        // Bytes beyond the tag must be untouched (truncation writes only tag_len bytes).
        for (size_t b = jobs[i].tag_len; b < 32; ++b) ASSERT_EQ(out[i][b], 0);
    }
}

TEST_P(HmacBackends, RejectsMalformedJobs) {
    HmacBatch batch(GetParam());
    const HmacKey k(std::span<const uint8_t>{});
    uint8_t out[32];
    uint8_t msg[4] = {1, 2, 3, 4};
    HmacJob bad_len{&k, msg, 4, out, 0};
    HmacJob long_tag{&k, msg, 4, out, 33};
    HmacJob no_key{nullptr, msg, 4, out, 16};
    HmacJob no_out{&k, msg, 4, nullptr, 16};
    HmacJob no_msg{&k, nullptr, 4, out, 16};
    for (const HmacJob &j : {bad_len, long_tag, no_key, no_out, no_msg})
        EXPECT_FALSE(batch.compute({&j, 1}));
}

INSTANTIATE_TEST_SUITE_P(All, HmacBackends,
                         ::testing::Values(HmacBackend::Auto, HmacBackend::IpsecMb,
                                           HmacBackend::OpenSsl, HmacBackend::IpsecMbMultiBuffer),
                         [](const auto &info) {
                             return std::string(info.param == HmacBackend::Auto      ? "Auto"
                                                : info.param == HmacBackend::IpsecMb ? "IpsecMb"
                                                : info.param == HmacBackend::OpenSsl
                                                    ? "OpenSsl"
                                                    : "IpsecMbMultiBuffer");
                         });

TEST(Hmac, BothBackendsAgreeBitForBit) {
    HmacBatch a(HmacBackend::IpsecMb), b(HmacBackend::OpenSsl);
    a.set_min_burst(1);
    EXPECT_EQ(b.backend(), HmacBackend::OpenSsl);
    // The library's SHA-NI code and its multi-buffer lanes are different code: both are checked.
    HmacBatch c(HmacBackend::IpsecMbMultiBuffer);
    c.set_min_burst(1);
    std::mt19937 rng(7);
    for (size_t len : {1u, 55u, 56u, 63u, 64u, 65u, 144u, 256u, 1500u}) {
        std::vector<uint8_t> key(32), msg(len);
        for (auto &x : key) x = static_cast<uint8_t>(rng());
        for (auto &x : msg) x = static_cast<uint8_t>(rng());
        const HmacKey k(key);
        uint8_t ta[16], tb[16];
        HmacJob ja{&k, msg.data(), static_cast<uint32_t>(len), ta, 16};
        HmacJob jb = ja;
        jb.out = tb;
        ASSERT_TRUE(a.compute({&ja, 1}));
        ASSERT_TRUE(b.compute({&jb, 1}));
        EXPECT_TRUE(tag_equal(ta, tb, 16)) << "len " << len;
        // A full burst of 16 through the multi-buffer lanes (one lane alone is a special case).
        uint8_t tc[16][16];
        HmacJob jc[16];
        for (int i = 0; i < 16; ++i)
            jc[i] = HmacJob{&k, msg.data(), static_cast<uint32_t>(len), tc[i], 16};
        ASSERT_TRUE(c.compute(jc));
        for (int i = 0; i < 16; ++i)
            EXPECT_TRUE(tag_equal(tc[i], tb, 16)) << "len " << len << " lane " << i;
    }
}

// The key pre-expansion relies on intel-ipsec-mb's one-block midstate having OpenSSL's layout.
TEST(Hmac, IpsecMbMidstateLayoutMatchesOpenSsl) {
    IMB_MGR *m = alloc_mb_mgr(0);
    ASSERT_NE(m, nullptr);
    IMB_ARCH arch;
    init_mb_mgr_auto(m, &arch);
    if (imb_get_errno(m) != 0) {
        free_mb_mgr(m);
        GTEST_SKIP() << "intel-ipsec-mb not usable here";
    }
    uint8_t block[64];
    for (int i = 0; i < 64; ++i) block[i] = static_cast<uint8_t>(i * 7 + 3);
    alignas(16) uint8_t imb[32];
    IMB_SHA256_ONE_BLOCK(m, block, imb);
    SHA256_CTX c;
    SHA256_Init(&c);
    SHA256_Update(&c, block, 64);
    EXPECT_EQ(0, std::memcmp(imb, c.h, 32));
    free_mb_mgr(m);
}

TEST(Hmac, SmallBurstsTakeThePortablePathWithSameResults) {
    HmacBatch a(HmacBackend::IpsecMb);
    if (a.backend() != HmacBackend::IpsecMb) GTEST_SKIP() << a.backend_note();
    EXPECT_GE(a.min_burst(), 1u);
    std::vector<HmacKey> k(40);
    std::vector<std::array<uint8_t, 16>> out1(40), out2(40);
    std::vector<HmacJob> j1(40), j2(40);
    std::vector<uint8_t> msg(144, 7);
    for (size_t i = 0; i < 40; ++i) {
        std::array<uint8_t, 32> key{};
        key[1] = static_cast<uint8_t>(i);
        k[i].set(key);
        j1[i] = HmacJob{&k[i], msg.data(), 144, out1[i].data(), 16};
        j2[i] = j1[i];
        j2[i].out = out2[i].data();
    }
    a.set_min_burst(1);
    ASSERT_TRUE(a.compute(std::span(j1).first(3)));  // through the library
    a.set_min_burst(16);
    ASSERT_TRUE(a.compute(std::span(j2).first(3)));    // portable
    ASSERT_TRUE(a.compute(std::span(j2).subspan(3)));  // 37: library
    ASSERT_TRUE(a.compute(std::span(j1).subspan(3)));
    for (size_t i = 0; i < 40; ++i) EXPECT_EQ(out1[i], out2[i]) << i;
}

TEST(Hmac, TagEqualIsExact) {
    uint8_t a[16] = {}, b[16] = {};
    EXPECT_TRUE(tag_equal(a, b, 16));
    for (int i = 0; i < 16; ++i) {
        b[i] ^= 0x80;
        EXPECT_FALSE(tag_equal(a, b, 16)) << "byte " << i;
        b[i] ^= 0x80;
    }
}

TEST(Hmac, AutoPrefersIpsecMbWhenUsable) {
    HmacBatch b(HmacBackend::Auto);
    EXPECT_NE(b.backend(), HmacBackend::Auto);
    if (b.backend() == HmacBackend::OpenSsl) {
        EXPECT_FALSE(b.backend_note().empty());
    }
}

// Auto takes the library's SHA-NI code where the CPU has SHA-NI (even when it also has AVX-512),
// and the multi-buffer back-end never does.
TEST(Hmac, EngineFollowsTheCpuAndTheRequest) {
    unsigned a = 0, b = 0, c = 0, d = 0;
    const bool shani = __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & (1u << 29));
    HmacBatch au(HmacBackend::Auto), mb(HmacBackend::IpsecMbMultiBuffer);
    if (au.backend() != HmacBackend::IpsecMb) GTEST_SKIP() << au.backend_note();
    EXPECT_EQ(std::string(au.engine()) == "sha-ni", shani) << au.engine();
    EXPECT_EQ(au.min_burst(), shani ? 2u : 4u);
    EXPECT_EQ(mb.backend(), HmacBackend::IpsecMbMultiBuffer) << mb.backend_note();
    EXPECT_NE(std::string(mb.engine()), "sha-ni");
    EXPECT_NE(std::string(mb.engine()), "openssl");
}

}  // namespace
}  // namespace segwire::crypto
