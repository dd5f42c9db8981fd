// The slow path's session-key answers (SlowPath::answer, as the thread runs it), in particular the
// negative cache: a pair whose derivation failed is not derived again on every request within
// kKeyFailureTtlS, and the cache holds at most kKeyFailureEntries pairs. No EAL: session-key jobs
// touch no ring and no mbuf.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>

#include "control/slowpath.hpp"
#include "crypto/keys.hpp"
#include "crypto/pki.hpp"
#include "crypto/verifier.hpp"

namespace segwire::control {
namespace {

constexpr uint32_t kT0 = 1'800'000'000;

class SlowPathKeys : public ::testing::Test {
  protected:
    void SetUp() override {
        auto key = crypto::generate_p256_key();
        ASSERT_TRUE(key.ok());
        signer_ = std::make_unique<crypto::IdentitySigner>(std::move(*key), crypto::Digest{},
                                                           "enforcer-a");
        ASSERT_TRUE(signer_->tick(kT0).ok());
        local_ = signer_->current_public();
        slow_ = std::make_unique<SlowPath>(*signer_, certs_, rt_, 0);
        job_ = std::make_unique<dp::SlowJob>();
    }

    // Answers one session-key job for (local_, peer, role) at `now`; returns key_ok.
    bool ask(const crypto::X25519Public &peer, crypto::Role role, uint32_t now,
             const crypto::X25519Public *local = nullptr) {
        job_->kind = dp::SlowJob::kSessionKey;
        job_->local_pub = local ? *local : local_;
        job_->peer_pub = peer;
        job_->local_role = role;
        job_->key_ok = false;
        slow_->answer(*job_, now);
        return job_->key_ok;
    }

    std::unique_ptr<crypto::IdentitySigner> signer_;
    crypto::PeerCertStore certs_{crypto::TrustStore{}};
    dp::IdentityRuntime rt_;
    std::unique_ptr<SlowPath> slow_;
    std::unique_ptr<dp::SlowJob> job_;
    crypto::X25519Public local_{};
};

// The identity point (all zeros, order 1): X25519 with it gives the all-zero secret, refused.
const crypto::X25519Public kLowOrder{};

TEST_F(SlowPathKeys, RepeatedBadPeerKeyIsDerivedOnceWithinTheTtl) {
    for (int i = 0; i < 100; ++i)
        ASSERT_FALSE(ask(kLowOrder, crypto::Role::Server, kT0 + 1)) << "request " << i;
    EXPECT_EQ(slow_->key_failures(), 1u) << "one X25519 for 100 requests of the same bad pair";
    EXPECT_EQ(slow_->key_failures_cached(), 99u);
    EXPECT_EQ(slow_->keys(), 0u);

    // The role is part of the key: the same peer key as client is another pair.
    EXPECT_FALSE(ask(kLowOrder, crypto::Role::Client, kT0 + 1));
    EXPECT_EQ(slow_->key_failures(), 2u);

    // Still remembered just before the TTL ends, derived (and failing) again once it has.
    EXPECT_FALSE(ask(kLowOrder, crypto::Role::Server, kT0 + SlowPath::kKeyFailureTtlS));
    EXPECT_EQ(slow_->key_failures(), 2u);
    EXPECT_FALSE(ask(kLowOrder, crypto::Role::Server, kT0 + 1 + SlowPath::kKeyFailureTtlS));
    EXPECT_EQ(slow_->key_failures(), 3u);
    EXPECT_EQ(slow_->key_failures_cached(), 100u);
}

TEST_F(SlowPathKeys, GoodPairsAreNotAffected) {
    auto peer = crypto::X25519KeyPair::generate();
    ASSERT_TRUE(peer.ok());
    EXPECT_FALSE(ask(kLowOrder, crypto::Role::Server, kT0 + 1));
    for (int i = 0; i < 3; ++i) EXPECT_TRUE(ask(peer->pub, crypto::Role::Server, kT0 + 1));
    EXPECT_EQ(slow_->keys(), 3u);
    EXPECT_EQ(slow_->key_failures(), 1u);
    EXPECT_EQ(slow_->key_failures_cached(), 0u);
}

// A local key the signer does not hold (rotated out) fails for every peer key: distinct failing
// pairs at will. More of them than the cache holds: it stays bounded (older ones are evicted and
// counted) and every answer is still a refusal.
TEST_F(SlowPathKeys, TheCacheIsBounded) {
    crypto::X25519Public gone{};
    gone[0] = 0x42;
    const uint32_t n = 3 * SlowPath::kKeyFailureEntries;
    crypto::X25519Public peer{};
    for (uint32_t i = 0; i < n; ++i) {
        std::memcpy(peer.data(), &i, sizeof(i));
        peer[8] = static_cast<uint8_t>(i * 7);
        ASSERT_FALSE(ask(peer, crypto::Role::Client, kT0 + 1, &gone));
    }
    EXPECT_EQ(slow_->key_failures(), n);
    EXPECT_GE(slow_->key_failures_evicted(), n - SlowPath::kKeyFailureEntries);
    EXPECT_LE(slow_->key_failures_evicted(), n);
    // The newest pair is still remembered.
    ASSERT_FALSE(ask(peer, crypto::Role::Client, kT0 + 2, &gone));
    EXPECT_EQ(slow_->key_failures(), n);
    EXPECT_EQ(slow_->key_failures_cached(), 1u);
}

}  // namespace
}  // namespace segwire::control
