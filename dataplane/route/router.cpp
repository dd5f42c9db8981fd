#include "dataplane/route/router.hpp"

#include <algorithm>
#include <cstring>

#include <rte_arp.h>
#include <rte_byteorder.h>
#include <rte_ether.h>
#include <rte_fib.h>
#include <rte_fib6.h>
#include <rte_hash.h>
#include <rte_hash_crc.h>
#include <rte_icmp.h>
#include <rte_ip.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_rcu_qsbr.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>

#include "crypto/bytes.hpp"

namespace segwire::dp {
namespace {

constexpr uint8_t kIcmpEchoReply = 0, kIcmpUnreach = 3, kIcmpEcho = 8, kIcmpTimeExceeded = 11;
constexpr uint8_t kIcmpNetUnreach = 0, kIcmpHostUnreach = 1, kIcmpFragNeeded = 4;
constexpr uint8_t kIcmp6Unreach = 1, kIcmp6TooBig = 2, kIcmp6TimeExceeded = 3;
constexpr uint8_t kIcmp6NoRoute = 0, kIcmp6AddrUnreach = 3;
constexpr uint8_t kIcmp6Echo = 128, kIcmp6EchoReply = 129, kNdNs = 135, kNdNa = 136;
constexpr uint8_t kNaRouter = 0x80, kNaSolicited = 0x40, kNaOverride = 0x20;
constexpr uint8_t kOptSourceLla = 1, kOptTargetLla = 2;
constexpr uint8_t kBroadcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
constexpr uint8_t kZeroMac[6] = {0, 0, 0, 0, 0, 0};
// RFC 1812 4.3.2.3 / RFC 4443 2.4(c): an ICMP error quotes as much of the offending datagram as
// fits in 576 (IPv4) / 1280 (IPv6) bytes.
constexpr uint32_t kQuote4 = 576 - 20 - 8, kQuote6 = 1280 - 40 - 8;

uint16_t ones(uint32_t sum) {
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return static_cast<uint16_t>(sum);
}

uint16_t eth_type(const uint8_t *eth, uint16_t len, uint16_t *l3) {
    uint16_t off = 12;
    uint16_t t = crypto::load_be16(eth + off);
    while ((t == RTE_ETHER_TYPE_VLAN || t == RTE_ETHER_TYPE_QINQ) && off + 6u <= len) {
        off += 4;
        t = crypto::load_be16(eth + off);
    }
    *l3 = off + 2;
    return t;
}

bool prefix_has(const PortAddr &a, const uint8_t *ip, uint8_t family) {
    const unsigned bits = a.len, full = bits / 8, rest = bits % 8;
    (void)family;
    if (std::memcmp(a.addr.b, ip, full) != 0) return false;
    if (!rest) return true;
    const uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
    return (a.addr.b[full] & mask) == (ip[full] & mask);
}

bool v6_unspecified(const uint8_t *a) {
    for (int i = 0; i < 16; ++i)
        if (a[i]) return false;
    return true;
}

// The source / target link-layer address option of an NS or NA (RFC 4861 4.6.1).
const uint8_t *nd_lla(const uint8_t *opt, const uint8_t *end, uint8_t want) {
    while (opt + 2 <= end) {
        const unsigned len = opt[1] * 8u;
        if (len == 0 || opt + len > end) return nullptr;
        if (opt[0] == want && len == 8) return opt + 2;
        opt += len;
    }
    return nullptr;
}

}  // namespace

Router::~Router() {
    if (table_) rte_hash_free(table_);
    rte_free(entries_);
    rte_free(held_);
    rte_free(dump_.rows);
}

bool Router::init(const RouterSetup &s, TxQueues *tx, uint64_t tsc_hz, std::string &err) {
    ports_ = s.ports;
    routes_ = s.routes;
    cfg_ = s.cfg;
    pool_ = s.pool;
    tx_ = tx;
    worker_ = s.worker;
    local_only_ = s.local_only;
    hz_ = tsc_hz;
    reachable_tsc_ = cfg_.reachable_s * hz_;
    stale_tsc_ = cfg_.stale_s * hz_;
    retrans_tsc_ = cfg_.retrans_ms * hz_ / 1000;
    capacity_ = cfg_.neighbours;
    const std::string name = "sw_nbr_" + std::to_string(s.worker);
    rte_hash_parameters hp{};
    hp.name = name.c_str();
    hp.entries = capacity_;
    hp.key_len = sizeof(NKey);
    hp.hash_func = rte_hash_crc;
    hp.socket_id = s.socket;
    hp.extra_flag = RTE_HASH_EXTRA_FLAGS_EXT_TABLE;  // exactly `capacity_` whatever collides
    table_ = rte_hash_create(&hp);
    entries_ = static_cast<Neighbour *>(
        rte_zmalloc_socket("sw_nbr_entries", sizeof(Neighbour) * capacity_, 64, s.socket));
    held_ = static_cast<rte_mbuf **>(rte_zmalloc_socket(
        "sw_nbr_held", sizeof(rte_mbuf *) * capacity_ * std::max(1u, cfg_.hold_per_neighbour), 64,
        s.socket));
    dump_.capacity = capacity_;
    dump_.rows = static_cast<NeighbourRecord *>(
        rte_zmalloc_socket("sw_nbr_dump", sizeof(NeighbourRecord) * capacity_, 64, s.socket));
    if (!table_ || !entries_ || !held_ || !dump_.rows) {
        err = "routing.neighbours: cannot allocate a neighbour table of " +
              std::to_string(capacity_) + " entries";
        return false;
    }
    tokens_ = cfg_.icmp_burst;
    if (routes_->qsbr) {
        if (rte_rcu_qsbr_thread_register(routes_->qsbr, worker_) != 0) {
            err = "cannot register the worker with the route table's RCU";
            return false;
        }
        registered_ = true;
    }
    return true;
}

void Router::online() {
    if (registered_) rte_rcu_qsbr_thread_online(routes_->qsbr, worker_);
}
void Router::offline() {
    if (registered_) rte_rcu_qsbr_thread_offline(routes_->qsbr, worker_);
}
void Router::quiescent() {
    if (registered_) rte_rcu_qsbr_quiescent(routes_->qsbr, worker_);
}

void Router::drop(rte_mbuf *m, DropReason r) noexcept {
    tx_->stats->drops[static_cast<size_t>(r)].add();
    tx_->cap->dropped(m, r);
    rte_pktmbuf_free(m);
}

bool Router::is_own(uint8_t family, const IpAddr &a) const noexcept {
    for (const RoutedPort &p : ports_->port) {
        if (family == 4) {
            for (uint8_t i = 0; i < p.n4; ++i)
                if (std::memcmp(p.v4[i].addr.b, a.b, 4) == 0) return true;
        } else {
            for (uint8_t i = 0; i < p.n6; ++i)
                if (std::memcmp(p.v6[i].addr.b, a.b, 16) == 0) return true;
        }
    }
    return false;
}

// The port's address of the family on the peer's prefix, else its first, else the other port's.
const PortAddr *Router::source_for(uint8_t port, uint8_t family,
                                   const uint8_t *peer) const noexcept {
    for (int k = 0; k < 2; ++k) {
        const RoutedPort &p = ports_->port[port ^ k];
        const PortAddr *a = family == 4 ? p.v4 : p.v6;
        const uint8_t n = family == 4 ? p.n4 : p.n6;
        for (uint8_t i = 0; i < n; ++i)
            if (prefix_has(a[i], peer, family)) return &a[i];
        if (n) return &a[0];
    }
    return nullptr;
}

bool Router::ingress(rte_mbuf *m, PacketView &v, uint8_t arrival, uint64_t now) noexcept {
    const RoutedPort &in = ports_->port[arrival];
    uint8_t *eth = rte_pktmbuf_mtod(m, uint8_t *);
    if (v.l3 == L3::Arp) {
        arp_in(m, v, arrival, now);
        return false;
    }
    if (!v.is_ip()) {
        drop(m, DropReason::NotRouted);
        return false;
    }
    if (std::memcmp(eth, in.mac, 6) != 0) {
        // Multicast: only neighbour discovery is for us (solicitations to solicited-node
        // addresses, unsolicited advertisements). Unicast to another MAC: a promiscuous port
        // sees other hosts' frames on a shared segment.
        if ((eth[0] & 1) && v.family == 6 && v.proto == kProtoIcmp6 &&
            (v.icmp_type == kNdNs || v.icmp_type == kNdNa)) {
            nd_in(m, v, arrival, now);
            return false;
        }
        drop(m, DropReason::NotRouted);
        return false;
    }
    if (is_own(v.family, v.dst)) {
        stats_.local_in.add();
        local_in(m, v, arrival, now);
        return false;
    }
    // Transit. Not routed: multicast, broadcast, link-local destinations; anything in GENEVE
    // mode (only what came encapsulated is forwarded).
    if (local_only_ || (v.family == 4 ? (v.dst.b[0] >= 224 || v.dst.b[0] == 0 || v.dst.b[0] == 127)
                                      : (v.dst.b[0] == 0xff ||
                                         (v.dst.b[0] == 0xfe && (v.dst.b[1] & 0xc0) == 0x80)))) {
        drop(m, DropReason::NotRouted);
        return false;
    }
    const RouteTable *rt = routes_->current.load(std::memory_order_acquire);
    uint64_t nh = 0;
    if (v.family == 4) {
        uint32_t ip = crypto::load_be32(v.dst.b);
        rte_fib_lookup_bulk(rt->fib4, &ip, &nh, 1);
    } else {
        uint8_t ip[1][16];
        std::memcpy(ip[0], v.dst.b, 16);
        rte_fib6_lookup_bulk(rt->fib6, ip, &nh, 1);
    }
    if (nh == 0 || nh > rt->nnh) {
        icmp_error(m, v, arrival, v.family == 4 ? kIcmpUnreach : kIcmp6Unreach,
                   v.family == 4 ? kIcmpNetUnreach : kIcmp6NoRoute, 0, stats_.icmp_unreachable,
                   now);
        drop(m, DropReason::NoRoute);
        return false;
    }
    const uint8_t out = rt->nh[nh - 1].port;
    if (out == arrival) {
        // The identity stage sees a packet cross from one side to the other; a route back out
        // of the port it came in by has no such side (and ICMP redirects are not sent).
        drop(m, DropReason::RouteSamePort);
        return false;
    }
    if (v.ttl <= 1) {
        icmp_error(m, v, arrival, v.family == 4 ? kIcmpTimeExceeded : kIcmp6TimeExceeded, 0, 0,
                   stats_.icmp_time_exceeded, now);
        drop(m, DropReason::TtlExceeded);
        return false;
    }
    const uint16_t mtu = ports_->port[out].mtu;
    if (v.ip_end - v.l3_off > mtu) {
        // IPv4 without DF would need fragmenting: not done (docs/routed.md, "Limits"); the
        // sender is told the MTU either way, which is what it needs.
        icmp_error(m, v, arrival, v.family == 4 ? kIcmpUnreach : kIcmp6TooBig,
                   v.family == 4 ? kIcmpFragNeeded : 0, mtu, stats_.icmp_too_big, now);
        drop(m, DropReason::FragmentationNeeded);
        return false;
    }
    uint8_t *l3 = eth + v.l3_off;
    if (v.family == 4) {
        // RFC 1624: HC' = ~(~HC + ~m + m') over the TTL/protocol word.
        auto *ip = reinterpret_cast<rte_ipv4_hdr *>(l3);
        const uint16_t old_word = static_cast<uint16_t>(ip->time_to_live << 8 | ip->next_proto_id);
        ip->time_to_live = static_cast<uint8_t>(ip->time_to_live - 1);
        const uint16_t new_word = static_cast<uint16_t>(ip->time_to_live << 8 | ip->next_proto_id);
        const uint32_t sum = static_cast<uint16_t>(~rte_be_to_cpu_16(ip->hdr_checksum)) +
                             static_cast<uint16_t>(~old_word) + new_word;
        ip->hdr_checksum = rte_cpu_to_be_16(static_cast<uint16_t>(~ones(sum)));
    } else {
        reinterpret_cast<rte_ipv6_hdr *>(l3)->hop_limits = static_cast<uint8_t>(v.ttl - 1);
    }
    v.ttl = static_cast<uint8_t>(v.ttl - 1);
    stats_.forwarded.add();
    return true;
}

// To one of segwire's own addresses: echo requests are answered, neighbour discovery handled,
// everything else dropped (segwire runs no services on its ports).
void Router::local_in(rte_mbuf *m, PacketView &v, uint8_t arrival, uint64_t now) noexcept {
    uint8_t *eth = rte_pktmbuf_mtod(m, uint8_t *);
    if (v.family == 6 && v.proto == kProtoIcmp6 && (v.icmp_type == kNdNs || v.icmp_type == kNdNa)) {
        nd_in(m, v, arrival, now);
        return;
    }
    const bool echo = v.family == 4 ? v.proto == kProtoIcmp && v.icmp_type == kIcmpEcho
                                    : v.proto == kProtoIcmp6 && v.icmp_type == kIcmp6Echo;
    if (!echo || v.fragment || v.ip_end > m->data_len || v.icmp_code != 0 ||
        (v.family == 6 && v.l4_off != v.l3_off + sizeof(rte_ipv6_hdr))) {
        drop(m, DropReason::LocalUnhandled);
        return;
    }
    uint8_t *l3 = eth + v.l3_off;
    uint8_t *icmp = eth + v.l4_off;
    const uint32_t icmp_len = v.ip_end - v.l4_off;
    if (v.family == 4) {
        auto *ip = reinterpret_cast<rte_ipv4_hdr *>(l3);
        const rte_be32_t src = ip->src_addr;
        ip->src_addr = ip->dst_addr;
        ip->dst_addr = src;
        ip->time_to_live = 64;
        ip->hdr_checksum = 0;
        ip->hdr_checksum = rte_ipv4_cksum(ip);
        icmp[0] = kIcmpEchoReply;
        icmp[2] = icmp[3] = 0;
        const uint16_t ck = static_cast<uint16_t>(~rte_raw_cksum(icmp, icmp_len));
        std::memcpy(icmp + 2, &ck, 2);
    } else {
        auto *ip = reinterpret_cast<rte_ipv6_hdr *>(l3);
        uint8_t tmp[16];
        std::memcpy(tmp, ip->src_addr, 16);
        std::memcpy(ip->src_addr, ip->dst_addr, 16);
        std::memcpy(ip->dst_addr, tmp, 16);
        ip->hop_limits = 64;
        icmp[0] = kIcmp6EchoReply;
        icmp[2] = icmp[3] = 0;
        const uint16_t ck = rte_ipv6_udptcp_cksum(ip, icmp);
        std::memcpy(icmp + 2, &ck, 2);
    }
    m->ol_flags = 0;
    stats_.icmp_echo_replies.add();
    // Routed back to the sender by egress, like every packet.
    tx_->push(m, arrival);
}

void Router::arp_in(rte_mbuf *m, const PacketView &v, uint8_t arrival, uint64_t now) noexcept {
    stats_.arp_in.add();
    uint8_t *eth = rte_pktmbuf_mtod(m, uint8_t *);
    auto *a = reinterpret_cast<rte_arp_hdr *>(eth + v.l3_off);
    const RoutedPort &in = ports_->port[arrival];
    if (a->arp_hardware != rte_cpu_to_be_16(RTE_ARP_HRD_ETHER) ||
        a->arp_protocol != rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4) || a->arp_hlen != 6 ||
        a->arp_plen != 4) {
        drop(m, DropReason::NotRouted);
        return;
    }
    const uint16_t op = rte_be_to_cpu_16(a->arp_opcode);
    NKey k{};
    std::memcpy(k.addr, &a->arp_data.arp_sip, 4);
    k.family = 4;
    k.port = static_cast<uint8_t>(arrival);
    const uint8_t *sha = a->arp_data.arp_sha.addr_bytes;
    bool for_us = false;
    for (uint8_t i = 0; i < in.n4; ++i)
        if (std::memcmp(in.v4[i].addr.b, &a->arp_data.arp_tip, 4) == 0) for_us = true;
    if (op == RTE_ARP_OP_REQUEST && for_us && a->arp_data.arp_sip != 0) {
        // RFC 826: the requester is learnt; a new entry starts stale (confirmed on first use).
        heard(k, sha, true, NeighbourState::Stale, now);
        // The reply, in place.
        a->arp_opcode = rte_cpu_to_be_16(RTE_ARP_OP_REPLY);
        std::memcpy(a->arp_data.arp_tha.addr_bytes, sha, 6);
        const rte_be32_t sip = a->arp_data.arp_sip;
        a->arp_data.arp_sip = a->arp_data.arp_tip;
        a->arp_data.arp_tip = sip;
        std::memcpy(a->arp_data.arp_sha.addr_bytes, in.mac, 6);
        std::memcpy(eth, a->arp_data.arp_tha.addr_bytes, 6);
        std::memcpy(eth + 6, in.mac, 6);
        m->ol_flags = 0;
        stats_.arp_replies_out.add();
        ctl(m, arrival);
        return;
    }
    if (op == RTE_ARP_OP_REPLY || op == RTE_ARP_OP_REQUEST) {
        // A reply (or a gratuitous request) confirms or updates an entry we have; it never
        // creates one (anyone on the segment could fill the table).
        heard(k, sha, false,
              op == RTE_ARP_OP_REPLY ? NeighbourState::Reachable : NeighbourState::Stale, now);
    }
    rte_pktmbuf_free(m);
}

void Router::nd_in(rte_mbuf *m, const PacketView &v, uint8_t arrival, uint64_t now) noexcept {
    stats_.nd_in.add();
    const uint8_t *eth = rte_pktmbuf_mtod(m, const uint8_t *);
    const uint8_t *icmp = eth + v.l4_off;
    const uint8_t *end = eth + std::min<uint32_t>(v.ip_end, m->data_len);
    // RFC 4861 7.1: hop limit 255 (not forwarded by a router), code 0, at least 24 bytes.
    if (v.ttl != 255 || v.icmp_code != 0 || icmp + 24 > end || v.fragment) {
        drop(m, DropReason::NotRouted);
        return;
    }
    const uint8_t *target = icmp + 8;
    const RoutedPort &in = ports_->port[arrival];
    NKey k{};
    k.family = 6;
    k.port = static_cast<uint8_t>(arrival);
    if (v.icmp_type == kNdNs) {
        bool for_us = false;
        for (uint8_t i = 0; i < in.n6; ++i)
            if (std::memcmp(in.v6[i].addr.b, target, 16) == 0) for_us = true;
        if (!for_us) {
            rte_pktmbuf_free(m);
            return;
        }
        const bool dad = v6_unspecified(v.src.b);
        const uint8_t *slla = nd_lla(icmp + 24, end, kOptSourceLla);
        if (!dad && slla) {
            std::memcpy(k.addr, v.src.b, 16);
            heard(k, slla, true, NeighbourState::Stale, now);
        }
        static constexpr uint8_t all_nodes[16] = {0xff, 0x02, 0, 0, 0, 0, 0, 0,
                                                  0,    0,    0, 0, 0, 0, 0, 1};
        static constexpr uint8_t all_nodes_mac[6] = {0x33, 0x33, 0, 0, 0, 1};
        uint8_t dst_mac[6];
        std::memcpy(dst_mac, dad ? all_nodes_mac : slla ? slla : eth + 6, 6);
        uint8_t dst_ip[16], tgt[16];
        std::memcpy(dst_ip, dad ? all_nodes : v.src.b, 16);
        std::memcpy(tgt, target, 16);
        rte_pktmbuf_free(m);
        send_na(arrival, dst_mac, dst_ip, tgt,
                static_cast<uint8_t>(kNaRouter | kNaOverride | (dad ? 0 : kNaSolicited)));
        return;
    }
    // An advertisement confirms or updates an entry we have (never creates one).
    const uint8_t *tlla = nd_lla(icmp + 24, end, kOptTargetLla);
    std::memcpy(k.addr, target, 16);
    const bool solicited = icmp[4] & kNaSolicited;
    heard(k, tlla ? tlla : eth + 6, false,
          solicited ? NeighbourState::Reachable : NeighbourState::Stale, now);
    rte_pktmbuf_free(m);
}

bool Router::take_token(uint64_t now) noexcept {
    if (cfg_.icmp_rate == 0) return false;
    tokens_ += static_cast<double>(now - tokens_tsc_) * cfg_.icmp_rate / static_cast<double>(hz_);
    tokens_tsc_ = now;
    if (tokens_ > cfg_.icmp_burst) tokens_ = cfg_.icmp_burst;
    if (tokens_ < 1) return false;
    tokens_ -= 1;
    return true;
}

// An ICMP / ICMPv6 error about `m` to its source (RFC 792/1812, RFC 4443), routed by egress.
void Router::icmp_error(const rte_mbuf *m, const PacketView &v, uint8_t arrival, uint8_t type,
                        uint8_t code, uint32_t mtu, Counter &what, uint64_t now) noexcept {
    // Never about: a non-first fragment, an ICMP error, a source that is no single host.
    if (v.fragment && !v.first_fragment) return;
    if (v.family == 4) {
        if (v.proto == kProtoIcmp && v.has_l4() && v.icmp_type != kIcmpEcho &&
            v.icmp_type != kIcmpEchoReply)
            return;
        if (v.src.b[0] == 0 || v.src.b[0] >= 224 || v.src.b[0] == 127) return;
    } else {
        if (v.proto == kProtoIcmp6 && v.has_l4() && v.icmp_type < 128) return;
        if (v.src.b[0] == 0xff || v6_unspecified(v.src.b)) return;
    }
    const PortAddr *src = source_for(arrival, v.family, v.src.b);
    if (!src) return;
    if (!take_token(now)) {
        stats_.icmp_rate_limited.add();
        return;
    }
    rte_mbuf *r = rte_pktmbuf_alloc(pool_);
    if (!r) return;
    const uint8_t *orig = rte_pktmbuf_mtod(m, const uint8_t *) + v.l3_off;
    uint32_t quote = std::min<uint32_t>(v.ip_end, m->data_len) - v.l3_off;
    quote = std::min(quote, v.family == 4 ? kQuote4 : kQuote6);
    const uint32_t l3 = v.family == 4 ? sizeof(rte_ipv4_hdr) : sizeof(rte_ipv6_hdr);
    const uint32_t total = RTE_ETHER_HDR_LEN + l3 + 8 + quote;
    uint8_t *p = reinterpret_cast<uint8_t *>(rte_pktmbuf_append(r, static_cast<uint16_t>(total)));
    if (!p) {
        rte_pktmbuf_free(r);
        return;
    }
    std::memset(p, 0, RTE_ETHER_HDR_LEN + l3 + 8);
    uint8_t *icmp = p + RTE_ETHER_HDR_LEN + l3;
    icmp[0] = type;
    icmp[1] = code;
    std::memcpy(icmp + 8, orig, quote);
    if (v.family == 4) {
        crypto::store_be16(p + 12, RTE_ETHER_TYPE_IPV4);
        if (mtu) crypto::store_be16(icmp + 6, static_cast<uint16_t>(mtu));  // RFC 1191
        auto *ip = reinterpret_cast<rte_ipv4_hdr *>(p + RTE_ETHER_HDR_LEN);
        ip->version_ihl = RTE_IPV4_VHL_DEF;
        ip->type_of_service = 0xc0;  // internetwork control, as Linux sends its errors
        ip->total_length = rte_cpu_to_be_16(static_cast<uint16_t>(l3 + 8 + quote));
        ip->time_to_live = 64;
        ip->next_proto_id = kProtoIcmp;
        std::memcpy(&ip->src_addr, src->addr.b, 4);
        std::memcpy(&ip->dst_addr, v.src.b, 4);
        ip->hdr_checksum = rte_ipv4_cksum(ip);
        const uint16_t ck = static_cast<uint16_t>(~rte_raw_cksum(icmp, 8 + quote));
        std::memcpy(icmp + 2, &ck, 2);
    } else {
        crypto::store_be16(p + 12, RTE_ETHER_TYPE_IPV6);
        if (mtu) crypto::store_be32(icmp + 4, mtu);
        auto *ip = reinterpret_cast<rte_ipv6_hdr *>(p + RTE_ETHER_HDR_LEN);
        ip->vtc_flow = rte_cpu_to_be_32(6u << 28);
        ip->payload_len = rte_cpu_to_be_16(static_cast<uint16_t>(8 + quote));
        ip->proto = kProtoIcmp6;
        ip->hop_limits = 64;
        std::memcpy(ip->src_addr, src->addr.b, 16);
        std::memcpy(ip->dst_addr, v.src.b, 16);
        const uint16_t ck = rte_ipv6_udptcp_cksum(ip, icmp);
        std::memcpy(icmp + 2, &ck, 2);
    }
    what.add();
    tx_->push(r, arrival);
}

void Router::heard(const NKey &k, const uint8_t *mac, bool create, NeighbourState st,
                   uint64_t now) noexcept {
    learn(k, mac, create, st, now);
    if (!shared_) return;
    NeighbourEvent e{};
    std::memcpy(e.addr, k.addr, 16);
    e.family = k.family;
    e.port = k.port;
    std::memcpy(e.mac, mac, 6);
    e.state = static_cast<uint8_t>(st);
    e.create = create;
    for (uint32_t w = 0; w < nworkers_; ++w)
        if (events_out_[w] && rte_ring_sp_enqueue_elem(events_out_[w], &e, sizeof e) != 0)
            stats_.neighbour_events_lost.add();
}

void Router::take_events(uint64_t now) noexcept {
    for (uint32_t w = 0; w < nworkers_; ++w) {
        if (!events_in_[w]) continue;
        NeighbourEvent ev[32];
        const unsigned n =
            rte_ring_sc_dequeue_burst_elem(events_in_[w], ev, sizeof ev[0], 32, nullptr);
        for (unsigned i = 0; i < n; ++i) {
            NKey k{};
            std::memcpy(k.addr, ev[i].addr, 16);
            k.family = ev[i].family;
            k.port = ev[i].port;
            learn(k, ev[i].mac, ev[i].create, static_cast<NeighbourState>(ev[i].state), now);
        }
    }
}

int32_t Router::find(const NKey &k) noexcept {
    // The one-entry cache: three loads and compares (a 20-byte memcmp is a library call).
    static_assert(sizeof(NKey) == 20);
    if (last_pos_ >= 0) {
        uint64_t a[2], b[2];
        uint32_t c, d;
        const NKey &e = entries_[last_pos_].key;
        std::memcpy(a, &e, 16), std::memcpy(b, &k, 16);
        std::memcpy(&c, reinterpret_cast<const uint8_t *>(&e) + 16, 4);
        std::memcpy(&d, reinterpret_cast<const uint8_t *>(&k) + 16, 4);
        if (((a[0] ^ b[0]) | (a[1] ^ b[1]) | (c ^ d)) == 0) return last_pos_;
    }
    const int32_t pos = rte_hash_lookup(table_, &k);
    if (pos >= 0) last_pos_ = pos;
    return pos;
}

// An answer (or a request from the neighbour itself) gives its MAC. Held packets go out now.
int32_t Router::learn(const NKey &k, const uint8_t *mac, bool create, NeighbourState st,
                      uint64_t now) noexcept {
    int32_t pos = find(k);
    if (pos < 0) {
        if (!create) return -1;
        pos = rte_hash_add_key(table_, &k);
        if (pos < 0) {
            stats_.neighbours_full.add();
            return -1;
        }
        Neighbour &n = entries_[pos];
        n = Neighbour{};
        n.key = k;
        n.in_use = true;
        n.used_tsc = now;
        ++size_;
    }
    Neighbour &n = entries_[pos];
    const bool changed = std::memcmp(n.mac, mac, 6) != 0;
    std::memcpy(n.mac, mac, 6);
    if (st == NeighbourState::Reachable || n.state == NeighbourState::Incomplete) {
        n.state = NeighbourState::Reachable;
        n.confirmed_tsc = now;
        n.probes = 0;
        ++n.resolutions;
        stats_.neighbours_resolved.add();
    } else if (changed) {
        n.state = NeighbourState::Stale;  // a new MAC, not yet confirmed (RFC 4861 7.2.5)
    }
    const uint32_t cap = cfg_.hold_per_neighbour;
    for (uint16_t i = 0; i < n.nheld; ++i) {
        rte_mbuf *h = held_[static_cast<size_t>(pos) * cap + i];
        set_l2(h, n.mac, k.port);
        stats_.released.add();
        ctl(h, k.port);
    }
    n.nheld = 0;
    return pos;
}

void Router::remove(int32_t pos) noexcept {
    Neighbour &n = entries_[pos];
    const uint32_t cap = cfg_.hold_per_neighbour;
    for (uint16_t i = 0; i < n.nheld; ++i)
        drop(held_[static_cast<size_t>(pos) * cap + i], DropReason::NeighbourUnresolved);
    rte_hash_del_key(table_, &n.key);
    n.in_use = false;
    n.nheld = 0;
    if (last_pos_ == pos) last_pos_ = -1;
    --size_;
}

void Router::set_l2(rte_mbuf *m, const uint8_t *dst, uint8_t port) noexcept {
    uint8_t *eth = rte_pktmbuf_mtod(m, uint8_t *);
    std::memcpy(eth, dst, 6);
    std::memcpy(eth + 6, ports_->port[port].mac, 6);
}

void Router::ctl(rte_mbuf *m, uint8_t port) noexcept {
    if (nctl_[port] == kCtl) {
        drop(m, DropReason::TxFull);
        return;
    }
    ctl_[port][nctl_[port]++] = m;
}

void Router::egress(uint64_t now) noexcept {
    const uint16_t n0 = tx_->n[0], n1 = tx_->n[1];
    const uint32_t n = n0 + n1;
    if (n) {
        const RouteTable *rt = routes_->current.load(std::memory_order_acquire);
        rte_mbuf *all[2 * TxQueues::kCap];
        uint64_t nh[2 * TxQueues::kCap];
        uint32_t ip4[2 * TxQueues::kCap];
        uint16_t at4[2 * TxQueues::kCap], at6[2 * TxQueues::kCap];
        uint8_t ip6[2 * TxQueues::kCap][16];
        uint8_t fam[2 * TxQueues::kCap];
        uint32_t k4 = 0, k6 = 0;
        for (uint16_t i = 0; i < n0; ++i) all[i] = tx_->q[0][i];
        for (uint16_t i = 0; i < n1; ++i) all[n0 + i] = tx_->q[1][i];
        tx_->n[0] = tx_->n[1] = 0;
        for (uint32_t i = 0; i < n; ++i) {
            const uint8_t *eth = rte_pktmbuf_mtod(all[i], const uint8_t *);
            uint16_t l3;
            const uint16_t t = eth_type(eth, all[i]->data_len, &l3);
            nh[i] = 0;
            fam[i] = 0;
            if (t == RTE_ETHER_TYPE_IPV4 && l3 + 20u <= all[i]->data_len) {
                fam[i] = 4;
                ip4[k4] = crypto::load_be32(eth + l3 + 16);
                at4[k4++] = static_cast<uint16_t>(i);
            } else if (t == RTE_ETHER_TYPE_IPV6 && l3 + 40u <= all[i]->data_len) {
                fam[i] = 6;
                std::memcpy(ip6[k6], eth + l3 + 24, 16);
                at6[k6++] = static_cast<uint16_t>(i);
            }
        }
        uint64_t r4[2 * TxQueues::kCap], r6[2 * TxQueues::kCap];
        if (k4) rte_fib_lookup_bulk(rt->fib4, ip4, r4, k4);
        if (k6) rte_fib6_lookup_bulk(rt->fib6, ip6, r6, static_cast<int>(k6));
        for (uint32_t j = 0; j < k4; ++j) nh[at4[j]] = r4[j];
        for (uint32_t j = 0; j < k6; ++j) nh[at6[j]] = r6[j];
        uint32_t j4 = 0, j6 = 0;
        for (uint32_t i = 0; i < n; ++i) {
            rte_mbuf *m = all[i];
            const uint8_t *dst = fam[i] == 4   ? reinterpret_cast<const uint8_t *>(&ip4[j4++])
                                 : fam[i] == 6 ? ip6[j6++]
                                               : nullptr;
            if (!dst || nh[i] == 0 || nh[i] > rt->nnh) {
                drop(m, DropReason::NoRoute);
                continue;
            }
            const NextHop &h = rt->nh[nh[i] - 1];
            NKey k{};
            k.family = fam[i];
            k.port = h.port;
            if (h.connected) {
                if (fam[i] == 4)
                    crypto::store_be32(k.addr, *reinterpret_cast<const uint32_t *>(dst));
                else
                    std::memcpy(k.addr, dst, 16);
            } else {
                std::memcpy(k.addr, h.gateway.b, fam[i] == 4 ? 4 : 16);
            }
            int32_t pos = find(k);
            if (pos < 0) {
                pos = rte_hash_add_key(table_, &k);
                if (pos < 0) {
                    stats_.neighbours_full.add();
                    drop(m, DropReason::NeighbourUnresolved);
                    continue;
                }
                Neighbour &e = entries_[pos];
                e = Neighbour{};
                e.key = k;
                e.in_use = true;
                e.state = NeighbourState::Incomplete;
                e.probes = 1;
                e.probe_tsc = now;
                e.used_tsc = now;
                ++size_;
                last_pos_ = pos;
                solicit(e, false);
            }
            Neighbour &e = entries_[pos];
            e.used_tsc = now;
            if (e.state == NeighbourState::Incomplete) {
                if (e.nheld < cfg_.hold_per_neighbour) {
                    held_[static_cast<size_t>(pos) * cfg_.hold_per_neighbour + e.nheld++] = m;
                    stats_.held.add();
                } else {
                    drop(m, DropReason::NeighbourUnresolved);
                }
                continue;
            }
            if (e.state == NeighbourState::Stale) {
                // Used after its confirmation aged: still used (RFC 4861's DELAY/PROBE, merged),
                // and asked again directly.
                e.state = NeighbourState::Probe;
                e.probes = 1;
                e.probe_tsc = now;
                solicit(e, true);
            }
            set_l2(m, e.mac, h.port);
            tx_->push(m, h.port);
        }
    }
    for (uint8_t p = 0; p < 2; ++p) {
        for (uint16_t i = 0; i < nctl_[p]; ++i) tx_->push(ctl_[p][i], p);
        nctl_[p] = 0;
    }
}

void Router::solicit(const Neighbour &e, bool unicast) noexcept {
    if (e.key.family == 4) {
        const PortAddr *src = source_for(e.key.port, 4, e.key.addr);
        if (!src) return;
        send_arp(e.key.port, RTE_ARP_OP_REQUEST, unicast ? e.mac : kBroadcast,
                 unicast ? e.mac : kZeroMac, src->addr.b, e.key.addr);
    } else {
        send_ns(e.key.port, e.key.addr, unicast ? e.mac : nullptr);
    }
}

void Router::send_arp(uint8_t port, uint16_t op, const uint8_t *dst_mac, const uint8_t *tha,
                      const uint8_t *spa, const uint8_t *tpa) noexcept {
    rte_mbuf *m = rte_pktmbuf_alloc(pool_);
    if (!m) return;
    // 60 bytes: the Ethernet minimum without the FCS.
    uint8_t *p = reinterpret_cast<uint8_t *>(rte_pktmbuf_append(m, 60));
    if (!p) {
        rte_pktmbuf_free(m);
        return;
    }
    std::memset(p, 0, 60);
    std::memcpy(p, dst_mac, 6);
    std::memcpy(p + 6, ports_->port[port].mac, 6);
    crypto::store_be16(p + 12, RTE_ETHER_TYPE_ARP);
    auto *a = reinterpret_cast<rte_arp_hdr *>(p + RTE_ETHER_HDR_LEN);
    a->arp_hardware = rte_cpu_to_be_16(RTE_ARP_HRD_ETHER);
    a->arp_protocol = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
    a->arp_hlen = 6;
    a->arp_plen = 4;
    a->arp_opcode = rte_cpu_to_be_16(op);
    std::memcpy(a->arp_data.arp_sha.addr_bytes, ports_->port[port].mac, 6);
    std::memcpy(&a->arp_data.arp_sip, spa, 4);
    std::memcpy(a->arp_data.arp_tha.addr_bytes, tha, 6);
    std::memcpy(&a->arp_data.arp_tip, tpa, 4);
    stats_.arp_requests_out.add();
    ctl(m, port);
}

namespace {
// An ICMPv6 ND message (RFC 4861): Ethernet + IPv6 (hop limit 255) + 24 bytes + one LLA option.
rte_mbuf *nd_frame(rte_mempool *pool, const uint8_t *dst_mac, const uint8_t *src_mac,
                   const uint8_t *src_ip, const uint8_t *dst_ip, uint8_t type, uint8_t flags,
                   const uint8_t *target, uint8_t opt) {
    rte_mbuf *m = rte_pktmbuf_alloc(pool);
    if (!m) return nullptr;
    constexpr uint16_t icmp_len = 24 + 8;
    constexpr uint16_t total = RTE_ETHER_HDR_LEN + sizeof(rte_ipv6_hdr) + icmp_len;
    uint8_t *p = reinterpret_cast<uint8_t *>(rte_pktmbuf_append(m, total));
    if (!p) {
        rte_pktmbuf_free(m);
        return nullptr;
    }
    std::memset(p, 0, total);
    std::memcpy(p, dst_mac, 6);
    std::memcpy(p + 6, src_mac, 6);
    crypto::store_be16(p + 12, RTE_ETHER_TYPE_IPV6);
    auto *ip = reinterpret_cast<rte_ipv6_hdr *>(p + RTE_ETHER_HDR_LEN);
    ip->vtc_flow = rte_cpu_to_be_32(6u << 28);
    ip->payload_len = rte_cpu_to_be_16(icmp_len);
    ip->proto = kProtoIcmp6;
    ip->hop_limits = 255;
    std::memcpy(ip->src_addr, src_ip, 16);
    std::memcpy(ip->dst_addr, dst_ip, 16);
    uint8_t *icmp = p + RTE_ETHER_HDR_LEN + sizeof(rte_ipv6_hdr);
    icmp[0] = type;
    icmp[4] = flags;
    std::memcpy(icmp + 8, target, 16);
    icmp[24] = opt;
    icmp[25] = 1;
    std::memcpy(icmp + 26, src_mac, 6);
    const uint16_t ck = rte_ipv6_udptcp_cksum(ip, icmp);
    std::memcpy(icmp + 2, &ck, 2);
    return m;
}
}  // namespace

void Router::send_na(uint8_t port, const uint8_t *dst_mac, const uint8_t *dst_ip,
                     const uint8_t *target, uint8_t flags) noexcept {
    rte_mbuf *m = nd_frame(pool_, dst_mac, ports_->port[port].mac, target, dst_ip, kNdNa, flags,
                           target, kOptTargetLla);
    if (!m) return;
    stats_.nd_advertisements_out.add();
    ctl(m, port);
}

void Router::send_ns(uint8_t port, const uint8_t *target, const uint8_t *unicast_mac) noexcept {
    const PortAddr *src = source_for(port, 6, target);
    if (!src) return;
    // Resolution goes to the target's solicited-node group ff02::1:ffXX:XXXX (RFC 4291 2.7.1).
    uint8_t dst_ip[16] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 0};
    uint8_t dst_mac[6] = {0x33, 0x33, 0xff, 0, 0, 0};
    std::memcpy(dst_ip + 13, target + 13, 3);
    std::memcpy(dst_mac + 3, target + 13, 3);
    if (unicast_mac) {
        std::memcpy(dst_ip, target, 16);
        std::memcpy(dst_mac, unicast_mac, 6);
    }
    rte_mbuf *m = nd_frame(pool_, dst_mac, ports_->port[port].mac, src->addr.b, dst_ip, kNdNs, 0,
                           target, kOptSourceLla);
    if (!m) return;
    stats_.nd_solicitations_out.add();
    ctl(m, port);
}

void Router::announce() noexcept {
    static constexpr uint8_t all_nodes[16] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    static constexpr uint8_t all_nodes_mac[6] = {0x33, 0x33, 0, 0, 0, 1};
    for (uint8_t p = 0; p < 2; ++p) {
        const RoutedPort &rp = ports_->port[p];
        for (uint8_t i = 0; i < rp.n4; ++i)  // gratuitous ARP (RFC 5227 3): a request for itself
            send_arp(p, RTE_ARP_OP_REQUEST, kBroadcast, kZeroMac, rp.v4[i].addr.b, rp.v4[i].addr.b);
        for (uint8_t i = 0; i < rp.n6; ++i)  // unsolicited NA (RFC 4861 7.2.6)
            send_na(p, all_nodes_mac, all_nodes, rp.v6[i].addr.b,
                    static_cast<uint8_t>(kNaRouter | kNaOverride));
    }
}

// Neighbour ageing (RFC 4861 7.3, merged into four states): REACHABLE for reachable_s after a
// confirmation, then STALE; a STALE entry used is PROBEd with unicast requests every retrans_ms;
// INCOMPLETE and PROBE entries that stay unanswered for `probes` requests are removed (their
// held packets dropped: neighbour-unresolved); STALE entries unused for stale_s are removed.
void Router::housekeeping(uint64_t now) noexcept {
    if (size_ && now >= next_scan_tsc_) {
        next_scan_tsc_ = now + hz_ / 100;
        for (uint32_t pos = 0; pos < capacity_; ++pos) {
            Neighbour &e = entries_[pos];
            if (!e.in_use) continue;
            switch (e.state) {
                case NeighbourState::Reachable:
                    if (now - e.confirmed_tsc > reachable_tsc_) e.state = NeighbourState::Stale;
                    break;
                case NeighbourState::Stale:
                    if (now - e.used_tsc > stale_tsc_) remove(static_cast<int32_t>(pos));
                    break;
                case NeighbourState::Incomplete:
                case NeighbourState::Probe:
                    if (now - e.probe_tsc < retrans_tsc_) break;
                    if (e.probes >= cfg_.probes) {
                        stats_.neighbours_failed.add();
                        remove(static_cast<int32_t>(pos));
                        break;
                    }
                    ++e.probes;
                    e.probe_tsc = now;
                    solicit(e, e.state == NeighbourState::Probe);
                    break;
            }
        }
    }
    stats_.neighbours.set(size_);
    answer_dump(now);
}

void Router::answer_dump(uint64_t now) noexcept {
    const uint64_t req = dump_.requested.load(std::memory_order_acquire);
    if (req == dump_.completed.load(std::memory_order_relaxed)) return;
    uint32_t n = 0;
    auto ms = [&](uint64_t t) {
        return t == 0 ? UINT32_MAX : static_cast<uint32_t>((now - t) * 1000 / hz_);
    };
    for (uint32_t pos = 0; pos < capacity_ && n < dump_.capacity; ++pos) {
        const Neighbour &e = entries_[pos];
        if (!e.in_use) continue;
        NeighbourRecord &r = dump_.rows[n++];
        std::memset(&r, 0, sizeof r);
        std::memcpy(r.addr.b, e.key.addr, 16);
        r.family = e.key.family;
        r.port = e.key.port;
        r.state = e.state;
        std::memcpy(r.mac, e.mac, 6);
        r.held = e.nheld;
        r.probes = e.probes;
        r.worker = static_cast<uint16_t>(worker_);
        r.confirmed_ms = ms(e.confirmed_tsc);
        r.used_ms = ms(e.used_tsc);
        r.resolutions = e.resolutions;
    }
    dump_.count = n;
    dump_.completed.store(req, std::memory_order_release);
}

}  // namespace segwire::dp
