// A compiled, immutable policy snapshot and the decision function the workers call.
//
// Built once by the control thread (compile_snapshot in control/policy/compile.hpp, may throw
// PolicyError), then only read. Every member function marked noexcept is safe on a worker lcore:
// no allocation, no locks, no exceptions, no logging. Names (policies, rules, PUs, networks) are
// indices into the snapshot's string table so that a Decision is 20 bytes of integers.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "config/policy/error.hpp"
#include "config/policy/model.hpp"
#include "config/policy/syntax.hpp"
#include "dataplane/policy/budget.hpp"

namespace segwire::control {
class SnapshotCompiler;  // control/policy/compile.cpp: the one writer of a snapshot
}

namespace segwire::policy {

class AddressTable;
class PolicySnapshot;

inline constexpr uint32_t kNone = UINT32_MAX;

// A compile (or a reload) refused for lack of a resource rather than because the policy is wrong:
// DPDK memory for the address tables, or a free slot under the snapshot bound (SnapshotBudget).
class SnapshotResourceError : public PolicyError {
  public:
    enum class Resource : uint8_t { kMemory, kSnapshotBound };
    SnapshotResourceError(Resource r, std::string field, std::string problem)
        : PolicyError("snapshot", std::move(field), std::move(problem)), resource_(r) {}
    Resource resource() const { return resource_; }

  private:
    Resource resource_;
};

enum class Direction : uint8_t {
    kIncoming = 0,  // evaluated at the server-side enforcer; the peer is the source
    kOutgoing = 1,  // evaluated at the client-side enforcer; the peer is the destination
};

enum class Verdict : uint8_t { kAccept, kReject, kNotApplicable };

enum class Reason : uint8_t {
    kRule,           // a rule decided (policy/rule_name say which)
    kDefault,        // no rule matched: the namespace default for the direction
    kIgnoredPu,      // the local PU matches the profile's ignoreExpression: leave it alone
    kUnknownPu,      // the PU index is not in this snapshot
    kStalePeerTags,  // PeerTags were built against another snapshot: rebuild them
};

const char *to_string(Verdict v);
const char *to_string(Reason r);

struct Decision {
    Verdict action = Verdict::kReject;
    Verdict observed_action = Verdict::kNotApplicable;
    Reason reason = Reason::kDefault;
    bool logs_disabled = false;           // the deciding rule has logsDisabled
    uint32_t policy = kNone;              // index of the deciding networkrulesetpolicy
    uint32_t observed_policy = kNone;     // index of the observed (observationEnabled) policy
    uint32_t rule_name = kNone;           // string index of the deciding rule's name
    uint32_t observed_rule_name = kNone;  // string index of the observed rule's name

    bool operator==(const Decision &) const = default;
};

// An IPv4 (host byte order) or IPv6 address.
struct IpAddr {
    bool v6 = false;
    uint32_t v4 = 0;
    std::array<uint8_t, 16> b6{};

    static IpAddr from_v4(uint32_t host_order) {
        IpAddr a;
        a.v4 = host_order;
        return a;
    }
    static IpAddr from_v6(const uint8_t bytes[16]) {
        IpAddr a;
        a.v6 = true;
        std::copy(bytes, bytes + 16, a.b6.begin());
        return a;
    }
    // Control side / tests. Throws PolicyError on a malformed address.
    static IpAddr parse(std::string_view text);
};

enum AddressFlag : uint8_t {
    kExcluded = 1,          // profile excludedNetworks: untouched and unreported
    kManagedTcp = 2,        // profile targetNetworks
    kManagedUdp = 4,        // profile targetUDPNetworks
    kIdentityRequired = 8,  // profile identityRequiredNetworks: no ACL fallback
    kTrustedResolver = 16,  // profile trustedDNSResolvers (docs/dns.md)
    kModeL4 = 32,           // profile l4TargetNetworks: TCP identity in the byte stream
    kModeAuto = 64,         // profile autoTargetNetworks: v1, L4 where v1's option is stripped
};

// Everything one LPM lookup tells about an address.
struct AddressInfo {
    uint32_t pu = kNone;    // the local PU covering the address (longest prefix), or kNone
    uint8_t flags = 0;      // AddressFlag bits
    uint32_t class_id = 0;  // the address class (set of external networks containing it)
};

// A peer's identity tags turned into this snapshot's tag IDs. Built once per verified identity on
// the slow path (PolicySnapshot::make_peer_tags) and reused for every connection of that peer
// while the snapshot stays current.
class PeerTags {
  public:
    PeerTags() = default;
    uint64_t snapshot_version() const noexcept { return version_; }
    // 128-bit fingerprint of the ID set: two peers with equal fingerprints decide identically, so
    // the decision cache keys on it.
    const std::array<uint64_t, 2> &key() const noexcept { return key_; }
    std::span<const uint32_t> ids() const noexcept { return ids_; }
    bool has(uint32_t id) const noexcept;

  private:
    friend class PolicySnapshot;
    uint64_t version_ = 0;
    std::array<uint64_t, 2> key_{};
    std::vector<uint32_t> ids_;  // sorted, unique
};

class PolicySnapshot {
  public:
    ~PolicySnapshot();
    PolicySnapshot(const PolicySnapshot &) = delete;
    PolicySnapshot &operator=(const PolicySnapshot &) = delete;

    // Process-unique, increasing; the decision cache keys on it.
    uint64_t version() const noexcept { return version_; }
    const std::string &bundle_version() const { return bundle_version_; }
    const EnforcerProfile &profile() const { return profile_; }
    // The profile's unmanagedInsideSources is "drop" (hot path: a bool, not the string).
    bool drop_unmanaged_inside() const noexcept { return drop_unmanaged_inside_; }
    // The profile lists its trusted DNS resolvers (the kTrustedResolver flag says which); else
    // a resolver is trusted by the PU's outgoing rules (docs/dns.md).
    bool resolvers_listed() const noexcept { return resolvers_listed_; }
    uint64_t flow_report_interval_s() const { return flow_report_interval_s_; }

    // ---- addresses (hot path) ----
    AddressInfo classify_v4(uint32_t host_order) const noexcept;
    AddressInfo classify_v6(const uint8_t addr[16]) const noexcept;
    AddressInfo classify(const IpAddr &a) const noexcept {
        return a.v6 ? classify_v6(a.b6.data()) : classify_v4(a.v4);
    }
    // Burst form for the worker loop (one rte_lpm_lookup_bulk with an LPM); n ≤ 64.
    void classify_v4_bulk(const uint32_t *host_order, AddressInfo *out, unsigned n) const noexcept;
    uint32_t find_pu(const IpAddr &a) const noexcept { return classify(a).pu; }

    // ---- PUs ----
    uint32_t pu_count() const noexcept { return static_cast<uint32_t>(pus_.size()); }
    bool pu_ignored(uint32_t pu) const noexcept { return pu < pus_.size() && pus_[pu].ignored; }
    std::string_view pu_id(uint32_t pu) const { return str(pus_.at(pu).id); }
    std::string_view pu_name(uint32_t pu) const { return str(pus_.at(pu).name); }
    uint32_t find_pu_by_id(std::string_view id) const;  // control side; kNone if unknown
    // The enforcer that hosts the PU (its enforcerID; empty: none), and the PU's tags from the
    // record as a peer's tags (what a peer that proves to be this PU is decided with).
    std::string_view pu_enforcer(uint32_t pu) const { return str(pus_.at(pu).enforcer); }
    const PeerTags &pu_peer_tags(uint32_t pu) const { return pu_tags_.at(pu); }
    // Whether `a` lies in one of the PU's addresses (a peer's claims bind it to them); hot path,
    // a scan of the PU's few prefixes.
    bool pu_covers(uint32_t pu, const IpAddr &a) const noexcept;

    // ---- peers (control / slow path: allocates) ----
    PeerTags make_peer_tags(std::span<const std::string> tags) const;

    // ---- decisions (hot path) ----
    // `port` is the destination port for tcp/udp, icmp_key(type, code) for icmp/icmp6, ignored
    // otherwise.
    Decision decide(uint32_t pu, Direction dir, const PeerTags &peer, uint8_t proto,
                    uint16_t port) const noexcept;
    // A peer without identity: the rule objects are matched against the external networks that
    // contain the address (and each network's servicePorts), plus `learned`: the networks whose
    // hostname entries the address was learned for from DNS answers (sorted, this snapshot's
    // network indices; see dataplane/dns/fqdn_set.hpp).
    Decision decide(uint32_t pu, Direction dir, const IpAddr &peer, uint8_t proto, uint16_t port,
                    std::span<const uint32_t> learned = {}) const noexcept;

    // ---- names (control side: reports, explain) ----
    std::string_view str(uint32_t index) const {
        return index < strings_.size() ? std::string_view(strings_[index]) : std::string_view();
    }
    uint32_t policy_count() const { return static_cast<uint32_t>(policies_.size()); }
    std::string_view policy_name(uint32_t policy) const;
    std::string_view policy_id(uint32_t policy) const;  // ID, or the name when the ID is empty
    uint32_t network_count() const { return static_cast<uint32_t>(networks_.size()); }
    std::string_view network_name(uint32_t net) const { return str(networks_.at(net).name); }
    std::span<const uint32_t> networks_of(uint32_t class_id) const noexcept;
    // Hostname entries ("*.example.com") by network: addresses are learned from DNS answers.
    struct HostnameEntry {
        uint32_t network;
        std::string pattern;
    };
    const std::vector<HostnameEntry> &hostnames() const { return hostnames_; }
    // What the compiler found legal but worth an operator's attention (logged at warn level when
    // the policy is applied), e.g. an external network overlapping managed networks.
    const std::vector<std::string> &warnings() const { return warnings_; }

    // Sizes, for logs, telemetry and benchmarks.
    struct Stats {
        uint32_t rules, rule_lists, address_classes, prefixes_v4, prefixes_v6, tags;
        const char *table_v4, *table_v6;  // "none", "rib" or "lpm"
        size_t table_bytes;               // DPDK bytes of the address tables (shared or not)
        bool table_shared;                // the tables are the previous snapshot's
    };
    Stats stats() const;

  private:
    friend class control::SnapshotCompiler;
    PolicySnapshot() = default;

    // Declared first so that it is released last, after the address tables.
    SnapshotBudget::Ticket ticket_;

    struct Range {
        uint32_t off = 0, cnt = 0;
    };
    // Rule lists hold copies of their rules so that decide() scans one contiguous array; ports
    // (usually one or two ranges) are inline for the same reason.
    static constexpr uint32_t kInlinePorts = 2;
    struct Rule {
        bool reject;
        bool observed;
        bool logs_disabled;
        uint8_t inline_ports;  // number of valid entries in ports[], or 0 = see ports_range
        uint32_t policy;
        uint32_t name;
        Range preds;        // the object expression, flattened (see Pred)
        Range ports_range;  // into ports_ when more than kInlinePorts
        Range nets;         // external networks this rule's object selects (sorted)
        PortRange ports[kInlinePorts];
    };
    // An expression is a run of predicates; clause_end closes an AND-clause, clauses are ORed.
    struct Pred {
        uint32_t id;
        bool negate;
        bool clause_end;
    };
    struct Pu {
        uint32_t id, name;
        uint32_t enforcer;  // enforcerID (string index)
        uint32_t rules[2];  // rule list index per Direction
        Range addrs;        // into pu_prefixes_
        bool ignored;
    };
    // A PU address prefix, compared in host order (v4) or as bytes (v6).
    struct PuPrefix {
        bool v6;
        uint8_t len;
        uint32_t v4;
        std::array<uint8_t, 16> b6;
    };
    struct Network {
        uint32_t name;
        Range service_ports;  // into ports_; empty = any
    };
    struct AddrClass {
        uint32_t pu;
        uint8_t flags;
        Range nets;  // into class_nets_
    };
    struct Policy {
        uint32_t name, id;
    };

    template <typename ObjectMatch>
    Decision evaluate(uint32_t pu, Direction dir, uint8_t proto, uint16_t port,
                      const ObjectMatch &match) const noexcept;
    bool expr_matches(Range expr, const PeerTags &peer) const noexcept;
    AddressInfo info_of(uint32_t class_id) const noexcept;

    uint64_t version_ = 0;
    std::string bundle_version_;
    EnforcerProfile profile_;
    uint64_t flow_report_interval_s_ = 1800;
    bool drop_unmanaged_inside_ = false;
    bool resolvers_listed_ = false;
    Verdict default_action_[2] = {Verdict::kReject, Verdict::kReject};

    std::vector<std::string> strings_;
    std::vector<Policy> policies_;
    std::vector<Rule> rules_;
    std::vector<PortRange> ports_;
    std::vector<uint32_t> rule_nets_;
    std::vector<Pred> preds_;
    std::vector<Range> rule_lists_;  // into list_rules_
    std::vector<Rule> list_rules_;
    std::vector<Pu> pus_;
    std::vector<PeerTags> pu_tags_;  // by PU
    std::vector<PuPrefix> pu_prefixes_;
    std::unordered_map<std::string, uint32_t> pu_by_id_;
    std::vector<Network> networks_;
    std::vector<AddrClass> classes_;
    std::vector<uint32_t> class_nets_;
    std::vector<HostnameEntry> hostnames_;
    std::vector<std::string> warnings_;

    // Tag dictionary (control side only): exact "k=v" tags, keys, and value prefixes per key, each
    // with its own ID, so that every predicate becomes "has ID" or "has not ID".
    std::unordered_map<std::string, uint32_t> tag_ids_;
    std::unordered_map<std::string, uint32_t> key_ids_;
    std::unordered_map<std::string, std::vector<std::pair<std::string, uint32_t>>> prefix_ids_;
    uint32_t next_tag_id_ = 0;

    std::shared_ptr<const AddressTable> addr_;  // null: no prefixes at all
    bool addr_shared_ = false;
    uint32_t default_class_v4_ = 0;  // class of 0.0.0.0/0 (LPM cannot hold depth 0)
    uint32_t default_class_v6_ = 0;
};

}  // namespace segwire::policy
