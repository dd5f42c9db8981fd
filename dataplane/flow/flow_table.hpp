// Per-worker flow table: rte_hash keyed by the canonical FlowKey; the hash's key position is the
// index of the Flow in a preallocated array, so there is no second allocator. Bounded: at the
// limit insert() refuses and existing flows are untouched.
//
// Ageing follows FD.io VPP's ACL plugin: one FIFO list per timeout class. A packet only stamps
// `last_tsc` (and moves the flow when its class changes); expire() looks at list heads, expiring
// flows idle past their class timeout and re-queueing refreshed ones, and stops at the first flow
// queued less than one timeout ago - so no per-packet timer work and O(1) amortised scanning.
#pragma once

#include <nmmintrin.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "dataplane/flow/flow_key.hpp"
#include "dataplane/flow/hold_queue.hpp"

struct rte_hash;

namespace segwire::dp {

// A worker's rte_hash with extendable buckets: every one of `capacity` keys fits whatever the
// hash collisions, so "full" means exactly `capacity` keys. The key position (0..capacity-1)
// indexes the owner's array. Control-time; on failure returns null with `err` naming the call.
rte_hash *make_bounded_hash(const std::string &name, uint32_t capacity, uint32_t key_len,
                            uint32_t (*hash)(const void *, uint32_t, uint32_t), uint32_t seed,
                            int socket, std::string &err);

struct PeerIdentity;

enum class TcpState : uint8_t {
    None = 0,  // not TCP, or picked up mid-stream before any packet classified it
    SynSent,
    SynReceived,
    Established,
    FinWait,  // one side sent FIN
    Closing,  // both sides sent FIN
    Closed,   // RST seen
};
const char *tcp_state_name(TcpState s);

enum TimeoutClass : uint8_t {
    kTcpHandshake = 0,
    kTcpEstablished,
    kTcpClosing,
    kUdp,
    kOther,
    // A refused flow whose entry stays (one its local PU started): its timeout runs from the first
    // refused packet and the packets it drops do not refresh it, so the tuple is tried again
    // (the client's next SYN or datagram starts over) after this hold-down.
    kRejectedHold,
    kTimeoutClassCount
};
const char *timeout_class_name(uint8_t c);

inline constexpr uint32_t kNil = UINT32_MAX;

// Authorization state of a flow (docs/handshake.md).
enum class Auth : uint8_t {
    kNew = 0,       // not classified yet
    kPass,          // not ours to enforce (no local PU, ignored PU, excluded, no policy): untouched
    kAllowed,       // authorized: forwarded
    kRejected,      // refused: further packets dropped
    kClientSyn,     // client role: SYN sent with our identity, waiting for the SYN-ACK
    kClientAck,     // client role: SYN-ACK verified; our proof rides on client packets
    kServerSyn,     // server role: SYN verified and forwarded, waiting for the server's SYN-ACK
    kServerSynAck,  // server role: SYN-ACK sent with identity, waiting for the client's proof
    // UDP (docs/protocol.md §9): control datagrams on the flow's own tuple
    kUdpClientSyn,     // client role: SYN sent, application datagrams held
    kUdpServerSynAck,  // server role: SYN-ACK sent, waiting for the ACK; datagrams held
    kUdpResetSent,     // datagram from a managed peer without state: RESET sent, datagrams held
    // L4 mode (docs/l4-mode.md): identity records in the byte stream right after the handshake
    kL4ClientSyn,      // client role: plain SYN forwarded, waiting for the SYN-ACK
    kL4ClientWait,     // client role: R1 sent at the host's ACK, waiting for R2; data held
    kL4ClientConfirm,  // client role: R2 verified, R3 sent, authorized; R3 not yet acknowledged
    kL4ServerSyn,      // server role: plain SYN forwarded, waiting for the server's SYN-ACK
    kL4ServerWait,     // server role: waiting for R1, then (R2 sent) for R3; data held
};
const char *auth_name(Auth a);

// L7 mode (docs/l7-path.md): a client's flow to an L7 service port goes to the exception interface
// in place of the PU's port; the proxy's upstream flow to the PU comes from it and its replies go
// back to it.
enum L7Steer : uint8_t { kL7None = 0, kL7Client = 1, kL7Upstream = 2 };

enum Role : uint8_t { kRoleNone = 0, kRoleClient = 1, kRoleServer = 2 };

struct alignas(64) Flow {
    uint64_t last_tsc;  // last packet
    uint64_t list_tsc;  // when it was (re)queued on its timeout list
    uint64_t created_tsc;
    uint32_t prev, next;  // timeout-class list links
    TcpState state;
    uint8_t tclass;
    uint8_t init_side;  // side that sent the first SYN (or first packet)
    uint8_t fin_seen;   // bit per side
    uint8_t worker;     // < kMaxWorkers (64)
    uint8_t l7;         // L7Steer: the flow goes through the L7 exception interface
    uint16_t in_port;   // port side the initiator's packets arrive on
    uint64_t pkts[2];   // per source side
    uint64_t bytes[2];
    // --- identity and policy ---
    Auth auth;
    uint8_t role;              // Role
    uint8_t parked;            // packets held until the slow path answers
    uint8_t local_side;        // canonical side of the local PU
    uint32_t hs;               // handshake context index, or kNil
    PeerIdentity *peer;        // the peer's verified identity, pinned (null: peer without one)
    uint64_t decided_version;  // policy snapshot version of the last decision
    uint32_t ack_seen[2];      // latest ACK number each side sent: what it expects next (for RSTs)
    HoldList hold;             // packets held while authorization is pending
    uint8_t mac[2][6];         // Ethernet address of each side's host, for RSTs we originate
};
static_assert(sizeof(Flow) == 128, "two cache lines per flow");

// The flow table's hash, also rte_hash's own hash function for the table (rte_hash_del_key hashes
// the key itself): CRC32C of the 40-byte key in two independent chains, so a packet waits for
// three dependent crc32 instructions rather than five. Inline: it runs for every packet.
inline uint32_t flow_hash(const FlowKey &k) {
    uint64_t w[5];
    std::memcpy(w, &k, sizeof w);
    uint64_t a = _mm_crc32_u64(0x5e9f1a3b, w[0]);
    uint64_t b = _mm_crc32_u64(0x3c6ef372, w[3]);
    a = _mm_crc32_u64(a, w[1]);
    b = _mm_crc32_u64(b, w[4]);
    a = _mm_crc32_u64(a, w[2]);
    const uint32_t hb = static_cast<uint32_t>(b);
    return static_cast<uint32_t>(a) ^ (hb << 16 | hb >> 16);
}

struct FlowTableStats {
    uint64_t created = 0;
    uint64_t refused = 0;  // table full
    uint64_t expired = 0;
};

class FlowTable {
  public:
    FlowTable() = default;
    ~FlowTable();
    FlowTable(const FlowTable &) = delete;
    FlowTable &operator=(const FlowTable &) = delete;

    // Control-time: allocates. Timeouts in seconds are converted with tsc_hz.
    bool init(const std::string &name, uint32_t capacity, int socket, const uint32_t timeouts_s[],
              uint64_t tsc_hz, std::string &err);

    uint32_t capacity() const { return capacity_; }
    uint32_t size() const { return size_; }
    uint32_t hash(const FlowKey &k) const { return flow_hash(k); }

    // Hot path. Positions < 0 are misses.
    void lookup_bulk(const FlowKey *const *keys, const uint32_t *sigs, uint32_t n,
                     int32_t *positions) const;
    int32_t lookup(const FlowKey &k, uint32_t sig) const;
    // Returns the new flow's position, or -1 when the table is full (counted). A key already in
    // the table returns its flow untouched; `created` (optional) tells which case it was.
    int32_t insert(const FlowKey &k, uint32_t sig, uint64_t now, uint8_t tclass,
                   bool *created = nullptr);
    Flow &at(int32_t pos) { return flows_[pos]; }
    const Flow &at(int32_t pos) const { return flows_[pos]; }
    const FlowKey &key_at(int32_t pos) const { return keys_[pos]; }
    bool in_use(uint32_t pos) const { return flows_[pos].tclass != kTimeoutClassCount; }

    // Stamp a packet; moves the flow to another timeout list when its class changed.
    void touch(int32_t pos, uint64_t now, uint8_t tclass);
    void remove(int32_t pos);

    // Expire at most `budget` flows idle past their timeout. Returns how many were removed.
    // `on_remove` (optional) sees each flow just before it goes.
    using RemoveHook = void (*)(void *ctx, int32_t pos, Flow &f);
    uint32_t expire(uint64_t now, uint32_t budget, RemoveHook on_remove = nullptr,
                    void *ctx = nullptr);

    const FlowTableStats &stats() const { return stats_; }

  private:
    void link_tail(uint32_t pos, uint8_t tclass, uint64_t now);
    void unlink(uint32_t pos);

    rte_hash *hash_ = nullptr;
    Flow *flows_ = nullptr;
    FlowKey *keys_ = nullptr;  // copy per position, for removal and listing
    uint32_t capacity_ = 0;
    uint32_t size_ = 0;
    uint64_t timeout_tsc_[kTimeoutClassCount] = {};
    uint32_t head_[kTimeoutClassCount];
    uint32_t tail_[kTimeoutClassCount];
    FlowTableStats stats_;
};

// TCP state tracking for one packet from `side`. Returns the timeout class for the new state.
// The established path's case - a segment without SYN, FIN or RST on an established connection,
// which changes nothing - is decided inline; everything else takes the out-of-line tracker.
uint8_t tcp_track_slow(Flow &f, uint8_t side, uint8_t tcp_flags);
inline uint8_t tcp_track(Flow &f, uint8_t side, uint8_t tcp_flags) {
    constexpr uint8_t kSynFinRst = 0x02 | 0x01 | 0x04;  // parse.hpp's kTcpSyn | kTcpFin | kTcpRst
    if (!(tcp_flags & kSynFinRst) && f.state == TcpState::Established) [[likely]]
        return kTcpEstablished;
    return tcp_track_slow(f, side, tcp_flags);
}
uint8_t timeout_class_for(uint8_t proto, TcpState s);

}  // namespace segwire::dp
