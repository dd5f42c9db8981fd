// Routed mode on a worker (docs/routed.md): how a packet gets in and out when segwire is a routed
// next hop instead of a bump in the wire. The identity stage between in and out is unchanged.
//   ingress  (per received packet, before the flow stage): ARP and ND for own addresses, echo
//            replies, then for transit: L2 destination is ours, a route exists and leaves by the
//            other port, TTL / hop limit > 1 (decremented, incremental checksum), the datagram
//            fits the egress MTU. Anything else becomes an ICMP error (rate limited) or a drop.
//   egress   (per loop, before tx): every packet queued for tx is routed by its destination (one
//            bulk FIB lookup per family), its next hop resolved in the worker's neighbour table
//            and its Ethernet addresses rewritten; a packet whose next hop is being resolved is
//            held (bounded) and sent when the answer comes.
// Neighbour table: per worker (one worker in routed mode for now), an rte_hash only this worker
// touches, so lookups need no lock; listings go through NeighbourDump as flow dumps do.
#pragma once

#include <cstdint>
#include <string>

#include "config/appliance_config.hpp"
#include "dataplane/contract/routing.hpp"
#include "dataplane/contract/worker_setup.hpp"
#include "dataplane/worker/tx_queues.hpp"

struct rte_hash;
struct rte_ring;
struct rte_mbuf;
struct rte_mempool;

namespace segwire::dp {

struct RouterSetup {
    const RoutedPorts *ports = nullptr;
    RouteSlot *routes = nullptr;
    config::RoutingConfig cfg;
    rte_mempool *pool = nullptr;
    uint32_t worker = 0;
    int socket = 0;
    // GENEVE one-arm mode: own addresses only (ARP, ND, echo); nothing is routed through.
    bool local_only = false;
};

class Router {
  public:
    Router() = default;
    ~Router();
    Router(const Router &) = delete;
    Router &operator=(const Router &) = delete;

    // Control time (allocates).
    bool init(const RouterSetup &s, TxQueues *tx, uint64_t tsc_hz, std::string &err);
    bool enabled() const { return ports_ != nullptr; }
    // With several workers: the rings neighbour news goes out on (to worker `to`) and comes in
    // from (from worker `from`); NeighbourEvent elements.
    void set_event_rings(uint32_t other, rte_ring *out, rte_ring *in) {
        events_out_[other] = out;
        events_in_[other] = in;
        if (other + 1 > nworkers_) nworkers_ = other + 1;  // rings are indexed by worker id
        shared_ = true;
    }
    // Once per loop: what the other workers heard.
    void take_events(uint64_t now) noexcept;

    // Lcore side: the worker's RCU reader state for the route table.
    void online();
    void offline();
    void quiescent();

    // True: a transit packet, on to the flow stage (TTL already decremented). False: consumed
    // (answered, held, dropped and counted).
    bool ingress(rte_mbuf *m, PacketView &v, uint8_t arrival, uint64_t now) noexcept;
    // Routes what the loop queued for tx, then adds the frames the router addressed itself.
    void egress(uint64_t now) noexcept;
    // Ageing, probes, listings; `announce` once at start (gratuitous ARP, unsolicited NA).
    void housekeeping(uint64_t now) noexcept;
    void announce() noexcept;

    RoutingStats &stats() { return stats_; }
    bool is_own(uint8_t family, const IpAddr &a) const noexcept;
    NeighbourDump &dump() { return dump_; }

  private:
    struct NKey {
        uint8_t addr[16];
        uint8_t family;
        uint8_t port;
        uint8_t pad[2];
    };
    struct Neighbour {
        NKey key;
        uint8_t mac[6];
        NeighbourState state;
        bool in_use;
        uint16_t probes;
        uint16_t nheld;
        uint64_t confirmed_tsc, used_tsc, probe_tsc, resolutions;
    };

    void drop(rte_mbuf *m, DropReason r) noexcept;
    const PortAddr *source_for(uint8_t port, uint8_t family, const uint8_t *peer) const noexcept;
    void local_in(rte_mbuf *m, PacketView &v, uint8_t arrival, uint64_t now) noexcept;
    void arp_in(rte_mbuf *m, const PacketView &v, uint8_t arrival, uint64_t now) noexcept;
    void nd_in(rte_mbuf *m, const PacketView &v, uint8_t arrival, uint64_t now) noexcept;
    void icmp_error(const rte_mbuf *m, const PacketView &v, uint8_t arrival, uint8_t type,
                    uint8_t code, uint32_t mtu, Counter &what, uint64_t now) noexcept;
    bool take_token(uint64_t now) noexcept;

    // learn() here, and the news to every other worker.
    void heard(const NKey &k, const uint8_t *mac, bool create, NeighbourState st,
               uint64_t now) noexcept;
    int32_t find(const NKey &k) noexcept;
    int32_t learn(const NKey &k, const uint8_t *mac, bool create, NeighbourState st,
                  uint64_t now) noexcept;
    void remove(int32_t pos) noexcept;
    void solicit(const Neighbour &e, bool unicast) noexcept;
    void send_arp(uint8_t port, uint16_t op, const uint8_t *dst_mac, const uint8_t *tha,
                  const uint8_t *spa, const uint8_t *tpa) noexcept;
    void send_na(uint8_t port, const uint8_t *dst_mac, const uint8_t *dst_ip, const uint8_t *target,
                 uint8_t flags) noexcept;
    void send_ns(uint8_t port, const uint8_t *target, const uint8_t *unicast_mac) noexcept;
    void ctl(rte_mbuf *m, uint8_t port) noexcept;
    void set_l2(rte_mbuf *m, const uint8_t *dst, uint8_t port) noexcept;
    void answer_dump(uint64_t now) noexcept;

    const RoutedPorts *ports_ = nullptr;
    RouteSlot *routes_ = nullptr;
    config::RoutingConfig cfg_;
    rte_mempool *pool_ = nullptr;
    TxQueues *tx_ = nullptr;
    uint32_t worker_ = 0;
    uint64_t hz_ = 0;
    uint64_t reachable_tsc_ = 0, stale_tsc_ = 0, retrans_tsc_ = 0;
    uint64_t next_scan_tsc_ = 0;  // the table is walked at most every 10 ms

    rte_hash *table_ = nullptr;
    Neighbour *entries_ = nullptr;
    rte_mbuf **held_ = nullptr;  // entries x hold_per_neighbour
    uint32_t capacity_ = 0;
    uint32_t size_ = 0;
    int32_t last_pos_ = -1;  // the last neighbour egress used (consecutive packets share one)

    // Frames the router addressed itself (ARP, ND, released held packets): sent after egress.
    static constexpr uint32_t kCtl = 256;
    rte_mbuf *ctl_[2][kCtl];
    uint16_t nctl_[2] = {0, 0};

    // ICMP rate limit: a token bucket per worker.
    double tokens_ = 0;
    uint64_t tokens_tsc_ = 0;

    rte_ring *events_out_[kMaxWorkers] = {};
    rte_ring *events_in_[kMaxWorkers] = {};
    uint32_t nworkers_ = 0;
    bool shared_ = false;  // other workers to tell
    bool local_only_ = false;

    RoutingStats stats_;
    NeighbourDump dump_;
    bool registered_ = false;
};

}  // namespace segwire::dp
