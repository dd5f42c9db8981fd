// segwire-bench pipeline, part "capture" (docs/capture.md): what packet capture costs a worker.
// Established forwarding through one Worker (1 000 flows, 64-byte frames) with the capture tap's
// calls placed as Worker::run places them (loop, rx, tx), each variant against the same worker
// without them in the same round: the tap disarmed (capture off), armed for every packet (rx and
// tx copied: two copies per packet), and armed with a flow filter that matches none of them (every
// packet parsed twice, nothing copied). The armed rows leave out the time spent emptying the
// ring, which is the capture thread's work on another core; the writer's own rate is its row.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <rte_cycles.h>
#include <rte_mbuf.h>
#include <rte_pcapng.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>

#include "control/capture.hpp"
#include "dataplane/worker/capture_tap.hpp"
#include "dataplane/worker/worker.hpp"
#include "tools/bench/bench_common.hpp"

namespace segwire::bench {
namespace {

constexpr uint32_t kFlows = 1000;

enum class Tap { kNone, kOff, kAll, kFiltered };

struct CaptureBed {
    dp::CaptureSlot slot;
    dp::CaptureTap tap;
    rte_ring *ring = nullptr;
    rte_mempool *pool = nullptr;
    uint32_t gen = 0;
};

// Empties the ring as the capture thread would (without writing): the copies go back to the pool.
void empty_ring(rte_ring *ring) {
    dp::CaptureRecord recs[256];
    while (unsigned n =
               rte_ring_sc_dequeue_burst_elem(ring, recs, sizeof(dp::CaptureRecord), 256, nullptr))
        for (unsigned i = 0; i < n; ++i) rte_pktmbuf_free(recs[i].m);
}

Measure run_with(rte_mempool *pool, dp::Worker *w, CaptureBed &cb, Tap mode, uint64_t bursts) {
    rte_mbuf *m[kBurst], *out[4 * dp::kMaxBurst];
    Measure r;
    uint32_t next = 0;
    uint64_t aside = 0;  // TSC cycles spent emptying the ring: not the worker's
    if (mode == Tap::kAll || mode == Tap::kFiltered) {
        cb.slot.filter = {};
        if (mode == Tap::kFiltered)
            control::parse_flow_filter("tcp 192.0.2.1:1 192.0.2.2:2", cb.slot.filter);
        cb.slot.ring = cb.ring;
        cb.slot.pool = cb.pool;
        cb.slot.armed.store(++cb.gen);
    } else {
        cb.slot.armed.store(0);
    }
    cb.tap.loop();
    const uint64_t t0 = cpu_cycles();
    for (uint64_t b = 0; b < bursts; ++b) {
        const bool tap = mode != Tap::kNone;
        if (tap) cb.tap.loop();
        if (!make_burst(pool, m, next, kFlows)) break;
        next = (next + kBurst) % kFlows;
        if (tap) cb.tap.rx(m, kBurst, dp::kInside);
        w->handle_burst(m, kBurst, rte_rdtsc());
        for (uint8_t side = 0; side < 2; ++side) {
            const uint16_t n = w->take_tx(side, out);
            if (tap) cb.tap.tx(out, n, side);
            r.pkts += n;
            rte_pktmbuf_free_bulk(out, n);
        }
        if (mode == Tap::kAll && (b & 7) == 7) {  // 8 bursts: 512 records of the ring's 1023
            const uint64_t d0 = rte_rdtsc();
            cb.tap.loop();
            empty_ring(cb.ring);
            aside += rte_rdtsc() - d0;
        }
    }
    r.cycles = cpu_cycles() - t0 - std::min(aside, cpu_cycles() - t0);
    cb.slot.armed.store(0);
    cb.tap.loop();
    empty_ring(cb.ring);
    return r;
}

// rte_pcapng_copy + finish_epb + rte_pcapng_write_packets for 64-byte frames into a file in /tmp:
// the capture thread's work per packet (packets per second of one control core).
Measure writer(rte_mempool *pool, uint64_t bursts, std::string &err) {
    Measure r;
    const std::string path = "/tmp/segwire-bench-capture-" + std::to_string(getpid()) + ".pcapng";
    unlink(path.c_str());
    const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    rte_pcapng_t *out =
        fd >= 0 ? rte_pcapng_fdopen(fd, nullptr, nullptr, "segwire-bench", nullptr) : nullptr;
    rte_mempool *fmt =
        rte_pktmbuf_pool_create("bench_cap_fmt", 511, 0, 0, RTE_PKTMBUF_HEADROOM + 2048 + 256, 0);
    if (!out || !fmt) {
        err = "cannot open " + path + " or create the writer's pool";
        if (fd >= 0 && !out) close(fd);
        rte_pcapng_close(out);
        rte_mempool_free(fmt);
        unlink(path.c_str());
        return r;
    }
    rte_mbuf *m[kBurst], *blocks[kBurst];
    uint32_t next = 0;
    const uint64_t t0 = cpu_cycles();
    for (uint64_t b = 0; b < bursts; ++b) {
        if (!make_burst(pool, m, next, kFlows)) break;
        next = (next + kBurst) % kFlows;
        uint16_t n = 0;
        for (uint16_t i = 0; i < kBurst; ++i) {
            rte_mbuf *c = rte_pcapng_copy(0, 0, m[i], fmt, UINT32_MAX, rte_get_tsc_cycles(),
                                          RTE_PCAPNG_DIRECTION_IN);
            if (c && control::finish_epb(c, 0, m[i]->pkt_len,
                                         (i & 7) ? "" : "segwire drop: policy-reject"))
                blocks[n++] = c;
            else if (c)
                rte_pktmbuf_free(c);
        }
        rte_pcapng_write_packets(out, blocks, n);
        rte_pktmbuf_free_bulk(blocks, n);
        rte_pktmbuf_free_bulk(m, kBurst);
        r.pkts += n;
    }
    r.cycles = cpu_cycles() - t0;
    rte_pcapng_close(out);
    rte_mempool_free(fmt);
    unlink(path.c_str());
    return r;
}

// The disarmed tap's calls alone, as a worker makes them per loop with one rx burst and two tx
// bursts: what capture off adds, below what the forwarding rows can resolve on a shared machine.
std::string disarmed_calls(CaptureBed &cb) {
    cb.slot.armed.store(0);
    cb.tap.loop();
    rte_mbuf *none[kBurst] = {};
    constexpr uint64_t kLoops = 10'000'000;
    uint64_t best = UINT64_MAX;
    for (int round = 0; round < 5; ++round) {
        const uint64_t t0 = rte_rdtsc();
        for (uint64_t i = 0; i < kLoops; ++i) {
            cb.tap.loop();
            cb.tap.rx(none, kBurst, dp::kInside);
            cb.tap.tx(none, kBurst, dp::kInside);
            cb.tap.tx(none, kBurst, dp::kOutside);
            asm volatile("" ::: "memory");  // one loop per iteration, as in Worker::run
        }
        best = std::min(best, rte_rdtsc() - t0);
    }
    char out[120];
    std::snprintf(out, sizeof out,
                  "the disarmed tap's calls alone: %.2f cycles per loop (%.3f per packet of a "
                  "32-packet burst)",
                  double(best) / kLoops, double(best) / kLoops / kBurst);
    return out;
}

}  // namespace

bool capture_rows(rte_mempool *pool, const Options &o, std::vector<Row> &rows) {
    const double hz = tsc_hz();
    const uint64_t bursts = o.quick ? 20000 : 200000;
    std::fprintf(stderr, "  capture: established forwarding with the capture tap ...\n");
    auto w = std::make_unique<dp::Worker>();
    dp::WorkerSetup s;
    s.port_id[0] = 0;
    s.port_id[1] = 1;
    s.flow_capacity = kFlows * 2;
    for (auto &t : s.timeouts_s) t = 3600;
    std::string err;
    if (!w->init(s, err)) {
        std::fprintf(stderr, "segwire-bench: %s\n", err.c_str());
        return false;
    }
    CaptureBed cb;
    const uint16_t ports[2] = {0, 1};
    cb.tap.init(0, ports, &cb.slot);
    cb.ring = rte_ring_create_elem("bench_cap_ring", sizeof(dp::CaptureRecord), 1024, 0,
                                   RING_F_SP_ENQ | RING_F_SC_DEQ);
    cb.pool = rte_pktmbuf_pool_create("bench_cap_pool", 2047, 32, 0, RTE_MBUF_DEFAULT_BUF_SIZE, 0);
    if (!cb.ring || !cb.pool) {
        std::fprintf(stderr, "segwire-bench: cannot create the capture ring or pool\n");
        return false;
    }
    run_with(pool, w.get(), cb, Tap::kNone, (kFlows + kBurst - 1) / kBurst);  // every flow first

    // Best of five rounds (one with --quick), each variant next to the same loop without the tap
    // and the null pipeline in the same round, in alternating order: the machine is shared, and
    // the capture-off difference is far below the noise of one round.
    const Tap modes[] = {Tap::kOff, Tap::kAll, Tap::kFiltered};
    const char *names[] = {"established, capture off (tap disarmed)",
                           "established, capture on, every packet",
                           "established, capture on, filter matches none"};
    for (int v = 0; v < 3; ++v) {
        // With capture off, the same worker without the tap runs twice per round: the difference
        // between those two (an A/A comparison) is the noise the off row must be read against.
        Measure nul, base, tap, again;
        for (int round = 0; round < (o.quick ? 1 : 5); ++round) {
            const Measure n1 = run_null(pool, kFlows, bursts);
            Measure b1, t1, a1;
            if (round & 1) {
                t1 = run_with(pool, w.get(), cb, modes[v], bursts);
                b1 = run_with(pool, w.get(), cb, Tap::kNone, bursts);
            } else {
                b1 = run_with(pool, w.get(), cb, Tap::kNone, bursts);
                t1 = run_with(pool, w.get(), cb, modes[v], bursts);
            }
            if (modes[v] == Tap::kOff) a1 = run_with(pool, w.get(), cb, Tap::kNone, bursts);
            if (round == 0 || n1.cycles < nul.cycles) nul = n1;
            if (round == 0 || b1.cycles < base.cycles) base = b1;
            if (round == 0 || t1.cycles < tap.cycles) tap = t1;
            if (round == 0 || a1.cycles * again.pkts < again.cycles * a1.pkts) again = a1;
        }
        Row r;
        r.name = names[v];
        r.param = std::to_string(kFlows);
        r.cycles = double(tap.cycles) / double(tap.pkts);
        r.rate = hz / r.cycles;
        r.null_cycles = double(nul.cycles) / double(nul.pkts);
        r.null_rate = hz / r.null_cycles;
        const double without = double(base.cycles) / double(base.pkts);
        char note[160];
        std::snprintf(note, sizeof note,
                      "capture's cost: %+.1f cycles/pkt against the same worker without the tap "
                      "(%.1f cycles/pkt) in the same rounds",
                      r.cycles - without, without);
        r.note = note;
        if (modes[v] == Tap::kOff) {
            std::snprintf(
                note, sizeof note,
                "; the same worker without the tap, run again: %+.1f cycles/pkt (noise); ",
                double(again.cycles) / double(again.pkts) - without);
            r.note += note + disarmed_calls(cb);
        }
        rows.push_back(r);
        print_row(r);
    }
    rte_ring_free(cb.ring);
    rte_mempool_free(cb.pool);

    std::fprintf(stderr, "  capture: the writer ...\n");
    Measure best;
    for (int round = 0; round < (o.quick ? 1 : 3); ++round) {
        const Measure m = writer(pool, bursts / 4, err);
        if (!m.pkts) {
            std::fprintf(stderr, "segwire-bench: %s\n", err.c_str());
            return false;
        }
        if (round == 0 || m.cycles * best.pkts < best.cycles * m.pkts) best = m;
    }
    Row wr;
    wr.name = "capture writer (format + write, 64 B)";
    wr.param = "1 core";
    wr.cycles = double(best.cycles) / double(best.pkts);
    wr.rate = hz / wr.cycles;
    wr.note =
        "rte_pcapng_copy + finish_epb (1 in 8 with a drop comment) + "
        "rte_pcapng_write_packets to a file in /tmp";
    rows.push_back(wr);
    print_row(wr);
    return true;
}

}  // namespace segwire::bench
