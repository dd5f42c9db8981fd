// Contract: routed mode (docs/routed.md) between the control side and the workers.
//   RoutedPorts  written by the main lcore before launch (addresses, MACs, MTUs); read-only after.
//   RouteTable   built by the control thread (control/routing.cpp), published through RouteSlot;
//                workers read the current one lock-free, and report a quiescent state once per
//                loop (rte_rcu_qsbr), after which the control thread frees a replaced table.
//   NeighbourDump the telemetry thread asks, the worker answers between bursts (as FlowDump).
//   RoutingStats each worker its own counters; the telemetry thread reads them.
#pragma once

#include <atomic>
#include <cstdint>

#include "dataplane/contract/stats.hpp"
#include "dataplane/packet/parse.hpp"

struct rte_fib;
struct rte_fib6;
struct rte_rcu_qsbr;

namespace segwire::dp {

inline constexpr uint32_t kMaxPortAddrs = 8;  // per port and family

struct PortAddr {
    IpAddr addr;  // the address (IPv4 in the first 4 bytes, network order)
    uint8_t len;  // its connected prefix's length
};

struct RoutedPort {
    uint8_t mac[6];
    uint16_t mtu = 1500;  // largest IP datagram sent on the port
    PortAddr v4[kMaxPortAddrs];
    PortAddr v6[kMaxPortAddrs];
    uint8_t n4 = 0, n6 = 0;
};

struct RoutedPorts {
    RoutedPort port[2];  // inside, outside
};

// A next hop the FIB points at (FIB value = index + 1; 0 = no route).
struct NextHop {
    uint8_t port;       // 0 inside, 1 outside
    uint8_t connected;  // 1: the destination itself is the neighbour
    IpAddr gateway;     // otherwise: the neighbour
};

inline constexpr uint32_t kMaxNextHops = 8192;

// One generation of the routing table: connected prefixes and static routes.
struct RouteTable {
    rte_fib *fib4 = nullptr;
    rte_fib6 *fib6 = nullptr;
    NextHop nh[kMaxNextHops];
    uint32_t nnh = 0;
    uint64_t generation = 0;
    uint32_t routes4 = 0, routes6 = 0;
};

struct RouteSlot {
    std::atomic<const RouteTable *> current{nullptr};
    rte_rcu_qsbr *qsbr = nullptr;  // one reader thread per worker (thread id = worker id)
};

// One row of a neighbour listing (/segwire/neighbours, `segwirectl neighbours`).
enum class NeighbourState : uint8_t { Incomplete = 0, Reachable, Stale, Probe };
struct NeighbourRecord {
    IpAddr addr;
    uint8_t family;
    uint8_t port;
    NeighbourState state;
    uint8_t mac[6];
    uint16_t held;    // packets waiting for the resolution
    uint16_t probes;  // requests sent since the last confirmation
    uint16_t worker;
    uint32_t confirmed_ms;  // since the last confirmation (UINT32_MAX: never)
    uint32_t used_ms;       // since a packet last went to it
    uint64_t resolutions;   // confirmations (first resolution and every refresh)
};

struct NeighbourDump {
    std::atomic<uint64_t> requested{0};
    std::atomic<uint64_t> completed{0};
    NeighbourRecord *rows = nullptr;
    uint32_t capacity = 0;
    uint32_t count = 0;
};

// What one worker heard about a neighbour (an ARP or ND message it received), handed to every
// other worker over a single-producer/single-consumer ring per ordered worker pair, so that
// every worker's table learns from answers whichever queue they arrived on. Each worker applies
// it under its own rules (an answer confirms an entry it has, a request for one of our addresses
// creates one).
struct NeighbourEvent {
    uint8_t addr[16];
    uint8_t family;
    uint8_t port;
    uint8_t mac[6];
    uint8_t state;   // NeighbourState the message gives
    uint8_t create;  // may create an entry
    uint8_t pad[6];
};
static_assert(sizeof(NeighbourEvent) == 32, "ring elements are a multiple of 4 bytes");

#define SEGWIRE_ROUTING_COUNTERS(X)                                                       \
    X(forwarded, "packets routed to a next hop")                                          \
    X(local_in, "packets addressed to segwire's own addresses")                           \
    X(arp_in, "ARP frames received")                                                      \
    X(arp_replies_out, "ARP replies sent for own addresses")                              \
    X(arp_requests_out, "ARP requests sent (resolution, probes, gratuitous)")             \
    X(nd_in, "neighbour solicitations and advertisements received")                       \
    X(nd_advertisements_out, "neighbour advertisements sent (solicited and unsolicited)") \
    X(nd_solicitations_out, "neighbour solicitations sent")                               \
    X(neighbours_resolved, "neighbour confirmations (first resolutions and refreshes)")   \
    X(neighbours_failed, "neighbours given up after unanswered requests")                 \
    X(neighbours_full, "next hops not resolved: the neighbour table was full")            \
    X(held, "packets held while their next hop was resolved")                             \
    X(released, "held packets sent once their next hop was resolved")                     \
    X(icmp_echo_replies, "echo replies (ICMP and ICMPv6) for own addresses")              \
    X(icmp_time_exceeded, "time exceeded / hop limit exceeded messages sent")             \
    X(icmp_unreachable, "destination unreachable messages sent (no route, unresolved)")   \
    X(icmp_too_big, "fragmentation needed / packet too big messages sent")                \
    X(icmp_rate_limited, "ICMP messages not sent: over routing.icmp_rate")                \
    X(neighbour_events_lost, "neighbour news not handed to another worker: its ring was full")

struct RoutingStats {
#define X(name, help) Counter name;
    SEGWIRE_ROUTING_COUNTERS(X)
#undef X
    Counter neighbours;  // gauge: entries in the table
};

}  // namespace segwire::dp
