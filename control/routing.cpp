#include "control/routing.hpp"

#include <cstring>
#include <stdexcept>

#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_fib.h>
#include <rte_fib6.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_rcu_qsbr.h>
#include <spdlog/spdlog.h>

#include "control/eal_setup.hpp"
#include "crypto/bytes.hpp"

namespace segwire::control {
namespace {

// The prefix with its host bits cleared (an interface address gives its connected prefix).
policy::IpPrefix network_of(policy::IpPrefix a) {
    for (unsigned bit = a.len; bit < 128; ++bit)
        a.addr[bit / 8] &= static_cast<uint8_t>(~(0x80u >> (bit % 8)));
    return a;
}

}  // namespace

Routing::Routing(const config::ApplianceConfig &cfg, const PortInfo ports[2], uint32_t workers)
    : cfg_(cfg) {
    const config::PortConfig *pc[2] = {&cfg.inside, &cfg.outside};
    for (int p = 0; p < 2; ++p) {
        dp::RoutedPort &rp = ports_.port[p];
        rte_ether_addr mac{};
        if (rte_eth_macaddr_get(ports[p].port_id, &mac) != 0)
            throw std::runtime_error(std::string("ports.") + (p ? "outside" : "inside") +
                                     ": cannot read the port's MAC address");
        std::memcpy(rp.mac, mac.addr_bytes, 6);
        rp.mtu = ports[p].mtu;
        for (const policy::IpPrefix &a : pc[p]->addresses) {
            dp::PortAddr pa{};
            std::memcpy(pa.addr.b, a.addr.data(), a.v6 ? 16 : 4);
            pa.len = a.len;
            if (a.v6 ? rp.n6 == dp::kMaxPortAddrs : rp.n4 == dp::kMaxPortAddrs)
                throw std::runtime_error(std::string("ports.") + (p ? "outside" : "inside") +
                                         ".addresses: at most 8 per address family");
            (a.v6 ? rp.v6[rp.n6++] : rp.v4[rp.n4++]) = pa;
        }
    }
    const size_t sz = rte_rcu_qsbr_get_memsize(workers);
    slot_.qsbr = static_cast<rte_rcu_qsbr *>(rte_zmalloc("sw_route_qsbr", sz, RTE_CACHE_LINE_SIZE));
    if (!slot_.qsbr || rte_rcu_qsbr_init(slot_.qsbr, workers) != 0)
        throw std::runtime_error("routing: cannot set up the route table's RCU");
    const dp::RouteTable *t = build(cfg.routing.routes);
    slot_.current.store(t);
    publish_summary(t, cfg.routing.routes.size());
}

void Routing::publish_summary(const dp::RouteTable *t, size_t statics) {
    routes4_.store(t->routes4);
    routes6_.store(t->routes6);
    statics_.store(statics);
    generation_seen_.store(t->generation);
}

Routing::~Routing() {
    destroy(const_cast<dp::RouteTable *>(slot_.current.load()));
    rte_free(slot_.qsbr);
}

void Routing::destroy(dp::RouteTable *t) {
    if (!t) return;
    if (t->fib4) rte_fib_free(t->fib4);
    if (t->fib6) rte_fib6_free(t->fib6);
    rte_free(t);
}

dp::RouteTable *Routing::build(const std::vector<config::RouteConfig> &routes) {
    const uint64_t gen = ++generation_;
    auto *t = static_cast<dp::RouteTable *>(
        rte_zmalloc("sw_route_table", sizeof(dp::RouteTable), RTE_CACHE_LINE_SIZE));
    if (!t) throw std::runtime_error("routing: out of memory for a route table");
    t->generation = gen;
    // DIR24_8 with 2-byte next hops: 32 MiB for the 2^24 first-level entries, up to 32767 next
    // hops; 256 second-level groups for prefixes longer than /24.
    rte_fib_conf c4{};
    c4.type = RTE_FIB_DIR24_8;
    c4.default_nh = 0;
    c4.max_routes = static_cast<int>(dp::kMaxNextHops);
    c4.dir24_8.nh_sz = RTE_FIB_DIR24_8_2B;
    c4.dir24_8.num_tbl8 = 256;
    const std::string n4 = "sw_fib4_" + std::to_string(gen), n6 = "sw_fib6_" + std::to_string(gen);
    t->fib4 = rte_fib_create(n4.c_str(), static_cast<int>(rte_socket_id()), &c4);
    rte_fib6_conf c6{};
    c6.type = RTE_FIB6_TRIE;
    c6.default_nh = 0;
    c6.max_routes = static_cast<int>(dp::kMaxNextHops);
    c6.trie.nh_sz = RTE_FIB6_TRIE_2B;
    c6.trie.num_tbl8 = 4096;
    t->fib6 = rte_fib6_create(n6.c_str(), static_cast<int>(rte_socket_id()), &c6);
    if (!t->fib4 || !t->fib6) {
        const std::string why = rte_strerror(rte_errno);
        destroy(t);
        throw std::runtime_error("routing: cannot create the FIB (rte_fib/rte_fib6): " + why +
                                 " (eal.memory_mb: the IPv4 FIB takes 32 MiB)");
    }
    auto add = [&](const policy::IpPrefix &prefix, const dp::NextHop &nh, const std::string &what) {
        if (t->nnh == dp::kMaxNextHops) throw std::runtime_error(what + ": more than 8192 routes");
        t->nh[t->nnh++] = nh;
        const uint64_t v = t->nnh;
        const policy::IpPrefix net = network_of(prefix);
        int rc;
        if (prefix.v6) {
            rc = rte_fib6_add(t->fib6, net.addr.data(), prefix.len, v);
            ++t->routes6;
        } else {
            rc = rte_fib_add(t->fib4, net.v4_host(), prefix.len, v);
            ++t->routes4;
        }
        if (rc != 0) throw std::runtime_error(what + ": rte_fib_add failed: " + rte_strerror(-rc));
    };
    try {
        // Static routes first, connected prefixes after: the same prefix given as a static route
        // is replaced by the connected one (rte_fib_add on an existing prefix updates it).
        for (size_t i = 0; i < routes.size(); ++i) {
            const config::RouteConfig &r = routes[i];
            dp::NextHop nh{};
            nh.port = static_cast<uint8_t>(r.port);
            nh.connected = 0;
            std::memcpy(nh.gateway.b, r.via.addr.data(), r.via.v6 ? 16 : 4);
            add(r.prefix, nh, "routing.routes[" + std::to_string(i) + "]");
        }
        const config::PortConfig *pc[2] = {&cfg_.inside, &cfg_.outside};
        for (int p = 0; p < 2; ++p)
            for (const policy::IpPrefix &a : pc[p]->addresses) {
                dp::NextHop nh{};
                nh.port = static_cast<uint8_t>(p);
                nh.connected = 1;
                add(a, nh, std::string("ports.") + (p ? "outside" : "inside") + ".addresses");
            }
    } catch (...) {
        destroy(t);
        throw;
    }
    return t;
}

void Routing::reload(const std::vector<config::RouteConfig> &routes) {
    dp::RouteTable *fresh = build(routes);
    const dp::RouteTable *old = slot_.current.exchange(fresh, std::memory_order_acq_rel);
    // Every worker passes a quiescent state once per loop (idle workers at least every
    // idle.max_sleep_us): after that none still reads `old`.
    rte_rcu_qsbr_synchronize(slot_.qsbr, RTE_QSBR_THRID_INVALID);
    destroy(const_cast<dp::RouteTable *>(old));
    publish_summary(fresh, routes.size());
    spdlog::info("routing: {} static route(s) in force (table generation {})", routes.size(),
                 fresh->generation);
}

}  // namespace segwire::control
