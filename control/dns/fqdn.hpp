// FQDN patterns and the addresses learned for them from DNS answers.
//
// FqdnLearner (slow-path and control threads, allocating, one owner under Enforcement's lock)
// keeps what DNS answers taught: per (address, PU that asked, question name) the CNAME chain and
// an expiry. An address learned from one PU's answer is published for that PU only.
// build() turns the records that match an external network's hostname pattern into an FqdnSet
// (dataplane/dns/fqdn_set.hpp): immutable, read by workers on the packet path without allocation
// or locks, published with the EnforcerState by an RCU pointer swap. See docs/dns.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "control/dns/dns_message.hpp"
#include "dataplane/dns/fqdn_set.hpp"
#include "dataplane/policy/snapshot.hpp"

namespace segwire::control::dns {

using dp::dns::FqdnSet;  // what build() makes: the workers' type (dataplane/dns/fqdn_set.hpp)

// {uint32_t network; std::string pattern;}: a policy snapshot's hostnames().
using HostnameEntry = policy::PolicySnapshot::HostnameEntry;

// Case-insensitive; one trailing dot is ignored on both sides. "*.example.com" matches names with
// at least one more label ending in ".example.com", not "example.com"; any other pattern matches
// only the identical name.
bool fqdn_match(std::string_view pattern, std::string_view name) noexcept;

// Config validation: labels of 1-63 letters, digits, '-' or '_'; at most 253 characters (without
// a trailing dot); '*' only as the whole first label, followed by at least one label. On false,
// `*why` (if given) says what is wrong.
bool valid_fqdn_pattern(std::string_view pattern, std::string *why);

struct FqdnLearnerConfig {
    uint32_t min_ttl_s = 30;                   // shorter TTLs (0 included) are raised to this
    uint32_t max_ttl_s = 3600;                 // longer TTLs are lowered to this (dns.max_ttl_s)
    size_t max_records = 65536;                // (address, name) records kept
    size_t max_name_bytes = size_t(16) << 20;  // names kept for the records (see docs/dns.md)
};

// What one learn() did. Records that match no network are kept too (for a later policy), but
// only changes to matching records count here: they are what a published FqdnSet contains.
struct LearnResult {
    uint32_t added = 0;      // matching records new, or learned again after they had expired
    uint32_t updated = 0;    // matching records whose networks changed (the chain changed)
    uint32_t refreshed = 0;  // matching records whose expiry moved later, nothing else
    uint32_t evicted = 0;    // matching records evicted to stay within the bounds
    bool matched = false;    // some pattern matched the question name or a CNAME of the chain

    bool changed() const { return added || updated || refreshed || evicted; }
    // The published set lacks something this answer grants: publish a set built after this call
    // before releasing the held answer. Refresh-only changes can be published lazily (before the
    // earlier expiry).
    bool publish_before_release() const { return added || updated; }
};

struct FqdnCounters {
    uint64_t answers = 0;          // learn() calls
    uint64_t answers_matched = 0;  // ... whose chain matched a pattern
    uint64_t records_added = 0;    // new records, matching or not
    uint64_t records_expired = 0;  // dropped by expire()/rebuild()
    uint64_t records_evicted = 0;  // dropped to stay within max_records / max_name_bytes
    uint64_t ttl_clamped = 0;      // addresses whose TTL was raised or lowered
    uint64_t rebuilds = 0;
};

class FqdnLearner {
  public:
    explicit FqdnLearner(FqdnLearnerConfig cfg = {});
    ~FqdnLearner();
    FqdnLearner(const FqdnLearner &) = delete;
    FqdnLearner &operator=(const FqdnLearner &) = delete;

    // Learns `addrs` for question `name` reached through `cnames` (in chain order), asked by PU
    // `pu` (its index in the snapshot of the last rebuild()). A network matches when one of its
    // patterns matches the question name or any CNAME of the chain. Each TTL is clamped to
    // [min_ttl_s, max_ttl_s]; an address already known for the PU and name keeps the later of
    // its old and new expiry. `patterns` should be those of the last rebuild() (others work, but
    // records learned earlier keep the indices of the patterns they were matched with).
    LearnResult learn(std::string_view name, std::span<const std::string_view> cnames,
                      std::span<const DnsAddress> addrs, uint32_t now,
                      std::span<const HostnameEntry> patterns, uint32_t pu = 0);
    // The same for a parsed response (its question name, chain and addresses).
    LearnResult learn(const DnsResponse &r, uint32_t now, std::span<const HostnameEntry> patterns,
                      uint32_t pu = 0);

    // A new policy snapshot: recomputes every record's networks from `patterns` (same names, new
    // indices) and drops expired records. `pu_remap[old]` is a PU's index in the new snapshot
    // (policy::kNone: the PU is gone, and so are its records); empty: PU indices are unchanged.
    // Returns how many records match a network.
    size_t rebuild(std::span<const HostnameEntry> patterns, uint32_t now,
                   uint64_t snapshot_version = 0, std::span<const uint32_t> pu_remap = {});
    // Drops records with expires_at <= now. Returns how many.
    size_t expire(uint32_t now);

    // The matching, unexpired records as an immutable set (converts to shared_ptr<const FqdnSet>).
    std::unique_ptr<FqdnSet> build(uint32_t now) const;

    size_t size() const { return records_.size(); }
    size_t name_bytes() const { return name_bytes_; }
    const FqdnCounters &counters() const { return counters_; }
    const FqdnLearnerConfig &config() const { return cfg_; }
    uint32_t clamp_ttl(uint32_t ttl) const;

  private:
    struct Chain;
    struct Record {
        std::shared_ptr<Chain> chain;
        uint32_t expires_at;
        bool matched;  // as filed in evict_ (chain->nets non-empty when it was filed)
    };
    void remap_pus(std::span<const uint32_t> pu_remap);
    // Eviction order: records matching no network first, then the soonest to expire.
    struct EvictKey {
        bool matched;
        uint32_t expires_at;
        const std::string *key;  // the records_ key (node keys do not move)
        bool operator<(const EvictKey &o) const;
    };
    class PatternIndex;

    std::vector<uint32_t> match(const std::vector<std::string> &names) const;
    void use_patterns(std::span<const HostnameEntry> patterns);
    void file(const std::string &key, Record &r);
    void unfile(const std::string &key, const Record &r);
    std::unordered_map<std::string, Record>::iterator erase(
        std::unordered_map<std::string, Record>::iterator it);
    uint32_t evict_over_bounds();

    FqdnLearnerConfig cfg_;
    // Key: the 16 address bytes, the PU index (4 bytes, host order), then the question name.
    std::unordered_map<std::string, Record> records_;
    std::set<EvictKey> evict_;
    std::unique_ptr<PatternIndex> index_;
    uint64_t epoch_ = 0;
    uint64_t snapshot_version_ = 0;
    size_t name_bytes_ = 0;
    FqdnCounters counters_;
};

}  // namespace segwire::control::dns
