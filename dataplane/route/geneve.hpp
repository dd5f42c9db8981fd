// GENEVE one-arm mode on a worker (docs/geneve.md): a load balancer (AWS Gateway Load Balancer's
// contract, RFC 8926) sends every packet of both directions encapsulated to the arm's address;
// segwire enforces on the inner packet and sends it back with the same options. Like routed mode
// it only changes how a packet gets in and out; it runs on top of the Router (the arm's address,
// ARP / ND, the FIB and neighbours that take the outer packet back to the load balancer).
//   ingress  (per received packet, before the flow stage): GENEVE to the arm's address and
//            udp_port is checked (RFC 8926: version, option lengths, critical options), its outer
//            header kept as a "context", and the packet becomes its inner IP packet behind a
//            fake Ethernet header whose two addresses name the context (02:5e + index): whatever
//            the identity stage builds from it (mirrors or copies of the flow's addresses) still
//            names it. The health-check port is answered; the rest goes to the Router (ARP, ND,
//            echo; nothing is routed).
//   egress   (per loop, before the Router's): every queued packet that names a context gets that
//            outer header back (addresses swapped, lengths and checksums set).
// No allocation on the packet path: contexts and endpoints live in preallocated arrays indexed
// by rte_hash positions.
#pragma once

#include <cstdint>
#include <string>

#include "config/appliance_config.hpp"
#include "dataplane/contract/geneve.hpp"
#include "dataplane/worker/tx_queues.hpp"

struct rte_hash;
struct rte_mbuf;

namespace segwire::dp {

class Router;

struct GeneveSetup {
    config::GeneveConfig cfg;
    uint16_t arm_mtu = 1500;  // the largest outer IP datagram
    uint32_t worker = 0;
    int socket = 0;
};

class Geneve {
  public:
    // Outer Ethernet + IPv6 + UDP + GENEVE base + 63 words of options.
    static constexpr uint32_t kMaxOuter = 14 + 40 + 8 + 8 + 252;

    Geneve() = default;
    ~Geneve();
    Geneve(const Geneve &) = delete;
    Geneve &operator=(const Geneve &) = delete;

    // Control time (allocates).
    bool init(const GeneveSetup &s, Router *router, TxQueues *tx, uint64_t tsc_hz,
              std::string &err);
    bool enabled() const { return router_ != nullptr; }
    uint16_t inner_mtu() const { return inner_mtu_; }

    // True: `m` now holds the inner packet (behind the fake Ethernet header) and `v` its view.
    // False: consumed (answered, handed to the router, dropped and counted).
    // `i`: the packet's index in the burst given to prefetch() (its context is looked up there).
    bool ingress(rte_mbuf *m, PacketView &v, uint8_t arrival, uint64_t now, uint16_t i) noexcept;
    // Once per received burst, before ingress: the contexts of the burst's GENEVE packets looked
    // up in one bulk lookup (rte_hash_lookup_bulk) and their entries prefetched, as the flow
    // table does for flows (with a context per flow, each lookup is a cache miss otherwise).
    void prefetch(rte_mbuf *const *pkts, uint16_t n) noexcept;
    // The endpoint index (1..) of a decapsulated packet or one built from it: the flow key's
    // `vlan` field in GENEVE mode. 0: no context.
    uint16_t endpoint_of(const rte_mbuf *m) const noexcept {
        const uint32_t c = context_of(m);
        return c < capacity_ && ctx_[c].in_use ? ctx_[c].endpoint : 0;
    }
    // Re-encapsulates every queued packet that names a context (before the Router's egress).
    void egress() noexcept;
    void housekeeping(uint64_t now) noexcept;

    GeneveStats &stats() { return stats_; }

  private:
    struct Context {
        uint64_t digest;
        uint64_t used_tsc;
        uint16_t len;      // template bytes: Ethernet + IP + UDP + GENEVE with options
        uint16_t l3_len;   // 20 or 40
        uint16_t gnv_len;  // GENEVE header and options
        uint16_t endpoint;
        uint8_t family;
        bool in_use;
        uint8_t hdr[kMaxOuter];  // the outer header to send back (addresses already swapped)
    };
    struct EKey {
        uint32_t vni;
        uint8_t data[44];  // the endpoint options' values, each after its length
    };
    static_assert(sizeof(EKey) == 48);

    static uint32_t context_of(const rte_mbuf *m) noexcept;
    void drop(rte_mbuf *m, DropReason r) noexcept;
    bool decap(rte_mbuf *m, PacketView &v, uint64_t now, uint16_t i) noexcept;
    int32_t context_for(const uint8_t *l3, const PacketView &v, const uint8_t *gnv,
                        uint16_t gnv_len, uint64_t now, uint16_t i) noexcept;
    int32_t endpoint_for(const uint8_t *gnv, uint16_t gnv_len) noexcept;
    void health(rte_mbuf *m, const PacketView &v) noexcept;
    void clamp_mss(rte_mbuf *m, PacketView &v) noexcept;
    bool encap(rte_mbuf *m, uint32_t c) noexcept;

    Router *router_ = nullptr;
    TxQueues *tx_ = nullptr;
    config::GeneveConfig cfg_;
    uint16_t arm_mtu_ = 1500, inner_mtu_ = 1432;
    uint64_t hz_ = 0, idle_tsc_ = 0, next_scan_tsc_ = 0;
    uint32_t scan_pos_ = 0;
    // Understood options as (class << 8 | type): endpoint options first.
    uint32_t known_[16];
    uint32_t nknown_ = 0, nendpoint_opts_ = 0;

    rte_hash *contexts_ = nullptr;  // digest (8 bytes) -> position in ctx_
    Context *ctx_ = nullptr;
    uint32_t capacity_ = 0, size_ = 0;
    int32_t last_ = -1;  // the last context used (consecutive packets of a flow share one)
    rte_hash *endpoints_ = nullptr;  // EKey -> position; endpoint index = position + 1
    uint32_t nendpoints_ = 0;

    // prefetch()'s answers for the burst being handled: digest and position (-1: not found;
    // -2: not looked up).
    uint64_t pre_digest_[kMaxBurst];
    int32_t pre_pos_[kMaxBurst];
    uint16_t pre_n_ = 0;

    GeneveStats stats_;
};

}  // namespace segwire::dp
