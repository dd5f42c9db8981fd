// PolicySet + resolved profile → PolicySnapshot (dataplane/policy/snapshot.hpp). Control thread
// only: allocates and throws. See docs/policy.md, "Compilation".
#pragma once

#include <cstdint>
#include <memory>

#include "config/policy/model.hpp"
#include "dataplane/policy/budget.hpp"
#include "dataplane/policy/snapshot.hpp"

namespace segwire::control {

// Per family, up to this many prefixes go into a DPDK RIB (memory ∝ prefixes, a trie walk per
// lookup); more into an LPM (a fixed 64 MiB tbl24, one or two reads per lookup). The limits keep a
// RIB lookup under the 50 ns classify target (an IPv6 trie step costs several times an IPv4 one);
// docs/policy.md, "Memory sizing", has the figures behind them.
inline constexpr uint32_t kRibMaxPrefixesV4 = 1024;
inline constexpr uint32_t kRibMaxPrefixesV6 = 128;

struct CompileOptions {
    // The snapshot in force, if any: when the new prefix → class map equals its map (a rule-only
    // update), the new snapshot shares its address tables instead of building new ones.
    const policy::PolicySnapshot *previous = nullptr;
    uint32_t rib_max_v4 = kRibMaxPrefixesV4;
    uint32_t rib_max_v6 = kRibMaxPrefixesV6;
    // Held by the snapshot for its whole life (see SnapshotBudget); empty = not counted.
    policy::SnapshotBudget::Ticket ticket;
};

// Compile a validated PolicySet for an enforcer whose profile has been resolved (see
// resolve_profile). Needs the EAL (the address tables live in DPDK memory). Throws PolicyError,
// or SnapshotResourceError when DPDK memory runs out.
std::unique_ptr<policy::PolicySnapshot> compile_snapshot(const policy::PolicySet &set,
                                                         const policy::EnforcerProfile &profile,
                                                         CompileOptions options = {});

}  // namespace segwire::control
