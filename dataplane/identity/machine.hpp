// The identity stage as pure state machines: the vocabulary shared by the TCP, UDP and plain
// (address-only) machines. docs/identity-machines.md is the design note: the state charts, the
// "needs" protocol and the transition counts.
//
//   Result r = tcp::step(state, event, facts);
//
// A step reads a flow's FlowState, one Event and the Facts the adapter has, and returns an ordered
// list of Actions (effects, and for a packet exactly one fate) - or a Need: one more fact it must
// have before it can go on. Nothing here touches an mbuf, a ring, a clock, a cache or a global;
// nothing allocates or throws. The mbuf work, the caches and the slow path live in the adapter
// (the worker), which must make no decision of its own: it answers needs and applies actions.
//
// The needs protocol, in short (the design note has the whole of it):
//   facts = the packet's eager facts; answers.known = 0
//   loop:
//     r = step(state, event, facts)          // `state`: the same value for every re-step
//     apply r.actions in order               // these are new since the previous step
//     if r.need.kind == kNone: done
//     perform r.need (a lookup, a draw, an edit or a send), store its answer, set its known bit
// A step replays its path from the start on every call and emits only the actions that follow the
// last answered need, so the adapter applies each action exactly once.
#pragma once

#include <cstddef>
#include <cstdint>

#include "dataplane/packet/parse.hpp"  // DropReason: the one list of drop reasons

namespace segwire::dp::identity {

// ---------------------------------------------------------------------------------------------
// State

// A flow's authorization state. Same values as dp::Auth (dataplane/flow/flow_table.hpp), so the
// adapter converts with a cast; tests/unit/identity asserts that the two lists agree.
enum class Auth : uint8_t {
    kNew = 0,          // not classified yet
    kPass,             // not ours to enforce: untouched
    kAllowed,          // authorized
    kRejected,         // refused
    kClientSyn,        // TCP client role: SYN sent with identity, waiting for the SYN-ACK
    kClientAck,        // TCP client role: SYN-ACK verified; the proof rides on client segments
    kServerSyn,        // TCP server role: SYN verified and forwarded, waiting for the SYN-ACK
    kServerSynAck,     // TCP server role: SYN-ACK sent with identity, waiting for the proof
    kUdpClientSyn,     // UDP client role: SYN sent, datagrams held
    kUdpServerSynAck,  // UDP server role: SYN-ACK sent, waiting for the ACK
    kUdpResetSent,     // UDP: datagram from a managed peer without state: RESET sent, held
    // L4 mode (docs/l4-mode.md): identity records in the byte stream after the handshake
    kL4ClientSyn,      // client role: plain SYN forwarded, waiting for the SYN-ACK
    kL4ClientWait,     // client role: handshake seen; R1 sent (at the host's ACK), waiting for R2
    kL4ClientConfirm,  // client role: R2 verified, R3 sent, authorized (shifted); R3 unacked
    kL4ServerSyn,      // server role: plain SYN forwarded, waiting for the server's SYN-ACK
    kL4ServerWait,     // server role: waiting for R1 (then R2 sent, waiting for R3)
    kCount
};

// Same values as dp::Role.
enum class Role : uint8_t { kNone = 0, kClient = 1, kServer = 2, kCount };

// What a step reads of a flow. `parked` and `in_batch` belong to the adapter (it sets them when a
// Park or QueueMacs fate succeeds and clears them when the slow path or the HMAC batch answers);
// the machines only read them. The other fields change only through the actions of a step.
struct FlowState {
    Auth auth = Auth::kNew;
    Role role = Role::kNone;
    bool hs = false;        // a handshake context is attached
    bool peer = false;      // a peer identity is pinned
    bool parked = false;    // packets are held for a slow-path answer
    bool in_batch = false;  // a packet of the flow waits for this burst's HMAC batch
};

// ---------------------------------------------------------------------------------------------
// Events

enum class EventKind : uint8_t {
    kPacket,       // a packet of the flow (Facts::pkt describes it)
    kMacsReady,    // this burst's HMACs are done; the packet a QueueMacs fate took comes back
    kTimer,        // the housekeeping scan reaches the flow's armed handshake context (UDP
                   // retransmissions and waits; TCP: the half-open deadline)
    kReevaluate,   // a new policy snapshot: the sweep reaches the flow
    kExpire,       // the flow table removes the idle flow
    kPortsReused,  // TCP: a SYN reuses a finished connection's ports (sent before its kPacket)
    kCount
};

// Which HMAC job a QueueMacs fate started (carried back by kMacsReady).
enum class BatchOp : uint8_t {
    kClientCheckSynAck,  // client role: check MAC_sa of the peer's SYN-ACK
    kServerSignSynAck,   // server role: MAC_sa for our SYN-ACK (and MAC_ack / MAC_cf to expect)
    kL4ClientCheckR2,    // L4 client role: check R2's MAC_sa, compute MAC_ack for R3
    kL4ServerSignR2,     // L4 server role: MAC_sa for R2 (and MAC_ack to expect in R3)
    kCount
};

struct Event {
    EventKind kind = EventKind::kPacket;
    BatchOp op = BatchOp::kClientCheckSynAck;  // kMacsReady only
};

// ---------------------------------------------------------------------------------------------
// Facts: what the adapter knows without asking anyone (eager) ...

enum class Arrival : uint8_t { kInside = 0, kOutside = 1, kCount };

// TCP flag class. The parser drops SYN with RST or FIN, so the four are exclusive.
enum class TcpKind : uint8_t {
    kSyn,     // SYN without ACK
    kSynAck,  // SYN and ACK
    kRst,     // RST (never with SYN)
    kOther,   // anything else (ACK, data, FIN)
    kCount
};

// The packet's TCP options, as far as segwire's option goes (find_tcp_option).
enum class TcpOpt : uint8_t {
    kNoExp,      // no RFC 6994 option at all (PacketView::opt.exp_off == 0)
    kNotOurs,    // RFC 6994 options, none of them segwire's (WireStatus::NotPresent)
    kMalformed,  // any other WireStatus error (bad length, version, type, two options, ...)
    kSyn,        // segwire's option, type SYN
    kSynAck,     // type SYN-ACK
    kAck,        // type ACK proof
    kConfirm,    // type confirmation
    kCount
};

// The token at the tail of a SYN / SYN-ACK payload (parse_token). Non-SYN segments: kMalformed.
enum class Token : uint8_t { kMalformed, kSyn, kSynAck, kCount };

// A UDP datagram as a possible control message (udp_control_of + parse_udp_message).
enum class UdpCtl : uint8_t {
    kNone,       // not a control datagram (UDP Length != 8, fragment, no EXP option, bad OCS)
    kMalformed,  // our EXP option, but the surplus or the message does not parse
    kSyn,
    kSynAck,
    kAck,
    kReject,
    kReset,
    kCount
};

// L4 mode: what a segment from the peer's enforcer adds to the record stream the flow expects
// (the adapter reassembles the payload into the handshake context; docs/l4-mode.md "Records").
enum class L4Rec : uint8_t {
    kNone,       // no payload (or the flow expects no record)
    kPartial,    // payload of a record not yet complete
    kR1,         // a complete R1 (the stream from the client's ISN + 1)
    kR2,         // a complete R2 (the stream from the server's ISN + 1)
    kR3,         // a complete R3 (right after R1)
    kOld,        // payload that lies wholly inside a record already taken (a retransmission)
    kBeyond,     // payload after the expected record (it overtook the record, or host data
                 // after the peer's last record): held until the records are done
    kNotRecord,  // the stream does not start with a record: host data (a peer without L4)
    kBad,        // a record that can never be valid, of the wrong type, or a retransmission
                 // that changes a byte already held
    kCount
};

struct PacketFacts {
    Arrival arrival = Arrival::kInside;
    TcpKind kind = TcpKind::kOther;
    TcpOpt opt = TcpOpt::kNoExp;
    Token token = Token::kMalformed;
    UdpCtl ctl = UdpCtl::kNone;
    // Compared with the flow's handshake context (false when it has none):
    bool mac_ok = false;        // the MAC in the packet (TCP ACK proof or confirmation option,
                                // UDP ACK) is the one the context expects for that type
    bool nonce_client = false;  // the packet's nonce (TCP token, UDP SYN / SYN-ACK token, UDP
                                // REJECT's echoed nonce) equals the context's client nonce
    bool nonce_server = false;  // ... equals the context's server nonce
    bool acks_syn = false;      // TCP SYN-ACK: its ACK number acknowledges the SYN the context
                                // recorded (the client's ISN + 1): not a blind forgery
    bool dns_reply = false;     // source port 53 with payload, on a flow its local PU initiated
    bool udp_len8 = false;      // UDP Length 8: possibly one of our control datagrams
    bool icmp_control = false;  // ICMP error / IPv6 neighbour discovery (plain machine)
    bool nonce_seen = false;    // a SYN's (TCP token or UDP control) client nonce opened another
                                // flow within the claims lifetime: a replayed SYN
    // L4 mode (segments of a flow in an L4 state; docs/l4-mode.md):
    L4Rec l4_rec = L4Rec::kNone;  // what the payload adds to the expected record
    bool seq_data = false;        // the segment occupies sequence space (payload or FIN)
    bool auto_peer = false;       // a SYN-ACK from a PU hosted by another enforcer, in the
                                  // profile's auto networks (v1's option stripped on the way)
    bool acks_record = false;     // from outside: its ACK number covers bytes of a record this
                                  // enforcer sent (the peer's enforcer acknowledges it)
};

// ... and the answers to the needs a step asked (each valid only when its bit is in `known`).
enum class NeedKind : uint8_t {
    kNone = 0,
    kClassify,      // classify the local and the peer address (policy snapshot)
    kPlainPeer,     // is the packet's destination a server known to have no enforcer?
    kLocalClaims,   // the local PU's signed claims
    kLocalPu,       // the PU of the flow's local address
    kPeer,          // the peer's claims blob in the peer cache
    kSessionKey,    // the session key for (local, peer) ephemeral keys
    kRules,         // the rules decision for a verified peer
    kAcl,           // the external-network ACL decision for the peer's address
    kNonce,         // draw a nonce into the handshake context
    kConfirmation,  // B's kept confirmation for the flow
    kEdit,          // edit the packet (add or strip segwire's option / token)
    kSend,          // build and send a UDP control datagram whose failure changes the path
    kCount
};
static_assert(static_cast<int>(NeedKind::kCount) <= 16);

enum class ClassifyAnswer : uint8_t {
    kPass,  // excluded network, no PU or an ignored PU: not ours
    kOurs,  // a local PU: enforce
    kCount
};
enum class ClaimsAnswer : uint8_t {
    kAbsent,  // no claims for the PU (signing failed or pending)
    kPresent,
    kSame,  // present, and the same blob (hash) the handshake context's server side used
    kCount
};
enum class LocalPuAnswer : uint8_t { kNone, kIgnored, kFound, kCount };
enum class PeerAnswer : uint8_t {
    kVerified,  // cached, verified, tags of the current snapshot
    kRefused,   // cached refusal (the identity carries the ClaimsReason)
    kMiss,      // not cached: the slow path must verify it
    kStale,     // cached, verified, tags of an older snapshot: the slow path must re-tag it
    kRevoked,   // refused because the certificate that signed the claims is revoked (whether
                // the slow path said so or the Console's revocation list came later)
    kCount
};
enum class ConfirmationAnswer : uint8_t {
    kNone,    // no confirmation kept for the flow (or it expired)
    kRecent,  // kept, last sent less than a millisecond ago
    kDue,     // kept, may be sent again
    kCount
};
enum class KeyAnswer : uint8_t {
    kMissing,  // not cached: the slow path must derive it
    kCached,
    kFailed,  // the derivation failed for this pair of ephemeral keys within the last minute
              // (the peer's key is one X25519 refuses): asking again would loop on the slow path
    kCount
};
enum class SendAnswer : uint8_t {
    kSent,
    kNoToken,  // the message could not be written (token too large)
    kNoMbuf,   // no mbuf for the datagram
    kCount
};

struct Answers {
    uint16_t known = 0;  // bit (1 << NeedKind) per answered need
    ClassifyAnswer classify = ClassifyAnswer::kOurs;
    bool managed_tcp = false;  // kClassify: the peer is in the profile's managed TCP networks
    bool managed_udp = false;  // kClassify: ... managed UDP networks
    bool l4 = false;           // kClassify: ... and in the profile's L4 networks
    bool plain_peer = false;
    ClaimsAnswer claims = ClaimsAnswer::kPresent;
    LocalPuAnswer local_pu = LocalPuAnswer::kFound;
    PeerAnswer peer = PeerAnswer::kVerified;
    // kPeer, kRefused: the drop reason (a value the step passes on, not a branch): claims-invalid,
    // or a binding refusal (claims-unknown-pu, claims-pu-not-hosted, claims-address-mismatch).
    DropReason refusal = DropReason::ClaimsInvalid;
    KeyAnswer key = KeyAnswer::kCached;  // kSessionKey
    bool rules_accept = true;            // kRules: the decision's action is accept
    bool acl_accept = true;              // kAcl: the decision's action is accept
    // kAcl refused: why (a value passed on): policy-reject, or identity-required for a peer in
    // the profile's identityRequiredNetworks.
    DropReason acl_refusal = DropReason::PolicyReject;
    bool nonce = true;  // kNonce: drawn
    ConfirmationAnswer confirmation = ConfirmationAnswer::kNone;
    DropReason edit = DropReason::None;  // kEdit: None, or why it failed
    SendAnswer sent = SendAnswer::kSent;

    bool has(NeedKind k) const noexcept { return known & (1u << static_cast<unsigned>(k)); }
    void mark(NeedKind k) noexcept {
        known |= static_cast<uint16_t>(1u << static_cast<unsigned>(k));
    }
};

// Every field a step may branch on, for the trace (tests enumerate paths with it).
enum class Field : uint8_t {
    // FlowState
    kRole,
    kHs,
    kPeer,
    kParked,
    kInBatch,
    // PacketFacts
    kArrival,
    kKind,
    kOpt,
    kToken,
    kCtl,
    kMacOk,
    kNonceClient,
    kNonceServer,
    kAcksSyn,
    kDnsReply,
    kUdpLen8,
    kIcmpControl,
    kNonceSeen,
    kL4Rec,
    kAcksRecord,
    kSeqData,
    kAutoPeer,
    // time, resources, configuration, batch, sweep
    kSinceSendMs,
    kElapsedMs,
    kTries,
    kTimerStale,
    kHsPool,
    kRejectWithRst,
    kSynAckMacOk,
    kBatchAccept,
    kDecidedCurrent,
    kPeerTagsCurrent,
    kRetagPending,
    kAcksSeen,
    kPeerRevoked,
    kL4Sent,
    kL4Acked,
    // Answers
    kClassify,
    kManagedTcp,
    kManagedUdp,
    kL4,
    kPlainPeer,
    kClaims,
    kLocalPu,
    kPeerAnswer,
    kKey,
    kRulesAccept,
    kAclAccept,
    kNonce,
    kConfirmation,
    kEdit,
    kSent,
    kCount
};

// One branch a step took: field `field` tested as `test` (an enum value compared with, a
// threshold in units of 100 ms, or kValue for a switch on the whole value) gave `value`.
struct FactUse {
    Field field;
    uint8_t test;
    uint8_t value;
};
inline constexpr uint8_t kValue = 0xff;

struct Trace {
    static constexpr size_t kCap = 40;
    FactUse uses[kCap];
    uint8_t n = 0;
    bool overflow = false;
};

struct Facts;
struct Need;
struct Action;

// For tests: a step run the adapter's way (needs performed as they are reached, detail.hpp
// Direct) reports each action and need here.
struct Oracle {
    virtual void take(const Action *actions, uint8_t n) noexcept = 0;
    virtual void answer(const Need &need) noexcept = 0;

  protected:
    ~Oracle() = default;
};

struct Facts {
    PacketFacts pkt;
    // Time: whole milliseconds (the adapter divides TSC ticks by ticks per ms, so a comparison
    // with N ms is exactly the worker's `ticks >= N * ms_tsc`).
    uint32_t since_send_ms = 0;  // UDP data datagram or RESET: since the kept control
                                 // datagram was last sent
    uint32_t elapsed_ms = 0;     // timer: since the timer was armed
    uint8_t tries = 0;           // timer: retransmissions of the kept datagram so far
    bool timer_stale = false;    // timer: the context no longer belongs to a live flow
    // Resources and configuration
    bool hs_pool = true;  // the worker's handshake-context pool has a free entry, the
                          // flow's source has its share of them left, and (UDP) a kept
                          // control datagram may be had (docs/handshake.md "Budgets")
    DropReason hs_refusal = DropReason::SlowpathBusy;  // !hs_pool: why (a value passed on):
                                                       // slowpath-busy or source-share
    bool reject_with_rst = true;  // handshake.reject = rst (else a refused SYN is dropped)
    // kMacsReady
    bool synack_mac_ok = false;  // client op: the SYN-ACK's token parses and its MAC_sa is right
    bool batch_accept = false;   // client op: the rules decision queued with the op accepts
    // kReevaluate
    bool decided_current = false;    // the flow was decided under the current snapshot
    bool peer_tags_current = false;  // the pinned peer's tags are the current snapshot's
    bool retag_pending = false;      // a retag job for the pinned peer is in flight
    bool acks_seen = false;          // TCP: both hosts' ACK numbers are known (for RSTs)
    // L4 mode: the handshake context's own record (R1, R2 or R3)
    bool l4_sent = false;       // sent (and kept for retransmission)
    bool l4_acked = false;      // acknowledged by the peer's enforcer
    bool peer_revoked = false;  // the pinned peer is no longer valid: its certificate is on
                                // the revocation list, or its PU's record no longer binds it
    DropReason peer_cut =
        DropReason::CertificateRevoked;  // with peer_revoked: the reason (a value)

    Answers answers;
    Trace *trace = nullptr;  // tests: record every branch taken
};

// ---------------------------------------------------------------------------------------------
// Needs

enum class PuFrom : uint8_t {
    kClassified,  // the local address's PU from this event's kClassify answer
    kHandshake,   // the handshake context's local PU, as it was when the event began
    kLocal,       // this event's kLocalPu answer (the PU of the flow's local address)
    kCount
};
enum class DirFrom : uint8_t {
    kOutgoing,
    kIncoming,
    kFromSides,  // outgoing when the local side initiated the flow, else incoming
    kCount
};
enum class PortFrom : uint8_t {
    kSrcPort,     // the packet's source port
    kDstPort,     // the packet's destination port
    kResponder,   // the flow key's port of the side that did not initiate
    kPolicyPort,  // policy_port(): icmp_key(type, code) for ICMP, else the destination port
    kCount
};
enum class PeerFrom : uint8_t {
    kNone,    // no peer identity
    kLooked,  // the identity of this event's kPeer answer, or the one queued with the batch op
    kFlow,    // the flow's pinned identity
    kCount
};
enum class NonceFor : uint8_t { kClient, kServer, kCount };

enum class Edit : uint8_t {
    kStrip,              // remove segwire's option
    kStripWithToken,     // remove the option and the token (its length from the token)
    kAddSynIdentity,     // SYN marker + token: context's client nonce, the local claims
    kAddSynAckIdentity,  // SYN-ACK marker + token: server nonce, local claims, MAC_sa
    kAddAckProof,        // ACK-proof option with the context's MAC_ack
    kStripTfo,           // L4: a host's TCP Fast Open option and SYN data off its SYN
    kStripToken,         // the token alone (its option was stripped on the way)
    kL4Syn,              // L4, A: the host's TFO off; with the server enforcer's cookie cached,
                         // TFO(cookie) and R1 as SYN data, else a cookie request
    kL4SynAckIn,         // L4, A: the enforcer's cookie kept and its option off, the ACK number
                         // back to the host's (R1 in the SYN acknowledged)
    kL4SynAckOut,        // L4, B: the ACK number covers R1 taken from the SYN, our cookie added
                         // when the SYN asked for one
    kCount
};

enum class UdpMsg : uint8_t { kSyn, kSynAck, kAck, kReject, kReset, kCount };

// Where a control datagram or an RST goes.
enum class To : uint8_t {
    kSource,       // back to the sender of the packet in hand
    kDestination,  // on to where the packet in hand was going
    kInitiator,    // the host that initiated the flow
    kResponder,    // the other one
    kCount
};

struct Need {
    NeedKind kind = NeedKind::kNone;
    PuFrom pu = PuFrom::kClassified;       // kLocalClaims, kRules, kAcl
    DirFrom dir = DirFrom::kOutgoing;      // kRules, kAcl
    PortFrom port = PortFrom::kResponder;  // kRules, kAcl
    PeerFrom peer = PeerFrom::kLooked;     // kRules (whose tags)
    Role role = Role::kNone;               // kSessionKey: client (context's local key, looked-up
                                           // peer) or server (local claims' key, flow's peer)
    NonceFor nonce = NonceFor::kClient;    // kNonce: into which nonce of the context
    Edit edit = Edit::kStrip;              // kEdit
    UdpMsg msg = UdpMsg::kSyn;             // kSend (kSyn or kSynAck; kept for retransmission)
    To to = To::kSource;                   // kSend
};

// ---------------------------------------------------------------------------------------------
// Actions

// Identity counters a machine names (IdentityStats fields of the same name). Counters that belong
// to an operation (cache hits and misses, jobs, records, RSTs built, HMAC batches, retransmissions
// and the counter of each UDP message sent) are counted by the adapter when it performs it.
#define SEGWIRE_IDENTITY_COUNTERS(X) \
    X(syn_signed)                    \
    X(syn_verified)                  \
    X(synack_signed)                 \
    X(synack_verified)               \
    X(ack_proofs_added)              \
    X(ack_proofs_verified)           \
    X(authorized)                    \
    X(rejected)                      \
    X(acl_decisions)                 \
    X(passthrough)                   \
    X(flows_cut)                     \
    X(confirms_received)             \
    X(confirms_missed)               \
    X(options_scrubbed)              \
    X(syns_on_open_flow)             \
    X(udp_syn_sent)                  \
    X(udp_synack_sent)               \
    X(udp_resets_sent)               \
    X(udp_resets_received)           \
    X(udp_fallbacks)                 \
    X(udp_control_consumed)          \
    X(udp_handshakes_restarted)      \
    X(udp_expired)                   \
    X(half_open_expired)             \
    X(l4_started)                    \
    X(auto_fallbacks)                \
    X(l4_plain_clients)

enum class Counter : uint8_t {
#define X(name) name,
    SEGWIRE_IDENTITY_COUNTERS(X)
#undef X
        kCount
};

// Slow-path job a Park fate sends.
enum class Job : uint8_t { kVerify, kRetag, kSessionKey, kCount };

// What FillHs copies into the handshake context.
enum class HsFill : uint8_t {
    kClientClaims,  // client hash and local key <- the local claims
    kServerSyn,     // client nonce <- the SYN's token, client hash <- the looked-up peer
    kServerClaims,  // server hash and local key <- the local claims
    kSynAckIn,      // server nonce <- the SYN-ACK's token, server hash <- the looked-up peer
    kL4Isn,         // L4: the ISN of the SYN or SYN-ACK in hand (the record stream starts after it)
    kL4R1In,        // L4: client nonce <- R1, client hash <- the looked-up peer
    kL4R2In,        // L4: server nonce <- R2, server hash <- the looked-up peer
    kCount
};

enum class DecisionFrom : uint8_t {
    kEmpty,    // policy::Decision{} (no rule applied)
    kDecided,  // this event's kRules / kAcl answer, or the decision queued with the batch op
    kCount
};

// UdpReject flags (Action::c of kSendUdp).
inline constexpr uint8_t kKeep = 1;             // keep the datagram in the context for re-sends
inline constexpr uint8_t kEchoServerNonce = 2;  // REJECT echoes the context's server nonce
                                                // (else the nonce of the token in hand)
inline constexpr uint8_t kReasonClaims = 4;     // REJECT reason "claims" (else "policy")

#define SEGWIRE_IDENTITY_ACTIONS(X)                                                             \
    /* fates: exactly one per packet (kPacket, kMacsReady); a is a parameter as named */        \
    X(Forward, "to the other port; a = 1 when an edit of this event stripped segwire's option") \
    X(Drop, "free and count under DropReason a")                                                \
    X(Hold, "into the flow's hold queue (full: drop hold-full)")                                \
    X(Park, "slow-path job a (Job; b = Role for a session key), hold the packet, mark parked")  \
    X(Defer, "run again after this burst's HMAC batch")                                         \
    X(Consume, "free without counting (a control message segwire consumed)")                    \
    X(QueueMacs, "into the HMAC batch as op a (BatchOp), peer b (PeerFrom), decision c")        \
    X(SnoopDns, "DNS answer: to the slow path if it answers a pending query, else forward")     \
    /* effects */                                                                               \
    X(TrackSeq, "remember the ACK number its sender sent (TCP)")                                \
    X(SetLocalSide, "the local side := the inside host's side")                                 \
    X(SetRole, "role := a")                                                                     \
    X(SetAuth, "auth := a")                                                                     \
    X(SetInitiator, "initiator := the packet's source (a = kSource) or destination")            \
    X(SetPeer, "pin peer a (PeerFrom: none or looked-up), unpinning the previous one")          \
    X(SetDecidedVersion, "decided_version := the current snapshot's")                           \
    X(AllocHs, "attach a handshake context with local PU a (PuFrom)")                           \
    X(FillHs, "copy HsFill a into the context")                                                 \
    X(FreeHs, "return the context (and its kept datagram) to the pool, disarm its timer")       \
    X(Record, "flow record: drop reason a, decision b (DecisionFrom), peer c (PeerFrom)")       \
    X(RecordException, "connection-exception record (handshake-expired)")                       \
    X(Rst, "forge an RST to a (kInitiator or kResponder), if a buffer is free")                 \
    X(CutRsts, "RSTs to both hosts from the flow's own addresses (policy cut)")                 \
    X(MidstreamRsts,                                                                            \
      "RSTs to both hosts of the segment in hand, each with the sequence number it expects "    \
      "(receiver: the segment's, sender: its ACK), within the mid-stream reset budget")         \
    X(CutReset, "UDP RESET to the peer's enforcer from the flow's own addresses (policy cut)")  \
    X(SendConfirm, "send B's confirmation; a = 0: the context's MAC_cf, 1: the kept one")       \
    X(StoreConfirmation, "keep the context's MAC_cf for the flow (~3 s), sent now")             \
    X(TouchConfirmation, "the kept confirmation was sent now")                                  \
    X(RememberPlainPeer,                                                                        \
      "remember a server without enforcer (60 s): a = 0 packet source, "                        \
      "1 the flow's peer address")                                                              \
    X(ReleaseHeld, "forward every held packet, in order")                                       \
    X(DropHeld, "drop every held packet, counted under DropReason a")                           \
    X(Restart,                                                                                  \
      "drop held (flow-rejected), free context, unpin peer, auth new, role none, "              \
      "decided version and ACK numbers 0")                                                      \
    X(Count, "count Counter a")                                                                 \
    X(CountDrop, "count DropReason a without dropping (the packet goes on)")                    \
    X(SendUdp, "UDP control message a (UdpMsg: ack, reject, reset) to b (To), flags c")         \
    X(Resend, "send a copy of the kept control datagram (counts udp_retransmits)")              \
    X(ArmTimer, "arm the context's timer from now, tries 0")                                    \
    X(IncTries, "one more retransmission")                                                      \
    X(ResetTries, "retransmissions counted from zero again (the hosts' handshake restarted)")   \
    X(Disarm, "disarm the context's timer")                                                     \
    X(StartRetag, "ask the slow path to re-tag the pinned peer (if a job is free)")             \
    X(SweepIncomplete, "the policy sweep must come round again")                                \
    X(ClampMss, "lower the MSS option by 24 (if above 24) and fix the checksums")               \
    X(RemoveFlow, "remove the flow from the flow table (after the kExpire actions)")            \
    X(L4Send, "write record a (1 R1, 2 R2, 3 R3) into its own segment to the peer, kept, sent") \
    X(L4Resend, "send the kept record again (counts l4_retransmits)")                           \
    X(L4Acked, "the kept record is acknowledged: free it")                                      \
    X(L4AckPeer, "a pure ACK to the peer's enforcer acknowledging its record")                  \
    X(L4Shift, "the records are final: shift this flow's segments from now on (kL4Bit)")        \
    X(RememberL4Peer, "auto mode: use L4 towards the packet's source (address, port) for a while")

enum class Act : uint8_t {
#define X(name, text) k##name,
    SEGWIRE_IDENTITY_ACTIONS(X)
#undef X
        kEnd  // (not kCount: an action is called Count)
};

inline constexpr bool is_fate(Act a) noexcept {
    return a <= Act::kSnoopDns;
}

struct Action {  // no member initializers: a Result's array is written, never cleared
    Act kind;
    uint8_t a, b, c;
};

struct Result {
    static constexpr size_t kMaxActions = 12;
    Action actions[kMaxActions];
    uint8_t n = 0;
    bool overflow = false;  // more than kMaxActions (a bug: tests assert it never happens)
    Need need;              // kNone: the step is complete
    FlowState next;         // the state after every action of the path so far (tests)

    // The fate among these actions, or nullptr (none yet, or not a packet event).
    const Action *fate() const noexcept {
        for (uint8_t i = 0; i < n; ++i)
            if (is_fate(actions[i].kind)) return &actions[i];
        return nullptr;
    }
};

// The part of an action that changes FlowState (role, auth, hs, peer); the adapter applies the
// same change to the flow, the tests to their model. Inline: every replayed action goes through it.
inline void apply_state(FlowState &s, const Action &a) noexcept {
    switch (a.kind) {
        case Act::kSetRole:
            s.role = static_cast<Role>(a.a);
            return;
        case Act::kSetAuth:
            s.auth = static_cast<Auth>(a.a);
            return;
        case Act::kSetPeer:
            s.peer = static_cast<PeerFrom>(a.a) != PeerFrom::kNone;
            return;
        case Act::kAllocHs:
            s.hs = true;
            return;
        case Act::kFreeHs:
            s.hs = false;
            return;
        case Act::kRestart:
            s.hs = false;
            s.peer = false;
            s.auth = Auth::kNew;
            s.role = Role::kNone;
            return;
        default:
            return;
    }
}

// Names, for tests, traces and the design note.
const char *name(Auth) noexcept;
const char *name(Role) noexcept;
const char *name(EventKind) noexcept;
const char *name(BatchOp) noexcept;
const char *name(Act) noexcept;
const char *name(Counter) noexcept;
const char *name(NeedKind) noexcept;
const char *name(Field) noexcept;

}  // namespace segwire::dp::identity
