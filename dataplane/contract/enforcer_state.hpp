// Contract: what the control thread publishes to workers (EnforcerState, RevokedCerts).
// Written by: the control thread (control/enforcement.cpp, Enforcement::publish_locked; also on
// the slow-path thread when a DNS answer teaches new addresses). Each state is immutable once
// published through the RCU slot IdentityRuntime::state (dataplane/policy/rcu.hpp).
// Read by: every worker lcore, once per loop (state->current()); a pointer stays valid until the
// worker reports its quiescent state at the end of the loop.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "crypto/claims.hpp"
#include "crypto/keys.hpp"
#include "dataplane/policy/snapshot.hpp"

namespace segwire::dp {

namespace dns {
class FqdnSet;  // dataplane/dns/fqdn_set.hpp
}

// The Console's revocation list: SHA-256 of each revoked certificate (the claims' cert_ref),
// sorted, built once by the control thread. contains() is a binary search: no allocation, and one
// size test when the list is empty (the usual case).
struct RevokedCerts {
    std::vector<crypto::Digest> refs;  // sorted, unique

    bool contains(const uint8_t *ref) const noexcept {
        size_t lo = 0, hi = refs.size();
        while (lo < hi) {
            const size_t mid = (lo + hi) / 2;
            const int c = std::memcmp(refs[mid].data(), ref, 32);
            if (c == 0) return true;
            if (c < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        return false;
    }
};

// Everything a worker needs to enforce: the compiled policy and each local PU's signed claims
// (indexed like the snapshot's PUs; null for ignored PUs). Claims are re-signed on key rotation
// without recompiling the policy, so the snapshot is shared between successive states.
struct EnforcerState {
    std::shared_ptr<const policy::PolicySnapshot> policy;
    std::vector<std::shared_ptr<const crypto::SignedClaims>> claims;
    uint64_t version = 0;  // increases with every publication
    // Addresses learned from snooped DNS answers for hostname entries (docs/dns.md); replaced,
    // with the rest of the state copied, every time an answer teaches something new.
    std::shared_ptr<const dns::FqdnSet> fqdn;
    // The revocation list that came with the policy (null or empty: none). Peer claims signed by
    // a listed certificate are refused, cached or not, and flows they authorized are cut.
    std::shared_ptr<const RevokedCerts> revoked;

    // Who hosts each PU (by snapshot PU index), from its enforcerID: the ingress check of docs/
    // handshake.md "Anti-spoofing" (a hosted PU's address only from inside, another enforcer's
    // PU only from outside).
    enum Hosting : uint8_t { kHostedByNone = 0, kHostedHere = 1, kHostedElsewhere = 2 };
    std::vector<uint8_t> hosting;

    // L7 mode (docs/l7-path.md): the L7 service ports of hosted PUs, (PU index << 16 | TCP port),
    // sorted: a new TCP flow from outside to one of them is steered to the exception interface.
    // Empty when no service selects a hosted PU (then nothing is looked up).
    std::vector<uint64_t> l7_ports;

    bool l7_service(uint32_t pu, uint16_t port) const noexcept {
        const uint64_t k = uint64_t(pu) << 16 | port;
        size_t lo = 0, hi = l7_ports.size();
        while (lo < hi) {
            const size_t mid = (lo + hi) / 2;
            if (l7_ports[mid] == k) return true;
            if (l7_ports[mid] < k)
                lo = mid + 1;
            else
                hi = mid;
        }
        return false;
    }

    Hosting hosting_of(uint32_t pu) const noexcept {
        return pu < hosting.size() ? static_cast<Hosting>(hosting[pu]) : kHostedByNone;
    }
    const crypto::SignedClaims *claims_of(uint32_t pu) const noexcept {
        return pu < claims.size() ? claims[pu].get() : nullptr;
    }
    bool cert_revoked(const uint8_t *ref) const noexcept {
        return revoked && !revoked->refs.empty() && revoked->contains(ref);
    }
};

}  // namespace segwire::dp
