#include "dataplane/route/geneve.hpp"

#include <algorithm>
#include <cstring>

#include <rte_byteorder.h>
#include <rte_ether.h>
#include <rte_hash.h>
#include <rte_hash_crc.h>
#include <rte_ip.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_prefetch.h>
#include <rte_tcp.h>
#include <rte_udp.h>

#include "crypto/bytes.hpp"
#include "dataplane/route/router.hpp"

namespace segwire::dp {
namespace {

constexpr uint16_t kProtoTeb = 0x6558;  // Transparent Ethernet Bridging: not GWLB's contract
// The fake inner Ethernet header: both addresses 02:5e:<context index, 4 bytes big-endian>. A
// locally administered unicast prefix; a real frame never has equal source and destination.
constexpr uint8_t kMark0 = 0x02, kMark1 = 0x5e;

// Equal bytes, `n` a multiple of 4 (GENEVE lengths are): word compares without the library call.
bool same_words(const uint8_t *a, const uint8_t *b, uint32_t n) {
    uint64_t diff = 0;
    uint32_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t x, y;
        std::memcpy(&x, a + i, 8), std::memcpy(&y, b + i, 8);
        diff |= x ^ y;
    }
    if (i < n) {
        uint32_t x, y;
        std::memcpy(&x, a + i, 4), std::memcpy(&y, b + i, 4);
        diff |= x ^ y;
    }
    return diff == 0;
}

uint16_t ones(uint32_t sum) {
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return static_cast<uint16_t>(sum);
}

}  // namespace

Geneve::~Geneve() {
    if (contexts_) rte_hash_free(contexts_);
    if (endpoints_) rte_hash_free(endpoints_);
    rte_free(ctx_);
}

bool Geneve::init(const GeneveSetup &s, Router *router, TxQueues *tx, uint64_t tsc_hz,
                  std::string &err) {
    cfg_ = s.cfg;
    tx_ = tx;
    hz_ = tsc_hz;
    arm_mtu_ = s.arm_mtu;
    // GWLB adds 68 bytes (outer IPv4 20, UDP 8, GENEVE 8, options 32; ANCHORS §7).
    inner_mtu_ = cfg_.inner_mtu ? cfg_.inner_mtu : static_cast<uint16_t>(arm_mtu_ - 68);
    idle_tsc_ = static_cast<uint64_t>(cfg_.context_idle_s) * hz_;
    for (const auto &o : cfg_.endpoint_options) known_[nknown_++] = uint32_t(o.cls) << 8 | o.type;
    nendpoint_opts_ = nknown_;
    for (const auto &o : cfg_.options) known_[nknown_++] = uint32_t(o.cls) << 8 | o.type;
    capacity_ = cfg_.contexts;
    const std::string name = "sw_gnv_ctx_" + std::to_string(s.worker);
    rte_hash_parameters hp{};
    hp.name = name.c_str();
    hp.entries = capacity_;
    hp.key_len = sizeof(uint64_t);
    hp.hash_func = rte_hash_crc;
    hp.socket_id = s.socket;
    hp.extra_flag = RTE_HASH_EXTRA_FLAGS_EXT_TABLE;
    contexts_ = rte_hash_create(&hp);
    const std::string ename = "sw_gnv_ep_" + std::to_string(s.worker);
    rte_hash_parameters ep{};
    ep.name = ename.c_str();
    ep.entries = cfg_.endpoints;
    ep.key_len = sizeof(EKey);
    ep.hash_func = rte_hash_crc;
    ep.socket_id = s.socket;
    ep.extra_flag = RTE_HASH_EXTRA_FLAGS_EXT_TABLE;
    endpoints_ = rte_hash_create(&ep);
    ctx_ = static_cast<Context *>(
        rte_zmalloc_socket("sw_gnv_ctx", sizeof(Context) * capacity_, 64, s.socket));
    if (!contexts_ || !endpoints_ || !ctx_) {
        err = "geneve.contexts: cannot allocate " + std::to_string(capacity_) + " contexts";
        return false;
    }
    router_ = router;
    return true;
}

uint32_t Geneve::context_of(const rte_mbuf *m) noexcept {
    const uint8_t *e = rte_pktmbuf_mtod(m, const uint8_t *);
    if (e[6] != kMark0 || e[7] != kMark1 || std::memcmp(e, e + 6, 6) != 0) return UINT32_MAX;
    return crypto::load_be32(e + 8);
}

void Geneve::drop(rte_mbuf *m, DropReason r) noexcept {
    tx_->stats->drops[static_cast<size_t>(r)].add();
    tx_->cap->dropped(m, r);
    rte_pktmbuf_free(m);
}

// The context digest: outer source, destination, UDP source port, GENEVE header and options.
static uint64_t digest_of(const uint8_t *src, const uint8_t *dst, uint32_t alen, uint16_t sport_be,
                          const uint8_t *gnv, uint32_t gnv_len) {
    uint32_t a = rte_hash_crc(src, alen, 0x5e6e7e8e), b = rte_hash_crc(src, alen, 17);
    a = rte_hash_crc(dst, alen, a), b = rte_hash_crc(dst, alen, b);
    a = rte_hash_crc_2byte(sport_be, a), b = rte_hash_crc_2byte(sport_be, b);
    a = rte_hash_crc(gnv, gnv_len, a), b = rte_hash_crc(gnv, gnv_len, b);
    return uint64_t(a) << 32 | b;
}

void Geneve::prefetch(rte_mbuf *const *pkts, uint16_t n) noexcept {
    const void *keys[kMaxBurst];
    uint16_t at[kMaxBurst];
    uint32_t k = 0;
    pre_n_ = n;
    for (uint16_t i = 0; i < n; ++i) {
        pre_pos_[i] = -2;
        const uint8_t *e = rte_pktmbuf_mtod(pkts[i], const uint8_t *);
        const uint32_t len = pkts[i]->data_len;
        // The common outer shapes only (untagged, IPv4 without options, IPv6 without extension
        // headers); anything else is looked up by ingress itself.
        const uint16_t et = crypto::load_be16(e + 12);
        uint32_t l4, alen, src;
        if (et == RTE_ETHER_TYPE_IPV4 && len >= 14 + 20 + 16 && e[14] == 0x45 && e[23] == 17)
            l4 = 34, alen = 4, src = 26;
        else if (et == RTE_ETHER_TYPE_IPV6 && len >= 14 + 40 + 16 && e[20] == 17)
            l4 = 54, alen = 16, src = 22;
        else
            continue;
        if (crypto::load_be16(e + l4 + 2) != cfg_.udp_port) continue;
        const uint8_t *g = e + l4 + 8;
        const uint32_t gnv_len = 8 + (g[0] & 0x3f) * 4u;
        if (l4 + 8 + gnv_len > len) continue;
        uint16_t sport;
        std::memcpy(&sport, e + l4, 2);
        pre_digest_[i] = digest_of(e + src, e + src + alen, alen, sport, g, gnv_len);
        keys[k] = &pre_digest_[i];
        at[k++] = i;
    }
    if (!k) return;
    int32_t pos[kMaxBurst];
    rte_hash_lookup_bulk(contexts_, keys, k, pos);
    for (uint32_t j = 0; j < k; ++j) {
        pre_pos_[at[j]] = pos[j] >= 0 ? pos[j] : -1;
        if (pos[j] >= 0) {
            const auto *c = reinterpret_cast<const uint8_t *>(&ctx_[pos[j]]);
            rte_prefetch0(c);
            rte_prefetch0(c + 64);
        }
    }
}

bool Geneve::ingress(rte_mbuf *m, PacketView &v, uint8_t arrival, uint64_t now,
                     uint16_t i) noexcept {
    if (v.is_ip() && v.has_l4() && !v.fragment && router_->is_own(v.family, v.dst)) {
        if (v.proto == kProtoUdp && v.dport == cfg_.udp_port && v.vlan_count == 0)
            return decap(m, v, now, i);
        if (v.proto == kProtoTcp && cfg_.health_port && v.dport == cfg_.health_port &&
            v.vlan_count == 0) {
            health(m, v);
            return false;
        }
    }
    // ARP, ND and echo for the arm's address; everything else is dropped (local-unhandled,
    // not-routed): the one arm forwards nothing that did not come encapsulated.
    router_->ingress(m, v, arrival, now);
    return false;
}

// RFC 8926 3.4: version 0; options within the header's option length, each within it; an
// unknown option with the critical bit (type bit 7) drops the packet; control (O) packets are
// not data. GWLB's contract carries IPv4 or IPv6 (protocol type 0x0800 / 0x86DD).
bool Geneve::decap(rte_mbuf *m, PacketView &v, uint64_t now, uint16_t i) noexcept {
    uint8_t *eth = rte_pktmbuf_mtod(m, uint8_t *);
    const uint32_t end = std::min<uint32_t>(v.ip_end, m->data_len);
    const uint32_t off = v.l4_off + 8u;  // the GENEVE header
    if (off + 8 > end || v.l4_off + v.udp_len > end) {
        drop(m, DropReason::GeneveTruncated);
        return false;
    }
    const uint8_t *g = eth + off;
    if ((g[0] >> 6) != 0) {
        drop(m, DropReason::GeneveBadVersion);
        return false;
    }
    const uint16_t gnv_len = static_cast<uint16_t>(8 + (g[0] & 0x3f) * 4);
    const uint32_t udp_end = v.l4_off + v.udp_len;
    if (off + gnv_len > udp_end) {
        drop(m, DropReason::GeneveBadOptions);
        return false;
    }
    if (g[1] & 0x80) {
        drop(m, DropReason::GeneveControl);
        return false;
    }
    for (uint32_t o = 8; o < gnv_len;) {
        if (o + 4 > gnv_len) {
            drop(m, DropReason::GeneveBadOptions);
            return false;
        }
        const uint32_t olen = 4 + (g[o + 3] & 0x1f) * 4u;
        if (o + olen > gnv_len) {
            drop(m, DropReason::GeneveBadOptions);
            return false;
        }
        if (g[o + 2] & 0x80) {
            const uint32_t id = uint32_t(crypto::load_be16(g + o)) << 8 | (g[o + 2] & 0x7f);
            bool known = false;
            for (uint32_t i = 0; i < nknown_; ++i) known = known || known_[i] == id;
            if (!known) {
                drop(m, DropReason::GeneveCriticalOption);
                return false;
            }
        }
        o += olen;
    }
    const uint16_t proto = crypto::load_be16(g + 2);
    const uint32_t inner = off + gnv_len;
    if (inner >= udp_end || (proto != RTE_ETHER_TYPE_IPV4 && proto != RTE_ETHER_TYPE_IPV6) ||
        (eth[inner] >> 4) != (proto == RTE_ETHER_TYPE_IPV4 ? 4 : 6)) {
        (void)kProtoTeb;
        drop(m, inner >= udp_end ? DropReason::GeneveTruncated : DropReason::GeneveBadProtocol);
        return false;
    }
    const int32_t c = context_for(eth + v.l3_off, v, g, gnv_len, now, i);
    if (c < 0) {
        drop(m, DropReason::GeneveContextFull);
        return false;
    }
    // The inner packet behind a fake Ethernet header naming the context; the outer trailer
    // (Ethernet padding) cut.
    const uint32_t hdr = inner - RTE_ETHER_HDR_LEN;
    rte_pktmbuf_trim(m, static_cast<uint16_t>(m->data_len - udp_end));
    rte_pktmbuf_adj(m, static_cast<uint16_t>(hdr));
    uint8_t *e = rte_pktmbuf_mtod(m, uint8_t *);
    e[0] = kMark0, e[1] = kMark1;
    crypto::store_be32(e + 2, static_cast<uint32_t>(c));
    std::memcpy(e + 6, e, 6);
    crypto::store_be16(e + 12, proto);
    m->ol_flags = 0;
    stats_.decapsulated.add();
    const DropReason r = parse_packet(e, m->data_len, v);
    if (r != DropReason::None) {
        drop(m, r);
        return false;
    }
    if (v.proto == kProtoTcp && (v.tcp_flags & kTcpSyn) && v.opt.mss) clamp_mss(m, v);
    return true;
}

// A context is the outer header as received (addresses, UDP source port, GENEVE header and
// options), found by a 64-bit digest (two CRC32C seeds; the bytes are compared on a hit).
int32_t Geneve::context_for(const uint8_t *l3, const PacketView &v, const uint8_t *gnv,
                            uint16_t gnv_len, uint64_t now, uint16_t i) noexcept {
    const uint32_t alen = v.family == 4 ? 4 : 16;
    const uint16_t sport = rte_cpu_to_be_16(v.sport);
    const bool looked = i < pre_n_ && pre_pos_[i] != -2;
    const uint64_t digest =
        looked ? pre_digest_[i] : digest_of(v.src.b, v.dst.b, alen, sport, gnv, gnv_len);
    auto same = [&](const Context &x) {
        // The template holds the addresses swapped and the received source port.
        const uint8_t *ip = x.hdr + RTE_ETHER_HDR_LEN;
        const uint8_t *ts = ip + (v.family == 4 ? 12 : 8), *td = ts + alen;
        const uint8_t *udp = ip + x.l3_len;
        return x.in_use && x.digest == digest && x.family == v.family && x.gnv_len == gnv_len &&
               same_words(ts, v.dst.b, alen) && same_words(td, v.src.b, alen) &&
               std::memcmp(udp, &sport, 2) == 0 && same_words(udp + 8, gnv, gnv_len);
    };
    int32_t pos = -1;
    if (last_ >= 0 && ctx_[last_].digest == digest) {
        pos = last_;
    } else if (looked && pre_pos_[i] >= 0) {
        pos = pre_pos_[i];
    } else {
        // Not looked up, or not found then (an earlier packet of this burst may have added it).
        pos = rte_hash_lookup(contexts_, &digest);
    }
    if (pos >= 0) {
        if (!same(ctx_[pos])) return -1;  // a 64-bit digest collision: counted as full
        ctx_[pos].used_tsc = now;
        last_ = pos;
        return pos;
    }
    const int32_t ep = endpoint_for(gnv, gnv_len);
    if (ep < 0) return -1;
    pos = rte_hash_add_key(contexts_, &digest);
    if (pos < 0) return -1;
    Context &x = ctx_[pos];
    x.digest = digest;
    x.used_tsc = now;
    x.family = v.family;
    x.endpoint = static_cast<uint16_t>(ep + 1);
    x.gnv_len = gnv_len;
    x.in_use = true;
    uint8_t *ip = x.hdr + RTE_ETHER_HDR_LEN;
    std::memset(x.hdr, 0, RTE_ETHER_HDR_LEN);  // the Router's egress addresses the frame
    if (v.family == 4) {
        crypto::store_be16(x.hdr + 12, RTE_ETHER_TYPE_IPV4);
        auto *h = reinterpret_cast<rte_ipv4_hdr *>(ip);
        std::memset(h, 0, sizeof *h);
        h->version_ihl = 0x45;
        h->type_of_service = l3[1];
        h->fragment_offset = rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG);
        h->time_to_live = 64;
        h->next_proto_id = kProtoUdp;
        std::memcpy(&h->src_addr, v.dst.b, 4);
        std::memcpy(&h->dst_addr, v.src.b, 4);
        x.l3_len = 20;
    } else {
        crypto::store_be16(x.hdr + 12, RTE_ETHER_TYPE_IPV6);
        auto *h = reinterpret_cast<rte_ipv6_hdr *>(ip);
        std::memcpy(&h->vtc_flow, l3, 4);  // traffic class and flow label kept
        h->payload_len = 0;
        h->proto = kProtoUdp;
        h->hop_limits = 64;
        std::memcpy(h->src_addr, v.dst.b, 16);
        std::memcpy(h->dst_addr, v.src.b, 16);
        x.l3_len = 40;
    }
    uint8_t *udp = ip + x.l3_len;
    std::memcpy(udp, &sport, 2);
    crypto::store_be16(udp + 2, v.dport);
    std::memset(udp + 4, 0, 4);
    std::memcpy(udp + 8, gnv, gnv_len);
    x.len = static_cast<uint16_t>(RTE_ETHER_HDR_LEN + x.l3_len + 8 + gnv_len);
    ++size_;
    last_ = pos;
    stats_.contexts_created.add();
    return pos;
}

// The endpoint identity: the VNI and the values of geneve.endpoint_options, in that order.
int32_t Geneve::endpoint_for(const uint8_t *gnv, uint16_t gnv_len) noexcept {
    EKey k{};
    k.vni = crypto::load_be32(gnv + 4) >> 8;
    uint32_t at = 0;
    for (uint32_t want = 0; want < nendpoint_opts_; ++want) {
        for (uint32_t o = 8; o + 4 <= gnv_len;) {
            const uint32_t olen = 4 + (gnv[o + 3] & 0x1f) * 4u;
            const uint32_t id = uint32_t(crypto::load_be16(gnv + o)) << 8 | (gnv[o + 2] & 0x7f);
            if (id == known_[want]) {
                const uint32_t n = std::min<uint32_t>(olen - 4, sizeof k.data - 1 - at);
                if (at < sizeof k.data) {
                    k.data[at++] = static_cast<uint8_t>(olen - 4);
                    std::memcpy(k.data + at, gnv + o + 4, n);
                    at += n;
                }
                break;
            }
            o += olen;
        }
        if (at < sizeof k.data) ++at;  // an absent option still takes its place
    }
    int32_t pos = rte_hash_lookup(endpoints_, &k);
    if (pos >= 0) return pos;
    pos = rte_hash_add_key(endpoints_, &k);
    if (pos < 0 || pos >= 65535) return -1;
    ++nendpoints_;
    stats_.endpoints_created.add();
    return pos;
}

// TCP MSS of an inner SYN lowered to what fits geneve inner MTU (the outer overhead is the load
// balancer's; the hosts only see their own MTU). Incremental checksum update (RFC 1624).
void Geneve::clamp_mss(rte_mbuf *m, PacketView &v) noexcept {
    const uint16_t limit = static_cast<uint16_t>(inner_mtu_ - (v.family == 4 ? 40 : 60));
    if (v.opt.mss <= limit) return;
    uint8_t *e = rte_pktmbuf_mtod(m, uint8_t *);
    uint8_t *t = e + v.l4_off;
    for (uint32_t o = 20; o + 1 < v.tcp_hdr_len;) {
        const uint8_t kind = t[o];
        if (kind == 0) break;
        if (kind == 1) {
            ++o;
            continue;
        }
        const uint8_t len = t[o + 1];
        if (len < 2 || o + len > v.tcp_hdr_len) break;
        if (kind == 2 && len == 4) {
            const uint16_t old = crypto::load_be16(t + o + 2);
            crypto::store_be16(t + o + 2, limit);
            const uint16_t ck = crypto::load_be16(t + 16);
            crypto::store_be16(t + 16, static_cast<uint16_t>(~ones(uint32_t(uint16_t(~ck)) +
                                                                   uint16_t(~old) + limit)));
            v.opt.mss = limit;  // later stages read the view
            stats_.mss_clamped.add();
            return;
        }
        o += len;
    }
}

// The load balancer's TCP health check, answered in place: SYN -> SYN-ACK (the prober's
// connect() succeeds); the ACK that completes the handshake -> nothing (a RST to it could reach
// the prober before its connect() returned and fail the check); a FIN or data -> RST (RFC 9293
// 3.10.7.1: the prober's close ends at once). No state kept.
void Geneve::health(rte_mbuf *m, const PacketView &v) noexcept {
    const bool bare_ack = (v.tcp_flags & (kTcpSyn | kTcpFin | kTcpRst)) == 0 && v.payload_len == 0;
    if (v.tcp_flags & kTcpRst || bare_ack || v.ip_end > m->data_len ||
        (v.family == 4 ? v.l4_off != v.l3_off + 20 : v.l4_off != v.l3_off + 40)) {
        rte_pktmbuf_free(m);
        return;
    }
    uint8_t *e = rte_pktmbuf_mtod(m, uint8_t *);
    uint8_t *l3 = e + v.l3_off;
    auto *t = reinterpret_cast<rte_tcp_hdr *>(e + v.l4_off);
    const uint32_t seg_len =
        v.payload_len + ((v.tcp_flags & kTcpSyn) ? 1 : 0) + ((v.tcp_flags & kTcpFin) ? 1 : 0);
    const bool syn = (v.tcp_flags & (kTcpSyn | kTcpAck)) == kTcpSyn;
    const rte_be16_t sp = t->src_port;
    t->src_port = t->dst_port;
    t->dst_port = sp;
    if (syn) {
        // An ISN from the 4-tuple (no state: the answer to a retransmitted SYN is the same).
        t->sent_seq = rte_cpu_to_be_32(
            rte_hash_crc(l3 + (v.family == 4 ? 12 : 8), v.family == 4 ? 8 : 32, 0x68656c74));
        t->recv_ack = rte_cpu_to_be_32(v.seq + 1);
        t->tcp_flags = RTE_TCP_SYN_FLAG | RTE_TCP_ACK_FLAG;
        stats_.health_synack.add();
    } else if (v.tcp_flags & kTcpAck) {
        t->sent_seq = rte_cpu_to_be_32(v.ack);
        t->recv_ack = 0;
        t->tcp_flags = RTE_TCP_RST_FLAG;
        stats_.health_rst.add();
    } else {
        t->sent_seq = 0;
        t->recv_ack = rte_cpu_to_be_32(v.seq + seg_len);
        t->tcp_flags = RTE_TCP_RST_FLAG | RTE_TCP_ACK_FLAG;
        stats_.health_rst.add();
    }
    t->data_off = 5 << 4;
    t->rx_win = rte_cpu_to_be_16(syn ? 65535 : 0);
    t->cksum = 0;
    t->tcp_urp = 0;
    const uint32_t ip_len = (v.family == 4 ? 20 : 40) + 20;
    rte_pktmbuf_trim(m, static_cast<uint16_t>(m->data_len - (v.l3_off + ip_len)));
    if (v.family == 4) {
        auto *ip = reinterpret_cast<rte_ipv4_hdr *>(l3);
        const rte_be32_t src = ip->src_addr;
        ip->src_addr = ip->dst_addr;
        ip->dst_addr = src;
        ip->total_length = rte_cpu_to_be_16(static_cast<uint16_t>(ip_len));
        ip->time_to_live = 64;
        ip->fragment_offset = rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG);
        ip->hdr_checksum = 0;
        ip->hdr_checksum = rte_ipv4_cksum(ip);
        t->cksum = rte_ipv4_udptcp_cksum(ip, t);
    } else {
        auto *ip = reinterpret_cast<rte_ipv6_hdr *>(l3);
        uint8_t tmp[16];
        std::memcpy(tmp, ip->src_addr, 16);
        std::memcpy(ip->src_addr, ip->dst_addr, 16);
        std::memcpy(ip->dst_addr, tmp, 16);
        ip->payload_len = rte_cpu_to_be_16(20);
        ip->hop_limits = 64;
        t->cksum = rte_ipv6_udptcp_cksum(ip, t);
    }
    m->ol_flags = 0;
    // Routed back to the prober by the Router's egress, like an echo reply.
    tx_->push(m, 0);
}

bool Geneve::encap(rte_mbuf *m, uint32_t c) noexcept {
    if (c >= capacity_ || !ctx_[c].in_use) {
        drop(m, DropReason::GeneveNoContext);
        return false;
    }
    const Context &x = ctx_[c];
    // The inner datagram's own length (the identity stage's rewrites keep it exact).
    const uint8_t *e = rte_pktmbuf_mtod(m, const uint8_t *);
    const uint8_t *in = e + RTE_ETHER_HDR_LEN;
    if (m->data_len < RTE_ETHER_HDR_LEN + 20 || m->nb_segs != 1) {
        drop(m, DropReason::GeneveNoContext);
        return false;
    }
    const uint32_t inner_len =
        (in[0] >> 4) == 4 ? crypto::load_be16(in + 2) : 40u + crypto::load_be16(in + 4);
    if (inner_len > m->data_len - uint32_t(RTE_ETHER_HDR_LEN)) {
        drop(m, DropReason::GeneveNoContext);
        return false;
    }
    const uint32_t outer_ip = x.l3_len + 8u + x.gnv_len + inner_len;
    if (outer_ip > arm_mtu_) {
        drop(m, DropReason::GeneveMtuExceeded);
        return false;
    }
    rte_pktmbuf_trim(m, static_cast<uint16_t>(m->data_len - RTE_ETHER_HDR_LEN - inner_len));
    const uint16_t grow = static_cast<uint16_t>(x.len - RTE_ETHER_HDR_LEN);
    if (rte_pktmbuf_headroom(m) < grow) {
        // A frame the identity stage built with the default headroom: move the data back.
        if (rte_pktmbuf_tailroom(m) < grow) {
            drop(m, DropReason::GeneveMtuExceeded);
            return false;
        }
        uint8_t *d = rte_pktmbuf_mtod(m, uint8_t *);
        std::memmove(d + grow, d, m->data_len);
        m->data_off = static_cast<uint16_t>(m->data_off + grow);
    }
    uint8_t *o = reinterpret_cast<uint8_t *>(rte_pktmbuf_prepend(m, grow));
    std::memcpy(o, x.hdr, x.len);
    uint8_t *ip = o + RTE_ETHER_HDR_LEN;
    auto *udp = reinterpret_cast<rte_udp_hdr *>(ip + x.l3_len);
    udp->dgram_len = rte_cpu_to_be_16(static_cast<uint16_t>(8 + x.gnv_len + inner_len));
    if (x.family == 4) {
        auto *h = reinterpret_cast<rte_ipv4_hdr *>(ip);
        h->total_length = rte_cpu_to_be_16(static_cast<uint16_t>(outer_ip));
        h->hdr_checksum = rte_ipv4_cksum(h);
        // IPv4: a zero UDP checksum (RFC 8926 3.3; the inner packet has its own).
    } else {
        auto *h = reinterpret_cast<rte_ipv6_hdr *>(ip);
        h->payload_len = rte_cpu_to_be_16(static_cast<uint16_t>(outer_ip - 40));
        // IPv6: a real checksum (RFC 8200 8.1; RFC 6935's zero checksum needs the receiver's
        // consent, which Linux gives only with udp6zerocsumrx).
        udp->dgram_cksum = rte_ipv6_udptcp_cksum(h, udp);
    }
    m->ol_flags = 0;
    m->packet_type = 0;
    stats_.encapsulated.add();
    return true;
}

void Geneve::egress() noexcept {
    for (uint8_t side = 0; side < 2; ++side) {
        const uint16_t n = tx_->n[side];
        uint16_t k = 0;
        for (uint16_t i = 0; i < n; ++i) {
            rte_mbuf *m = tx_->q[side][i];
            const uint32_t c = context_of(m);
            // Frames without a context (echo and health-check replies) go as they are.
            if (c == UINT32_MAX || encap(m, c)) tx_->q[side][k++] = m;
        }
        tx_->n[side] = k;
    }
}

// Contexts unused for geneve.context_idle_s (longer than any flow lives) are removed, a slice
// of the table per round.
void Geneve::housekeeping(uint64_t now) noexcept {
    if (size_ && now >= next_scan_tsc_) {
        next_scan_tsc_ = now + hz_ / 100;
        const uint32_t slice = std::min<uint32_t>(capacity_, 4096);
        for (uint32_t i = 0; i < slice; ++i) {
            const uint32_t pos = scan_pos_;
            scan_pos_ = scan_pos_ + 1 == capacity_ ? 0 : scan_pos_ + 1;
            Context &x = ctx_[pos];
            if (!x.in_use || now - x.used_tsc < idle_tsc_) continue;
            rte_hash_del_key(contexts_, &x.digest);
            x.in_use = false;
            if (last_ == static_cast<int32_t>(pos)) last_ = -1;
            --size_;
            stats_.contexts_expired.add();
        }
    }
    stats_.contexts.set(size_);
    stats_.endpoints.set(nendpoints_);
}

}  // namespace segwire::dp
