// Contract: flow records (FlowRecordEvent), one per decision, one per expired handshake and, with
// flow accounting on (IdentityRuntime::active_timeout_s), counter records: a flow's packets and
// bytes at its end and every active timeout while it lasts (docs/export.md).
// Written by: a worker lcore, by value into its single-producer ring IdentityRuntime::records[id].
// Read by: the control thread (control/enforcement.cpp, Enforcement::tick), which resolves names
// with the snapshot of `policy_version`, aggregates them into flow reports and hands counter
// records to the flow exporter (control/flowexport/).
// Fixed size, no pointers into worker memory, so the ring carries them by value.
#pragma once

#include <cstddef>
#include <cstdint>

#include "dataplane/packet/parse.hpp"

namespace segwire::dp {

// kFlowCounters: the packets and bytes of a decided flow since its previous counter record, with
// the decision fields of its last kFlow record (the same report key).
enum class RecordKind : uint8_t { kFlow = 0, kConnectionException = 1, kFlowCounters = 2 };

// Why a counter record was made: IPFIX flowEndReason (IANA IE 136, RFC 5102 section 5.11.3).
enum class EndReason : uint8_t {
    kNone = 0,
    kIdle = 1,    // idle timeout: the flow table expired it (or a handshake timed out)
    kActive = 2,  // active timeout: the flow goes on, this record counts an interval of it
    kEnd = 3,     // end of flow detected: TCP FIN/RST, a refused flow removed, ports reused
};
inline const char *end_reason_name(EndReason r) noexcept {
    switch (r) {
        case EndReason::kIdle:
            return "idle";
        case EndReason::kActive:
            return "active";
        case EndReason::kEnd:
            return "end";
        case EndReason::kNone:
            break;
    }
    return "none";
}

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
    EndReason end_reason;  // kFlowCounters
    uint16_t sport, dport;
    uint32_t local_pu;                                           // snapshot index of the local PU
    uint32_t policy, observed_policy, rule_name, observed_rule;  // snapshot indices (kNone = none)
    IpAddr src, dst;
    char peer_id[64];  // the peer PU's ID from its claims (PeerKind::kClaims), NUL-padded
    // kFlowCounters only: [0] sent by the source (the initiator), [1] by the destination, since
    // the flow's previous counter record; packets and bytes of their IP datagrams. The interval
    // starts at start_ms (unix milliseconds: the flow's first packet, then the previous record)
    // and ends duration_ms later (its last packet).
    uint32_t duration_ms;
    uint64_t packets[2];
    uint64_t bytes[2];
    uint64_t start_ms;
};
// Three cache lines: the counters fill what the decision fields left (no record grew).
static_assert(sizeof(FlowRecordEvent) == 192);
static_assert(offsetof(FlowRecordEvent, duration_ms) == 148 &&
              offsetof(FlowRecordEvent, start_ms) == 184);

}  // namespace segwire::dp
