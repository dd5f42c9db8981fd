#include "dataplane/packet/rewrite.hpp"

#include <cstring>

#include <rte_byteorder.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_tcp.h>

#include "crypto/bytes.hpp"
#include "crypto/tcp_options.hpp"

namespace segwire::dp {

std::span<const uint8_t> tcp_options(const rte_mbuf *m, const PacketView &v) {
    const uint8_t *f = rte_pktmbuf_mtod(m, const uint8_t *);
    return {f + v.l4_off + sizeof(rte_tcp_hdr), v.tcp_hdr_len - sizeof(rte_tcp_hdr)};
}

RewriteStatus rewrite_tcp(rte_mbuf *m, PacketView &v, std::span<const uint8_t> options,
                          uint32_t trim_tail, std::span<const uint8_t> append, uint32_t max_ip_len,
                          const TxChecksum &tx) {
    if (m->nb_segs != 1 || v.proto != kProtoTcp || !v.has_l4() || options.size() > 40 ||
        options.size() % 4 != 0 || trim_tail > v.payload_len)
        return RewriteStatus::Unsupported;
    const uint32_t keep = v.payload_len - trim_tail;
    const uint32_t new_hl = sizeof(rte_tcp_hdr) + static_cast<uint32_t>(options.size());
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
    if (!options.empty()) std::memcpy(tcp + sizeof(rte_tcp_hdr), options.data(), options.size());
    if (!append.empty()) std::memcpy(tcp + new_hl + keep, append.data(), append.size());
    if (new_end < old_data_len) rte_pktmbuf_trim(m, static_cast<uint16_t>(old_data_len - new_end));
    auto *th = reinterpret_cast<rte_tcp_hdr *>(tcp);
    th->data_off = static_cast<uint8_t>(new_hl / 4 << 4 | (th->data_off & 0x0f));  // 32-bit words
    if (v.family == 4) {
        auto *ip = reinterpret_cast<rte_ipv4_hdr *>(f + v.l3_off);
        ip->total_length = rte_cpu_to_be_16(static_cast<uint16_t>(new_end - v.l3_off));
    } else {  // the payload length counts extension headers too
        auto *ip = reinterpret_cast<rte_ipv6_hdr *>(f + v.l3_off);
        ip->payload_len =
            rte_cpu_to_be_16(static_cast<uint16_t>(new_end - v.l3_off - sizeof(rte_ipv6_hdr)));
    }
    if (parse_packet(f, m->data_len, v) != DropReason::None) return RewriteStatus::Unsupported;
    fix_checksums(m, v, tx);
    return RewriteStatus::Ok;
}

bool clamp_mss(rte_mbuf *m, const PacketView &v, uint16_t mss) {
    if (!v.opt.mss || v.opt.mss <= mss) return false;
    uint8_t *area = rte_pktmbuf_mtod_offset(m, uint8_t *, v.l4_off + sizeof(rte_tcp_hdr));
    bool changed = false;
    // The parser has checked the option list, and that an MSS option is 4 bytes long.
    crypto::walk_tcp_options(tcp_options(m, v), [&](size_t off, uint8_t kind, uint8_t) {
        if (kind == crypto::kTcpOptMss && !changed) {
            crypto::store_be16(area + off + 2, mss);  // kind, length, value
            changed = true;
        }
        return true;
    });
    return changed;
}

}  // namespace segwire::dp
