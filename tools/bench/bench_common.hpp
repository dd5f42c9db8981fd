// Shared by the segwire-bench pipeline parts: result rows, frame generation, the null pipeline.
// Every figure is a ratio against a baseline measured in the same run (the machine is shared).
#pragma once

#include <cstdint>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include <rte_cycles.h>
#include <rte_mbuf.h>

namespace segwire::bench {

inline constexpr uint16_t kBurst = 32;

// One result line. `unit` is what `rate` counts per second ("pkt" or "handshake"); the null
// pipeline's rate is for the same work unit (the same packets generated and freed).
struct Row {
    std::string name;
    std::string param;  // what varies: flows, rules, flood fraction, ...
    std::string unit = "pkt";
    double rate = 0, cycles = 0;            // per second, cycles per unit (total)
    double null_rate = 0, null_cycles = 0;  // the baseline, same run
    std::string note;                       // printed after the row (and in the CSV)
    double ratio() const { return null_rate > 0 ? rate / null_rate : 0; }
};

struct Measure {
    uint64_t pkts = 0, cycles = 0;
};

inline double tsc_hz() {
    return static_cast<double>(rte_get_tsc_hz());
}

// This thread's CPU time in TSC cycles. Long runs are timed with it rather than with the TSC: the
// VM is shared, and time during which the scheduler ran something else on the core is not
// segwire's (nor the null pipeline's). Short intervals (one burst) use the TSC.
inline uint64_t cpu_cycles() {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return uint64_t((double(ts.tv_sec) * 1e9 + double(ts.tv_nsec)) * tsc_hz() / 1e9);
}

// An address/port pair; addresses are IPv4 in network byte order as bytes.
struct Endpoint {
    uint8_t ip[4];
    uint16_t port;
};

enum class TcpOpts : uint8_t {
    kNone,       // 20-byte header (64-byte frames with Ethernet padding)
    kSyn,        // MSS 1460, SACK permitted, timestamps, NOP, window scale 7 (like Linux)
    kTimestamps  // NOP NOP timestamps
};

// Ethernet + a 20-byte IPv4 header (checksum zero) at `f`; returns where the L4 header goes.
inline uint8_t *write_eth_ipv4(uint8_t *f, const Endpoint &src, const Endpoint &dst, uint8_t proto,
                               uint16_t ip_len) {
    static const uint8_t macs[12] = {0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1};
    std::memcpy(f, macs, 12);
    f[12] = 0x08, f[13] = 0x00;
    uint8_t *ip = f + 14;
    ip[0] = 0x45, ip[1] = 0;
    ip[2] = static_cast<uint8_t>(ip_len >> 8), ip[3] = static_cast<uint8_t>(ip_len);
    ip[4] = 0, ip[5] = 1, ip[6] = 0x40, ip[7] = 0, ip[8] = 64, ip[9] = proto, ip[10] = 0,
    ip[11] = 0;
    std::memcpy(ip + 12, src.ip, 4);
    std::memcpy(ip + 16, dst.ip, 4);
    return ip + 20;
}

// Writes Ethernet + IPv4 + TCP (+ `payload` bytes of `data`, may be null = zeros) at `f` and
// returns the frame length (at least 60 bytes: padded like Ethernet). Checksums are left zero:
// nothing on this path verifies them and the enforcer recomputes them when it rewrites.
inline uint16_t write_tcp(uint8_t *f, const Endpoint &src, const Endpoint &dst, uint8_t flags,
                          uint32_t seq, uint32_t ack, TcpOpts opts, const uint8_t *data = nullptr,
                          uint16_t payload = 0) {
    static const uint8_t syn_opts[20] = {2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0,
                                         0, 1, 0,    0,    0, 0, 1, 3,  3, 7};
    static const uint8_t ts_opts[12] = {1, 1, 8, 10, 0, 0, 0, 2, 0, 0, 0, 1};
    const uint8_t olen = opts == TcpOpts::kSyn ? 20 : opts == TcpOpts::kTimestamps ? 12 : 0;
    const uint16_t ip_len = static_cast<uint16_t>(20 + 20 + olen + payload);
    uint8_t *t = write_eth_ipv4(f, src, dst, 6, ip_len);
    t[0] = static_cast<uint8_t>(src.port >> 8), t[1] = static_cast<uint8_t>(src.port);
    t[2] = static_cast<uint8_t>(dst.port >> 8), t[3] = static_cast<uint8_t>(dst.port);
    for (int i = 0; i < 4; ++i) {
        t[4 + i] = static_cast<uint8_t>(seq >> (24 - 8 * i));
        t[8 + i] = static_cast<uint8_t>(ack >> (24 - 8 * i));
    }
    t[12] = static_cast<uint8_t>((20 + olen) / 4 << 4);
    t[13] = flags;
    t[14] = 0xff, t[15] = 0xff, t[16] = t[17] = t[18] = t[19] = 0;
    if (olen) std::memcpy(t + 20, opts == TcpOpts::kSyn ? syn_opts : ts_opts, olen);
    uint8_t *p = t + 20 + olen;
    if (payload) {
        if (data)
            std::memcpy(p, data, payload);
        else
            std::memset(p, 0, payload);
    }
    uint16_t len = static_cast<uint16_t>(14 + ip_len);
    if (len < 60) {
        std::memset(f + len, 0, 60u - len);
        len = 60;
    }
    return len;
}

// Ethernet + IPv4 + UDP with `payload` zero bytes (at least 60 bytes, padded like Ethernet).
// Checksum zero (allowed for UDP over IPv4).
inline uint16_t write_udp(uint8_t *f, const Endpoint &src, const Endpoint &dst, uint16_t payload) {
    const uint16_t ip_len = static_cast<uint16_t>(20 + 8 + payload);
    uint8_t *u = write_eth_ipv4(f, src, dst, 17, ip_len);
    u[0] = static_cast<uint8_t>(src.port >> 8), u[1] = static_cast<uint8_t>(src.port);
    u[2] = static_cast<uint8_t>(dst.port >> 8), u[3] = static_cast<uint8_t>(dst.port);
    u[4] = static_cast<uint8_t>((8 + payload) >> 8), u[5] = static_cast<uint8_t>(8 + payload);
    u[6] = u[7] = 0;
    std::memset(u + 8, 0, payload);
    uint16_t len = static_cast<uint16_t>(14 + ip_len);
    if (len < 60) {
        std::memset(f + len, 0, 60u - len);
        len = 60;
    }
    return len;
}

// A 64-byte TCP ACK of flow `i` (10.x.y.z:port -> 10.200.0.1:80), Ethernet padding included.
inline void write_frame(uint8_t *f, uint32_t i) {
    static const uint8_t tmpl[64] = {
        0x02, 0,    0,  0,   0, 2, 0x02, 0, 0,  0, 0, 1, 0x08, 0x00,  // Ethernet
        0x45, 0,    0,  40,  0, 1, 0x40, 0, 64, 6, 0, 0, 10,   0,
        0,    0,    10, 200, 0, 1,  // IPv4
        0,    0,    0,  80,  0, 0, 0,    1, 0,  0, 0, 1, 0x50, 0x10,
        0xff, 0xff, 0,  0,   0, 0  // TCP ACK
    };
    std::memcpy(f, tmpl, 64);
    f[27] = static_cast<uint8_t>(i >> 16);
    f[28] = static_cast<uint8_t>(i >> 8);
    f[29] = static_cast<uint8_t>(i);
    f[34] = static_cast<uint8_t>(0x80 | ((i >> 24) & 0x3f));
    f[35] = static_cast<uint8_t>(i);
}

inline bool make_burst(rte_mempool *pool, rte_mbuf **m, uint32_t first, uint32_t flows,
                       uint16_t port = 0) {
    if (rte_pktmbuf_alloc_bulk(pool, m, kBurst) != 0) return false;
    for (uint16_t i = 0; i < kBurst; ++i) {
        uint8_t *f = reinterpret_cast<uint8_t *>(rte_pktmbuf_append(m[i], 64));
        write_frame(f, (first + i) % flows);
        m[i]->port = port;  // inside port unless told otherwise
    }
    return true;
}

// The null pipeline: the same mbuf generation as the measured pipelines, then freed (what rx
// and tx of a port pair would cost at best). `bursts` bursts of 64-byte frames.
inline Measure run_null(rte_mempool *pool, uint32_t flows, uint64_t bursts) {
    rte_mbuf *m[kBurst];
    Measure r;
    uint32_t next = 0;
    const uint64_t t0 = cpu_cycles();
    for (uint64_t b = 0; b < bursts; ++b) {
        if (!make_burst(pool, m, next, flows)) break;
        next = (next + kBurst) % flows;
        r.pkts += kBurst;
        rte_pktmbuf_free_bulk(m, kBurst);
    }
    r.cycles = cpu_cycles() - t0;
    return r;
}

struct Options {
    bool quick = false;
    std::string
        only;  // SEGWIRE_BENCH_ONLY: run only the parts whose name contains it (development)
    bool wants(const char *part) const {
        return only.empty() || std::string(part).find(only) != std::string::npos;
    }
};

// Identity parts (tools/bench/identity_bench.cpp). Each appends its rows and prints them.
bool identity_rows(rte_mempool *pool, const Options &o, std::vector<Row> &rows);
// Packet capture's cost on a worker and the writer's rate (tools/bench/capture_bench.cpp).
bool capture_rows(rte_mempool *pool, const Options &o, std::vector<Row> &rows);

void print_row(const Row &r);

}  // namespace segwire::bench
