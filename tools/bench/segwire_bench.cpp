// segwire-bench: throughput of segwire's own worker pipeline, each figure next to a null pipeline
// (same mbuf generation, rx -> tx, no processing) measured in the same run, so ratios hold on a
// noisy shared machine. In-process: mbufs are generated and handed to Worker::handle_burst, the
// packets it forwards are collected with take_tx and freed, as a port pair would.
//
//   segwire-bench pipeline [--quick] [--csv FILE] [--svg FILE]
//
// Parts (docs/performance.md): established forwarding without identity (1k..1M flows); identity
// handshakes per second through two enforcers back to back, steady state and cold
// (tools/bench/identity_bench.cpp); established forwarding with identity under policies of 10..100k
// rules; established traffic under a forged-SYN flood; packet capture off and on
// (tools/bench/capture_bench.cpp); established forwarding in routed mode (docs/routed.md).
// SEGWIRE_BENCH_ONLY=<part> runs only the parts whose name contains it (established,
// handshake-steady, handshake-cold, policy, flood, capture, established-routed,
// established-geneve; "established" runs bump-in-the-wire, routed and GENEVE forwarding side by
// side).
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <rte_arp.h>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_fib.h>
#include <rte_fib6.h>
#include <rte_ip.h>
#include <rte_mbuf.h>

#include "dataplane/worker/worker.hpp"
#include "tools/bench/bench_common.hpp"
#include "tools/bench/console_bench.hpp"
#include "version.hpp"

using namespace segwire;
using namespace segwire::bench;

namespace segwire::bench {

void print_row(const Row &r) {
    char rate[32], null_rate[32] = "", ratio[16] = "";
    auto fmt = [](char *out, size_t n, double v) {
        if (v >= 1e6)
            std::snprintf(out, n, "%.2f M", v / 1e6);
        else
            std::snprintf(out, n, "%.1f k", v / 1e3);
    };
    fmt(rate, sizeof rate, r.rate);
    if (r.null_rate > 0) {
        fmt(null_rate, sizeof null_rate, r.null_rate);
        std::snprintf(ratio, sizeof ratio, "%.2fx", r.ratio());
    }
    std::printf("%-44s %8s %-9s %10s %10.1f %10s %7s\n", r.name.c_str(), r.param.c_str(),
                r.unit.c_str(), rate, r.cycles, null_rate, ratio);
    if (r.null_rate > 0)
        std::printf("%-44s %8s %-9s %10s %10.1f\n", "  of which segwire's own work", "", "", "",
                    r.cycles - r.null_cycles);
    if (!r.note.empty()) std::printf("    %s\n", r.note.c_str());
    std::fflush(stdout);
}

}  // namespace segwire::bench

namespace {

// Runs `bursts` bursts over `flows` flows through `worker` (established forwarding, no identity).
Measure run(rte_mempool *pool, dp::Worker *worker, uint32_t flows, uint64_t bursts) {
    rte_mbuf *m[kBurst], *out[4 * dp::kMaxBurst];
    Measure r;
    uint32_t next = 0;
    const uint64_t t0 = cpu_cycles();
    for (uint64_t b = 0; b < bursts; ++b) {
        if (!make_burst(pool, m, next, flows)) break;
        next = (next + kBurst) % flows;
        const uint64_t now = rte_rdtsc();
        worker->handle_burst(m, kBurst, now);
        worker->prepare_tx(now);  // routed mode's egress; nothing in bump-in-the-wire mode
        for (uint8_t side = 0; side < 2; ++side) {
            uint16_t n = worker->take_tx(side, out);
            r.pkts += n;
            rte_pktmbuf_free_bulk(out, n);
        }
    }
    r.cycles = cpu_cycles() - t0;
    return r;
}

// Routed mode (docs/routed.md) for the bench's frames: they arrive on the inside port (MAC
// 02:00:00:00:00:02) from 10.0.0.0/9 and go to 10.200.0.1, a neighbour on the outside port's
// connected 10.200.0.0/16; the route table is built as control/routing.cpp builds it.
struct RoutedBench {
    dp::RoutedPorts ports{};
    dp::RouteSlot slot;
    dp::RouteTable table{};
    bool init() {
        static const uint8_t in_mac[6] = {0x02, 0, 0, 0, 0, 2}, out_mac[6] = {0x02, 0, 0, 0, 0, 3};
        std::memcpy(ports.port[0].mac, in_mac, 6);
        std::memcpy(ports.port[1].mac, out_mac, 6);
        ports.port[0].v4[ports.port[0].n4++] = {{{10, 0, 0, 1}}, 9};
        ports.port[1].v4[ports.port[1].n4++] = {{{10, 200, 0, 254}}, 16};
        rte_fib_conf c4{};
        c4.type = RTE_FIB_DIR24_8;
        c4.max_routes = 16;
        c4.dir24_8.nh_sz = RTE_FIB_DIR24_8_2B;
        c4.dir24_8.num_tbl8 = 16;
        table.fib4 = rte_fib_create("bench_fib4", 0, &c4);
        rte_fib6_conf c6{};
        c6.type = RTE_FIB6_TRIE;
        c6.max_routes = 16;
        c6.trie.nh_sz = RTE_FIB6_TRIE_2B;
        c6.trie.num_tbl8 = 16;
        table.fib6 = rte_fib6_create("bench_fib6", 0, &c6);
        if (!table.fib4 || !table.fib6) return false;
        table.nh[table.nnh++] = dp::NextHop{0, 1, {}};
        table.nh[table.nnh++] = dp::NextHop{1, 1, {}};
        if (rte_fib_add(table.fib4, 10u << 24, 9, 1) != 0 ||
            rte_fib_add(table.fib4, (10u << 24) | (200u << 16), 16, 2) != 0)
            return false;
        slot.current.store(&table);
        return true;
    }
    ~RoutedBench() {
        if (table.fib4) rte_fib_free(table.fib4);
        if (table.fib6) rte_fib6_free(table.fib6);
    }
    // 10.200.0.1 asks for the outside port's address: the worker answers and learns its MAC,
    // so the measured packets find their next hop resolved.
    void resolve(rte_mempool *pool, dp::Worker *w) {
        rte_mbuf *m = rte_pktmbuf_alloc(pool);
        auto *f = reinterpret_cast<uint8_t *>(rte_pktmbuf_append(m, 60));
        std::memset(f, 0, 60);
        static const uint8_t hdr[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0,   0,  0, 0,
                                      0x20, 0x08, 0x06, 0,    1,    0x08, 0,    6,   4,  0, 1,
                                      0x02, 0,    0,    0,    0,    0x20, 10,   200, 0,  1, 0,
                                      0,    0,    0,    0,    0,    10,   200,  0,   254};
        std::memcpy(f, hdr, sizeof hdr);
        m->port = 1;
        w->handle_burst(&m, 1, rte_rdtsc());
        w->prepare_tx(rte_rdtsc());
        rte_mbuf *out[4 * dp::kMaxBurst];
        for (uint8_t side = 0; side < 2; ++side) rte_pktmbuf_free_bulk(out, w->take_tx(side, out));
    }
};

// GENEVE one-arm mode (docs/geneve.md) for the bench's frames: the 64-byte TCP ACK of flow i as
// AWS Gateway Load Balancer sends it (outer IPv4 10.250.0.2:6081 -> the arm 10.250.0.1:6081,
// GENEVE with the endpoint ID, attachment ID and a per-flow cookie: 68 bytes more), 122 bytes.
constexpr uint16_t kGeneveFrame = 14 + 68 + 40;

inline void write_geneve_frame(uint8_t *f, uint32_t i) {
    static const uint8_t outer[14 + 20 + 8 + 8 + 32] = {
        0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 0x20, 0x08,
        0x00,  // Ethernet: LB -> arm
        0x45, 0, 0, 108, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 250, 0, 2, 10, 250, 0, 1,  // IPv4
        0x17, 0xc1, 0x17, 0xc1, 0, 88, 0, 0,       // UDP 6081 -> 6081, checksum 0
        8, 0, 0x08, 0x00, 0, 0, 0, 0,              // GENEVE: 8 words of options, IPv4
        0x01, 0x08, 1, 2, 1, 2, 3, 4, 5, 6, 7, 8,  // endpoint ID
        0x01, 0x08, 2, 2, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8,  // attachment
                                                                           // ID
        0x01, 0x08, 3, 1, 0, 0, 0, 0};                                     // flow cookie
    std::memcpy(f, outer, sizeof outer);
    f[sizeof outer - 4] = static_cast<uint8_t>(i >> 24);
    f[sizeof outer - 3] = static_cast<uint8_t>(i >> 16);
    f[sizeof outer - 2] = static_cast<uint8_t>(i >> 8);
    f[sizeof outer - 1] = static_cast<uint8_t>(i);
    uint8_t ack[64];
    write_frame(ack, i);
    std::memcpy(f + sizeof outer, ack + 14, 40);
    auto *ip = reinterpret_cast<rte_ipv4_hdr *>(f + 14);
    ip->hdr_checksum = rte_ipv4_cksum(ip);
}

bool make_geneve_burst(rte_mempool *pool, rte_mbuf **m, uint32_t first, uint32_t flows) {
    if (rte_pktmbuf_alloc_bulk(pool, m, kBurst) != 0) return false;
    for (uint16_t i = 0; i < kBurst; ++i) {
        auto *f = reinterpret_cast<uint8_t *>(rte_pktmbuf_append(m[i], kGeneveFrame));
        write_geneve_frame(f, (first + i) % flows);
        m[i]->port = 0;
    }
    return true;
}

Measure run_geneve(rte_mempool *pool, dp::Worker *worker, uint32_t flows, uint64_t bursts,
                   bool null) {
    rte_mbuf *m[kBurst], *out[4 * dp::kMaxBurst];
    Measure r;
    uint32_t next = 0;
    const uint64_t t0 = cpu_cycles();
    for (uint64_t b = 0; b < bursts; ++b) {
        if (!make_geneve_burst(pool, m, next, flows)) break;
        next = (next + kBurst) % flows;
        if (null) {
            r.pkts += kBurst;
            rte_pktmbuf_free_bulk(m, kBurst);
            continue;
        }
        const uint64_t now = rte_rdtsc();
        worker->handle_burst(m, kBurst, now);
        worker->prepare_tx(now);
        for (uint8_t side = 0; side < 2; ++side) {
            uint16_t n = worker->take_tx(side, out);
            r.pkts += n;
            rte_pktmbuf_free_bulk(out, n);
        }
    }
    r.cycles = cpu_cycles() - t0;
    return r;
}

// The arm: 10.250.0.1/16 on port 0 (port 1 is the same arm, without addresses); the load
// balancer 10.250.0.2 is a neighbour on it.
struct GeneveBench {
    dp::RoutedPorts ports{};
    dp::RouteSlot slot;
    dp::RouteTable table{};
    bool init() {
        static const uint8_t mac[6] = {0x02, 0, 0, 0, 0, 2};
        std::memcpy(ports.port[0].mac, mac, 6);
        std::memcpy(ports.port[1].mac, mac, 6);
        ports.port[0].v4[ports.port[0].n4++] = {{{10, 250, 0, 1}}, 16};
        rte_fib_conf c4{};
        c4.type = RTE_FIB_DIR24_8;
        c4.max_routes = 16;
        c4.dir24_8.nh_sz = RTE_FIB_DIR24_8_2B;
        c4.dir24_8.num_tbl8 = 16;
        table.fib4 = rte_fib_create("bench_gnv_fib4", 0, &c4);
        rte_fib6_conf c6{};
        c6.type = RTE_FIB6_TRIE;
        c6.max_routes = 16;
        c6.trie.nh_sz = RTE_FIB6_TRIE_2B;
        c6.trie.num_tbl8 = 16;
        table.fib6 = rte_fib6_create("bench_gnv_fib6", 0, &c6);
        if (!table.fib4 || !table.fib6) return false;
        table.nh[table.nnh++] = dp::NextHop{0, 1, {}};
        if (rte_fib_add(table.fib4, (10u << 24) | (250u << 16), 16, 1) != 0) return false;
        slot.current.store(&table);
        return true;
    }
    ~GeneveBench() {
        if (table.fib4) rte_fib_free(table.fib4);
        if (table.fib6) rte_fib6_free(table.fib6);
    }
    // The load balancer asks for the arm's address: the worker answers and learns its MAC.
    void resolve(rte_mempool *pool, dp::Worker *w) {
        rte_mbuf *m = rte_pktmbuf_alloc(pool);
        auto *f = reinterpret_cast<uint8_t *>(rte_pktmbuf_append(m, 60));
        std::memset(f, 0, 60);
        static const uint8_t hdr[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0,   0, 0, 0,
                                      0x20, 0x08, 0x06, 0,    1,    0x08, 0,    6,   4, 0, 1,
                                      0x02, 0,    0,    0,    0,    0x20, 10,   250, 0, 2, 0,
                                      0,    0,    0,    0,    0,    10,   250,  0,   1};
        std::memcpy(f, hdr, sizeof hdr);
        m->port = 0;
        w->handle_burst(&m, 1, rte_rdtsc());
        w->prepare_tx(rte_rdtsc());
        rte_mbuf *out[4 * dp::kMaxBurst];
        for (uint8_t side = 0; side < 2; ++side) rte_pktmbuf_free_bulk(out, w->take_tx(side, out));
    }
};

bool geneve_rows(rte_mempool *pool, const Options &o, std::vector<Row> &rows) {
    const double hz = tsc_hz();
    const std::vector<uint32_t> sizes =
        o.quick ? std::vector<uint32_t>{1000, 10000} : std::vector<uint32_t>{1000, 100000, 1000000};
    const uint64_t bursts = o.quick ? 20000 : 200000;
    for (uint32_t flows : sizes) {
        std::fprintf(stderr, "  established forwarding (GENEVE), %u flows ...\n", flows);
        auto w = std::make_unique<dp::Worker>();
        auto gb = std::make_unique<GeneveBench>();
        if (!gb->init()) {
            std::fprintf(stderr, "segwire-bench: cannot build the GENEVE bench's FIB\n");
            return false;
        }
        dp::WorkerSetup s;
        s.port_id[0] = s.port_id[1] = 0;
        s.flow_capacity = flows + flows / 4 + 64;
        for (auto &t : s.timeouts_s) t = 3600;
        s.routed_ports = &gb->ports;
        s.routes = &gb->slot;
        s.pool = pool;
        s.geneve = true;
        s.geneve_cfg.contexts = flows + flows / 4 + 64;  // GWLB: a cookie, so a context, per flow
        s.geneve_cfg.context_idle_s = 7200;
        std::string err;
        if (!w->init(s, err)) {
            std::fprintf(stderr, "segwire-bench: %s\n", err.c_str());
            return false;
        }
        gb->resolve(pool, w.get());
        run_geneve(pool, w.get(), flows, (flows + kBurst - 1) / kBurst, false);
        Measure nul, seg;
        for (int round = 0; round < (o.quick ? 1 : 3); ++round) {
            Measure n1 = run_geneve(pool, w.get(), flows, bursts, true);
            Measure s1 = run_geneve(pool, w.get(), flows, bursts, false);
            Measure n2 = run_geneve(pool, w.get(), flows, bursts, true);
            if (n2.cycles < n1.cycles) n1 = n2;
            if (round == 0 || s1.cycles < seg.cycles) seg = s1;
            if (round == 0 || n1.cycles < nul.cycles) nul = n1;
        }
        if (seg.pkts == 0) {
            std::fprintf(stderr, "segwire-bench: nothing forwarded (GENEVE)\n");
            return false;
        }
        Row r;
        r.name = "established forwarding, GENEVE mode";
        r.param = std::to_string(flows);
        r.cycles = double(seg.cycles) / double(seg.pkts);
        r.rate = hz / r.cycles;
        r.null_cycles = double(nul.cycles) / double(nul.pkts);
        r.null_rate = hz / r.null_cycles;
        r.note =
            "122-byte GWLB frames (64-byte ACK + 68), decapsulated and sent back; its null "
            "generates the same frames";
        rows.push_back(r);
        print_row(r);
        w.reset();
    }
    return true;
}

bool established_rows(rte_mempool *pool, const Options &o, std::vector<Row> &rows, bool routed) {
    const double hz = tsc_hz();
    const std::vector<uint32_t> sizes =
        o.quick ? std::vector<uint32_t>{1000, 10000} : std::vector<uint32_t>{1000, 100000, 1000000};
    const uint64_t bursts = o.quick ? 20000 : 200000;
    for (uint32_t flows : sizes) {
        std::fprintf(stderr, "  established forwarding%s, %u flows ...\n",
                     routed ? " (routed)" : "", flows);
        auto w = std::make_unique<dp::Worker>();
        dp::WorkerSetup s;
        s.port_id[0] = 0;
        s.port_id[1] = 1;
        s.flow_capacity = flows + flows / 4 + 64;
        for (auto &t : s.timeouts_s) t = 3600;
        auto rb = std::make_unique<RoutedBench>();
        if (routed) {
            if (!rb->init()) {
                std::fprintf(stderr, "segwire-bench: cannot build the routed bench's FIB\n");
                return false;
            }
            s.routed_ports = &rb->ports;
            s.routes = &rb->slot;
            s.pool = pool;
        }
        std::string err;
        if (!w->init(s, err)) {
            std::fprintf(stderr, "segwire-bench: %s\n", err.c_str());
            return false;
        }
        if (routed) rb->resolve(pool, w.get());
        run(pool, w.get(), flows, (flows + kBurst - 1) / kBurst);  // create every flow first
        // Null before and after, best of three rounds (one round with --quick): the machine is
        // shared, and a round in which another process took the core says nothing about segwire.
        Measure nul, seg;
        for (int round = 0; round < (o.quick ? 1 : 3); ++round) {
            Measure n1 = run_null(pool, flows, bursts);
            Measure s1 = run(pool, w.get(), flows, bursts);
            Measure n2 = run_null(pool, flows, bursts);
            if (n2.cycles < n1.cycles) n1 = n2;
            if (round == 0 || s1.cycles < seg.cycles) seg = s1;
            if (round == 0 || n1.cycles < nul.cycles) nul = n1;
        }
        if (seg.pkts == 0) {
            std::fprintf(stderr, "segwire-bench: nothing forwarded%s\n", routed ? " (routed)" : "");
            return false;
        }
        Row r;
        r.name = routed ? "established forwarding, routed mode" : "established forwarding";
        r.param = std::to_string(flows);
        r.cycles = double(seg.cycles) / double(seg.pkts);
        r.rate = hz / r.cycles;
        r.null_cycles = double(nul.cycles) / double(nul.pkts);
        r.null_rate = hz / r.null_cycles;
        rows.push_back(r);
        print_row(r);
        w.reset();  // before its route table
    }
    return true;
}

void write_svg(const std::string &path, const std::vector<Row> &rows) {
    std::vector<const Row *> shown;
    for (const Row &r : rows)
        if (r.null_rate > 0) shown.push_back(&r);
    std::ofstream o(path);
    const int bar = 26, w = 900, h = 60 + bar * static_cast<int>(shown.size());
    o << "<svg xmlns='http://www.w3.org/2000/svg' width='" << w << "' height='" << h
      << "' font-family='sans-serif' font-size='13'>\n<text x='10' y='20'>segwire-bench pipeline: "
         "rate relative to the null pipeline moving the same packets (same run)</text>\n";
    for (size_t i = 0; i < shown.size(); ++i) {
        const Row &row = *shown[i];
        const int y = 40 + bar * static_cast<int>(i);
        const double r = std::min(row.ratio(), 1.0);
        char label[32];
        std::snprintf(label, sizeof label, "%.2fx", row.ratio());
        o << "<text x='10' y='" << y + 16 << "'>" << row.name << " " << row.param << "</text>"
          << "<rect x='400' y='" << y + 4 << "' width='" << static_cast<int>(400 * r)
          << "' height='16' fill='#3b7dd8'/><text x='" << 406 + static_cast<int>(400 * r) << "' y='"
          << y + 16 << "'>" << label << "</text>\n";
    }
    o << "</svg>\n";
}

int run_pipeline(bool quick, const std::string &csv, const std::string &svg) {
    std::string prefix = "segwire-bench-" + std::to_string(getpid());
    std::vector<std::string> eal = {"segwire-bench",
                                    "--no-huge",
                                    "--no-shconf",
                                    "--no-pci",
                                    "-l",
                                    "0",
                                    "-m",
                                    quick ? "1024" : "3072",
                                    "--file-prefix",
                                    prefix,
                                    "--log-level=*:error"};
    std::vector<char *> av;
    for (auto &s : eal) av.push_back(s.data());
    if (rte_eal_init(static_cast<int>(av.size()), av.data()) < 0) {
        std::fprintf(stderr, "segwire-bench: EAL initialisation failed\n");
        return 1;
    }
    rte_mempool *pool =
        rte_pktmbuf_pool_create("bench", 16383, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE, 0);
    if (!pool) {
        std::fprintf(stderr, "segwire-bench: cannot create the mbuf pool\n");
        return 1;
    }
    Options o;
    o.quick = quick;
    if (const char *only = std::getenv("SEGWIRE_BENCH_ONLY")) o.only = only;
    std::vector<Row> rows;
    std::printf("%-44s %8s %-9s %10s %10s %10s %7s\n", "pipeline (1 core, cycles at TSC rate)",
                "param", "unit", "rate/s", "cycles", "null /s", "ratio");
    bool ok = true;
    if (o.wants("established")) ok = established_rows(pool, o, rows, false) && ok;
    // Routed mode (docs/routed.md): the same traffic routed (TTL, FIB, neighbour, MAC rewrite).
    if (o.wants("established-routed")) ok = established_rows(pool, o, rows, true) && ok;
    // GENEVE one-arm mode (docs/geneve.md): the same flows as GWLB sends them.
    if (o.wants("established-geneve")) ok = geneve_rows(pool, o, rows) && ok;
    ok = identity_rows(pool, o, rows) && ok;
    if (o.wants("capture")) ok = capture_rows(pool, o, rows) && ok;
    if (!csv.empty()) {
        std::ofstream out(csv);
        out << "benchmark,param,unit,rate_per_s,cycles_per_unit,null_rate_per_s,"
               "null_cycles_per_unit,ratio,note\n";
        for (auto &r : rows)
            out << r.name << "," << r.param << "," << r.unit << "," << r.rate << "," << r.cycles
                << "," << r.null_rate << "," << r.null_cycles << "," << r.ratio() << ",\"" << r.note
                << "\"\n";
    }
    if (!svg.empty()) write_svg(svg, rows);
    rte_eal_cleanup();
    return ok && !rows.empty() ? 0 : 1;
}

// `segwire-bench CMD ARGS` for the benchmarks written in Python: runs
// tools/bench/SCRIPT with ARGS and this build's directory as SEGWIRE_BUILD (one already set wins).
int exec_python_bench(const char *script, int argc, char **argv) {
    std::string path = std::string(SEGWIRE_SOURCE_ROOT "/tools/bench/") + script;
    setenv("SEGWIRE_BUILD", SEGWIRE_BUILD_ROOT, 0);
    std::vector<char *> args = {const_cast<char *>("/usr/bin/python3"), path.data()};
    for (int i = 2; i < argc; ++i) args.push_back(argv[i]);
    args.push_back(nullptr);
    execv(args[0], args.data());
    std::perror("segwire-bench: /usr/bin/python3");
    return 1;
}

}  // namespace

// segwire-bench console [--quick] [--enforcers N,N,...] [--writes N] [--csv FILE]
static int console_main(int argc, char **argv) {
    segwire::bench::ConsoleBenchOptions o;
    o.console_bin = SEGWIRE_BUILD_ROOT "/tools/console/segwire-console";
    o.policy_dir = SEGWIRE_SOURCE_ROOT "/config/examples/console";
    // The three rows of issue 22 in one run; --stores picks fewer.
    o.stores = {"sqlite", "pg1", "pg2"};
    for (int i = 2; i < argc; ++i) {
        std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "segwire-bench console: %s needs a value\n", a.c_str());
                std::exit(2);
            }
            return argv[++i];
        };
        auto number = [&](const std::string &v, uint32_t lo, uint32_t hi) -> uint32_t {
            char *end = nullptr;
            unsigned long n = std::strtoul(v.c_str(), &end, 10);
            if (v.empty() || *end || n < lo || n > hi) {
                std::fprintf(stderr,
                             "segwire-bench console: %s: \"%s\" is not a number in %u..%u\n",
                             a.c_str(), v.c_str(), lo, hi);
                std::exit(2);
            }
            return static_cast<uint32_t>(n);
        };
        if (a == "--quick") {
            // CI: proves the tool runs against this build's Console; no figure is judged.
            o.counts = {8};
            o.writes = 1;
            o.report_s = 5;
            o.poll_wait_s = 10;
        } else if (a == "--enforcers") {
            o.counts.clear();
            std::string v = value(), item;
            for (size_t p = 0; p <= v.size(); ++p) {
                if (p == v.size() || v[p] == ',') {
                    o.counts.push_back(number(item, 1, 100000));
                    item.clear();
                } else {
                    item += v[p];
                }
            }
        } else if (a == "--writes") {
            o.writes = number(value(), 1, 100);
        } else if (a == "--report-seconds") {
            o.report_s = number(value(), 1, 3600);
        } else if (a == "--csv") {
            o.csv = value();
        } else if (a == "--console") {
            o.console_bin = value();
        } else if (a == "--database") {
            o.database = value();
        } else if (a == "--threads") {
            o.threads = number(value(), 8, 20000);
        } else if (a == "--stores") {
            o.stores.clear();
            std::string v = value(), item;
            for (size_t p = 0; p <= v.size(); ++p) {
                if (p == v.size() || v[p] == ',') {
                    if (item != "sqlite" && item != "pg1" && item != "pg2") {
                        std::fprintf(stderr,
                                     "segwire-bench console: --stores: \"%s\" is not one of "
                                     "sqlite|pg1|pg2\n",
                                     item.c_str());
                        std::exit(2);
                    }
                    o.stores.push_back(item);
                    item.clear();
                } else {
                    item += v[p];
                }
            }
        } else if (a == "--pg-bin") {
            o.pg_bin = value();
        } else {
            std::fprintf(
                stderr,
                "usage: segwire-bench console [--quick] [--enforcers N,N,...] [--writes N] "
                "[--report-seconds S] [--csv FILE] [--console BIN] [--database postgresql://…] "
                "[--threads N] [--stores sqlite,pg1,pg2] [--pg-bin DIR]\n");
            return 2;
        }
    }
    return segwire::bench::run_console_bench(o);
}

int main(int argc, char **argv) {
    std::string cmd = argc > 1 ? argv[1] : "";
    if (cmd == "--version") {
        std::printf("segwire-bench %s\n", segwire::version_line());
        return 0;
    }
    // namespaces, iperf3, nftables: tools/bench/system_bench.py
    if (cmd == "system") return exec_python_bench("system_bench.py", argc, argv);
    // memif links, segwire-linegen, dpdk-testpmd: tools/bench/line/line_bench.py
    if (cmd == "line") return exec_python_bench("line/line_bench.py", argc, argv);
    if (cmd == "console") return console_main(argc, argv);
    bool quick = false;
    std::string csv, svg;
    for (int i = 2; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--quick")
            quick = true;
        else if (a == "--csv" && i + 1 < argc)
            csv = argv[++i];
        else if (a == "--svg" && i + 1 < argc)
            svg = argv[++i];
        else {
            std::fprintf(stderr, "segwire-bench: unknown option %s\n", a.c_str());
            return 2;
        }
    }
    if (cmd != "pipeline") {
        std::fprintf(stderr,
                     "usage: segwire-bench pipeline [--quick] [--csv FILE] [--svg FILE] | system "
                     "[...] | line [...] | console [...] | --version\n");
        return 2;
    }
    return run_pipeline(quick, csv, svg);
}
