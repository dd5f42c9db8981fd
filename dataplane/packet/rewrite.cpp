#include "dataplane/packet/rewrite.hpp"

#include <cstring>

#include <rte_ip.h>
#include <rte_mbuf.h>

namespace segwire::dp {
namespace {

inline void wr16(uint8_t *p, uint16_t v) {
    p[0] = static_cast<uint8_t>(v >> 8);
    p[1] = static_cast<uint8_t>(v);
}
inline void wr32(uint8_t *p, uint32_t v) {
    wr16(p, static_cast<uint16_t>(v >> 16));
    wr16(p + 2, static_cast<uint16_t>(v));
}

inline uint16_t fold(uint32_t s) {
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    return static_cast<uint16_t>(s);
}

// Pseudo-header sum (not complemented) in the byte order rte_raw_cksum uses.
uint32_t pseudo_sum(const PacketView &v, uint32_t l4_len) {
    uint8_t ph[40];
    size_t n;
    if (v.family == 4) {
        std::memcpy(ph, v.src.b, 4);
        std::memcpy(ph + 4, v.dst.b, 4);
        ph[8] = 0;
        ph[9] = v.proto;
        wr16(ph + 10, static_cast<uint16_t>(l4_len));
        n = 12;
    } else {
        std::memcpy(ph, v.src.b, 16);
        std::memcpy(ph + 16, v.dst.b, 16);
        wr32(ph + 32, l4_len);
        ph[36] = ph[37] = ph[38] = 0;
        ph[39] = v.proto;
        n = 40;
    }
    return rte_raw_cksum(ph, n);
}

inline uint8_t *l4_csum_field(uint8_t *frame, const PacketView &v) {
    return frame + v.l4_off + (v.proto == kProtoTcp ? 16 : 6);
}

}  // namespace

uint16_t l4_checksum(const uint8_t *frame, const PacketView &v) {
    const uint32_t l4_len = v.ip_end - v.l4_off;
    // Sum with the checksum field counted as zero: subtract it back out of the raw sum.
    const uint8_t *field = frame + v.l4_off + (v.proto == kProtoTcp ? 16 : 6);
    uint16_t current;
    std::memcpy(&current, field, 2);
    uint32_t s = pseudo_sum(v, l4_len) + rte_raw_cksum(frame + v.l4_off, l4_len) +
                 static_cast<uint16_t>(~current);
    uint16_t c = static_cast<uint16_t>(~fold(s));
    if (v.proto == kProtoUdp && c == 0) c = 0xffff;
    return c;
}

void fix_checksums(rte_mbuf *m, const PacketView &v, const TxChecksum &tx) {
    uint8_t *f = rte_pktmbuf_mtod(m, uint8_t *);
    const bool tcp = v.proto == kProtoTcp;
    const bool offload_l4 = tcp ? tx.tcp_offload : (v.proto == kProtoUdp && tx.udp_offload);
    if (v.family == 4) {
        auto *ip = reinterpret_cast<rte_ipv4_hdr *>(f + v.l3_off);
        ip->hdr_checksum = 0;
        if (tx.ipv4_offload) {
            m->ol_flags |= RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM;
        } else {
            ip->hdr_checksum = rte_ipv4_cksum(ip);
        }
    }
    if (!v.has_l4() || (v.proto != kProtoTcp && v.proto != kProtoUdp)) return;
    uint8_t *field = l4_csum_field(f, v);
    if (offload_l4) {
        // The NIC adds the payload sum to a pseudo-header sum we leave in the field.
        m->l2_len = v.l3_off;
        m->l3_len = v.l4_off - v.l3_off;
        m->ol_flags |= (v.family == 4 ? RTE_MBUF_F_TX_IPV4 : RTE_MBUF_F_TX_IPV6) |
                       (tcp ? RTE_MBUF_F_TX_TCP_CKSUM : RTE_MBUF_F_TX_UDP_CKSUM);
        uint16_t ph = fold(pseudo_sum(v, v.ip_end - v.l4_off));
        std::memcpy(field, &ph, 2);
        return;
    }
    field[0] = field[1] = 0;
    uint16_t c = l4_checksum(f, v);
    std::memcpy(field, &c, 2);
}

std::span<const uint8_t> tcp_options(const rte_mbuf *m, const PacketView &v) {
    const uint8_t *f = rte_pktmbuf_mtod(m, const uint8_t *);
    return {f + v.l4_off + 20, static_cast<size_t>(v.tcp_hdr_len - 20)};
}

RewriteStatus rewrite_tcp(rte_mbuf *m, PacketView &v, std::span<const uint8_t> options,
                          uint32_t trim_tail, std::span<const uint8_t> append, uint32_t max_ip_len,
                          const TxChecksum &tx) {
    if (m->nb_segs != 1 || v.proto != kProtoTcp || !v.has_l4() || options.size() > 40 ||
        options.size() % 4 != 0 || trim_tail > v.payload_len)
        return RewriteStatus::Unsupported;
    const uint32_t keep = v.payload_len - trim_tail;
    const uint32_t new_hl = 20 + static_cast<uint32_t>(options.size());
    const uint32_t new_end = v.l4_off + new_hl + keep + static_cast<uint32_t>(append.size());
    if (new_end - v.l3_off > max_ip_len) return RewriteStatus::TooBig;

    const uint32_t old_data_len = m->data_len;
    if (new_end > old_data_len) {
        if (!rte_pktmbuf_append(m, static_cast<uint16_t>(new_end - old_data_len)))
            return RewriteStatus::NoRoom;
    }
    uint8_t *f = rte_pktmbuf_mtod(m, uint8_t *);
    uint8_t *tcp = f + v.l4_off;
    std::memmove(tcp + new_hl, f + v.payload_off, keep);
    if (!options.empty()) std::memcpy(tcp + 20, options.data(), options.size());
    if (!append.empty()) std::memcpy(tcp + new_hl + keep, append.data(), append.size());
    if (new_end < old_data_len) rte_pktmbuf_trim(m, static_cast<uint16_t>(old_data_len - new_end));
    tcp[12] = static_cast<uint8_t>((new_hl / 4) << 4 | (tcp[12] & 0x0f));
    if (v.family == 4)
        wr16(f + v.l3_off + 2, static_cast<uint16_t>(new_end - v.l3_off));
    else
        wr16(f + v.l3_off + 4, static_cast<uint16_t>(new_end - v.l3_off - 40));
    if (parse_packet(f, m->data_len, v) != DropReason::None) return RewriteStatus::Unsupported;
    fix_checksums(m, v, tx);
    return RewriteStatus::Ok;
}

bool clamp_mss(rte_mbuf *m, const PacketView &v, uint16_t mss) {
    if (!v.opt.mss || v.opt.mss <= mss) return false;
    uint8_t *f = rte_pktmbuf_mtod(m, uint8_t *);
    const uint32_t end = v.l4_off + v.tcp_hdr_len;
    for (uint32_t off = v.l4_off + 20; off < end;) {
        uint8_t kind = f[off];
        if (kind == 0) break;
        if (kind == 1) {
            ++off;
            continue;
        }
        if (kind == 2) {  // the parser has checked the length is 4
            wr16(f + off + 2, mss);
            return true;
        }
        off += f[off + 1];
    }
    return false;
}

rte_mbuf *build_tcp_control(rte_mempool *pool, const rte_mbuf *orig, const PacketView &v,
                            bool to_source, uint32_t seq, uint32_t ack, uint8_t flags,
                            uint16_t window, std::span<const uint8_t> options,
                            const TxChecksum &tx) {
    if (options.size() % 4 || options.size() > 40) return nullptr;
    rte_mbuf *m = rte_pktmbuf_alloc(pool);
    if (!m) return nullptr;
    const uint8_t *o = rte_pktmbuf_mtod(orig, const uint8_t *);
    const uint32_t ip_len = v.family == 4 ? 20 : 40;
    const uint32_t tcp_len = 20 + static_cast<uint32_t>(options.size());
    const uint32_t len = v.l3_off + ip_len + tcp_len;
    uint8_t *f = reinterpret_cast<uint8_t *>(rte_pktmbuf_append(m, static_cast<uint16_t>(len)));
    if (!f) {
        rte_pktmbuf_free(m);
        return nullptr;
    }
    std::memset(f, 0, len);
    // L2: keep VLAN tags and the ethertype; mirror MAC addresses when answering the source.
    std::memcpy(f + 12, o + 12, v.l3_off - 12);
    std::memcpy(f, o + (to_source ? 6 : 0), 6);
    std::memcpy(f + 6, o + (to_source ? 0 : 6), 6);
    const IpAddr &src = to_source ? v.dst : v.src;
    const IpAddr &dst = to_source ? v.src : v.dst;
    uint8_t *ip = f + v.l3_off;
    if (v.family == 4) {
        ip[0] = 0x45;
        wr16(ip + 2, static_cast<uint16_t>(ip_len + tcp_len));
        wr16(ip + 6, 0x4000);  // DF
        ip[8] = 64;
        ip[9] = kProtoTcp;
        std::memcpy(ip + 12, src.b, 4);
        std::memcpy(ip + 16, dst.b, 4);
    } else {
        ip[0] = 0x60;
        wr16(ip + 4, static_cast<uint16_t>(tcp_len));
        ip[6] = kProtoTcp;
        ip[7] = 64;
        std::memcpy(ip + 8, src.b, 16);
        std::memcpy(ip + 24, dst.b, 16);
    }
    uint8_t *t = ip + ip_len;
    wr16(t, to_source ? v.dport : v.sport);
    wr16(t + 2, to_source ? v.sport : v.dport);
    wr32(t + 4, seq);
    wr32(t + 8, (flags & kTcpAck) ? ack : 0);
    t[12] = static_cast<uint8_t>((tcp_len / 4) << 4);
    t[13] = flags;
    wr16(t + 14, window);
    if (!options.empty()) std::memcpy(t + 20, options.data(), options.size());
    // The view the checksum helper needs, filled from what was just written (no re-parse).
    PacketView rv{};
    rv.family = v.family;
    rv.proto = kProtoTcp;
    rv.l3_off = v.l3_off;
    rv.l4_off = static_cast<uint16_t>(v.l3_off + ip_len);
    rv.ip_end = len;
    rv.src = src;
    rv.dst = dst;
    fix_checksums(m, rv, tx);
    m->port = orig->port;
    return m;
}

rte_mbuf *build_tcp_reset(rte_mempool *pool, const rte_mbuf *orig, const PacketView &v,
                          bool to_source, uint32_t seq, uint32_t ack, bool with_ack,
                          const TxChecksum &tx) {
    return build_tcp_control(pool, orig, v, to_source, seq, ack,
                             static_cast<uint8_t>(kTcpRst | (with_ack ? kTcpAck : 0)), 0, {}, tx);
}

}  // namespace segwire::dp
