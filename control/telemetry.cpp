// /segwire/... telemetry commands, served by DPDK's telemetry thread on the runtime socket
// (/var/run/dpdk/<file-prefix>/dpdk_telemetry.v2), readable by dpdk-telemetry.py and segwirectl.
#include <arpa/inet.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <rte_cycles.h>
#include <rte_malloc.h>
#include <rte_mempool.h>
#include <rte_telemetry.h>

#include "control/app.hpp"

namespace segwire::control {
namespace {

App *g_app = nullptr;
std::mutex g_dump_mutex;                // one flow dump at a time (telemetry clients may be many)
std::vector<dp::FlowRecord> g_flows;    // the last dump, paged out by /segwire/flows,<page>
constexpr uint32_t kFlowsPerPage = 24;  // keeps one reply well under the 16 KiB telemetry limit
constexpr uint32_t kDumpRowsPerWorker = 65536;

// Telemetry names allow only [A-Za-z0-9_/].
void add_worker_stats(rte_tel_data *d, const dp::WorkerStats &s) {
    rte_tel_data_add_dict_u64(d, "rx_inside_pkts", s.rx_pkts[dp::kInside].get());
    rte_tel_data_add_dict_u64(d, "rx_outside_pkts", s.rx_pkts[dp::kOutside].get());
    rte_tel_data_add_dict_u64(d, "rx_inside_bytes", s.rx_bytes[dp::kInside].get());
    rte_tel_data_add_dict_u64(d, "rx_outside_bytes", s.rx_bytes[dp::kOutside].get());
    rte_tel_data_add_dict_u64(d, "tx_inside_pkts", s.tx_pkts[dp::kInside].get());
    rte_tel_data_add_dict_u64(d, "tx_outside_pkts", s.tx_pkts[dp::kOutside].get());
    rte_tel_data_add_dict_u64(d, "tx_inside_bytes", s.tx_bytes[dp::kInside].get());
    rte_tel_data_add_dict_u64(d, "tx_outside_bytes", s.tx_bytes[dp::kOutside].get());
    rte_tel_data_add_dict_u64(d, "non_ip", s.non_ip.get());
    rte_tel_data_add_dict_u64(d, "fragments", s.fragments.get());
    rte_tel_data_add_dict_u64(d, "steered_out", s.steered_out.get());
    rte_tel_data_add_dict_u64(d, "steered_in", s.steered_in.get());
    rte_tel_data_add_dict_u64(d, "flows_active", s.flows_active.get());
    rte_tel_data_add_dict_u64(d, "flows_created", s.flows_created.get());
    rte_tel_data_add_dict_u64(d, "flows_expired", s.flows_expired.get());
    rte_tel_data_add_dict_u64(d, "flows_refused", s.flows_refused.get());
    rte_tel_data_add_dict_u64(d, "idle_sleeps", s.idle_sleeps.get());
    uint64_t dropped = 0;
    for (size_t r = 1; r < dp::kDropReasonCount; ++r) dropped += s.drops[r].get();
    rte_tel_data_add_dict_u64(d, "dropped", dropped);
}

// Sums per-worker counters into a scratch WorkerStats-shaped set of values.
int cmd_stats(const char *, const char *, rte_tel_data *d) {
    rte_tel_data_start_dict(d);
    dp::WorkerStats sum;
    for (uint32_t w = 0; w < g_app->workers.size(); ++w) {
        const dp::WorkerStats &s = g_app->workers.stats(w);
        for (int i = 0; i < 2; ++i) {
            sum.rx_pkts[i].add(s.rx_pkts[i].get());
            sum.rx_bytes[i].add(s.rx_bytes[i].get());
            sum.tx_pkts[i].add(s.tx_pkts[i].get());
            sum.tx_bytes[i].add(s.tx_bytes[i].get());
        }
        for (size_t r = 0; r < dp::kDropReasonCount; ++r) sum.drops[r].add(s.drops[r].get());
        sum.non_ip.add(s.non_ip.get());
        sum.fragments.add(s.fragments.get());
        sum.steered_out.add(s.steered_out.get());
        sum.steered_in.add(s.steered_in.get());
        sum.flows_active.add(s.flows_active.get());
        sum.flows_created.add(s.flows_created.get());
        sum.flows_expired.add(s.flows_expired.get());
        sum.flows_refused.add(s.flows_refused.get());
        sum.idle_sleeps.add(s.idle_sleeps.get());
        sum.mbuf_pool_empty.add(s.mbuf_pool_empty.get());
        if (w == 0 || s.mbuf_free_min.get() < sum.mbuf_free_min.get())
            sum.mbuf_free_min.set(s.mbuf_free_min.get());
    }
    if (g_app->pool) {
        rte_tel_data_add_dict_u64(d, "mbuf_pool_size", g_app->pool->size);
        rte_tel_data_add_dict_u64(d, "mbuf_free", rte_mempool_avail_count(g_app->pool));
        rte_tel_data_add_dict_u64(d, "mbuf_free_min", sum.mbuf_free_min.get());
        rte_tel_data_add_dict_u64(d, "mbuf_pool_empty", sum.mbuf_pool_empty.get());
    }
    rte_tel_data_add_dict_u64(d, "workers", g_app->workers.size());
    rte_tel_data_add_dict_u64(d, "uptime_s", (rte_rdtsc() - g_app->start_tsc) / rte_get_tsc_hz());
    add_worker_stats(d, sum);
    rte_tel_data *drops = rte_tel_data_alloc();
    rte_tel_data_start_dict(drops);
    for (size_t r = 1; r < dp::kDropReasonCount; ++r)
        rte_tel_data_add_dict_u64(drops,
                                  dp::drop_reason_counter_name(static_cast<dp::DropReason>(r)),
                                  sum.drops[r].get());
    rte_tel_data_add_dict_container(d, "drops", drops, 0);
    return 0;
}

// L7 mode (docs/l7-path.md): the exception path's packets and the proxy sockets' counters.
int cmd_l7(const char *, const char *, rte_tel_data *d) {
    rte_tel_data_start_dict(d);
    rte_tel_data_add_dict_int(d, "enabled", g_app->l7 ? 1 : 0);
    if (!g_app->l7) return 0;
    uint64_t to = 0, from = 0, up = 0, refused = 0;
    for (uint32_t w = 0; w < g_app->workers.size(); ++w) {
        const dp::WorkerStats &s = g_app->workers.stats(w);
        to += s.l7_to_exception.get();
        from += s.l7_from_exception.get();
        up += s.l7_upstream.get();
        refused += s.l7_refused.get();
    }
    rte_tel_data_add_dict_string(d, "iface", g_app->cfg.l7.iface.c_str());
    rte_tel_data_add_dict_string(d, "driver", g_app->l7->port().driver.c_str());
    rte_tel_data_add_dict_u64(d, "to_exception_pkts", to);
    rte_tel_data_add_dict_u64(d, "from_exception_pkts", from);
    rte_tel_data_add_dict_u64(d, "upstream_pkts", up);
    rte_tel_data_add_dict_u64(d, "refused_pkts", refused);
    const control::L7Counts c = g_app->l7->counts();
    rte_tel_data_add_dict_u64(d, "identities", c.identities);
    rte_tel_data_add_dict_u64(d, "identity_queries", c.queries);
    rte_tel_data_add_dict_u64(d, "identity_found", c.found);
    rte_tel_data_add_dict_u64(d, "identity_not_found", c.not_found);
    rte_tel_data_add_dict_u64(d, "identity_bad_queries", c.bad_queries);
    rte_tel_data_add_dict_u64(d, "api_reports", c.reports);
    rte_tel_data_add_dict_u64(d, "api_reports_bad", c.bad_reports);
    return 0;
}

int cmd_workers(const char *, const char *, rte_tel_data *d) {
    rte_tel_data_start_dict(d);
    for (uint32_t w = 0; w < g_app->workers.size(); ++w) {
        rte_tel_data *c = rte_tel_data_alloc();
        rte_tel_data_start_dict(c);
        add_worker_stats(c, g_app->workers.stats(w));
        rte_tel_data_add_dict_container(d, ("worker" + std::to_string(w)).c_str(), c, 0);
    }
    return 0;
}

int cmd_ports(const char *, const char *, rte_tel_data *d) {
    rte_tel_data_start_dict(d);
    const char *roles[2] = {"inside", "outside"};
    for (int i = 0; i < 2; ++i) {
        const PortInfo &p = g_app->ports[i];
        rte_tel_data *c = rte_tel_data_alloc();
        rte_tel_data_start_dict(c);
        rte_tel_data_add_dict_u64(c, "port_id", p.port_id);
        rte_tel_data_add_dict_string(c, "name", p.name.c_str());
        rte_tel_data_add_dict_string(c, "driver", p.driver.c_str());
        rte_tel_data_add_dict_u64(c, "mtu", p.mtu);
        rte_tel_data_add_dict_string(c, "steering", p.symmetric_rss ? "symmetric-rss" : "software");
        rte_tel_data_add_dict_container(d, roles[i], c, 0);
    }
    return 0;
}

std::string addr_str(const dp::IpAddr &a, uint8_t family) {
    char buf[INET6_ADDRSTRLEN] = "?";
    inet_ntop(family == 6 ? AF_INET6 : AF_INET, a.b, buf, sizeof(buf));
    return buf;
}

const char *proto_name(uint8_t p) {
    switch (p) {
        case dp::kProtoTcp:
            return "tcp";
        case dp::kProtoUdp:
            return "udp";
        case dp::kProtoIcmp:
            return "icmp";
        case dp::kProtoIcmp6:
            return "icmp6";
        default:
            return "ip";
    }
}

// Asks every worker for a copy of its flows and waits (bounded) for the answers.
bool refresh_dump() {
    for (uint32_t w = 0; w < g_app->workers.size(); ++w) {
        dp::FlowDump &fd = g_app->workers.dump(w);
        if (!fd.rows) {
            fd.capacity = std::min(kDumpRowsPerWorker, g_app->workers.flow_capacity(w));
            fd.rows = static_cast<dp::FlowRecord *>(
                rte_zmalloc("flow_dump", sizeof(dp::FlowRecord) * fd.capacity, 64));
            if (!fd.rows) return false;
        }
        fd.requested.fetch_add(1, std::memory_order_release);
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    for (uint32_t w = 0; w < g_app->workers.size(); ++w) {
        const dp::FlowDump &fd = g_app->workers.dump(w);
        while (fd.completed.load(std::memory_order_acquire) !=
               fd.requested.load(std::memory_order_relaxed)) {
            if (std::chrono::steady_clock::now() > deadline) return false;
            std::this_thread::sleep_for(std::chrono::microseconds(200));
        }
    }
    g_flows.clear();
    for (uint32_t w = 0; w < g_app->workers.size(); ++w) {
        const dp::FlowDump &fd = g_app->workers.dump(w);
        g_flows.insert(g_flows.end(), fd.rows, fd.rows + fd.count);
    }
    return true;
}

// /segwire/flows[,page]: page 0 (the default) takes a fresh dump; later pages read the same one.
int cmd_flows(const char *, const char *params, rte_tel_data *d) {
    std::lock_guard<std::mutex> lock(g_dump_mutex);
    uint32_t page = 0;
    if (params && *params) page = static_cast<uint32_t>(std::strtoul(params, nullptr, 10));
    if (page == 0 && !refresh_dump()) return -EAGAIN;
    rte_tel_data_start_dict(d);
    const uint32_t total = static_cast<uint32_t>(g_flows.size());
    const uint32_t pages = (total + kFlowsPerPage - 1) / kFlowsPerPage;
    rte_tel_data_add_dict_u64(d, "total", total);
    rte_tel_data_add_dict_u64(d, "page", page);
    rte_tel_data_add_dict_u64(d, "pages", pages);
    for (uint32_t i = page * kFlowsPerPage; i < total && i < (page + 1) * kFlowsPerPage; ++i) {
        const dp::FlowRecord &r = g_flows[i];
        // Report the initiator as the source.
        const bool a_init = r.init_side == dp::kSideA;
        const dp::IpAddr &src = a_init ? r.key.a : r.key.b;
        const dp::IpAddr &dst = a_init ? r.key.b : r.key.a;
        rte_tel_data *c = rte_tel_data_alloc();
        rte_tel_data_start_dict(c);
        rte_tel_data_add_dict_string(c, "proto", proto_name(r.key.proto));
        rte_tel_data_add_dict_string(c, "src", addr_str(src, r.key.family).c_str());
        rte_tel_data_add_dict_u64(c, "sport", a_init ? r.key.pa : r.key.pb);
        rte_tel_data_add_dict_string(c, "dst", addr_str(dst, r.key.family).c_str());
        rte_tel_data_add_dict_u64(c, "dport", a_init ? r.key.pb : r.key.pa);
        // GENEVE mode: the key's VLAN field holds the load balancer endpoint's index.
        rte_tel_data_add_dict_u64(c, g_app->cfg.geneve ? "endpoint" : "vlan", r.key.vlan);
        rte_tel_data_add_dict_string(
            c, "state", r.key.proto == dp::kProtoTcp ? dp::tcp_state_name(r.state) : "ACTIVE");
        rte_tel_data_add_dict_string(c, "timeout_class", dp::timeout_class_name(r.tclass));
        rte_tel_data_add_dict_string(c, "auth", dp::auth_name(r.auth));
        rte_tel_data_add_dict_u64(c, "worker", r.worker);
        rte_tel_data_add_dict_u64(c, "pkts_out", r.pkts[a_init ? 0 : 1]);
        rte_tel_data_add_dict_u64(c, "pkts_back", r.pkts[a_init ? 1 : 0]);
        rte_tel_data_add_dict_u64(c, "bytes_out", r.bytes[a_init ? 0 : 1]);
        rte_tel_data_add_dict_u64(c, "bytes_back", r.bytes[a_init ? 1 : 0]);
        rte_tel_data_add_dict_u64(c, "age_s", r.age_s);
        rte_tel_data_add_dict_u64(c, "idle_s", r.idle_s);
        rte_tel_data_add_dict_string(c, "role",
                                     r.role == dp::kRoleClient   ? "client"
                                     : r.role == dp::kRoleServer ? "server"
                                                                 : "none");
        rte_tel_data_add_dict_u64(c, "held", r.held);
        rte_tel_data_add_dict_u64(c, "parked", r.parked);
        rte_tel_data_add_dict_u64(c, "decided_version", r.decided_version);
        rte_tel_data_add_dict_string(c, "peer_pu", r.peer_pu);
        rte_tel_data_add_dict_string(c, "peer_enforcer", r.peer_enforcer);
        rte_tel_data_add_dict_container(d, ("f" + std::to_string(i)).c_str(), c, 0);
    }
    return 0;
}

// ---- Routed mode (docs/routed.md) ----

std::vector<dp::NeighbourRecord> g_neighbours;  // the last listing, paged by /segwire/neighbours
constexpr uint32_t kNeighboursPerPage = 32;

const char *neighbour_state_name(dp::NeighbourState s) {
    switch (s) {
        case dp::NeighbourState::Incomplete:
            return "INCOMPLETE";
        case dp::NeighbourState::Reachable:
            return "REACHABLE";
        case dp::NeighbourState::Stale:
            return "STALE";
        case dp::NeighbourState::Probe:
            return "PROBE";
    }
    return "?";
}

std::string prefix_list(const dp::PortAddr *a, uint8_t n, uint8_t family) {
    std::string s;
    for (uint8_t i = 0; i < n; ++i)
        s += (s.empty() ? "" : " ") + addr_str(a[i].addr, family) + "/" + std::to_string(a[i].len);
    return s;
}

// /segwire/routing: the mode, the ports' addresses, the route table in force, the counters.
int cmd_routing(const char *, const char *, rte_tel_data *d) {
    rte_tel_data_start_dict(d);
    rte_tel_data_add_dict_string(d, "mode",
                                 g_app->cfg.geneve ? "geneve"
                                 : g_app->routing  ? "routed"
                                                   : "bump-in-the-wire");
    if (!g_app->routing) return 0;
    const dp::RoutedPorts *rp = g_app->routing->ports();
    const char *roles[2] = {"inside", "outside"};
    for (int i = 0; i < 2; ++i) {
        const dp::RoutedPort &p = rp->port[i];
        rte_tel_data *c = rte_tel_data_alloc();
        rte_tel_data_start_dict(c);
        char mac[18];
        std::snprintf(mac, sizeof mac, "%02x:%02x:%02x:%02x:%02x:%02x", p.mac[0], p.mac[1],
                      p.mac[2], p.mac[3], p.mac[4], p.mac[5]);
        rte_tel_data_add_dict_string(c, "mac", mac);
        rte_tel_data_add_dict_u64(c, "mtu", p.mtu);
        rte_tel_data_add_dict_string(c, "ipv4", prefix_list(p.v4, p.n4, 4).c_str());
        rte_tel_data_add_dict_string(c, "ipv6", prefix_list(p.v6, p.n6, 6).c_str());
        rte_tel_data_add_dict_container(d, roles[i], c, 0);
    }
    const Routing::Summary t = g_app->routing->summary();
    rte_tel_data_add_dict_u64(d, "table_generation", t.generation);
    rte_tel_data_add_dict_u64(d, "routes_ipv4", t.routes4);
    rte_tel_data_add_dict_u64(d, "routes_ipv6", t.routes6);
    rte_tel_data_add_dict_u64(d, "static_routes", t.statics);
    dp::RoutingStats sum;
    for (uint32_t w = 0; w < g_app->workers.size(); ++w) {
        const dp::RoutingStats &s = g_app->workers.routing_stats(w);
#define X(name, help) sum.name.add(s.name.get());
        SEGWIRE_ROUTING_COUNTERS(X)
#undef X
        sum.neighbours.add(s.neighbours.get());
    }
#define X(name, help) rte_tel_data_add_dict_u64(d, #name, sum.name.get());
    SEGWIRE_ROUTING_COUNTERS(X)
#undef X
    rte_tel_data_add_dict_u64(d, "neighbours", sum.neighbours.get());
    return 0;
}

// /segwire/geneve: GENEVE one-arm mode (docs/geneve.md): settings, counters, its drops.
int cmd_geneve(const char *, const char *, rte_tel_data *d) {
    rte_tel_data_start_dict(d);
    rte_tel_data_add_dict_string(d, "mode",
                                 g_app->cfg.geneve ? "geneve"
                                 : g_app->routing  ? "routed"
                                                   : "bump-in-the-wire");
    if (!g_app->cfg.geneve) return 0;
    const config::GeneveConfig &g = g_app->cfg.geneve_cfg;
    rte_tel_data_add_dict_u64(d, "udp_port", g.udp_port);
    rte_tel_data_add_dict_u64(d, "health_check_tcp_port", g.health_port);
    rte_tel_data_add_dict_u64(d, "inner_mtu", g.inner_mtu ? g.inner_mtu : g_app->ports[0].mtu - 68);
    dp::GeneveStats sum;
    uint64_t drops[dp::kDropReasonCount] = {};
    for (uint32_t w = 0; w < g_app->workers.size(); ++w) {
        const dp::GeneveStats &s = g_app->workers.geneve_stats(w);
#define X(name, help) sum.name.add(s.name.get());
        SEGWIRE_GENEVE_COUNTERS(X)
#undef X
        sum.contexts.add(s.contexts.get());
        sum.endpoints.add(s.endpoints.get());
        const dp::WorkerStats &ws = g_app->workers.stats(w);
        for (size_t r = 0; r < dp::kDropReasonCount; ++r) drops[r] += ws.drops[r].get();
    }
#define X(name, help) rte_tel_data_add_dict_u64(d, #name, sum.name.get());
    SEGWIRE_GENEVE_COUNTERS(X)
#undef X
    rte_tel_data_add_dict_u64(d, "contexts", sum.contexts.get());
    rte_tel_data_add_dict_u64(d, "endpoints", sum.endpoints.get());
    for (size_t r = static_cast<size_t>(dp::DropReason::GeneveTruncated);
         r <= static_cast<size_t>(dp::DropReason::GeneveMtuExceeded); ++r)
        rte_tel_data_add_dict_u64(d, dp::drop_reason_counter_name(static_cast<dp::DropReason>(r)),
                                  drops[r]);
    return 0;
}

bool refresh_neighbours() {
    for (uint32_t w = 0; w < g_app->workers.size(); ++w)
        g_app->workers.neighbour_dump(w).requested.fetch_add(1, std::memory_order_release);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    for (uint32_t w = 0; w < g_app->workers.size(); ++w) {
        const dp::NeighbourDump &nd = g_app->workers.neighbour_dump(w);
        while (nd.completed.load(std::memory_order_acquire) !=
               nd.requested.load(std::memory_order_relaxed)) {
            if (std::chrono::steady_clock::now() > deadline) return false;
            std::this_thread::sleep_for(std::chrono::microseconds(200));
        }
    }
    g_neighbours.clear();
    for (uint32_t w = 0; w < g_app->workers.size(); ++w) {
        const dp::NeighbourDump &nd = g_app->workers.neighbour_dump(w);
        g_neighbours.insert(g_neighbours.end(), nd.rows, nd.rows + nd.count);
    }
    return true;
}

// /segwire/neighbours[,page]: the neighbour table (ARP and ND); page 0 takes a fresh listing.
int cmd_neighbours(const char *, const char *params, rte_tel_data *d) {
    if (!g_app->routing) {
        rte_tel_data_start_dict(d);
        rte_tel_data_add_dict_u64(d, "total", 0);
        rte_tel_data_add_dict_u64(d, "page", 0);
        rte_tel_data_add_dict_u64(d, "pages", 0);
        return 0;
    }
    std::lock_guard<std::mutex> lock(g_dump_mutex);
    uint32_t page = 0;
    if (params && *params) page = static_cast<uint32_t>(std::strtoul(params, nullptr, 10));
    if (page == 0 && !refresh_neighbours()) return -EAGAIN;
    rte_tel_data_start_dict(d);
    const uint32_t total = static_cast<uint32_t>(g_neighbours.size());
    rte_tel_data_add_dict_u64(d, "total", total);
    rte_tel_data_add_dict_u64(d, "page", page);
    rte_tel_data_add_dict_u64(d, "pages", (total + kNeighboursPerPage - 1) / kNeighboursPerPage);
    for (uint32_t i = page * kNeighboursPerPage; i < total && i < (page + 1) * kNeighboursPerPage;
         ++i) {
        const dp::NeighbourRecord &r = g_neighbours[i];
        rte_tel_data *c = rte_tel_data_alloc();
        rte_tel_data_start_dict(c);
        rte_tel_data_add_dict_string(c, "address", addr_str(r.addr, r.family).c_str());
        rte_tel_data_add_dict_string(c, "port", r.port ? "outside" : "inside");
        char mac[18];
        std::snprintf(mac, sizeof mac, "%02x:%02x:%02x:%02x:%02x:%02x", r.mac[0], r.mac[1],
                      r.mac[2], r.mac[3], r.mac[4], r.mac[5]);
        rte_tel_data_add_dict_string(c, "mac",
                                     r.state == dp::NeighbourState::Incomplete ? "" : mac);
        rte_tel_data_add_dict_string(c, "state", neighbour_state_name(r.state));
        rte_tel_data_add_dict_u64(c, "held", r.held);
        rte_tel_data_add_dict_u64(c, "probes", r.probes);
        rte_tel_data_add_dict_u64(c, "worker", r.worker);
        rte_tel_data_add_dict_int(c, "confirmed_ms",
                                  r.confirmed_ms == UINT32_MAX ? -1 : int(r.confirmed_ms));
        rte_tel_data_add_dict_u64(c, "used_ms", r.used_ms);
        rte_tel_data_add_dict_u64(c, "resolutions", r.resolutions);
        rte_tel_data_add_dict_container(d, ("n" + std::to_string(i)).c_str(), c, 0);
    }
    return 0;
}

int cmd_identity(const char *, const char *, rte_tel_data *d) {
    rte_tel_data_start_dict(d);
    Enforcement *e = g_app->enforcement_live.load(std::memory_order_acquire);
    rte_tel_data_add_dict_string(d, "enforcer_id", e ? e->enforcer_id().c_str() : "");
    rte_tel_data_add_dict_u64(d, "policy_version", e ? e->policy_version() : 0);
    rte_tel_data_add_dict_string(d, "bundle_version", e ? e->bundle_version().c_str() : "");
    if (!e) return 0;
    rte_tel_data_add_dict_string(d, "hmac_backend", g_app->workers.hmac_backend());
    // Every worker has re-decided its authorized flows under this snapshot version (a revoking
    // update has cut what it revokes once this equals policy_version).
    uint64_t enforced = UINT64_MAX;
    for (uint32_t w = 0; w < g_app->workers.size(); ++w)
        enforced =
            std::min<uint64_t>(enforced, g_app->workers.identity_stats(w).policy_enforced.get());
    rte_tel_data_add_dict_u64(d, "policy_enforced_version", g_app->workers.empty() ? 0 : enforced);
    // The revocation list in force (docs/console.md, "Revocation"): revocation_enforced is 1 once
    // every worker has re-decided its flows under the state that brought it, so every flow a
    // revoked certificate authorized is cut by then.
    {
        const PolicyStatus ps = e->policy_status();
        rte_tel_data_add_dict_string(d, "revocation_version", ps.revocation_version.c_str());
        rte_tel_data_add_dict_u64(d, "revoked_certificates", ps.revoked_certificates);
        rte_tel_data_add_dict_u64(
            d, "revocation_enforced",
            !g_app->workers.empty() && enforced >= ps.revocation_snapshot ? 1 : 0);
    }
    // The datapath certificate claims are signed under, and its renewal (docs/control.md).
    {
        const CertStatus cs = e->cert_status();
        rte_tel_data_add_dict_string(d, "certificate_ref", cs.ref.substr(0, 16).c_str());
        rte_tel_data_add_dict_u64(d, "certificate_expires_at", static_cast<uint64_t>(cs.not_after));
        rte_tel_data_add_dict_u64(d, "certificate_switches", cs.switches);
        rte_tel_data_add_dict_u64(d, "certificate_switched_at",
                                  static_cast<uint64_t>(cs.switched_at));
        rte_tel_data_add_dict_u64(d, "certificate_next_use_at",
                                  static_cast<uint64_t>(cs.next_use_at));
        if (g_app->sync) {
            const SyncStatus s = g_app->sync->status();
            rte_tel_data_add_dict_u64(d, "certificate_renewals", s.cert_renewals);
            rte_tel_data_add_dict_u64(d, "certificate_renewal_failures", s.cert_renewal_failures);
            rte_tel_data_add_dict_u64(d, "certificate_renewed_at",
                                      static_cast<uint64_t>(s.cert_renewed_at));
            rte_tel_data_add_dict_u64(d, "certificate_next_renewal_at",
                                      static_cast<uint64_t>(s.cert_next_renewal_at));
            rte_tel_data_add_dict_string(d, "certificate_renewal_error",
                                         s.cert_renewal_error.substr(0, 120).c_str());
        }
    }
    rte_tel_data_add_dict_u64(d, "slowpath_verified", e->slowpath().verified());
    rte_tel_data_add_dict_u64(d, "slowpath_refused", e->slowpath().refused());
    rte_tel_data_add_dict_u64(d, "slowpath_claims_unbound", e->slowpath().claims_unbound());
    rte_tel_data_add_dict_u64(d, "slowpath_claims_tags_differ", e->slowpath().claims_tags_differ());
    rte_tel_data_add_dict_u64(d, "slowpath_keys", e->slowpath().keys());
    rte_tel_data_add_dict_u64(d, "slowpath_key_failures", e->slowpath().key_failures());
    rte_tel_data_add_dict_u64(d, "slowpath_key_failures_cached",
                              e->slowpath().key_failures_cached());
    rte_tel_data_add_dict_u64(d, "slowpath_key_failures_evicted",
                              e->slowpath().key_failures_evicted());
    const control::DnsStats ds = e->dns_stats();
    rte_tel_data_add_dict_u64(d, "dns_answers", ds.answers);
    rte_tel_data_add_dict_u64(d, "dns_unparsed", ds.unparsed);
    rte_tel_data_add_dict_u64(d, "dns_refused_rcode", ds.refused_rcode);
    rte_tel_data_add_dict_u64(d, "dns_refused_truncated", ds.refused_truncated);
    rte_tel_data_add_dict_u64(d, "fqdn_ttl_clamped", ds.learner.ttl_clamped);
    rte_tel_data_add_dict_u64(d, "fqdn_publications", ds.publications);
    rte_tel_data_add_dict_u64(d, "fqdn_records", ds.records);
    rte_tel_data_add_dict_u64(d, "fqdn_addresses", ds.addresses);
    // One table of (name, counter): each counter summed over the workers.
    using S = dp::IdentityStats;
    static const std::pair<const char *, dp::Counter S::*> counters[] = {
        {"syn_signed", &S::syn_signed},
        {"syn_verified", &S::syn_verified},
        {"synack_signed", &S::synack_signed},
        {"synack_verified", &S::synack_verified},
        {"ack_proofs_added", &S::ack_proofs_added},
        {"ack_proofs_verified", &S::ack_proofs_verified},
        {"authorized", &S::authorized},
        {"rejected", &S::rejected},
        {"acl_decisions", &S::acl_decisions},
        {"passthrough", &S::passthrough},
        {"parked", &S::parked},
        {"slow_jobs", &S::slow_jobs},
        {"peer_cache_hits", &S::peer_cache_hits},
        {"peer_cache_misses", &S::peer_cache_misses},
        {"key_cache_hits", &S::key_cache_hits},
        {"key_cache_misses", &S::key_cache_misses},
        {"key_failures_cached", &S::key_failures_cached},
        {"hmac_batches", &S::hmac_batches},
        {"hmac_jobs", &S::hmac_jobs},
        {"records", &S::records},
        {"records_lost", &S::records_lost},
        {"flows_cut", &S::flows_cut},
        {"resets_sent", &S::resets_sent},
        {"exceptions", &S::exceptions},
        {"counter_records", &S::counter_records},
        {"confirms_sent", &S::confirms_sent},
        {"confirms_received", &S::confirms_received},
        {"confirms_missed", &S::confirms_missed},
        {"options_scrubbed", &S::options_scrubbed},
        {"syns_on_open_flow", &S::syns_on_open_flow},
        {"flows_retired", &S::flows_retired},
        {"identities_lost", &S::identities_lost},
        {"claims_address_mismatch", &S::claims_address_mismatch},
        {"udp_syn_sent", &S::udp_syn_sent},
        {"udp_synack_sent", &S::udp_synack_sent},
        {"udp_ack_sent", &S::udp_ack_sent},
        {"udp_retransmits", &S::udp_retransmits},
        {"udp_rejects_sent", &S::udp_rejects_sent},
        {"udp_resets_sent", &S::udp_resets_sent},
        {"udp_resets_received", &S::udp_resets_received},
        {"udp_fallbacks", &S::udp_fallbacks},
        {"udp_control_consumed", &S::udp_control_consumed},
        {"udp_handshakes_restarted", &S::udp_handshakes_restarted},
        {"udp_expired", &S::udp_expired},
        {"half_open_expired", &S::half_open_expired},
        {"midstream_resets", &S::midstream_resets},
        {"midstream_resets_suppressed", &S::midstream_resets_suppressed},
        {"l4_started", &S::l4_started},
        {"l4_plain_clients", &S::l4_plain_clients},
        {"l4_records_sent", &S::l4_records_sent},
        {"l4_retransmits", &S::l4_retransmits},
        {"auto_fallbacks", &S::auto_fallbacks},
        {"handshakes_active", &S::handshakes_active},
        {"held_packets", &S::held_packets},
        {"kept_control", &S::kept_control},
        {"slow_jobs_in_flight", &S::slow_jobs_in_flight},
        {"dns_snooped", &S::dns_snooped},
        {"dns_unsnooped", &S::dns_unsnooped},
        {"fqdn_decisions", &S::fqdn_decisions},
        {"dns_queries", &S::dns_queries},
        {"dns_queries_repeated", &S::dns_queries_repeated},
        {"dns_queries_untrusted", &S::dns_queries_untrusted},
        {"dns_queries_dropped", &S::dns_queries_dropped},
        {"dns_queries_unreadable", &S::dns_queries_unreadable},
        {"dns_queries_expired", &S::dns_queries_expired},
        {"dns_queries_pending", &S::dns_queries_pending},
        {"dns_refused_no_query", &S::dns_refused_no_query},
        {"dns_refused_question", &S::dns_refused_question},
        {"dns_refused_late", &S::dns_refused_late},
        {"dns_refused_tcp_sequence", &S::dns_refused_tcp_sequence},
        {"dns_refused_inside", &S::dns_refused_inside},
        {"dns_refused_malformed", &S::dns_refused_malformed},
    };
    for (const auto &[name, member] : counters) {
        uint64_t total = 0;
        for (uint32_t w = 0; w < g_app->workers.size(); ++w)
            total += (g_app->workers.identity_stats(w).*member).get();
        rte_tel_data_add_dict_u64(d, name, total);
    }
    return 0;
}

// /segwire/flowlog[,page]: flow reports aggregated since start, 16 per page.
int cmd_flowlog(const char *, const char *params, rte_tel_data *d) {
    rte_tel_data_start_dict(d);
    Enforcement *e = g_app->enforcement_live.load(std::memory_order_acquire);
    std::vector<FlowReport> rows = e ? e->total_flow_reports() : std::vector<FlowReport>{};
    constexpr uint32_t kPer = 16;
    uint32_t page =
        params && *params ? static_cast<uint32_t>(std::strtoul(params, nullptr, 10)) : 0;
    rte_tel_data_add_dict_u64(d, "total", rows.size());
    rte_tel_data_add_dict_u64(d, "pages", (rows.size() + kPer - 1) / kPer);
    // Records of flows the flowlog had no room for (its bound: "max").
    const ReportCount fl = e ? e->report_counts().flowlog : ReportCount{};
    rte_tel_data_add_dict_u64(d, "max", fl.max);
    rte_tel_data_add_dict_u64(d, "overflow", fl.overflow);
    for (uint32_t i = page * kPer; i < rows.size() && i < (page + 1) * kPer; ++i) {
        const FlowReport &r = rows[i];
        rte_tel_data *c = rte_tel_data_alloc();
        rte_tel_data_start_dict(c);
        rte_tel_data_add_dict_string(c, "action", r.action.c_str());
        rte_tel_data_add_dict_string(c, "observedAction", r.observed_action.c_str());
        rte_tel_data_add_dict_string(c, "sourceType", r.source_type.c_str());
        rte_tel_data_add_dict_string(c, "sourceID", r.source_id.c_str());
        rte_tel_data_add_dict_string(c, "sourceIP", r.source_ip.c_str());
        rte_tel_data_add_dict_string(c, "destinationType", r.destination_type.c_str());
        rte_tel_data_add_dict_string(c, "destinationID", r.destination_id.c_str());
        rte_tel_data_add_dict_string(c, "destinationIP", r.destination_ip.c_str());
        rte_tel_data_add_dict_u64(c, "destinationPort", r.destination_port);
        rte_tel_data_add_dict_u64(c, "protocol", r.protocol);
        rte_tel_data_add_dict_string(c, "policyID", r.policy_id.c_str());
        rte_tel_data_add_dict_string(c, "observedPolicyID", r.observed_policy_id.c_str());
        rte_tel_data_add_dict_string(c, "ruleName", r.rule_name.c_str());
        rte_tel_data_add_dict_string(c, "dropReason", r.drop_reason.c_str());
        rte_tel_data_add_dict_string(c, "mode", r.mode.c_str());
        rte_tel_data_add_dict_u64(c, "value", r.value);
        rte_tel_data_add_dict_u64(c, "sourcePackets", r.source_packets);
        rte_tel_data_add_dict_u64(c, "sourceBytes", r.source_bytes);
        rte_tel_data_add_dict_u64(c, "destinationPackets", r.destination_packets);
        rte_tel_data_add_dict_u64(c, "destinationBytes", r.destination_bytes);
        rte_tel_data_add_dict_container(d, ("r" + std::to_string(i)).c_str(), c, 0);
    }
    return 0;
}

// Flow accounting and export (docs/export.md): what is configured and the exporters' counters.
int cmd_export(const char *, const char *, rte_tel_data *d) {
    rte_tel_data_start_dict(d);
    const auto &x = g_app->cfg.flow_export;
    Enforcement *e = g_app->enforcement_live.load(std::memory_order_acquire);
    rte_tel_data_add_dict_u64(d, "active_timeout_s", e ? e->active_timeout_s() : 0);
    rte_tel_data_add_dict_string(d, "jsonl_path", x.jsonl.path.c_str());
    rte_tel_data_add_dict_string(d, "ipfix_collector", x.ipfix.collector.c_str());
    uint64_t made = 0, lost = 0;
    for (uint32_t w = 0; w < g_app->workers.size(); ++w) {
        made += g_app->workers.identity_stats(w).counter_records.get();
        lost += g_app->workers.identity_stats(w).records_lost.get();
    }
    rte_tel_data_add_dict_u64(d, "counter_records", made);
    rte_tel_data_add_dict_u64(d, "records_lost", lost);
    const flowexport::ExportCounts c =
        e && e->export_counts() ? *e->export_counts() : flowexport::ExportCounts{};
    const std::pair<const char *, uint64_t> rows[] = {
        {"records", c.records},
        {"jsonl_lines", c.jsonl_lines},
        {"jsonl_bytes", c.jsonl_bytes},
        {"jsonl_rotations", c.jsonl_rotations},
        {"jsonl_lines_lost", c.jsonl_lines_lost},
        {"ipfix_messages", c.ipfix_messages},
        {"ipfix_records", c.ipfix_records},
        {"ipfix_templates", c.ipfix_templates},
        {"ipfix_messages_lost", c.ipfix_messages_lost},
        {"ipfix_records_lost", c.ipfix_records_lost},
        {"ipfix_refused", c.ipfix_refused},
    };
    for (const auto &[k, v] : rows) rte_tel_data_add_dict_u64(d, k, v);
    return 0;
}

// Policy updates in either mode: the version in force, refusals and why, snapshot memory.
void add_policy_status(rte_tel_data *d, const Enforcement &e) {
    const PolicyStatus p = e.policy_status();
    rte_tel_data_add_dict_string(d, "enforced_version", p.enforced_version.substr(0, 120).c_str());
    rte_tel_data_add_dict_string(d, "policy_state", p.last_refused ? "refused" : "applied");
    rte_tel_data_add_dict_u64(d, "policy_applied", p.applied);
    rte_tel_data_add_dict_u64(d, "policy_refused", p.refused);
    rte_tel_data_add_dict_u64(d, "policy_warnings", p.warnings);
    rte_tel_data_add_dict_string(d, "last_refused_version",
                                 p.last_refused_version.substr(0, 120).c_str());
    rte_tel_data_add_dict_string(d, "last_policy_error_cause", p.last_error_cause.c_str());
    rte_tel_data_add_dict_string(d, "last_policy_error", p.last_error.substr(0, 120).c_str());
    rte_tel_data_add_dict_u64(d, "last_refused_at", static_cast<uint64_t>(p.last_refused_at));
    rte_tel_data_add_dict_u64(d, "snapshots_alive", p.snapshots_alive);
    rte_tel_data_add_dict_u64(d, "snapshots_max", p.snapshots_max);
    rte_tel_data_add_dict_u64(d, "snapshots_high_water", p.snapshots_high_water);
    rte_tel_data_add_dict_u64(d, "snapshot_table_bytes", p.table_bytes);
    rte_tel_data_add_dict_string(d, "snapshot_tables", (p.table_v4 + "/" + p.table_v6).c_str());
}

int cmd_control(const char *, const char *, rte_tel_data *d) {
    rte_tel_data_start_dict(d);
    Enforcement *e = g_app->enforcement_live.load(std::memory_order_acquire);
    const bool identity = g_app->cfg.identity.enabled();
    rte_tel_data_add_dict_string(d, "mode",
                                 g_app->sync ? "console"
                                 : identity  ? "policy-file"
                                             : "forwarding");
    if (identity) {
        // What the workers do while no policy is in force (docs/control.md, "Fail mode"), and
        // whether they are there now: "enforcing" (a policy is in force), "refusing" (closed,
        // no policy: managed traffic dropped as no-policy), "forwarding" (open, no policy).
        const bool closed = g_app->cfg.identity.fail_closed;
        rte_tel_data_add_dict_string(d, "fail_mode", closed ? "closed" : "open");
        rte_tel_data_add_dict_string(d, "fail_state",
                                     e && e->policy_version() ? "enforcing"
                                     : closed                 ? "refusing"
                                                              : "forwarding");
        rte_tel_data_add_dict_u64(d, "enrolled", e ? 1 : 0);
    }
    if (e) {
        add_policy_status(d, *e);
        // The per-interval report collections: entries now, bound, records not reported.
        const ReportCounts rc = e->report_counts();
        for (const auto &[name, c] : {std::pair{"flow", rc.flows}, std::pair{"dns", rc.dns},
                                      std::pair{"exception", rc.exceptions}}) {
            const std::string n = std::string(name) + "_reports";
            rte_tel_data_add_dict_u64(d, n.c_str(), c.size);
            rte_tel_data_add_dict_u64(d, (n + "_max").c_str(), c.max);
            rte_tel_data_add_dict_u64(d, (n + "_overflow").c_str(), c.overflow);
        }
    }
    if (!g_app->sync) return 0;
    SyncStatus s = g_app->sync->status();
    rte_tel_data_add_dict_int(d, "connected", s.connected ? 1 : 0);
    rte_tel_data_add_dict_string(d, "last_error", s.last_error.substr(0, 120).c_str());
    rte_tel_data_add_dict_string(d, "bundle_version", s.bundle_version.c_str());
    rte_tel_data_add_dict_u64(d, "bundles_applied", s.bundles_applied);
    rte_tel_data_add_dict_u64(d, "bundles_rejected", s.bundles_rejected);
    rte_tel_data_add_dict_u64(d, "tokens_issued", s.tokens_issued);
    rte_tel_data_add_dict_u64(d, "token_expires_at", static_cast<uint64_t>(s.token_expires_at));
    rte_tel_data_add_dict_u64(d, "batches_sent", s.batches_sent);
    rte_tel_data_add_dict_u64(d, "reports_sent", s.reports_sent);
    rte_tel_data_add_dict_u64(d, "reports_dropped", s.reports_dropped);
    rte_tel_data_add_dict_u64(d, "spool_batches", s.spool_batches);
    rte_tel_data_add_dict_u64(d, "spool_bytes", s.spool_bytes);
    rte_tel_data_add_dict_u64(d, "heartbeats", s.heartbeats);
    rte_tel_data_add_dict_u64(d, "peer_certificates", s.peer_certificates);
    // The fail-static cache: "none", "refused" (cache_refused names why), "valid", "in-force";
    // cache_saved_at: when the Console last vouched for it.
    rte_tel_data_add_dict_string(d, "cache_state", s.cache_state.c_str());
    rte_tel_data_add_dict_string(d, "cache_refused", s.cache_refused.c_str());
    rte_tel_data_add_dict_u64(d, "cache_saved_at", static_cast<uint64_t>(s.cache_saved_at));
    return 0;
}

}  // namespace

void register_telemetry(App &app) {
    rte_telemetry_register_cmd(
        "/segwire/control", cmd_control,
        "Policy in force and refusals; Console sync: connection, bundle, token, report spool.");
    rte_telemetry_register_cmd("/segwire/identity", cmd_identity,
                               "Identity handshake counters, policy version, HMAC back-end.");
    rte_telemetry_register_cmd("/segwire/flowlog", cmd_flowlog,
                               "Flow reports aggregated since start. Parameter: page.");
    rte_telemetry_register_cmd("/segwire/export", cmd_export,
                               "Flow accounting and export: JSON lines and IPFIX counters.");
    g_app = &app;
    rte_telemetry_register_cmd(
        "/segwire/l7", cmd_l7,
        "L7 mode: exception interface packets, identity queries, API reports.");
    rte_telemetry_register_cmd("/segwire/stats", cmd_stats,
                               "Totals over all workers: packets, bytes, flows, drops by reason.");
    rte_telemetry_register_cmd("/segwire/workers", cmd_workers, "Per-worker counters.");
    rte_telemetry_register_cmd("/segwire/ports", cmd_ports, "The inside and outside ports.");
    rte_telemetry_register_cmd("/segwire/geneve", cmd_geneve,
                               "GENEVE one-arm mode: settings, counters, drops.");
    rte_telemetry_register_cmd("/segwire/routing", cmd_routing,
                               "Routed mode: ports' addresses, route table, counters.");
    rte_telemetry_register_cmd("/segwire/neighbours", cmd_neighbours,
                               "Routed mode: the neighbour table (ARP, ND). Parameter: page.");
    rte_telemetry_register_cmd("/segwire/flows", cmd_flows,
                               "Flow listing. Parameter: page (0 takes a fresh snapshot).");
}

}  // namespace segwire::control
