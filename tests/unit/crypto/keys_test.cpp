#include <gtest/gtest.h>

#include "crypto/keys.hpp"
#include "tests/unit/crypto/test_util.hpp"

namespace segwire::crypto {
namespace {

using test::hex;
using test::unhex;

template <size_t N>
std::array<uint8_t, N> arr(std::string_view h) {
    auto v = unhex(h);
    std::array<uint8_t, N> a{};
    EXPECT_EQ(v.size(), N);
    std::copy_n(v.begin(), std::min(N, v.size()), a.begin());
    return a;
}

// RFC 7748 §6.1.
const char *kAlicePriv = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a";
const char *kAlicePub = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a";
const char *kBobPriv = "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb";
const char *kBobPub = "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f";
const char *kShared = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742";

TEST(Keys, X25519Rfc7748Vector) {
    auto alice = X25519KeyPair::from_private(arr<32>(kAlicePriv));
    ASSERT_TRUE(alice.ok());
    EXPECT_EQ(hex(alice->pub), kAlicePub);
    auto s1 = x25519(arr<32>(kAlicePriv), arr<32>(kBobPub));
    auto s2 = x25519(arr<32>(kBobPriv), arr<32>(kAlicePub));
    ASSERT_TRUE(s1.ok() && s2.ok());
    EXPECT_EQ(hex(*s1), kShared);
    EXPECT_EQ(hex(*s2), kShared);
    auto s3 = x25519(alice->pkey.get(), arr<32>(kBobPub));
    ASSERT_TRUE(s3.ok());
    EXPECT_EQ(hex(*s3), kShared);
}

TEST(Keys, X25519RefusesSmallOrderPeerKey) {
    auto kp = X25519KeyPair::generate();
    ASSERT_TRUE(kp.ok());
    std::array<uint8_t, 32> zero{}, one{};
    one[0] = 1;
    EXPECT_FALSE(x25519(kp->priv, zero).ok());
    EXPECT_FALSE(x25519(kp->priv, one).ok());
}

TEST(Keys, HkdfRfc5869Case1) {
    auto ikm = unhex("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b");
    auto salt = unhex("000102030405060708090a0b0c");
    auto info = unhex("f0f1f2f3f4f5f6f7f8f9");
    auto okm = hkdf_sha256(ikm, salt, info, 42);
    ASSERT_TRUE(okm.ok());
    EXPECT_EQ(
        hex(*okm),
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865");
}

TEST(Keys, StateKeyIsFixedPerEnforcerKeyAndDiffersBetweenKeys) {
    auto a = generate_p256_key();
    auto b = generate_p256_key();
    ASSERT_TRUE(a.ok() && b.ok());
    auto ka = derive_state_key(a->get());
    ASSERT_TRUE(ka.ok());
    // The same key read back from its PEM (what a restart does) gives the same state key.
    auto pem = private_key_to_pem(a->get());
    ASSERT_TRUE(pem.ok());
    auto again = private_key_from_pem(*pem);
    ASSERT_TRUE(again.ok());
    auto ka2 = derive_state_key(again->get());
    ASSERT_TRUE(ka2.ok());
    EXPECT_EQ(*ka, *ka2);
    auto kb = derive_state_key(b->get());
    ASSERT_TRUE(kb.ok());
    EXPECT_NE(*ka, *kb);
    // Only a P-256 private key will do.
    auto x = X25519KeyPair::generate();
    ASSERT_TRUE(x.ok());
    EXPECT_FALSE(derive_state_key(x->pkey.get()).ok());
    EXPECT_FALSE(derive_state_key(nullptr).ok());
}

TEST(Keys, SessionKeyIsSymmetricAndBoundToBothEphemeralKeysInOrder) {
    auto c = X25519KeyPair::generate(), s = X25519KeyPair::generate();
    const X25519Public &hc = c->pub, &hs = s->pub;
    auto kc = derive_session_key(*x25519(c->priv, s->pub), hc, hs);
    auto ks = derive_session_key(*x25519(s->priv, c->pub), hc, hs);
    ASSERT_TRUE(kc.ok() && ks.ok());
    EXPECT_EQ(*kc, *ks);
    auto swapped = derive_session_key(*x25519(c->priv, s->pub), hs, hc);
    EXPECT_NE(*swapped, *kc);
    X25519Public hc2 = hc;
    hc2[31] ^= 1;
    EXPECT_NE(*derive_session_key(*x25519(c->priv, s->pub), hc2, hs), *kc);
}

class SignerTest : public ::testing::Test {
  protected:
    void SetUp() override {
        ca_ = test::make_ca();
        e_ = test::make_enforcer(ca_, "enforcer-a");
        PKeyPtr k(e_.key.get());
        EVP_PKEY_up_ref(e_.key.get());
        signer_ = std::make_unique<IdentitySigner>(std::move(k), e_.ref, e_.id,
                                                   SignerOptions{300, 900, 60});
    }
    CertAuthority ca_;
    test::Enforcer e_;
    std::unique_ptr<IdentitySigner> signer_;
};

TEST_F(SignerTest, CachesBlobUntilTagsChangeOrKeyRotates) {
    const uint32_t t0 = 1'800'000'000;
    auto a = signer_->claims_for("pu1", {"b=2", "a=1"}, t0);
    ASSERT_TRUE(a.ok()) << a.error().what();
    EXPECT_EQ(signer_->signatures(), 1u);
    auto b = signer_->claims_for("pu1", {"a=1", "b=2", "a=1"}, t0 + 10);  // same set
    EXPECT_EQ(a->get(), b->get());
    EXPECT_EQ(signer_->signatures(), 1u) << "no public-key operation per connection";
    auto c = signer_->claims_for("pu1", {"a=1", "b=3"}, t0 + 20);
    EXPECT_NE(c->get(), a->get());
    EXPECT_EQ(signer_->signatures(), 2u);

    ClaimsView v;
    ASSERT_EQ(decode_claims((*c)->blob, v), ClaimsReason::Ok);
    EXPECT_EQ(v.tags[0], "a=1");
    EXPECT_EQ(v.enforcer_id, "enforcer-a");
    EXPECT_EQ((*c)->hash, sha256((*c)->blob));

    // Rotation: tick past the period re-signs with the new ephemeral key.
    X25519Public before = signer_->current_public();
    ASSERT_TRUE(signer_->tick(t0 + 301).ok());
    EXPECT_NE(signer_->current_public(), before);
    auto d = signer_->claims_for("pu1", {"a=1", "b=3"}, t0 + 302);
    EXPECT_EQ((*d)->claims.ephemeral_pub, signer_->current_public());
    EXPECT_EQ(signer_->signatures(), 3u) << "tick re-signed once, claims_for reused it";
}

TEST_F(SignerTest, SessionKeyFromBothSidesAgreesAcrossOneRotation) {
    const uint32_t t0 = 1'800'000'000;
    auto peer = X25519KeyPair::generate();
    auto mine = signer_->claims_for("pu1", {"a=1"}, t0);
    X25519Public local = (*mine)->claims.ephemeral_pub;
    // We are the server; the peer (client) derives with its private key and our public key.
    auto k1 = signer_->session_key(local, peer->pub, Role::Server);
    ASSERT_TRUE(k1.ok());
    auto expect = derive_session_key(*x25519(peer->priv, local), peer->pub, local);
    EXPECT_EQ(*k1, *expect);
    auto as_client = signer_->session_key(local, peer->pub, Role::Client);
    EXPECT_NE(*as_client, *k1) << "the role is part of the key";
    ASSERT_TRUE(signer_->tick(t0 + 300).ok());
    EXPECT_TRUE(signer_->session_key(local, peer->pub, Role::Server).ok()) << "previous key kept";
    ASSERT_TRUE(signer_->tick(t0 + 600).ok());
    auto gone = signer_->session_key(local, peer->pub, Role::Server);
    ASSERT_FALSE(gone.ok());
    EXPECT_EQ(gone.error().code, Errc::NotFound);
}

TEST_F(SignerTest, ResignsBeforeExpiry) {
    const uint32_t t0 = 1'800'000'000;
    SignerOptions o{3600, 900, 60};
    PKeyPtr k(e_.key.get());
    EVP_PKEY_up_ref(e_.key.get());
    IdentitySigner s(std::move(k), e_.ref, e_.id, o);
    auto a = s.claims_for("pu", {}, t0);
    auto b = s.claims_for("pu", {}, t0 + 900 - 61);
    EXPECT_EQ(a->get(), b->get());
    auto c = s.claims_for("pu", {}, t0 + 900 - 59);
    EXPECT_NE(a->get(), c->get());
    EXPECT_GT((*c)->claims.expires_at, (*a)->claims.expires_at);
}

}  // namespace
}  // namespace segwire::crypto
