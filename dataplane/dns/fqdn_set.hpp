// The addresses learned from DNS answers for hostname entries, as workers read them: an immutable
// set built by control::dns::FqdnLearner (control/dns/fqdn.hpp) and published with the
// EnforcerState (dataplane/contract/enforcer_state.hpp). An address is learned for the PU that
// asked: one PU's answers never widen another PU's rules. Lookups on the packet path: no
// allocation, no locks. See docs/dns.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace segwire::control::dns {
class FqdnLearner;
}

namespace segwire::dp::dns {

// Addresses are 16 bytes: IPv6, or IPv4-mapped ::ffff:a.b.c.d (the DnsAddress form).
class FqdnSet {
  public:
    FqdnSet() = default;  // empty: matches nothing

    // The external networks (indices into the snapshot this set was built for, sorted) the
    // address was learned for from answers to PU `pu`'s queries (`pu`: its index in that
    // snapshot), counting only records with now_unix < expires_at. The span points into this
    // set. No allocation, no locks.
    std::span<const uint32_t> networks_for(const uint8_t addr16[16], uint32_t pu,
                                           uint32_t now_unix) const noexcept;
    // Same, for an IPv4 address given as its 4 bytes (the dataplane's IpAddr form).
    std::span<const uint32_t> networks_for_v4(const uint8_t addr4[4], uint32_t pu,
                                              uint32_t now_unix) const noexcept;

    size_t addresses() const noexcept { return addresses_; }  // distinct (address, PU) pairs
    size_t size() const noexcept { return entries_.size(); }  // (address, PU, expiry level)
    uint32_t built_at() const noexcept { return built_at_; }
    // The version passed to FqdnLearner::rebuild(): which snapshot's network indices these are.
    uint64_t snapshot_version() const noexcept { return snapshot_version_; }

  private:
    friend class control::dns::FqdnLearner;  // the one writer
    // Sorted by address and PU, then expires_at descending. For one (address, PU), entry k holds
    // the union of the networks of every record expiring at or after entries[k].expires_at, so
    // the answer at time t is the last entry of the run with t < expires_at.
    struct Entry {
        uint8_t addr[16];
        uint32_t pu;
        uint32_t expires_at;
        uint32_t off, cnt;  // into nets_
    };
    std::vector<Entry> entries_;
    std::vector<uint32_t> nets_;
    size_t addresses_ = 0;
    uint32_t built_at_ = 0;
    uint64_t snapshot_version_ = 0;
};

}  // namespace segwire::dp::dns
