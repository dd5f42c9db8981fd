// The control thread's cost per exported flow counter record (docs/export.md "Numbers"): a JSON
// line (built and written to a file, rotated at 64 MiB), an IPFIX data record (encoded, sent in
// full messages over a real UDP socket to a local receiver that drains it), and both. The names are
// already resolved (that part is Enforcement::add_record's, the same as for a flow report).
//   build/tests/bench/export/bench_export [--benchmark_repetitions=3]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <benchmark/benchmark.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <cstdlib>
#include <string>
#include <thread>

#include "control/flowexport/exporter.hpp"

namespace segwire::control::flowexport {
namespace {

ExportRecord sample(uint32_t i) {
    ExportRecord x;
    FlowReport &r = x.report;
    r.action = "Accept";
    r.observed_action = "NotApplicable";
    r.source_type = "ProcessingUnit";
    r.source_id = "5f0c1a2b3c4d5e6f70819203";
    r.source_ip = "10.1.0.5";
    r.destination_type = "ProcessingUnit";
    r.destination_id = "5f0c1a2b3c4d5e6f70819204";
    r.destination_ip = "10.2.0.7";
    r.destination_port = 8080;
    r.protocol = 6;
    r.policy_id = "5f0c1a2b3c4d5e6f70819301";
    r.rule_name = "to-backend";
    r.mode = "v1";
    r.source_packets = 12 + i % 7;
    r.source_bytes = 1834 + i;
    r.destination_packets = 10;
    r.destination_bytes = 65000 + i;
    r.timestamp = 1'800'000'000 + i / 1000;
    x.source_port = static_cast<uint16_t>(30000 + i % 30000);
    inet_pton(AF_INET, "10.1.0.5", x.src);
    inet_pton(AF_INET, "10.2.0.7", x.dst);
    x.start_ms = 1'800'000'000'000ull + i;
    x.end_ms = x.start_ms + 250;
    x.end_reason = 3;
    x.end_reason_name = "end";
    return x;
}

// A UDP receiver on loopback that drains what the exporter sends (so the socket never fills).
struct Sink {
    int fd = -1;
    uint16_t port = 0;
    std::atomic<bool> stop{false};
    std::thread t;
    Sink() {
        fd = socket(AF_INET, SOCK_DGRAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a);
        socklen_t n = sizeof a;
        getsockname(fd, reinterpret_cast<sockaddr *>(&a), &n);
        port = ntohs(a.sin_port);
        int big = 8 << 20;
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
        timeval tv{0, 100000};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        t = std::thread([this] {
            char b[65536];
            while (!stop.load()) (void)!recv(fd, b, sizeof b, 0);
        });
    }
    ~Sink() {
        stop = true;
        t.join();
        close(fd);
    }
};

std::string temp_file() {
    char t[] = "/tmp/segwire-bench-export-XXXXXX";
    const int fd = mkstemp(t);
    close(fd);
    return t;
}

// One tick's worth of records, then the flush, as the control loop does every 50 ms.
void run(benchmark::State &state, bool jsonl, bool ipfix) {
    spdlog::set_level(spdlog::level::warn);
    Sink sink;
    const std::string path = temp_file();
    config::FlowExportConfig c;
    if (jsonl) c.jsonl.path = path;
    if (ipfix) {
        c.ipfix.host = "127.0.0.1";
        c.ipfix.port = sink.port;
        c.ipfix.collector = "127.0.0.1:" + std::to_string(sink.port);
    }
    constexpr uint32_t kPerTick = 1024;
    std::vector<ExportRecord> recs;
    for (uint32_t i = 0; i < kPerTick; ++i) recs.push_back(sample(i));
    {
        FlowExporter x(c, "enf-bench");
        uint32_t now = 1'800'000'000;
        for (auto _ : state) {
            for (const ExportRecord &r : recs) x.add(r);
            x.flush(now);
        }
        const ExportCounts n = x.counts();
        state.counters["lost"] = static_cast<double>(n.ipfix_records_lost + n.jsonl_lines_lost);
    }
    state.SetItemsProcessed(state.iterations() * kPerTick);
    unlink(path.c_str());
    for (int k = 1; k <= 5; ++k) unlink((path + "." + std::to_string(k)).c_str());
}

void BM_ExportJsonl(benchmark::State &s) {
    run(s, true, false);
}
void BM_ExportIpfix(benchmark::State &s) {
    run(s, false, true);
}
void BM_ExportBoth(benchmark::State &s) {
    run(s, true, true);
}
BENCHMARK(BM_ExportJsonl)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_ExportIpfix)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_ExportBoth)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace segwire::control::flowexport

BENCHMARK_MAIN();
