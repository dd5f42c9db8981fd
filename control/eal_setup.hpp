// EAL and port bring-up on the main lcore (control time: may block, allocate, log).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "config/appliance_config.hpp"

struct rte_mempool;

namespace segwire::control {

// The EAL argument vector for a config: test mode (no hugepages), file prefix, lcore map, vdevs.
std::vector<std::string> build_eal_args(const config::ApplianceConfig &c);

// The L7 exception port (docs/l7-path.md): net_tap or virtio_user + vhost-net, named by l7.iface.
// Throws std::runtime_error when virtio_user is asked for and /dev/vhost-net is missing.
config::PortConfig l7_port_config(const config::ApplianceConfig &c);

struct PortInfo {
    uint16_t port_id = 0;
    std::string name;
    std::string driver;
    bool symmetric_rss = false;  // hardware spreads both directions of a flow to one queue
    // The port's MTU: the kernel interface's for PMDs backed by one (af_packet, tap), else
    // rte_eth_dev_get_mtu. Reported by /segwire/ports and used to refuse oversize rewrites.
    uint16_t mtu = 1500;
    // Checksums the NIC computes on transmit (enabled when it offers them; af_packet does not).
    bool tx_ipv4_cksum = false, tx_tcp_cksum = false, tx_udp_cksum = false;
};

// Mbufs the port's descriptor rings can hold with `queues` queue pairs: none for drivers that copy
// each frame from or to a kernel ring (net_af_packet, net_tap, net_pcap), else rx_desc + tx_desc
// per queue. Throws std::runtime_error when the device does not exist.
uint32_t ring_mbufs(const config::PortConfig &pc, const char *role, uint16_t queues);

// Configures and starts one port with `queues` rx/tx queue pairs. Throws std::runtime_error
// naming the port and the DPDK call that failed.
PortInfo setup_port(const config::PortConfig &pc, const char *role, uint16_t queues,
                    rte_mempool *pool);

void stop_port(uint16_t port_id);

// The MTU of the kernel interface with this index in the calling thread's network namespace, or
// -1 when there is none (index 0: the PMD drives no kernel interface).
int kernel_if_mtu(unsigned if_index);

}  // namespace segwire::control
