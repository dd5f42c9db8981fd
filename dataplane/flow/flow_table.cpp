#include "dataplane/flow/flow_table.hpp"

#include <rte_errno.h>
#include <rte_hash.h>
#include <rte_malloc.h>

#include <immintrin.h>

#include <cstring>

namespace segwire::dp {
namespace {

uint32_t hash_fn(const void *key, uint32_t, uint32_t) {
    FlowKey k;
    std::memcpy(&k, key, sizeof k);
    return flow_hash(k);
}

// Key equality for rte_hash (0 = equal, as memcmp): 40 bytes as two 16-byte and one 8-byte
// compare. rte_hash has specialised compares for multiples of 16 bytes only and calls memcmp for
// 40.
int key_cmp(const void *x, const void *y, size_t) {
    const auto *a = static_cast<const uint8_t *>(x), *b = static_cast<const uint8_t *>(y);
    const __m128i d0 = _mm_xor_si128(_mm_loadu_si128(reinterpret_cast<const __m128i *>(a)),
                                     _mm_loadu_si128(reinterpret_cast<const __m128i *>(b)));
    const __m128i d1 = _mm_xor_si128(_mm_loadu_si128(reinterpret_cast<const __m128i *>(a + 16)),
                                     _mm_loadu_si128(reinterpret_cast<const __m128i *>(b + 16)));
    uint64_t t0, t1;
    std::memcpy(&t0, a + 32, 8);
    std::memcpy(&t1, b + 32, 8);
    return !_mm_testz_si128(_mm_or_si128(d0, d1), _mm_or_si128(d0, d1)) || t0 != t1;
}
static_assert(sizeof(FlowKey) == 5 * sizeof(uint64_t));

}  // namespace

const char *tcp_state_name(TcpState s) {
    switch (s) {
        case TcpState::None:
            return "NONE";
        case TcpState::SynSent:
            return "SYN_SENT";
        case TcpState::SynReceived:
            return "SYN_RECEIVED";
        case TcpState::Established:
            return "ESTABLISHED";
        case TcpState::FinWait:
            return "FIN_WAIT";
        case TcpState::Closing:
            return "CLOSING";
        case TcpState::Closed:
            return "CLOSED";
    }
    return "?";
}

const char *auth_name(Auth a) {
    switch (a) {
        case Auth::kNew:
            return "NEW";
        case Auth::kPass:
            return "PASS";
        case Auth::kAllowed:
            return "ALLOWED";
        case Auth::kRejected:
            return "REJECTED";
        case Auth::kClientSyn:
            return "CLIENT_SYN";
        case Auth::kClientAck:
            return "CLIENT_ACK";
        case Auth::kServerSyn:
            return "SERVER_SYN";
        case Auth::kUdpClientSyn:
            return "UDP_CLIENT_SYN";
        case Auth::kUdpServerSynAck:
            return "UDP_SERVER_SYNACK";
        case Auth::kUdpResetSent:
            return "UDP_RESET_SENT";
        case Auth::kServerSynAck:
            return "SERVER_SYNACK";
        case Auth::kL4ClientSyn:
            return "L4_CLIENT_SYN";
        case Auth::kL4ClientWait:
            return "L4_CLIENT_WAIT";
        case Auth::kL4ClientConfirm:
            return "L4_CLIENT_CONFIRM";
        case Auth::kL4ServerSyn:
            return "L4_SERVER_SYN";
        case Auth::kL4ServerWait:
            return "L4_SERVER_WAIT";
    }
    return "?";
}

const char *timeout_class_name(uint8_t c) {
    static const char *const n[] = {"tcp-handshake", "tcp-established", "tcp-closing",
                                    "udp",           "other",           "rejected"};
    return c < kTimeoutClassCount ? n[c] : "?";
}

FlowTable::~FlowTable() {
    if (hash_) rte_hash_free(hash_);
    rte_free(flows_);
    rte_free(keys_);
}

rte_hash *make_bounded_hash(const std::string &name, uint32_t capacity, uint32_t key_len,
                            uint32_t (*hash)(const void *, uint32_t, uint32_t), uint32_t seed,
                            int socket, std::string &err) {
    rte_hash_parameters p{};
    p.name = name.c_str();
    p.entries = capacity;
    p.key_len = key_len;
    p.hash_func = hash;
    p.hash_func_init_val = seed;
    p.socket_id = socket;
    p.extra_flag = RTE_HASH_EXTRA_FLAGS_EXT_TABLE;
    rte_hash *h = rte_hash_create(&p);
    if (!h)
        err = "rte_hash_create(" + name + ", " + std::to_string(capacity) +
              "): " + rte_strerror(rte_errno);
    return h;
}

bool FlowTable::init(const std::string &name, uint32_t capacity, int socket,
                     const uint32_t timeouts_s[], uint64_t tsc_hz, std::string &err) {
    // hash_fn = flow_hash, which FlowTable::hash gives the worker. "Table full" means exactly
    // `capacity` flows.
    hash_ = make_bounded_hash(name, capacity, sizeof(FlowKey), hash_fn, 0, socket, err);
    if (!hash_) return false;
    rte_hash_set_cmp_func(hash_, key_cmp);
    flows_ = static_cast<Flow *>(
        rte_zmalloc_socket("flows", sizeof(Flow) * capacity, alignof(Flow), socket));
    keys_ = static_cast<FlowKey *>(
        rte_zmalloc_socket("flow_keys", sizeof(FlowKey) * capacity, 64, socket));
    if (!flows_ || !keys_) {
        err = "cannot allocate " + std::to_string(capacity) + " flows";
        return false;
    }
    for (uint32_t i = 0; i < capacity; ++i) flows_[i].tclass = kTimeoutClassCount;
    capacity_ = capacity;
    for (int c = 0; c < kTimeoutClassCount; ++c) {
        timeout_tsc_[c] = uint64_t(timeouts_s[c]) * tsc_hz;
        head_[c] = tail_[c] = kNil;
    }
    return true;
}

void FlowTable::lookup_bulk(const FlowKey *const *keys, const uint32_t *sigs, uint32_t n,
                            int32_t *positions) const {
    rte_hash_lookup_with_hash_bulk(
        hash_, reinterpret_cast<const void **>(const_cast<const FlowKey **>(keys)),
        const_cast<uint32_t *>(sigs), n, positions);
}

int32_t FlowTable::lookup(const FlowKey &k, uint32_t sig) const {
    return rte_hash_lookup_with_hash(hash_, &k, sig);
}

int32_t FlowTable::insert(const FlowKey &k, uint32_t sig, uint64_t now, uint8_t tclass,
                          bool *created) {
    // rte_hash_add looks the key up first and returns the existing position for a known key (one
    // search, not a lookup and then an add): a flow in use there is never re-initialised.
    if (created) *created = false;
    int32_t pos = rte_hash_add_key_with_hash(hash_, &k, sig);
    if (pos < 0) {
        ++stats_.refused;
        return -1;
    }
    if (in_use(static_cast<uint32_t>(pos))) return pos;
    if (created) *created = true;
    Flow &f = flows_[pos];
    f = Flow{};
    f.hs = kNil;
    f.created_tsc = now;
    f.last_tsc = now;
    keys_[pos] = k;
    link_tail(static_cast<uint32_t>(pos), tclass, now);
    ++size_;
    ++stats_.created;
    return pos;
}

void FlowTable::link_tail(uint32_t pos, uint8_t c, uint64_t now) {
    Flow &f = flows_[pos];
    f.tclass = c;
    f.list_tsc = now;
    f.next = kNil;
    f.prev = tail_[c];
    if (tail_[c] != kNil)
        flows_[tail_[c]].next = pos;
    else
        head_[c] = pos;
    tail_[c] = pos;
}

void FlowTable::unlink(uint32_t pos) {
    Flow &f = flows_[pos];
    uint8_t c = f.tclass;
    if (f.prev != kNil)
        flows_[f.prev].next = f.next;
    else
        head_[c] = f.next;
    if (f.next != kNil)
        flows_[f.next].prev = f.prev;
    else
        tail_[c] = f.prev;
}

void FlowTable::touch(int32_t pos, uint64_t now, uint8_t tclass) {
    Flow &f = flows_[pos];
    f.last_tsc = now;
    if (f.tclass != tclass) {
        unlink(static_cast<uint32_t>(pos));
        link_tail(static_cast<uint32_t>(pos), tclass, now);
    }
}

void FlowTable::remove(int32_t pos) {
    unlink(static_cast<uint32_t>(pos));
    rte_hash_del_key(hash_, &keys_[pos]);
    flows_[pos].tclass = kTimeoutClassCount;
    --size_;
}

uint32_t FlowTable::expire(uint64_t now, uint32_t budget, RemoveHook on_remove, void *ctx) {
    uint32_t removed = 0;
    for (uint8_t c = 0; c < kTimeoutClassCount && budget; ++c) {
        const uint64_t to = timeout_tsc_[c];
        while (budget && head_[c] != kNil) {
            uint32_t pos = head_[c];
            Flow &f = flows_[pos];
            // Everything behind a flow queued less than one timeout ago is younger still.
            if (now - f.list_tsc < to) break;
            --budget;
            if (now - f.last_tsc >= to) {
                if (on_remove) on_remove(ctx, static_cast<int32_t>(pos), f);
                remove(static_cast<int32_t>(pos));
                ++stats_.expired;
                ++removed;
            } else {
                unlink(pos);
                link_tail(pos, c,
                          now);  // keeps the list ordered: expiry lands within 2x the timeout
            }
        }
    }
    return removed;
}

uint8_t timeout_class_for(uint8_t proto, TcpState s) {
    if (proto == kProtoTcp) {
        switch (s) {
            case TcpState::None:
            case TcpState::SynSent:
            case TcpState::SynReceived:
                return kTcpHandshake;
            case TcpState::Established:
            case TcpState::FinWait:
                return kTcpEstablished;
            case TcpState::Closing:
            case TcpState::Closed:
                return kTcpClosing;
        }
    }
    return proto == kProtoUdp ? kUdp : kOther;
}

// tcp_track's inline test (flow_table.hpp) spells these flags as numbers.
static_assert((kTcpSyn | kTcpFin | kTcpRst) == (0x02 | 0x01 | 0x04));

uint8_t tcp_track_slow(Flow &f, uint8_t side, uint8_t fl) {
    const bool syn = fl & kTcpSyn, ack = fl & kTcpAck;
    if (fl & kTcpRst) {
        f.state = TcpState::Closed;
    } else if (syn && !ack) {
        // A new SYN after the connection ended is port reuse: start over.
        if (f.state == TcpState::None || f.state == TcpState::Closing ||
            f.state == TcpState::Closed) {
            f.state = TcpState::SynSent;
            f.init_side = side;
            f.fin_seen = 0;
        }
    } else if (syn && ack) {
        if (f.state == TcpState::SynSent && side != f.init_side) f.state = TcpState::SynReceived;
    } else {
        if (f.state == TcpState::SynReceived && side == f.init_side && ack)
            f.state = TcpState::Established;
        else if (f.state == TcpState::None && f.pkts[side ^ 1]) {
            // Picked up mid-stream (e.g. the appliance restarted under a live connection): a
            // connection once both directions are seen. Until then the flow keeps the short
            // handshake timeout, so spoofed one-way segments cannot hold table entries for an hour.
            f.state = TcpState::Established;
        }
        if (fl & kTcpFin) {
            f.fin_seen |= uint8_t(1u << side);
            f.state = f.fin_seen == 3 ? TcpState::Closing : TcpState::FinWait;
        }
    }
    return timeout_class_for(kProtoTcp, f.state);
}

}  // namespace segwire::dp
