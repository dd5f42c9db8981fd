// Enforcers: registration with a CSR, heartbeat, profile resolution and the per-enforcer policy
// bundle.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/policy/model.hpp"
#include "tools/console/paging.hpp"

namespace segwire::console {

class Db;
class ConsolePki;
struct Caller;
struct Actor;

struct EnforcerRecord {
    std::string id, name;
    std::vector<std::string> tags;  // associatedTags
    std::string certificate;        // PEM
    int64_t registered = 0, last_seen = 0;
    std::string status;
    std::string stats_json;  // the last heartbeat's stats object, "" if none
    // The last policy refusal a heartbeat reported (stats.lastPolicyError plus "reportedAt"), ""
    // if none ever. Kept until a heartbeat reports a different one, also across heartbeats that
    // carry none (an enforcer restart forgets its refusals; the Console does not).
    std::string policy_error_json;
};

// The Console model's rule: an enforcer silent for this long (or never heard from) is unreachable.
inline constexpr int64_t kUnreachableAfter = 300;

class EnforcerRegistry {
  public:
    // `cert_validity`: how long the datapath certificates it signs live (serve --cert-validity).
    EnforcerRegistry(Db &db, const ConsolePki &pki, int64_t cert_validity = 24 * 3600)
        : db_(db), pki_(pki), cert_validity_(cert_validity) {}

    // POST /enforcers {name, associatedTags, csr}. The enforcer ID is the CSR's subject CN (the
    // enforcer chose it with crypto::create_csr, and its certificate and claims carry it), and it
    // must be the caller's (an enforcer token bound to that ID; 403 otherwise).
    //  * First registration: a token from an app credential bound to the ID, or from a cloud
    //    identity whose ID an admin approved (approve()) or when `cloud_auto_register`.
    //  * Re-registration: proof of the current key — the CSR is signed by the key of the
    //    enforcer's current certificate, or the TLS client certificate (`tls_cert_sha256`, "" if
    //    none) is that certificate. Else 403; an admin can delete the enforcer to start afresh.
    // Returns (201 new | 200 re-registration, response JSON).
    std::pair<int, std::string> register_enforcer(std::string_view body, const Caller &caller,
                                                  const std::string &tls_cert_sha256,
                                                  bool cloud_auto_register);

    // DELETE /enforcers/:id (admin) and `segwire-console enforcer revoke`: every certificate ever
    // issued to the enforcer goes on the revocation list (revoked_refs(), carried in every
    // bundle), the enforcer is forgotten, and its ID needs an admin's approval to register again
    // (whatever the realm). Bumps meta "revocation_seq", which the server turns into a new policy
    // version (a CLI revoke too). 404 when unknown. Returns how many certificates were listed.
    size_t revoke(const std::string &id, const Actor &actor);
    // The revocation list: hex SHA-256 (the claims' cert_ref) of every revoked certificate that
    // expired less than kRevocationRetention ago, sorted. Call with the database mutex held.
    std::vector<std::string> revoked_refs_locked();
    std::vector<std::string> revoked_refs();
    static constexpr int64_t kRevocationRetention = 30 * 24 * 3600;
    // POST /enforcers/:id/approval (admin) and `segwire-console enforcer approve`: allows one
    // first registration of `id` by a cloud identity.
    void approve(const std::string &id, const Actor &actor);

    std::optional<EnforcerRecord> find(const std::string &id);
    EnforcerRecord require(const std::string &id);  // 404 ConsoleError when unknown
    // In ID order. `peers_only`: ID, name and certificate only (what an enforcer needs of its
    // peers).
    Page list(bool peers_only, const PageRequest &page);
    // Registered enforcers, and those that sent a heartbeat within the last five minutes at `now`
    // (the rest are listed "unreachable"): the Console's /metrics.
    struct Counts {
        uint64_t registered = 0, reachable = 0;
    };
    Counts counts(int64_t now);
    // PEMs of the enforcer's certificates that have not expired, oldest first.
    std::vector<std::string> certificates_of(const std::string &id);
    std::string to_json(const EnforcerRecord &r);

    // POST /enforcers/:id/heartbeat {status, stats}; stats.lastPolicyError (an object) is kept as
    // the enforcer's lastPolicyError.
    void heartbeat(const std::string &id, std::string_view body);

  private:
    Db &db_;
    const ConsolePki &pki_;
    int64_t cert_validity_;
};

// The tags profile mappings match an enforcer on: its associatedTags plus $identity=enforcer,
// $name=<name> and $id=<ID>.
std::vector<std::string> enforcer_match_tags(const EnforcerRecord &r);

// The profiles the enforcer's mappings select (the fallback tier only when the normal tier selects
// nothing), by name: exactly one for a resolvable enforcer. policy::resolve_profile is the
// authority; this lists the candidates for the 409 body, which its error carries only as text.
std::vector<std::string> profile_candidates(const policy::PolicySet &set,
                                            const std::vector<std::string> &tags);

// The resolved profile (JSON object) or ConsoleError 409 {error, candidates}.
const policy::EnforcerProfile &resolve_enforcer_profile(const policy::PolicySet &set,
                                                        const EnforcerRecord &r);

// GET /enforcers/:id/policy: serialize_policy_set of the set with enforcerprofiles = [the resolved
// profile, its trustedCAs extended with the Console CA], version = `version`, plus top-level
// "enforcerID", "trustedCAs" and
// "revokedCertificates": `revoked` (hex SHA-256 of each revoked certificate, sorted).
std::string render_bundle(const policy::PolicySet &set, uint64_t version, const EnforcerRecord &r,
                          const std::string &ca_pem, const std::vector<std::string> &revoked = {});

// The part of `set` that enforcer `r` can ever evaluate (docs/console.md, "Per-enforcer
// bundles", says why each piece is or is not needed):
//  * every processing unit (peers' records decide claims, anti-spoofing and tags);
//  * the rulesets whose subject selects a PU it may enforce for: one it hosts (enforcerID its
//    ID, or "group:G" with G its certificate's group) or one hosted by no enforcer (decided by
//    address wherever it sits). All rulesets when a namespace default is Allow: there a missing
//    Reject would become an Allow;
//  * the external networks an object of those rulesets' rules selects;
//  * the services selecting a PU it hosts, and the httpresourcespecs they expose;
//  * the profiles and mappings unchanged (render_bundle keeps the resolved profile only).
policy::PolicySet bundle_subset(const policy::PolicySet &set, const EnforcerRecord &r);

// A bundle and its ETag: the strong hex SHA-256 of the bundle with its "version" left out, so that
// a new policy version that changes nothing this enforcer receives keeps its ETag (its
// long-poll's If-None-Match stays satisfied and it is not sent the same bundle again).
struct TaggedBundle {
    std::string etag;  // without quotes
    std::string body;
};
TaggedBundle render_enforcer_bundle(const policy::PolicySet &set, uint64_t version,
                                    const EnforcerRecord &r, const std::string &ca_pem,
                                    const std::vector<std::string> &revoked);

}  // namespace segwire::console
