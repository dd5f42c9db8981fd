// Contract: flow records (FlowRecordEvent), one per decision and one per expired handshake.
// Written by: a worker lcore, by value into its single-producer ring IdentityRuntime::records[id].
// Read by: the control thread (control/enforcement.cpp, Enforcement::tick), which resolves names
// with the snapshot of `policy_version` and aggregates them into flow reports.
// Fixed size, no pointers into worker memory, so the ring carries them by value.
#pragma once

#include <cstdint>

#include "dataplane/packet/parse.hpp"

namespace segwire::dp {

enum class RecordKind : uint8_t { kFlow = 0, kConnectionException = 1 };

// Who the peer is, as FlowReport's sourceType/destinationType say it.
enum class PeerKind : uint8_t { kExternal = 0, kClaims = 1 };

// Handshake states named in connection-exception reports.
// How the peer was identified (flow reports' `mode`): by address (an ACL, or no identity), by
// v1's handshake (TCP options) or UDP's, or by L4 mode's records (docs/l4-mode.md), "l4-auto" when
// an auto network chose L4 after v1's option was stripped on the way.
enum class IdMode : uint8_t { kAddress = 0, kV1 = 1, kUdp = 2, kL4 = 3, kL4Auto = 4 };
inline const char *id_mode_name(IdMode m) noexcept {
    switch (m) {
        case IdMode::kV1:
            return "v1";
        case IdMode::kUdp:
            return "udp";
        case IdMode::kL4:
            return "l4";
        case IdMode::kL4Auto:
            return "l4-auto";
        case IdMode::kAddress:
            break;
    }
    return "address";
}

enum class HsState : uint8_t { kNone = 0, kSynTransmitted, kSynAckTransmitted, kAckTransmitted };

struct alignas(64) FlowRecordEvent {
    uint64_t policy_version;  // the snapshot the indices below belong to
    uint32_t timestamp;       // unix seconds
    RecordKind kind;
    uint8_t family;
    uint8_t proto;
    uint8_t action;           // policy::Verdict
    uint8_t observed_action;  // policy::Verdict
    uint8_t reason;           // policy::Reason
    DropReason drop_reason;   // None when accepted
    uint8_t claims_reason;    // crypto::ClaimsReason when drop_reason is ClaimsInvalid
    uint8_t local_is_source;  // the local PU sent the first packet (outgoing)
    PeerKind peer_kind;
    HsState hs_state;
    uint8_t observation;  // 1 when an observed rule applied
    IdMode mode;
    uint16_t sport, dport;
    uint32_t local_pu;                                           // snapshot index of the local PU
    uint32_t policy, observed_policy, rule_name, observed_rule;  // snapshot indices (kNone = none)
    IpAddr src, dst;
    char peer_id[64];  // the peer PU's ID from its claims (PeerKind::kClaims), NUL-padded
};
static_assert(sizeof(FlowRecordEvent) == 192);

}  // namespace segwire::dp
