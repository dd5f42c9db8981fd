// L7 mode, the enforcer's side (docs/l7-path.md): the exception port and its kernel side, the
// files segwire-proxy reads (<state_dir>/l7/), the identity query socket and the API report socket
// (docs/l7-path.md "Contract"). Control side: may block, allocate, lock and log; nothing here runs
// on a worker lcore.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "config/appliance_config.hpp"
#include "config/policy/model.hpp"
#include "control/eal_setup.hpp"
#include "dataplane/contract/worker_setup.hpp"

namespace segwire::control {

struct L7Counts {
    uint64_t queries = 0, found = 0, not_found = 0, bad_queries = 0;
    uint64_t reports = 0, bad_reports = 0, identities = 0;
};

class L7Path {
  public:
    // Control time, after EAL init: configures and starts the exception port with `queues`
    // queues, sets up its kernel side (l7.setup), creates <state_dir>/l7/ and the sockets.
    // Throws std::runtime_error.
    L7Path(const config::ApplianceConfig &cfg, uint16_t queues, rte_mempool *pool);
    ~L7Path();

    uint16_t port_id() const { return port_.port_id; }
    const PortInfo &port() const { return port_; }
    const uint8_t *kernel_mac() const { return mac_; }
    uint64_t mark() const { return mark_; }
    dp::L7Neighbours *neighbours() { return neighbours_.get(); }

    // A policy was installed: the services selecting hosted PUs, their PU indices in the new
    // snapshot (pu_of: the hosted PU's ID -> snapshot index). Returns the sorted L7 ports of the
    // enforcer state (dp::EnforcerState::l7_ports); writes services.json.
    std::vector<uint64_t> policy_installed(const policy::PolicySet &set,
                                           const std::string &enforcer_id,
                                           const std::unordered_map<std::string, uint32_t> &pu_of);
    // An accepted incoming TCP flow (a decision record): remembered when it is to an L7 port.
    // peer_pu empty: a peer without identity.
    void flow_decided(const std::string &src, uint16_t sport, const std::string &dst,
                      uint16_t dport, const std::string &peer_pu);
    // The enforcer's credential and the Console CA as files the proxy reads (when they changed).
    void refresh_credentials(const std::string &cert, const std::string &key,
                             const std::string &ca);
    // The hosted services with TLSType "Aporeto" (name -> hosts) and a count that changes with
    // every policy installed: the Console issues their certificates (ConsoleSync).
    std::map<std::string, std::vector<std::string>> tls_services(uint64_t *generation) const;
    // API reports received since the last call (validated JSON objects).
    std::vector<std::string> take_reports();
    L7Counts counts() const;
    const std::string &dir() const { return dir_; }

  private:
    void serve();
    void answer(int fd, std::string &buf);
    void on_report(const char *data, size_t n);

    config::ApplianceConfig cfg_;
    PortInfo port_;
    uint8_t mac_[6] = {};
    uint64_t mark_ = 0;
    std::unique_ptr<dp::L7Neighbours> neighbours_;
    std::string dir_;
    int identity_fd_ = -1, reports_fd_ = -1, wake_[2] = {-1, -1};
    std::thread thread_;
    std::atomic<bool> stop_{false};

    mutable std::mutex mu_;
    struct Peer {
        std::string pu;  // empty: no identity
        uint64_t seen_s = 0;
    };
    std::unordered_map<std::string, Peer> flows_;  // "src sport dst dport"
    std::map<std::string, std::pair<std::vector<std::string>, std::string>> pus_;  // tags, enforcer
    std::map<std::pair<std::string, uint16_t>, bool> targets_;  // (PU address, exposed port)
    std::vector<std::string> reports_;
    L7Counts counts_;
    std::string cert_, key_, ca_;
    std::map<std::string, std::vector<std::string>> tls_;  // mu_
    uint64_t tls_generation_ = 0;                          // mu_
};

}  // namespace segwire::control
