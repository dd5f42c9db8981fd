#include "control/eal_setup.hpp"

#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <stdexcept>

#include <rte_errno.h>
#include <rte_ethdev.h>

namespace segwire::control {
namespace {

std::vector<int> usable_cpus() {
    std::vector<int> cpus;
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) == 0)
        for (int i = 0; i < CPU_SETSIZE; ++i)
            if (CPU_ISSET(i, &set)) cpus.push_back(i);
    if (cpus.empty()) cpus.push_back(0);
    return cpus;
}

// net_af_packet needs as many queue pairs as we have workers; add qpairs= unless given.
std::string vdev_spec(const config::PortConfig &p, uint32_t workers) {
    std::string spec = p.device;
    if (spec.rfind("net_af_packet", 0) == 0 && spec.find("qpairs=") == std::string::npos)
        spec += ",qpairs=" + std::to_string(workers);
    return spec;
}

// A symmetric Toeplitz key (the 16-bit pattern repeated) makes hash(a,b) == hash(b,a).
uint8_t kSymmetricRssKey[52] = {
    0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d,
    0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
    0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d,
    0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
};

[[noreturn]] void fail(const char *role, const std::string &name, const std::string &what, int rc) {
    throw std::runtime_error(std::string("port ") + role + " (" + name + "): " + what + ": " +
                             rte_strerror(rc < 0 ? -rc : rc));
}

}  // namespace

int kernel_if_mtu(unsigned if_index) {
    if (if_index == 0) return -1;
    ifreq ifr{};
    if (!if_indextoname(if_index, ifr.ifr_name)) return -1;
    const int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) return -1;
    const int rc = ioctl(s, SIOCGIFMTU, &ifr);
    close(s);
    return rc == 0 && ifr.ifr_mtu > 0 ? ifr.ifr_mtu : -1;
}

config::PortConfig l7_port_config(const config::ApplianceConfig &c) {
    config::PortConfig p;
    if (c.l7.exception == "virtio_user") {
        // DPDK's recommended exception path (the replacement of KNI): a virtio device whose
        // backend is the kernel's vhost-net, which creates the tap interface `iface`.
        if (access("/dev/vhost-net", R_OK | W_OK) != 0)
            throw std::runtime_error(
                "l7.exception: virtio_user needs /dev/vhost-net (modprobe vhost_net); this kernel "
                "has none: use \"tap\"");
        p.device =
            "virtio_user7,path=/dev/vhost-net,queue_size=1024,queues=" + std::to_string(c.workers) +
            ",iface=" + c.l7.iface;
    } else {
        p.device = "net_tap7,iface=" + c.l7.iface;
    }
    return p;
}

std::vector<std::string> build_eal_args(const config::ApplianceConfig &c) {
    std::vector<std::string> a = {"segwire", "--file-prefix", c.eal.file_prefix};
    if (c.eal.test_mode) {
        // No hugepages; --in-memory is refused together with --no-huge by DPDK 22.11.
        a.insert(a.end(), {"--no-huge", "--no-shconf", "-m", std::to_string(c.eal.memory_mb)});
    }
    std::string lcores = c.eal.lcores;
    if (lcores.empty()) {
        // Main lcore (control thread) on the first CPU, workers spread over the rest.
        auto cpus = usable_cpus();
        lcores = "0@" + std::to_string(cpus[0]);
        for (uint32_t w = 1; w <= c.workers; ++w)
            lcores += "," + std::to_string(w) + "@" + std::to_string(cpus[w % cpus.size()]);
    }
    a.insert(a.end(), {"--lcores", lcores});
    bool any_pci = false;
    for (const config::PortConfig *p : {&c.inside, &c.outside}) {
        if (p == &c.outside && c.geneve) break;  // one arm
        if (p->is_pci()) {
            any_pci = true;
            a.insert(a.end(), {"-a", p->device});
        } else {
            a.insert(a.end(), {"--vdev", vdev_spec(*p, c.workers)});
        }
    }
    if (c.l7.enabled) a.insert(a.end(), {"--vdev", l7_port_config(c).device});
    if (!any_pci) a.emplace_back("--no-pci");
    a.insert(a.end(), c.eal.extra_args.begin(), c.eal.extra_args.end());
    return a;
}

uint32_t ring_mbufs(const config::PortConfig &pc, const char *role, uint16_t queues) {
    const std::string name = pc.name();
    uint16_t port_id = 0;
    int rc = rte_eth_dev_get_port_by_name(name.c_str(), &port_id);
    if (rc != 0) fail(role, name, "no such DPDK device", rc);
    rte_eth_dev_info dev{};
    rc = rte_eth_dev_info_get(port_id, &dev);
    if (rc != 0) fail(role, name, "rte_eth_dev_info_get", rc);
    const std::string driver = dev.driver_name ? dev.driver_name : "";
    if (driver == "net_af_packet" || driver == "net_tap" || driver == "net_pcap") return 0;
    return uint32_t(queues) * (uint32_t(pc.rx_desc) + pc.tx_desc);
}

PortInfo setup_port(const config::PortConfig &pc, const char *role, uint16_t queues,
                    rte_mempool *pool) {
    PortInfo info;
    info.name = pc.name();
    int rc = rte_eth_dev_get_port_by_name(info.name.c_str(), &info.port_id);
    if (rc != 0) fail(role, info.name, "no such DPDK device", rc);

    rte_eth_dev_info dev{};
    rc = rte_eth_dev_info_get(info.port_id, &dev);
    if (rc != 0) fail(role, info.name, "rte_eth_dev_info_get", rc);
    info.driver = dev.driver_name ? dev.driver_name : "?";
    if (dev.max_rx_queues < queues || dev.max_tx_queues < queues)
        throw std::runtime_error(std::string("port ") + role + " (" + info.name + "): has " +
                                 std::to_string(dev.max_rx_queues) + " rx queues, " +
                                 std::to_string(queues) + " workers need one each");

    rte_eth_conf conf{};
    const uint64_t want_rss = RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP;
    if (queues > 1 && (dev.flow_type_rss_offloads & want_rss) &&
        (dev.hash_key_size == 40 || dev.hash_key_size == 52)) {
        conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
        conf.rx_adv_conf.rss_conf.rss_key = kSymmetricRssKey;
        conf.rx_adv_conf.rss_conf.rss_key_len = dev.hash_key_size;
        conf.rx_adv_conf.rss_conf.rss_hf = dev.flow_type_rss_offloads & want_rss;
        info.symmetric_rss = true;
    }
    // Rewritten handshake packets need fresh checksums: let the NIC do them where it can.
    const uint64_t csum =
        dev.tx_offload_capa & (RTE_ETH_TX_OFFLOAD_IPV4_CKSUM | RTE_ETH_TX_OFFLOAD_TCP_CKSUM |
                               RTE_ETH_TX_OFFLOAD_UDP_CKSUM);
    conf.txmode.offloads |= csum;
    info.tx_ipv4_cksum = csum & RTE_ETH_TX_OFFLOAD_IPV4_CKSUM;
    info.tx_tcp_cksum = csum & RTE_ETH_TX_OFFLOAD_TCP_CKSUM;
    info.tx_udp_cksum = csum & RTE_ETH_TX_OFFLOAD_UDP_CKSUM;
    rc = rte_eth_dev_configure(info.port_id, queues, queues, &conf);
    if (rc != 0) fail(role, info.name, "rte_eth_dev_configure", rc);

    uint16_t rxd = pc.rx_desc, txd = pc.tx_desc;
    rc = rte_eth_dev_adjust_nb_rx_tx_desc(info.port_id, &rxd, &txd);
    if (rc != 0) fail(role, info.name, "rte_eth_dev_adjust_nb_rx_tx_desc", rc);
    int socket = rte_eth_dev_socket_id(info.port_id);
    if (socket < 0) socket = 0;
    for (uint16_t q = 0; q < queues; ++q) {
        rc = rte_eth_rx_queue_setup(info.port_id, q, rxd, socket, nullptr, pool);
        if (rc != 0) fail(role, info.name, "rx queue " + std::to_string(q) + " setup", rc);
        rc = rte_eth_tx_queue_setup(info.port_id, q, txd, socket, nullptr);
        if (rc != 0) fail(role, info.name, "tx queue " + std::to_string(q) + " setup", rc);
    }
    rc = rte_eth_dev_start(info.port_id);
    if (rc != 0) fail(role, info.name, "rte_eth_dev_start", rc);
    // Bump-in-the-wire forwards frames addressed to other hosts.
    rte_eth_promiscuous_enable(info.port_id);
    rte_eth_dev_get_mtu(info.port_id, &info.mtu);
    // PMDs that drive a kernel interface (af_packet, tap; dev_info.if_index set) report ethdev's
    // default of 1500 whatever the interface's MTU is: the kernel's value is what the link carries.
    // Read once here (a later `ip link set mtu` is seen at the next start).
    if (int k = kernel_if_mtu(dev.if_index); k > 0 && k <= UINT16_MAX)
        info.mtu = static_cast<uint16_t>(k);
    // ports.*.mtu: the largest datagram segwire sends there. A port below it is asked for it
    // (jumbo frames); one above keeps its own (routed mode then sends no more than asked,
    // telling senders so: docs/routed.md "MTU").
    if (pc.mtu) {
        if (pc.mtu > info.mtu) {
            rc = rte_eth_dev_set_mtu(info.port_id, pc.mtu);
            if (rc != 0)
                throw std::runtime_error(std::string("ports.") + role + ".mtu: port " + info.name +
                                         " cannot take an MTU of " + std::to_string(pc.mtu) + ": " +
                                         rte_strerror(-rc));
        }
        info.mtu = pc.mtu;
    }
    return info;
}

void stop_port(uint16_t port_id) {
    rte_eth_dev_stop(port_id);
    rte_eth_dev_close(port_id);
}

}  // namespace segwire::control
