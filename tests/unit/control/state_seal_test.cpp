// Sealed state files (control/state_seal.hpp): the fail-static bundle and peer certificates are
// accepted only as this enforcer sealed them, and a bundle only within its maximum age.
#include "control/state_seal.hpp"

#include <gtest/gtest.h>

#include "crypto/keys.hpp"
#include "crypto/pki.hpp"

namespace segwire::control {
namespace {

constexpr int64_t kNow = 1'800'000'000;
constexpr int64_t kWeek = 7 * 86400;
const std::string kBundle = R"({"version":"v7","namespace":{"name":"/lab"}})";

StateKey key_of_new_enforcer() {
    auto k = crypto::generate_p256_key();
    EXPECT_TRUE(k.ok());
    auto s = crypto::derive_state_key(k->get());
    EXPECT_TRUE(s.ok());
    return *s;
}

class StateSeal : public ::testing::Test {
  protected:
    StateKey key = key_of_new_enforcer();
    std::string sealed = seal_state("bundle", "enf-a", kNow - 60, kBundle, key);

    UnsealResult open(const std::string &text, int64_t max_age = kWeek) const {
        return unseal_state(text, "bundle", "enf-a", key, kNow, max_age);
    }
    void expect_refused(const std::string &text, SealError why, int64_t max_age = kWeek) const {
        UnsealResult r = open(text, max_age);
        EXPECT_FALSE(r.ok.has_value());
        EXPECT_EQ(r.error, why) << to_string(r.error) << ": " << r.detail;
        EXPECT_FALSE(r.detail.empty());
    }
};

TEST_F(StateSeal, RoundTripGivesTheBodyAndWhenItWasSaved) {
    UnsealResult r = open(sealed);
    ASSERT_TRUE(r.ok.has_value()) << r.detail;
    EXPECT_EQ(r.ok->body, kBundle);
    EXPECT_EQ(r.ok->saved_at, kNow - 60);
}

TEST_F(StateSeal, AnyChangedByteOfTheFileIsRefused) {
    // Every byte of the envelope (body, kind, ID, time, MAC) flipped in turn: never accepted.
    size_t refused = 0;
    for (size_t i = 0; i < sealed.size(); ++i) {
        std::string t = sealed;
        t[i] = static_cast<char>(t[i] ^ 0x01);
        UnsealResult r = open(t);
        if (!r.ok) {
            ++refused;
            continue;
        }
        // A flip that leaves the same document (JSON whitespace cannot occur: the writer emits
        // none) must at least leave the same body and time.
        EXPECT_EQ(r.ok->body, kBundle) << "byte " << i;
        EXPECT_EQ(r.ok->saved_at, kNow - 60) << "byte " << i;
    }
    EXPECT_GT(refused, sealed.size() * 9 / 10);
}

TEST_F(StateSeal, AnEditedBodyWithTheOldMacIsTampered) {
    std::string t = sealed;
    const std::string from = R"(\"v7\")", to = R"(\"v8\")";
    t.replace(t.find(from), from.size(), to);
    expect_refused(t, SealError::kTampered);
}

TEST_F(StateSeal, AnotherEnforcersFileIsTampered) {
    // Sealed by enforcer B (its own key) as if for enf-a: B's key is not A's.
    const std::string by_b =
        seal_state("bundle", "enf-a", kNow - 60, kBundle, key_of_new_enforcer());
    expect_refused(by_b, SealError::kTampered);
}

TEST_F(StateSeal, SameKeyButAnotherKindOrEnforcerIsWrongSubject) {
    expect_refused(seal_state("peers", "enf-a", kNow - 60, kBundle, key), SealError::kWrongSubject);
    expect_refused(seal_state("bundle", "enf-b", kNow - 60, kBundle, key),
                   SealError::kWrongSubject);
}

TEST_F(StateSeal, ALegacyPlainBundleIsUnsigned) {
    expect_refused(kBundle, SealError::kUnsigned);
    expect_refused(R"(["-----BEGIN CERTIFICATE-----"])", SealError::kUnsigned);  // old peers.json
}

TEST_F(StateSeal, GarbageOrACutShortFileIsMalformed) {
    expect_refused("", SealError::kMalformed);
    expect_refused(sealed.substr(0, sealed.size() / 2), SealError::kMalformed);
    expect_refused(R"({"segwireState":2})", SealError::kMalformed);
    expect_refused(R"({"segwireState":1,"kind":"bundle"})", SealError::kMalformed);
}

TEST_F(StateSeal, OlderThanTheMaximumAgeIsTooOldAndZeroMeansNoLimit) {
    const std::string old = seal_state("bundle", "enf-a", kNow - kWeek - 1, kBundle, key);
    expect_refused(old, SealError::kTooOld);
    EXPECT_TRUE(open(seal_state("bundle", "enf-a", kNow - kWeek, kBundle, key)).ok);
    EXPECT_TRUE(open(old, 0).ok);
}

TEST_F(StateSeal, SavedInTheFutureBeyondTheSkewIsRefused) {
    EXPECT_TRUE(open(seal_state("bundle", "enf-a", kNow + kClockSkewS, kBundle, key)).ok);
    expect_refused(seal_state("bundle", "enf-a", kNow + kClockSkewS + 1, kBundle, key),
                   SealError::kFromTheFuture);
}

}  // namespace
}  // namespace segwire::control
