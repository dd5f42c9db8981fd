// Files an enforcer writes for its own later use — the fail-static policy bundle and the peer
// certificates in state_dir (docs/control.md, "Fail-static cache") — are sealed: wrapped in a small
// JSON envelope that names what the file holds, for which enforcer, when the Console last vouched
// for it, and carries an HMAC-SHA256 over all of that under a key derived from the enforcer's
// long-term private key (crypto::derive_state_key). A file this enforcer did not write — edited,
// copied from another enforcer, left unsigned by an older segwire — is refused with the reason, and
// so is a bundle older than its maximum age.
//
// Control side only (allocates, no logging: callers log the reason).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace segwire::control {

using StateKey = std::array<uint8_t, 32>;

struct Sealed {
    std::string body;      // the file's content as it was handed to seal_state
    int64_t saved_at = 0;  // unix seconds: when the Console last vouched for it
};

// Why an unseal failed. The names appear in log lines and telemetry (`cache_refused`).
enum class SealError : uint8_t {
    kMalformed,      // not a sealed state file at all (half-written, garbage)
    kUnsigned,       // a plain file with no seal: written by a segwire before sealing, or by hand
    kTampered,       // the MAC does not verify: edited, or sealed under another enforcer's key
    kWrongSubject,   // sealed by this key for another kind of file or another enforcer ID
    kTooOld,         // older than the maximum age
    kFromTheFuture,  // saved later than now (+ kClockSkewS): the clock went back, or a forgery
};
const char *to_string(SealError e) noexcept;

struct UnsealResult {
    std::optional<Sealed> ok;
    SealError error = SealError::kMalformed;
    std::string detail;  // one sentence for the log: what was found, ages in seconds
};

// Clock steps this far ahead are not held against a file.
inline constexpr int64_t kClockSkewS = 300;

// The envelope: {"segwireState":1,"kind":…,"enforcerID":…,"savedAt":…,"body":…,"mac":…}, the MAC
// over "segwire/v1 state\n" kind "\n" enforcerID "\n" savedAt "\n" body (base64 in the file).
std::string seal_state(std::string_view kind, std::string_view enforcer_id, int64_t saved_at,
                       std::string_view body, const StateKey &key);

// `max_age_s` 0: no age limit (peer certificates carry their own expiry).
UnsealResult unseal_state(std::string_view text, std::string_view kind,
                          std::string_view enforcer_id, const StateKey &key, int64_t now,
                          int64_t max_age_s);

}  // namespace segwire::control
