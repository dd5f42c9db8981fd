// Routed mode's control side (docs/routed.md): the ports' addresses for the workers, and the
// route table (connected prefixes + routing.routes) built into rte_fib / rte_fib6 and published
// to the workers by RCU (rte_rcu_qsbr): a reload builds a new table, swaps the pointer, waits
// for every worker's quiescent state and frees the old one. Main lcore only.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "config/appliance_config.hpp"
#include "dataplane/contract/routing.hpp"

namespace segwire::control {

struct PortInfo;

class Routing {
  public:
    // Throws std::runtime_error naming the field when a table cannot be built.
    Routing(const config::ApplianceConfig &cfg, const PortInfo ports[2], uint32_t workers);
    ~Routing();
    Routing(const Routing &) = delete;
    Routing &operator=(const Routing &) = delete;

    const dp::RoutedPorts *ports() const { return &ports_; }
    dp::RouteSlot *slot() { return &slot_; }
    // New static routes (from a re-read config); the connected prefixes stay. Throws on a table
    // that cannot be built; the old one stays in force then.
    void reload(const std::vector<config::RouteConfig> &routes);
    // What the table in force holds, for any thread (telemetry): the table itself may be freed
    // by a reload while another thread reads it, these may not.
    struct Summary {
        uint64_t generation, routes4, routes6, statics;
    };
    Summary summary() const {
        return {generation_seen_.load(), routes4_.load(), routes6_.load(), statics_.load()};
    }
    const dp::RouteTable *current() const { return slot_.current.load(); }  // main lcore only

  private:
    dp::RouteTable *build(const std::vector<config::RouteConfig> &routes);
    static void destroy(dp::RouteTable *t);

    dp::RoutedPorts ports_{};
    dp::RouteSlot slot_;
    void publish_summary(const dp::RouteTable *t, size_t statics);

    config::ApplianceConfig cfg_;
    uint64_t generation_ = 0;
    std::atomic<uint64_t> generation_seen_{0}, routes4_{0}, routes6_{0}, statics_{0};
};

}  // namespace segwire::control
