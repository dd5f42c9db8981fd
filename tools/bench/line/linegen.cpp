// segwire-linegen: the far ends of `segwire-bench line` (tools/bench/line/line_bench.py). One
// DPDK process, one lcore, two ports: port 0 is the client side (it faces the device under test's
// inside port), port 1 the server side (its outside port). Port 0 sends real TCP flows and
// answers the server's SYN-ACKs with the client's ACK; port 1 is the sink, and for SYNs a
// stateless responder (SYN-ACK with an MSS option, as a Linux server would answer). The ports
// are whatever --vdev the EAL arguments give (net_memif in server role in the benchmark).
//
// Driven by line_bench.py over stdin, one command a line; each answer is one JSON line on stdout:
//   link SECONDS                      both links up?
//   setup FLOWS                       three-way handshakes of data flows 0..FLOWS-1
//   data RATE SIZE SECONDS FLOWS      established segments of SIZE-byte frames (L2, no FCS) at
//                                     RATE frames/s (0: as fast as the ports take them)
//   syn RATE 0 SECONDS 0              new connections (fresh 5-tuples) at RATE SYNs/s
//   quit
// Loss is what was offered (tx attempts, including frames the link's ring refused: a NIC would
// have put them on the wire) minus what arrived. Latency: the TSC at transmission rides in the
// payload (data) or is kept per connection (SYN -> SYN-ACK at the client, a round trip); both
// ends are this process, so one clock.
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <rte_byteorder.h>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_tcp.h>

namespace {

constexpr uint16_t kBurst = 32;
constexpr uint16_t kMaxQueues = 8;
constexpr uint32_t kPortsPerAddr = 60000;  // client source ports 1024..61023
constexpr uint16_t kDataPort = 5201, kSynPort = 8080;
constexpr uint32_t kSynSlots = 1u << 22;  // SYN send times, by connection number

// Client 10.78.0.0/16 (the client PU's addresses), server 10.77.0.2.
constexpr uint32_t kClientNet = (10u << 24) | (78u << 16), kServer = (10u << 24) | (77u << 16) | 2;
const rte_ether_addr kClientMac = {{0x02, 0x4c, 0, 0, 0, 1}},
                     kServerMac = {{0x02, 0x4c, 0, 0, 0, 2}};

uint16_t g_queues = 1;
rte_mempool *g_pool = nullptr;
double g_hz = 1;

// Latency histogram: exact below 64 ns, then 32 sub-buckets per power of two (~3 % resolution).
struct Histogram {
    static constexpr int kBuckets = 64 + 40 * 32;
    std::vector<uint64_t> n = std::vector<uint64_t>(kBuckets, 0);
    uint64_t count = 0;
    static int index(uint64_t v) {
        if (v < 64) return static_cast<int>(v);
        const int e = 63 - __builtin_clzll(v);
        const int i = 64 + (e - 6) * 32 + static_cast<int>((v >> (e - 5)) & 31);
        return std::min(i, kBuckets - 1);
    }
    static uint64_t value(int i) {
        if (i < 64) return static_cast<uint64_t>(i);
        const int e = (i - 64) / 32 + 6, sub = (i - 64) % 32;
        return (uint64_t(32 + sub) << (e - 5)) + (uint64_t(1) << (e - 5)) / 2;  // mid-bucket
    }
    void add(uint64_t ns) {
        ++n[index(ns)];
        ++count;
    }
    uint64_t percentile(double p) const {
        if (!count) return 0;
        const uint64_t want = static_cast<uint64_t>(p * double(count - 1)) + 1;
        uint64_t seen = 0;
        for (int i = 0; i < kBuckets; ++i)
            if ((seen += n[i]) >= want) return value(i);
        return value(kBuckets - 1);
    }
};

struct Trial {
    uint64_t offered = 0, sent = 0, received = 0, other = 0;
    Histogram lat;
};

// Connection n comes from address n mod 65000 of the client's /16, port 1024 + n / 65000: many
// sources, as real clients are (segwire shares its handshake contexts out per source address).
constexpr uint32_t kClientAddrs = 65000;
inline uint32_t client_ip(uint32_t flow) {
    return kClientNet + 1 + flow % kClientAddrs;
}
inline uint16_t client_port(uint32_t flow) {
    return static_cast<uint16_t>(1024 + (flow / kClientAddrs) % kPortsPerAddr);
}

struct Hdrs {
    rte_ether_hdr *eth;
    rte_ipv4_hdr *ip;
    rte_tcp_hdr *tcp;
};

// Ethernet + IPv4 + TCP (20 + opt_len bytes), `payload` bytes after it (zeroed); checksums left
// to the caller.
Hdrs write_headers(rte_mbuf *m, uint16_t len, bool to_server, uint32_t flow, uint16_t dport,
                   uint8_t opt_len) {
    auto *f = rte_pktmbuf_mtod(m, uint8_t *);
    m->data_len = m->pkt_len = len;
    Hdrs h{reinterpret_cast<rte_ether_hdr *>(f), reinterpret_cast<rte_ipv4_hdr *>(f + 14),
           reinterpret_cast<rte_tcp_hdr *>(f + 34)};
    std::memset(f, 0, len);
    h.eth->src_addr = to_server ? kClientMac : kServerMac;
    h.eth->dst_addr = to_server ? kServerMac : kClientMac;
    h.eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
    h.ip->version_ihl = 0x45;
    h.ip->total_length = rte_cpu_to_be_16(static_cast<uint16_t>(len - 14));
    h.ip->fragment_offset = rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG);
    h.ip->time_to_live = 64;
    h.ip->next_proto_id = IPPROTO_TCP;
    const uint32_t c = client_ip(flow), s = kServer;
    h.ip->src_addr = rte_cpu_to_be_32(to_server ? c : s);
    h.ip->dst_addr = rte_cpu_to_be_32(to_server ? s : c);
    h.tcp->src_port = rte_cpu_to_be_16(to_server ? client_port(flow) : dport);
    h.tcp->dst_port = rte_cpu_to_be_16(to_server ? dport : client_port(flow));
    h.tcp->data_off = static_cast<uint8_t>(((20 + opt_len) / 4) << 4);
    h.tcp->rx_win = rte_cpu_to_be_16(64240);
    return h;
}

void finish_checksums(const Hdrs &h) {
    h.ip->hdr_checksum = 0;
    h.ip->hdr_checksum = rte_ipv4_cksum(h.ip);
    h.tcp->cksum = 0;
    h.tcp->cksum = rte_ipv4_udptcp_cksum(h.ip, h.tcp);
}

rte_mbuf *make_syn(uint32_t flow, uint16_t dport) {
    rte_mbuf *m = rte_pktmbuf_alloc(g_pool);
    if (!m) return nullptr;
    Hdrs h = write_headers(m, 14 + 20 + 24, true, flow, dport, 4);
    h.tcp->sent_seq = rte_cpu_to_be_32(flow);  // the client's ISN is its connection number
    h.tcp->tcp_flags = RTE_TCP_SYN_FLAG;
    auto *opt = reinterpret_cast<uint8_t *>(h.tcp + 1);
    opt[0] = 2, opt[1] = 4, opt[2] = 1460 >> 8, opt[3] = 1460 & 0xff;  // MSS
    finish_checksums(h);
    return m;
}

// Turns a frame around (its answer goes back where it came from).
void swap_ends(Hdrs &h) {
    std::swap(h.eth->src_addr, h.eth->dst_addr);
    const uint32_t ip = h.ip->src_addr;
    h.ip->src_addr = h.ip->dst_addr;
    h.ip->dst_addr = ip;
    const uint16_t port = h.tcp->src_port;
    h.tcp->src_port = h.tcp->dst_port;
    h.tcp->dst_port = port;
}

bool is_tcp(rte_mbuf *m, Hdrs &h) {
    if (m->data_len < 54) return false;
    auto *f = rte_pktmbuf_mtod(m, uint8_t *);
    h.eth = reinterpret_cast<rte_ether_hdr *>(f);
    if (h.eth->ether_type != rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4)) return false;
    h.ip = reinterpret_cast<rte_ipv4_hdr *>(f + 14);
    if (h.ip->next_proto_id != IPPROTO_TCP || (h.ip->version_ihl & 0xf) != 5) return false;
    h.tcp = reinterpret_cast<rte_tcp_hdr *>(f + 34);
    return true;
}

// The data segment's TCP checksum without the per-packet fields (sequence number, TSC), as a
// 32-bit one's-complement partial sum: each segment adds its own fields to it (RFC 1624).
struct DataFlow {
    uint32_t seq;
    uint32_t partial;
};

inline uint32_t add16(uint32_t sum, const void *p, size_t n) {
    const auto *b = static_cast<const uint8_t *>(p);
    for (size_t i = 0; i + 1 < n; i += 2) sum += uint32_t(b[i]) << 8 | b[i + 1];
    return sum;
}
inline uint16_t fold(uint32_t s) {
    while (s >> 16) s = (s & 0xffff) + (s >> 16);
    return static_cast<uint16_t>(s);
}

class Gen {
  public:
    std::vector<DataFlow> data;  // per data flow
    std::vector<uint64_t> syn_tsc = std::vector<uint64_t>(kSynSlots, 0);
    uint32_t next_syn = 0;  // connection numbers of `syn` trials start after the data flows
    uint32_t syn_base = 0;
    std::vector<uint8_t> done;  // during `setup`: which data flows have their SYN-ACK

    // Sink and responder (port 1), client (port 0): everything that arrived. `t` counts what the
    // current trial measures.
    void poll(Trial &t, uint64_t now) {
        rte_mbuf *m[kBurst], *out[kBurst];
        for (uint16_t q = 0; q < g_queues; ++q) {
            uint16_t n = rte_eth_rx_burst(1, q, m, kBurst), nout = 0;
            for (uint16_t i = 0; i < n; ++i) {
                Hdrs h;
                if (!is_tcp(m[i], h)) {
                    ++t.other;
                    rte_pktmbuf_free(m[i]);
                    continue;
                }
                const uint8_t fl = h.tcp->tcp_flags;
                if ((fl & (RTE_TCP_SYN_FLAG | RTE_TCP_ACK_FLAG)) == RTE_TCP_SYN_FLAG) {
                    out[nout++] = syn_ack(m[i], h);
                    continue;
                }
                const uint16_t hl = static_cast<uint16_t>(34 + (h.tcp->data_off >> 4) * 4);
                if (h.tcp->dst_port == rte_cpu_to_be_16(kDataPort) && m[i]->data_len >= hl + 8) {
                    uint64_t ts;
                    std::memcpy(&ts, rte_pktmbuf_mtod_offset(m[i], void *, hl), 8);
                    ++t.received;
                    if (ts && ts <= now) t.lat.add(uint64_t(double(now - ts) * 1e9 / g_hz));
                }
                rte_pktmbuf_free(m[i]);  // the handshakes' ACKs, and the data
            }
            if (nout) send(1, q, out, nout);
            n = rte_eth_rx_burst(0, q, m, kBurst);
            nout = 0;
            for (uint16_t i = 0; i < n; ++i) {
                Hdrs h;
                if (!is_tcp(m[i], h) ||
                    (h.tcp->tcp_flags & (RTE_TCP_SYN_FLAG | RTE_TCP_ACK_FLAG)) !=
                        (RTE_TCP_SYN_FLAG | RTE_TCP_ACK_FLAG)) {
                    ++t.other;
                    rte_pktmbuf_free(m[i]);
                    continue;
                }
                const uint32_t flow = rte_be_to_cpu_32(h.tcp->recv_ack) - 1;
                if (h.tcp->src_port == rte_cpu_to_be_16(kSynPort) && flow >= syn_base &&
                    flow < next_syn) {
                    ++t.received;
                    const uint64_t ts = syn_tsc[flow % kSynSlots];
                    if (ts && ts <= now) t.lat.add(uint64_t(double(now - ts) * 1e9 / g_hz));
                    syn_tsc[flow % kSynSlots] = 0;  // a duplicate SYN-ACK counts once
                } else if (h.tcp->src_port == rte_cpu_to_be_16(kDataPort) && flow < done.size()) {
                    ++t.received;
                    done[flow] = 1;
                }
                out[nout++] = ack(m[i], h, flow);
            }
            if (nout) send(0, q, out, nout);
        }
    }

    // Transmits everything (the answers of a host); what the ring refuses is freed and counted.
    uint16_t send(uint16_t port, uint16_t q, rte_mbuf **m, uint16_t n) {
        uint16_t s = rte_eth_tx_burst(port, q, m, n);
        if (s < n) rte_pktmbuf_free_bulk(m + s, n - s);
        return s;
    }

    // The server's answer to a SYN, in the SYN's mbuf.
    rte_mbuf *syn_ack(rte_mbuf *m, Hdrs &h) {
        swap_ends(h);
        const uint32_t seq = rte_be_to_cpu_32(h.tcp->sent_seq);
        h.tcp->recv_ack = rte_cpu_to_be_32(seq + 1);
        h.tcp->sent_seq = rte_cpu_to_be_32(seq * 2654435761u);
        h.tcp->tcp_flags = RTE_TCP_SYN_FLAG | RTE_TCP_ACK_FLAG;
        h.tcp->data_off = 6 << 4;
        auto *opt = reinterpret_cast<uint8_t *>(h.tcp + 1);
        opt[0] = 2, opt[1] = 4, opt[2] = 1460 >> 8, opt[3] = 1460 & 0xff;
        m->data_len = m->pkt_len = 14 + 20 + 24;
        h.ip->total_length = rte_cpu_to_be_16(20 + 24);
        h.ip->time_to_live = 64;
        h.tcp->rx_win = rte_cpu_to_be_16(65160);
        finish_checksums(h);
        return m;
    }

    // The client's ACK completing the handshake, in the SYN-ACK's mbuf.
    rte_mbuf *ack(rte_mbuf *m, Hdrs &h, uint32_t flow) {
        swap_ends(h);
        const uint32_t their = rte_be_to_cpu_32(h.tcp->sent_seq);
        h.tcp->sent_seq = rte_cpu_to_be_32(flow + 1);
        h.tcp->recv_ack = rte_cpu_to_be_32(their + 1);
        h.tcp->tcp_flags = RTE_TCP_ACK_FLAG;
        h.tcp->data_off = 5 << 4;
        m->data_len = m->pkt_len = 14 + 20 + 20;
        h.ip->total_length = rte_cpu_to_be_16(40);
        h.ip->time_to_live = 64;
        h.tcp->rx_win = rte_cpu_to_be_16(502);
        finish_checksums(h);
        return m;
    }

    // Waits for `t` to go quiet: until nothing arrived for 100 ms (at most `max_s`).
    void drain(Trial &t, double max_s) {
        const uint64_t end = rte_rdtsc() + uint64_t(max_s * g_hz), quiet = uint64_t(0.1 * g_hz);
        uint64_t last = rte_rdtsc(), seen = t.received + t.other;
        for (uint64_t now = rte_rdtsc(); now < end && now - last < quiet; now = rte_rdtsc()) {
            poll(t, now);
            if (t.received + t.other != seen) seen = t.received + t.other, last = now;
        }
    }

    void setup(uint32_t flows) {
        data.assign(flows, DataFlow{});
        syn_base = next_syn = flows;
        done.assign(flows, 0);
        // Connections 0..flows-1 are the data flows: their handshakes, 32 at a time; SYNs that
        // got no answer (a device still starting) are sent again, up to 5 rounds.
        uint32_t completed = 0;
        for (int round = 0; round < 5 && completed < flows; ++round) {
            Trial t;
            for (uint32_t f = 0; f < flows;) {
                rte_mbuf *m[kBurst];
                uint16_t n = 0;
                for (; f < flows && n < kBurst; ++f)
                    if (!done[f]) m[n++] = make_syn(f, kDataPort);
                if (!n) break;
                send(0, static_cast<uint16_t>(f % g_queues), m, n);
                const uint64_t end = rte_rdtsc() + uint64_t(0.2 * g_hz), want = t.received + n;
                while (t.received < want && rte_rdtsc() < end) poll(t, rte_rdtsc());
            }
            drain(t, 1);
            completed = static_cast<uint32_t>(std::count(done.begin(), done.end(), 1));
        }
        for (uint32_t f = 0; f < flows; ++f) data[f].seq = f + 1;
        done.clear();
        std::printf("{\"setup\": %u, \"flows\": %u}\n", completed, flows);
    }

    // One data segment of `len` bytes of flow `f` at `m`; checksums by RFC 1624 from the flow's
    // partial sum.
    void data_segment(rte_mbuf *m, uint32_t f, uint16_t len, uint16_t payload, uint64_t now) {
        Hdrs h = write_headers(m, len, true, f, kDataPort, 0);
        DataFlow &d = data[f];
        h.tcp->sent_seq = rte_cpu_to_be_32(d.seq);
        h.tcp->recv_ack = rte_cpu_to_be_32(f * 2654435761u + 1);
        h.tcp->tcp_flags = RTE_TCP_ACK_FLAG | RTE_TCP_PSH_FLAG;
        h.ip->hdr_checksum = rte_ipv4_cksum(h.ip);
        uint8_t *p = reinterpret_cast<uint8_t *>(h.tcp + 1);
        std::memcpy(p, &now, 8);
        uint32_t s = d.partial;
        s = add16(s, &h.tcp->sent_seq, 4);
        s = add16(s, p, 8);
        const uint16_t c = static_cast<uint16_t>(~fold(s));
        h.tcp->cksum = rte_cpu_to_be_16(c == 0 ? 0xffff : c);
        d.seq += payload;
    }

    // The constant part of each flow's data segments: pseudo-header, ports, ACK number, flags,
    // window (the payload is zero beyond the TSC).
    void prepare_data(uint16_t len) {
        rte_mbuf *m = rte_pktmbuf_alloc(g_pool);
        for (uint32_t f = 0; f < data.size(); ++f) {
            Hdrs h = write_headers(m, len, true, f, kDataPort, 0);
            h.tcp->recv_ack = rte_cpu_to_be_32(f * 2654435761u + 1);
            h.tcp->tcp_flags = RTE_TCP_ACK_FLAG | RTE_TCP_PSH_FLAG;
            h.tcp->cksum = 0;
            const uint16_t full = static_cast<uint16_t>(~rte_ipv4_udptcp_cksum(h.ip, h.tcp));
            data[f].partial = full;  // sequence number and TSC were zero
        }
        rte_pktmbuf_free(m);
    }

    // Sends at `rate` per second for `secs` (rate 0: as fast as the ports take), then drains.
    // `syn`: each unit a new connection; else a data segment of `len` bytes.
    void trial(bool syn, double rate, uint16_t len, double secs, uint32_t flows) {
        Trial t;
        if (!syn) {
            if (flows == 0 || flows > data.size() || len < 14 + 20 + 20 + 8) {
                std::printf("{\"error\": \"data: needs 1..%zu set-up flows and SIZE >= 62\"}\n",
                            data.size());
                return;
            }
            prepare_data(len);
        }
        const uint16_t payload = static_cast<uint16_t>(len - 54);
        {
            Trial flush;
            drain(flush, 0.2);
        }  // stragglers of the trial before
        syn_base = next_syn;
        uint32_t cursor[kMaxQueues] = {};
        const uint64_t start = rte_rdtsc(), end = start + uint64_t(secs * g_hz);
        const double per_burst = rate > 0 ? double(kBurst) * g_hz / rate : 0;
        uint64_t bursts = 0;
        const uint32_t per_queue = std::max<uint32_t>(1, flows / g_queues);
        for (uint64_t now = start; now < end; now = rte_rdtsc()) {
            poll(t, now);
            // Paced: burst k leaves at start + k * per_burst; a late sender catches up by at
            // most 4 bursts (the shared core was taken away; not a burst of hundreds).
            int budget = 4;
            while (budget-- > 0 &&
                   (rate == 0 || double(now - start) >= double(bursts) * per_burst)) {
                const uint16_t q = static_cast<uint16_t>(bursts % g_queues);
                rte_mbuf *m[kBurst];
                uint16_t n = kBurst;
                if (syn) {
                    for (uint16_t i = 0; i < n; ++i) {
                        // Connections of queue q: q, q + queues, ... (memif has no RSS; the
                        // device under test steers by its own hash).
                        m[i] = make_syn(next_syn, kSynPort);
                        if (!m[i]) {
                            n = i;
                            break;
                        }
                        syn_tsc[next_syn % kSynSlots] = now;
                        ++next_syn;
                    }
                } else {
                    if (rte_pktmbuf_alloc_bulk(g_pool, m, n) != 0) n = 0;
                    for (uint16_t i = 0; i < n; ++i) {
                        const uint32_t f = q + g_queues * (cursor[q]++ % per_queue);
                        data_segment(m[i], f < flows ? f : q, len, payload, now);
                    }
                }
                t.offered += kBurst;  // an mbuf shortage is the sender's loss too
                t.sent += send(0, q, m, n);
                ++bursts;
                if (rate == 0) break;
            }
        }
        const double elapsed = double(rte_rdtsc() - start) / g_hz;
        drain(t, 2);
        std::printf(
            "{\"offered\": %" PRIu64 ", \"sent\": %" PRIu64 ", \"received\": %" PRIu64
            ", \"other\": %" PRIu64 ", \"seconds\": %.6f, \"lat_n\": %" PRIu64
            ", \"p50_ns\": %" PRIu64 ", \"p99_ns\": %" PRIu64 ", \"p999_ns\": %" PRIu64 "}\n",
            t.offered, t.sent, std::min(t.received, t.offered), t.other, elapsed, t.lat.count,
            t.lat.percentile(0.5), t.lat.percentile(0.99), t.lat.percentile(0.999));
    }
};

bool links_up(double secs) {
    const uint64_t end = rte_rdtsc() + uint64_t(secs * g_hz);
    do {
        bool up = true;
        for (uint16_t p = 0; p < 2; ++p) {
            rte_eth_link l{};
            rte_eth_link_get_nowait(p, &l);
            up = up && l.link_status == RTE_ETH_LINK_UP;
        }
        if (up) return true;
        usleep(10000);
    } while (rte_rdtsc() < end);
    return false;
}

bool setup_port(uint16_t port) {
    rte_eth_conf conf{};
    if (rte_eth_dev_configure(port, g_queues, g_queues, &conf) != 0) return false;
    for (uint16_t q = 0; q < g_queues; ++q) {
        if (rte_eth_rx_queue_setup(port, q, 1024, rte_eth_dev_socket_id(port), nullptr, g_pool) !=
                0 ||
            rte_eth_tx_queue_setup(port, q, 1024, rte_eth_dev_socket_id(port), nullptr) != 0)
            return false;
    }
    return rte_eth_dev_start(port) == 0;
}

}  // namespace

int main(int argc, char **argv) {
    const int used = rte_eal_init(argc, argv);
    if (used < 0) {
        std::fprintf(stderr, "segwire-linegen: EAL initialisation failed\n");
        return 1;
    }
    argc -= used, argv += used;
    uint32_t mbufs = 65535;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--queues" && i + 1 < argc) {
            g_queues = static_cast<uint16_t>(std::atoi(argv[++i]));
        } else if (a == "--mbufs" && i + 1 < argc) {
            mbufs = static_cast<uint32_t>(std::atoi(argv[++i]));
        } else {
            std::fprintf(stderr, "usage: segwire-linegen EAL-ARGS -- [--queues N] [--mbufs N]\n");
            return 2;
        }
    }
    if (g_queues < 1 || g_queues > kMaxQueues) {
        std::fprintf(stderr, "segwire-linegen: --queues: 1..%u\n", kMaxQueues);
        return 2;
    }
    if (rte_eth_dev_count_avail() != 2) {
        std::fprintf(stderr, "segwire-linegen: needs exactly two ports (--vdev), has %u\n",
                     rte_eth_dev_count_avail());
        return 2;
    }
    g_hz = double(rte_get_tsc_hz());
    g_pool = rte_pktmbuf_pool_create("linegen", mbufs, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                     rte_socket_id());
    if (!g_pool || !setup_port(0) || !setup_port(1)) {
        std::fprintf(stderr, "segwire-linegen: cannot set up the mbuf pool or the ports\n");
        return 1;
    }
    setvbuf(stdout, nullptr, _IOLBF, 0);
    std::printf("{\"ready\": true, \"tsc_hz\": %.0f}\n", g_hz);
    auto gen = std::make_unique<Gen>();
    char line[256];
    while (std::fgets(line, sizeof line, stdin)) {
        char cmd[16] = "";
        double a = 0, c = 0;
        unsigned b = 0, d = 0;
        const int n = std::sscanf(line, "%15s %lf %u %lf %u", cmd, &a, &b, &c, &d);
        const std::string k = cmd;
        if (k == "link" && n >= 2) {
            std::printf("{\"link\": %s}\n", links_up(a) ? "true" : "false");
        } else if (k == "setup" && n >= 2) {
            gen->setup(static_cast<uint32_t>(a));
        } else if (k == "data" && n == 5) {
            gen->trial(false, a, static_cast<uint16_t>(b), c, d);
        } else if (k == "syn" && n >= 4) {
            gen->trial(true, a, 0, c, 0);
        } else if (k == "quit") {
            break;
        } else {
            std::printf("{\"error\": \"unknown command: %s\"}\n", cmd);
        }
    }
    for (uint16_t p = 0; p < 2; ++p) {
        rte_eth_dev_stop(p);
        rte_eth_dev_close(p);
    }
    rte_eal_cleanup();
    return 0;
}
