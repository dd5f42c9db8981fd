#include <gtest/gtest.h>

#include "crypto/claims.hpp"
#include "crypto/verifier.hpp"
#include "tests/unit/crypto/test_util.hpp"

namespace segwire::crypto {
namespace {

using test::make_ca;
using test::make_enforcer;
using test::now32;
using test::sample_claims;

class ClaimsTest : public ::testing::Test {
  protected:
    void SetUp() override {
        ca_ = make_ca();
        a_ = make_enforcer(ca_, "enforcer-a");
        TrustStore ts;
        ASSERT_TRUE(ts.add_ca(ca_.cert.get()).ok());
        certs_ = std::make_unique<PeerCertStore>(std::move(ts));
        ASSERT_TRUE(certs_->add(a_.cert.get(), now32()).ok());
    }
    std::vector<uint8_t> signed_blob(const Claims &c) {
        auto b = sign_claims(c, a_.key.get());
        EXPECT_TRUE(b.ok()) << (b.ok() ? "" : b.error().what());
        return b.ok() ? *b : std::vector<uint8_t>{};
    }
    ClaimsReason decode(std::span<const uint8_t> b) {
        ClaimsView v;
        return decode_claims(b, v);
    }
    CertAuthority ca_;
    test::Enforcer a_;
    std::unique_ptr<PeerCertStore> certs_;
};

TEST_F(ClaimsTest, RoundTripKeepsEveryField) {
    Claims c = sample_claims(a_, now32());
    auto blob = signed_blob(c);
    ASSERT_EQ(blob.size(), *encoded_claims_size(c));
    ClaimsView v;
    ASSERT_EQ(decode_claims(blob, v), ClaimsReason::Ok);
    EXPECT_EQ(to_claims(v), c);
    EXPECT_EQ(v.signature.size(), 64u);
    EXPECT_EQ(verify_claims_signature(v, a_.key.get()), ClaimsReason::Ok);
    // Typical claims are far below the bound.
    EXPECT_LT(blob.size(), 300u);
}

// The signer's group comes from its verified certificate, not the blob: a member's claims carry
// it, a non-member's carry none (SlowPath::bind then refuses them for a group's PU).
TEST_F(ClaimsTest, VerifiedClaimsCarryTheSigningCertificatesGroup) {
    IssueOptions opt;
    opt.enforcer_group = "edge";
    test::Enforcer m = make_enforcer(ca_, "gw-1", opt);
    ASSERT_TRUE(certs_->add(m.cert.get(), now32()).ok());
    const uint32_t now = now32();
    auto blob = sign_claims(sample_claims(m, now), m.key.get());
    ASSERT_TRUE(blob.ok());
    ClaimsVerifier ver(*certs_);
    VerifiedClaims vc;
    ASSERT_EQ(ver.verify(*blob, now, vc), ClaimsReason::Ok);
    EXPECT_EQ(vc.enforcer_id(), "gw-1");
    EXPECT_EQ(vc.enforcer_group(), "edge");
    EXPECT_TRUE(hosts_pu("group:edge", vc.enforcer_id(), vc.enforcer_group()));
    auto other = signed_blob(sample_claims(a_, now));
    ASSERT_EQ(ver.verify(other, now, vc), ClaimsReason::Ok);
    EXPECT_EQ(vc.enforcer_group(), "");
    EXPECT_FALSE(hosts_pu("group:edge", vc.enforcer_id(), vc.enforcer_group()));
}

TEST_F(ClaimsTest, VerifierAcceptsAndFillsVerifiedClaims) {
    uint32_t now = now32();
    auto blob = signed_blob(sample_claims(a_, now));
    ClaimsVerifier ver(*certs_);
    VerifiedClaims vc;
    std::string detail;
    ASSERT_EQ(ver.verify(blob, now, vc, &detail), ClaimsReason::Ok) << detail;
    EXPECT_EQ(vc.pu_id(), "5f3a9c0e1b2d4a6f8e7c9b0a");
    EXPECT_EQ(vc.enforcer_id(), "enforcer-a");
    ASSERT_EQ(vc.tag_count(), 4u);
    EXPECT_EQ(vc.tag(2), "$namespace=/acme/prod");
    EXPECT_EQ(vc.hash(), sha256(blob));
    EXPECT_EQ(vc.expires_at(), now + 600);
    EXPECT_EQ(vc.ephemeral_pub()[0], 1);
    // VerifiedClaims is self-contained: a copy survives the original blob.
    VerifiedClaims copy = vc;
    blob.assign(blob.size(), 0);
    EXPECT_EQ(copy.tag(0), "app=web");
}

TEST_F(ClaimsTest, ExpiredNotYetValidAndTimeBounds) {
    uint32_t now = now32();
    auto blob = signed_blob(sample_claims(a_, now));
    ClaimsVerifier ver(*certs_, VerifyOptions{30});
    VerifiedClaims vc;
    EXPECT_EQ(ver.verify(blob, now + 601, vc), ClaimsReason::Expired);
    EXPECT_EQ(ver.verify(blob, now - 100, vc), ClaimsReason::NotYetValid);
    EXPECT_EQ(ver.verify(blob, now - 20, vc), ClaimsReason::Ok) << "within clock skew";

    Claims c = sample_claims(a_, now);
    c.expires_at = c.issued_at;
    EXPECT_FALSE(sign_claims(c, a_.key.get()).ok());
    c.expires_at = c.issued_at + kMaxClaimsLifetime + 1;
    EXPECT_FALSE(sign_claims(c, a_.key.get()).ok());
}

TEST_F(ClaimsTest, UnknownCaWrongKeyAndEnforcerMismatch) {
    uint32_t now = now32();
    ClaimsVerifier ver(*certs_);
    VerifiedClaims vc;
    std::string detail;

    // Enforcer with a certificate from a CA we do not trust: its certificate cannot be admitted,
    // so its claims name an unknown certificate.
    CertAuthority rogue = make_ca("rogue");
    auto r = make_enforcer(rogue, "enforcer-r");
    EXPECT_FALSE(certs_->add(r.cert.get(), now).ok());
    auto rb = sign_claims(sample_claims(r, now), r.key.get());
    EXPECT_EQ(ver.verify(*rb, now, vc, &detail), ClaimsReason::UnknownCertificate) << detail;

    // Claims naming A's certificate but signed with another key.
    auto other = generate_p256_key();
    auto forged = sign_claims(sample_claims(a_, now), other->get());
    EXPECT_EQ(ver.verify(*forged, now, vc, &detail), ClaimsReason::BadSignature) << detail;

    // Claims naming A's certificate but another enforcer ID.
    Claims c = sample_claims(a_, now);
    c.enforcer_id = "enforcer-b";
    EXPECT_EQ(ver.verify(signed_blob(c), now, vc, &detail), ClaimsReason::EnforcerMismatch);
    EXPECT_NE(detail.find("enforcer-a"), std::string::npos) << detail;
}

TEST_F(ClaimsTest, ExpiredSigningCertificate) {
    uint32_t now = now32();
    IssueOptions o;
    o.not_before_unix = now - 3600;
    o.validity = std::chrono::seconds(3600 + 120);
    auto e = make_enforcer(ca_, "short-lived", o);
    ASSERT_TRUE(certs_->add(e.cert.get(), now).ok());
    auto blob = sign_claims(sample_claims(e, now), e.key.get());
    ClaimsVerifier ver(*certs_);
    VerifiedClaims vc;
    ASSERT_EQ(ver.verify(*blob, now, vc), ClaimsReason::Ok);
    EXPECT_LE(vc.expires_at(), now + 120) << "cache lifetime is capped by the certificate";
    EXPECT_EQ(ver.verify(*blob, now + 300, vc), ClaimsReason::CertificateExpired);
}

TEST_F(ClaimsTest, RevokedCertificateIsDroppedAndRefused) {
    uint32_t now = now32();
    auto blob = signed_blob(sample_claims(a_, now));
    ClaimsVerifier ver(*certs_);
    VerifiedClaims vc;
    ASSERT_EQ(ver.verify(blob, now, vc), ClaimsReason::Ok);
    Digest ref;
    std::memcpy(ref.data(), vc.cert_ref(), 32);
    EXPECT_EQ(ref, *cert_ref(a_.cert.get())) << "cert_ref() reads the claims' reference";
    EXPECT_EQ(certs_->set_revoked({ref}), 1u);
    std::string detail;
    EXPECT_EQ(ver.verify(blob, now, vc, &detail), ClaimsReason::CertificateRevoked) << detail;
    PeerCertStore::Entry e;
    EXPECT_FALSE(certs_->find(ref, e)) << "dropped from the store";
    EXPECT_FALSE(certs_->add(a_.cert.get(), now).ok()) << "and never re-admitted";
    // A later list without it (the Console no longer lists it): admitted again.
    EXPECT_EQ(certs_->set_revoked({}), 0u);
    ASSERT_TRUE(certs_->add(a_.cert.get(), now).ok());
    EXPECT_EQ(ver.verify(blob, now, vc), ClaimsReason::Ok);
}

TEST_F(ClaimsTest, AnyFlippedBitIsRejected) {
    uint32_t now = now32();
    auto blob = signed_blob(sample_claims(a_, now));
    ClaimsVerifier ver(*certs_);
    VerifiedClaims vc;
    for (size_t i = 0; i < blob.size(); ++i) {
        auto b = blob;
        b[i] ^= 0x01;
        EXPECT_NE(ver.verify(b, now, vc), ClaimsReason::Ok) << "byte " << i;
    }
}

TEST_F(ClaimsTest, EveryStructuralRejection) {
    uint32_t now = now32();
    Claims c = sample_claims(a_, now);
    auto good = signed_blob(c);
    auto mutate = [&](auto f) {
        auto b = good;
        f(b);
        return decode(b);
    };
    EXPECT_EQ(decode(std::span(good).first(10)), ClaimsReason::Truncated);
    EXPECT_EQ(decode({}), ClaimsReason::Truncated);
    std::vector<uint8_t> big(kClaimsMaxLen + 1, 0);
    EXPECT_EQ(decode(big), ClaimsReason::TooLarge);
    EXPECT_EQ(mutate([](auto &b) { b[0] = 2; }), ClaimsReason::BadVersion);
    EXPECT_EQ(mutate([](auto &b) { b[1] = 9; }), ClaimsReason::BadSigAlg);
    EXPECT_EQ(mutate([](auto &b) { b[3] ^= 1; }), ClaimsReason::LengthMismatch);
    EXPECT_EQ(mutate([](auto &b) { b.push_back(0); }), ClaimsReason::LengthMismatch);
    // expires_at (offset 8) before issued_at.
    EXPECT_EQ(mutate([](auto &b) { store_be32(&b[8], load_be32(&b[4]) - 1); }),
              ClaimsReason::BadTimes);
    EXPECT_EQ(mutate([](auto &b) { store_be32(&b[8], load_be32(&b[4]) + kMaxClaimsLifetime + 1); }),
              ClaimsReason::BadTimes);
    const size_t pu = kClaimsFixedLen;  // PU ID length byte
    EXPECT_EQ(mutate([&](auto &b) { b[pu] = 0; }), ClaimsReason::BadIdLength);
    EXPECT_EQ(mutate([&](auto &b) { b[pu] = 65; }), ClaimsReason::BadIdLength);
    EXPECT_EQ(mutate([&](auto &b) { b[pu] = 200; }), ClaimsReason::BadIdLength);
    EXPECT_EQ(mutate([&](auto &b) { b[pu + 1] = ' '; }), ClaimsReason::BadIdChars);
    EXPECT_EQ(mutate([&](auto &b) { b[pu + 1] = 0x80; }), ClaimsReason::BadIdChars);
    const size_t en = pu + 1 + c.pu_id.size();
    EXPECT_EQ(mutate([&](auto &b) { b[en] = 0; }), ClaimsReason::BadIdLength);
    const size_t nt = en + 1 + c.enforcer_id.size();
    EXPECT_EQ(mutate([&](auto &b) { b[nt] = 33; }), ClaimsReason::TooManyTags);
    EXPECT_EQ(mutate([&](auto &b) { b[nt] = 5; }), ClaimsReason::Truncated);
    EXPECT_EQ(mutate([&](auto &b) { b[nt] = 3; }), ClaimsReason::LengthMismatch);
    EXPECT_EQ(mutate([&](auto &b) { b[nt + 1] = 0; }), ClaimsReason::BadTagLength);
    EXPECT_EQ(mutate([&](auto &b) { b[nt + 1] = 129; }), ClaimsReason::BadTagLength);
    EXPECT_EQ(mutate([&](auto &b) { b[nt + 1] = 60; }), ClaimsReason::Truncated);
    // "app=web" swallowing the next length byte (0x08): a control character.
    EXPECT_EQ(mutate([&](auto &b) { b[nt + 1] = 8; }), ClaimsReason::BadTagSyntax);
    EXPECT_EQ(mutate([&](auto &b) { b[nt + 2] = '='; }), ClaimsReason::BadTagSyntax);  // "=pp=web"
    EXPECT_EQ(mutate([&](auto &b) { b[nt + 2] = '\n'; }), ClaimsReason::BadTagSyntax);
    EXPECT_EQ(mutate([&](auto &b) { b[nt + 5] = 'x'; }),
              ClaimsReason::BadTagSyntax);  // "app" + 'x'
    const char *detail = nullptr;
    ClaimsView v;
    EXPECT_EQ(decode_claims(std::span(good).first(good.size() - 1), v, &detail),
              ClaimsReason::LengthMismatch);
    ASSERT_NE(detail, nullptr);
    EXPECT_STRNE(detail, "ok");
    for (int r = 0; r <= static_cast<int>(ClaimsReason::CertificateRevoked); ++r)
        EXPECT_STRNE(to_string(static_cast<ClaimsReason>(r)), "?");
}

TEST_F(ClaimsTest, EncoderEnforcesTheSameBounds) {
    Claims c = sample_claims(a_, now32());
    auto bad = [&](auto f) {
        Claims x = c;
        f(x);
        return !encoded_claims_size(x).ok() && !sign_claims(x, a_.key.get()).ok();
    };
    EXPECT_TRUE(bad([](Claims &x) { x.pu_id.clear(); }));
    EXPECT_TRUE(bad([](Claims &x) { x.pu_id = std::string(65, 'a'); }));
    EXPECT_TRUE(bad([](Claims &x) { x.enforcer_id = "has space"; }));
    EXPECT_TRUE(bad([](Claims &x) { x.tags.assign(33, "a=b"); }));
    EXPECT_TRUE(bad([](Claims &x) { x.tags = {"novalue"}; }));
    EXPECT_TRUE(bad([](Claims &x) { x.tags = {"=v"}; }));
    EXPECT_TRUE(bad([](Claims &x) { x.tags = {std::string(129, 'k') + "=v"}; }));
    // 32 tags of 100 bytes fit the per-field bounds but not the 512-byte blob bound.
    EXPECT_TRUE(bad([](Claims &x) { x.tags.assign(32, "k=" + std::string(98, 'v')); }));
    // Empty value is allowed ("k=" means key present, value empty).
    Claims ok = c;
    ok.tags = {"k="};
    EXPECT_TRUE(sign_claims(ok, a_.key.get()).ok());
}

TEST_F(ClaimsTest, MaximumSizeBlobDecodes) {
    Claims c = sample_claims(a_, now32());
    c.pu_id = std::string(64, 'p');
    c.enforcer_id = std::string(64, 'e');
    c.tags.clear();
    size_t room = kClaimsMaxLen - *encoded_claims_size(c);
    while (room >= 2 + 3) {
        size_t n = std::min<size_t>(room - 1, kMaxTagLen);
        c.tags.push_back("k=" + std::string(n - 2, 'v'));
        room -= 1 + n;
    }
    auto blob = signed_blob(c);
    EXPECT_GE(blob.size(), kClaimsMaxLen - 4);
    EXPECT_LE(blob.size(), kClaimsMaxLen);
    EXPECT_EQ(decode(blob), ClaimsReason::Ok);
}

}  // namespace
}  // namespace segwire::crypto
