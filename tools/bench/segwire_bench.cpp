// segwire-bench: throughput of segwire's own worker pipeline, each figure next to a null pipeline
// (same mbuf generation, rx -> tx, no processing) measured in the same run, so ratios hold on a
// noisy shared machine. In-process: mbufs are generated and handed to Worker::handle_burst, the
// packets it forwards are collected with take_tx and freed, as a port pair would.
//
//   segwire-bench pipeline [--quick] [--csv FILE] [--svg FILE]
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_mbuf.h>

#include "dataplane/worker/worker.hpp"

using namespace segwire;

namespace {

constexpr uint16_t kBurst = 32;

struct Row {
    std::string name;
    uint64_t flows;
    double mpps, cycles_per_pkt, null_mpps, null_cycles_per_pkt;
    double ratio() const { return mpps / null_mpps; }
};

// A 64-byte TCP ACK of flow `i` (10.x.y.z:port -> 10.200.0.1:80), Ethernet padding included.
void write_frame(uint8_t *f, uint32_t i) {
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

bool make_burst(rte_mempool *pool, rte_mbuf **m, uint32_t first, uint32_t flows) {
    if (rte_pktmbuf_alloc_bulk(pool, m, kBurst) != 0) return false;
    for (uint16_t i = 0; i < kBurst; ++i) {
        uint8_t *f = reinterpret_cast<uint8_t *>(rte_pktmbuf_append(m[i], 64));
        write_frame(f, (first + i) % flows);
        m[i]->port = 0;  // arrives on the inside port
    }
    return true;
}

struct Measure {
    uint64_t pkts = 0, cycles = 0;
};

// Runs `bursts` bursts over `flows` flows; with `worker` null it is the null pipeline.
Measure run(rte_mempool *pool, dp::Worker *worker, uint32_t flows, uint64_t bursts) {
    rte_mbuf *m[kBurst], *out[4 * dp::kMaxBurst];
    Measure r;
    uint32_t next = 0;
    const uint64_t t0 = rte_rdtsc();
    for (uint64_t b = 0; b < bursts; ++b) {
        if (!make_burst(pool, m, next, flows)) break;
        next = (next + kBurst) % flows;
        if (worker) {
            worker->handle_burst(m, kBurst, rte_rdtsc());
            for (uint8_t side = 0; side < 2; ++side) {
                uint16_t n = worker->take_tx(side, out);
                r.pkts += n;
                rte_pktmbuf_free_bulk(out, n);
            }
        } else {
            r.pkts += kBurst;
            rte_pktmbuf_free_bulk(m, kBurst);
        }
    }
    r.cycles = rte_rdtsc() - t0;
    return r;
}

void write_svg(const std::string &path, const std::vector<Row> &rows) {
    std::ofstream o(path);
    const int bar = 26, w = 760, h = 60 + bar * static_cast<int>(rows.size());
    o << "<svg xmlns='http://www.w3.org/2000/svg' width='" << w << "' height='" << h
      << "' font-family='sans-serif' font-size='13'>\n<text x='10' y='20'>segwire-bench pipeline: "
         "Mpps relative to the null pipeline (same run)</text>\n";
    for (size_t i = 0; i < rows.size(); ++i) {
        const int y = 40 + bar * static_cast<int>(i);
        const double r = std::min(rows[i].ratio(), 1.0);
        o << "<text x='10' y='" << y + 16 << "'>" << rows[i].name << "</text>"
          << "<rect x='230' y='" << y + 4 << "' width='" << static_cast<int>(400 * r)
          << "' height='16' fill='#3b7dd8'/><text x='" << 236 + static_cast<int>(400 * r) << "' y='"
          << y + 16 << "'>" << rows[i].ratio() << "x</text>\n";
    }
    o << "</svg>\n";
}

}  // namespace

int main(int argc, char **argv) {
    std::string cmd = argc > 1 ? argv[1] : "";
    if (cmd == "system") {  // namespaces, iperf3, nftables: tools/bench/system_bench.py
        std::string script = SEGWIRE_SOURCE_ROOT "/tools/bench/system_bench.py";
        setenv("SEGWIRE_BUILD", SEGWIRE_BUILD_ROOT, 0);  // an SEGWIRE_BUILD already set wins
        std::vector<char *> args = {const_cast<char *>("/usr/bin/python3"), script.data()};
        for (int i = 2; i < argc; ++i) args.push_back(argv[i]);
        args.push_back(nullptr);
        execv(args[0], args.data());
        std::perror("segwire-bench: /usr/bin/python3");
        return 1;
    }
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
        std::fprintf(stderr, "usage: segwire-bench pipeline [--quick] [--csv FILE] [--svg FILE]\n");
        return 2;
    }
    std::string prefix = "segwire-bench-" + std::to_string(getpid());
    std::vector<std::string> eal = {"segwire-bench",
                                    "--no-huge",
                                    "--no-shconf",
                                    "--no-pci",
                                    "-l",
                                    "0",
                                    "-m",
                                    quick ? "512" : "1536",
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
        rte_pktmbuf_pool_create("bench", 8191, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE, 0);
    if (!pool) {
        std::fprintf(stderr, "segwire-bench: cannot create the mbuf pool\n");
        return 1;
    }
    const double hz = static_cast<double>(rte_get_tsc_hz());
    const std::vector<uint32_t> sizes =
        quick ? std::vector<uint32_t>{1000, 10000} : std::vector<uint32_t>{1000, 100000, 1000000};
    const uint64_t bursts = quick ? 20000 : 400000;
    std::vector<Row> rows;
    std::printf("%-34s %10s %10s %12s %12s %8s\n", "pipeline (64 B TCP, 1 core)", "flows", "Mpps",
                "cycles/pkt", "null Mpps", "ratio");
    for (uint32_t flows : sizes) {
        std::fprintf(stderr, "  established forwarding, %u flows ...\n", flows);
        auto w = std::make_unique<dp::Worker>();
        dp::WorkerSetup s;
        s.port_id[0] = 0;
        s.port_id[1] = 1;
        s.flow_capacity = flows + flows / 4 + 64;
        for (auto &t : s.timeouts_s) t = 3600;
        std::string err;
        if (!w->init(s, err)) {
            std::fprintf(stderr, "segwire-bench: %s\n", err.c_str());
            return 1;
        }
        run(pool, w.get(), flows, (flows + kBurst - 1) / kBurst);  // create every flow first
        Measure nul = run(pool, nullptr, flows, bursts);
        Measure seg = run(pool, w.get(), flows, bursts);
        Measure nul2 = run(pool, nullptr, flows, bursts);  // before and after: drift shows up
        nul.cycles = (nul.cycles + nul2.cycles) / 2;
        Row r{"established forwarding",           flows,
              seg.pkts / (seg.cycles / hz) / 1e6, double(seg.cycles) / double(seg.pkts),
              nul.pkts / (nul.cycles / hz) / 1e6, double(nul.cycles) / double(nul.pkts)};
        rows.push_back(r);
        std::printf("%-34s %10u %10.2f %12.1f %12.2f %7.2fx\n", r.name.c_str(), flows, r.mpps,
                    r.cycles_per_pkt, r.null_mpps, r.ratio());
        std::printf("%-34s %10s %10s %12.1f\n", "  of which segwire's own work", "", "",
                    r.cycles_per_pkt - r.null_cycles_per_pkt);
    }
    if (!csv.empty()) {
        std::ofstream o(csv);
        o << "benchmark,flows,mpps,cycles_per_packet,null_mpps,null_cycles_per_packet,ratio\n";
        for (auto &r : rows)
            o << r.name << "," << r.flows << "," << r.mpps << "," << r.cycles_per_pkt << ","
              << r.null_mpps << "," << r.null_cycles_per_pkt << "," << r.ratio() << "\n";
    }
    if (!svg.empty()) {
        for (auto &r : rows) r.name += " " + std::to_string(r.flows);
        write_svg(svg, rows);
    }
    rte_eal_cleanup();
    return rows.empty() ? 1 : 0;
}
