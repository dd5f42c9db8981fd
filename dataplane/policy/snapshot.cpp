// The read side of a PolicySnapshot: lookups and decide(). Runs on worker lcores.
#include "dataplane/policy/snapshot.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

#include "dataplane/policy/address_table.hpp"

namespace segwire::policy {

const char *to_string(Verdict v) {
    switch (v) {
        case Verdict::kAccept:
            return "Accept";
        case Verdict::kReject:
            return "Reject";
        case Verdict::kNotApplicable:
            return "NotApplicable";
    }
    return "?";
}

const char *to_string(Reason r) {
    switch (r) {
        case Reason::kRule:
            return "rule";
        case Reason::kDefault:
            return "default";
        case Reason::kIgnoredPu:
            return "ignored-pu";
        case Reason::kUnknownPu:
            return "unknown-pu";
        case Reason::kStalePeerTags:
            return "stale-peer-tags";
    }
    return "?";
}

IpAddr IpAddr::parse(std::string_view text) {
    std::string s(text);
    IpAddr a;
    uint8_t buf[16];
    if (inet_pton(AF_INET, s.c_str(), buf) == 1) {
        a.v4 = uint32_t(buf[0]) << 24 | uint32_t(buf[1]) << 16 | uint32_t(buf[2]) << 8 | buf[3];
        return a;
    }
    if (inet_pton(AF_INET6, s.c_str(), buf) == 1) return from_v6(buf);
    throw PolicyError("address", "(value)", "\"" + s + "\" is not an IPv4 or IPv6 address");
}

bool PeerTags::has(uint32_t id) const noexcept {
    // Peers carry tens of tags; a branch-light binary search beats hashing here.
    return std::binary_search(ids_.begin(), ids_.end(), id);
}

PolicySnapshot::~PolicySnapshot() = default;

AddressInfo PolicySnapshot::info_of(uint32_t class_id) const noexcept {
    const AddrClass &c = classes_[class_id];
    return AddressInfo{c.pu, c.flags, class_id};
}

AddressInfo PolicySnapshot::classify_v4(uint32_t host_order) const noexcept {
    uint32_t cls;
    if (addr_ == nullptr || !addr_->lookup_v4(host_order, &cls)) cls = default_class_v4_;
    return info_of(cls);
}

void PolicySnapshot::classify_v4_bulk(const uint32_t *host_order, AddressInfo *out,
                                      unsigned n) const noexcept {
    uint32_t cls[64];
    n = std::min(n, 64u);
    if (addr_ == nullptr) {
        for (unsigned i = 0; i < n; ++i) out[i] = info_of(default_class_v4_);
        return;
    }
    addr_->lookup_v4_bulk(host_order, cls, n, default_class_v4_);
    for (unsigned i = 0; i < n; ++i) out[i] = info_of(cls[i]);
}

AddressInfo PolicySnapshot::classify_v6(const uint8_t addr[16]) const noexcept {
    uint32_t cls;
    if (addr_ == nullptr || !addr_->lookup_v6(addr, &cls)) cls = default_class_v6_;
    return info_of(cls);
}

std::span<const uint32_t> PolicySnapshot::networks_of(uint32_t class_id) const noexcept {
    if (class_id >= classes_.size()) return {};
    const Range &r = classes_[class_id].nets;
    return {class_nets_.data() + r.off, r.cnt};
}

uint32_t PolicySnapshot::find_pu_by_id(std::string_view id) const {
    auto it = pu_by_id_.find(std::string(id));
    return it == pu_by_id_.end() ? kNone : it->second;
}

bool PolicySnapshot::pu_covers(uint32_t pu, const IpAddr &a) const noexcept {
    if (pu >= pus_.size()) return false;
    const Range r = pus_[pu].addrs;
    for (uint32_t i = r.off; i < r.off + r.cnt; ++i) {
        const PuPrefix &p = pu_prefixes_[i];
        if (p.v6 != a.v6) continue;
        if (!p.v6) {
            const uint32_t mask = p.len == 0 ? 0 : ~uint32_t(0) << (32 - p.len);
            if ((a.v4 & mask) == (p.v4 & mask)) return true;
            continue;
        }
        const unsigned whole = p.len / 8, rest = p.len % 8;
        if (std::memcmp(a.b6.data(), p.b6.data(), whole) != 0) continue;
        if (rest && ((a.b6[whole] ^ p.b6[whole]) & static_cast<uint8_t>(0xff00u >> rest))) continue;
        return true;
    }
    return false;
}

std::string_view PolicySnapshot::policy_name(uint32_t policy) const {
    return policy < policies_.size() ? str(policies_[policy].name) : std::string_view();
}

std::string_view PolicySnapshot::policy_id(uint32_t policy) const {
    if (policy >= policies_.size()) return {};
    std::string_view id = str(policies_[policy].id);
    return id.empty() ? str(policies_[policy].name) : id;
}

PolicySnapshot::Stats PolicySnapshot::stats() const {
    return Stats{static_cast<uint32_t>(rules_.size()),
                 static_cast<uint32_t>(rule_lists_.size()),
                 static_cast<uint32_t>(classes_.size()),
                 addr_ ? addr_->prefixes_v4() : 0,
                 addr_ ? addr_->prefixes_v6() : 0,
                 next_tag_id_,
                 to_string(addr_ ? addr_->kind_v4() : AddressTable::Kind::kNone),
                 to_string(addr_ ? addr_->kind_v6() : AddressTable::Kind::kNone),
                 addr_ ? addr_->dpdk_bytes() : 0,
                 addr_shared_};
}

PeerTags PolicySnapshot::make_peer_tags(std::span<const std::string> tags) const {
    PeerTags p;
    p.version_ = version_;
    for (const std::string &t : tags) {
        size_t eq = t.find('=');
        if (eq == std::string::npos || eq == 0) continue;  // not a k=v tag: cannot match anything
        if (auto it = tag_ids_.find(t); it != tag_ids_.end()) p.ids_.push_back(it->second);
        std::string key = t.substr(0, eq);
        if (auto it = key_ids_.find(key); it != key_ids_.end()) p.ids_.push_back(it->second);
        if (auto it = prefix_ids_.find(key); it != prefix_ids_.end()) {
            std::string_view value = std::string_view(t).substr(eq + 1);
            for (const auto &[prefix, id] : it->second)
                if (value.starts_with(prefix)) p.ids_.push_back(id);
        }
    }
    std::sort(p.ids_.begin(), p.ids_.end());
    p.ids_.erase(std::unique(p.ids_.begin(), p.ids_.end()), p.ids_.end());
    // Two independent 64-bit mixes of the ID set: a collision would need both to collide.
    uint64_t a = 0x9e3779b97f4a7c15ull ^ p.ids_.size(), b = 0xc2b2ae3d27d4eb4full + p.ids_.size();
    for (uint32_t id : p.ids_) {
        a = (a ^ id) * 0x100000001b3ull;
        a ^= a >> 32;
        b = (b + id + 0x9e3779b97f4a7c15ull) * 0xbf58476d1ce4e5b9ull;
        b ^= b >> 31;
    }
    p.key_ = {a, b};
    return p;
}

bool PolicySnapshot::expr_matches(Range expr, const PeerTags &peer) const noexcept {
    bool clause_ok = true;
    for (uint32_t i = expr.off; i < expr.off + expr.cnt; ++i) {
        const Pred &p = preds_[i];
        // Once a predicate fails, skip to the end of its clause without more lookups.
        clause_ok = clause_ok && peer.has(p.id) != p.negate;
        if (p.clause_end) {
            if (clause_ok) return true;
            clause_ok = true;
        }
    }
    return false;
}

template <typename ObjectMatch>
Decision PolicySnapshot::evaluate(uint32_t pu, Direction dir, uint8_t proto, uint16_t port,
                                  const ObjectMatch &match) const noexcept {
    Decision d;
    if (pu >= pus_.size()) {
        d.reason = Reason::kUnknownPu;
        return d;
    }
    const Pu &p = pus_[pu];
    if (p.ignored) {
        d.action = Verdict::kAccept;
        d.reason = Reason::kIgnoredPu;
        return d;
    }
    // First matching rule of each class, in bundle order.
    const Rule *reject = nullptr, *accept = nullptr, *obs_reject = nullptr, *obs_accept = nullptr;
    const Range &list = rule_lists_[p.rules[static_cast<int>(dir)]];
    for (const Rule *r = list_rules_.data() + list.off, *end = r + list.cnt; r != end; ++r) {
        const Rule *&slot =
            r->observed ? (r->reject ? obs_reject : obs_accept) : (r->reject ? reject : accept);
        if (slot) continue;
        std::span<const PortRange> ports =
            r->inline_ports ? std::span<const PortRange>(r->ports, r->inline_ports)
                            : std::span<const PortRange>(ports_.data() + r->ports_range.off,
                                                         r->ports_range.cnt);
        if (!port_ranges_match(ports, proto, port)) continue;
        if (!match(*r)) continue;
        slot = r;
        if (reject && obs_reject) break;  // nothing can change the outcome
    }
    // Trireme's order: observe-reject → reject → observe-accept → accept → default. An observed
    // rule only fills observed_*; the verdict comes from enforced rules.
    if (obs_reject) {
        d.observed_action = Verdict::kReject;
        d.observed_policy = obs_reject->policy;
        d.observed_rule_name = obs_reject->name;
    }
    const Rule *decisive = nullptr;
    if (reject) {
        decisive = reject;
        d.action = Verdict::kReject;
    } else {
        if (!obs_reject && obs_accept) {
            d.observed_action = Verdict::kAccept;
            d.observed_policy = obs_accept->policy;
            d.observed_rule_name = obs_accept->name;
        }
        if (accept) {
            decisive = accept;
            d.action = Verdict::kAccept;
        }
    }
    if (decisive) {
        d.reason = Reason::kRule;
        d.policy = decisive->policy;
        d.rule_name = decisive->name;
        d.logs_disabled = decisive->logs_disabled;
    } else {
        d.reason = Reason::kDefault;
        d.action = default_action_[static_cast<int>(dir)];
    }
    return d;
}

Decision PolicySnapshot::decide(uint32_t pu, Direction dir, const PeerTags &peer, uint8_t proto,
                                uint16_t port) const noexcept {
    if (peer.version_ != version_) {
        Decision d;
        d.reason = Reason::kStalePeerTags;
        return d;
    }
    return evaluate(pu, dir, proto, port,
                    [&](const Rule &r) { return expr_matches(r.preds, peer); });
}

Decision PolicySnapshot::decide(uint32_t pu, Direction dir, const IpAddr &peer, uint8_t proto,
                                uint16_t port, std::span<const uint32_t> learned) const noexcept {
    std::span<const uint32_t> nets = networks_of(classify(peer).class_id);
    return evaluate(pu, dir, proto, port, [&](const Rule &r) {
        const uint32_t *first = rule_nets_.data() + r.nets.off, *last = first + r.nets.cnt;
        for (std::span<const uint32_t> set : {nets, learned}) {
            for (uint32_t n : set) {
                if (n >= networks_.size() || !std::binary_search(first, last, n)) continue;
                const Range &sp = networks_[n].service_ports;
                if (sp.cnt == 0 || port_ranges_match({ports_.data() + sp.off, sp.cnt}, proto, port))
                    return true;
            }
        }
        return false;
    });
}

}  // namespace segwire::policy
