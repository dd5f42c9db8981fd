#include "control/capture.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstring>
#include <ctime>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_pcapng.h>
#include <rte_pdump.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>
#include <rte_telemetry.h>
#include <rte_version.h>
#include <spdlog/spdlog.h>

#include "control/app.hpp"
#include "version.hpp"

namespace segwire::control {
namespace {

using dp::CaptureDir;
using dp::CaptureFilter;
using dp::CaptureRecord;
using dp::DropReason;

[[noreturn]] void bad(std::string_view field, const std::string &what) {
    throw std::invalid_argument(std::string(field) + ": " + what);
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

uint64_t parse_uint(std::string_view field, std::string_view v, uint64_t max) {
    uint64_t out = 0;
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
    if (v.empty() || ec != std::errc() || p != v.data() + v.size())
        bad(field, "'" + std::string(v) + "' is not a whole number");
    if (out > max) bad(field, std::string(v) + " is more than " + std::to_string(max));
    return out;
}

double parse_seconds(std::string_view field, std::string_view v) {
    const std::string s(v);
    char *end = nullptr;
    const double d = s.empty() ? NAN : std::strtod(s.c_str(), &end);
    if (s.empty() || *end || !std::isfinite(d) || d < 0)
        bad(field, "'" + s + "' is not a number of seconds");
    if (d > 7 * 86400.0) bad(field, s + " seconds is more than a week");
    return d;
}

// An address into an endpoint; false when `s` is neither an IPv4 nor an IPv6 address.
bool parse_addr(std::string_view s, CaptureFilter::Endpoint &e) {
    const std::string a(s);
    e.addr = {};
    if (inet_pton(AF_INET, a.c_str(), e.addr.b) == 1) {
        e.family = 4;
        return true;
    }
    if (inet_pton(AF_INET6, a.c_str(), e.addr.b) == 1) {
        e.family = 6;
        return true;
    }
    return false;
}

void parse_end(std::string_view tok, CaptureFilter::Endpoint &e) {
    const std::string t(tok);
    auto port = [&](std::string_view p) {
        if (p.empty()) bad("flow", "'" + t + "': no port after ':'");
        e.port = static_cast<uint16_t>(parse_uint("flow", p, 65535));
        if (e.port == 0) bad("flow", "'" + t + "': port 0 matches nothing");
    };
    std::string_view host = tok;
    if (tok.front() == '[') {  // [IPV6] or [IPV6]:PORT
        const size_t close = tok.find(']');
        if (close == std::string_view::npos) bad("flow", "'" + t + "': no closing ']'");
        host = tok.substr(1, close - 1);
        std::string_view rest = tok.substr(close + 1);
        if (!rest.empty()) {
            if (rest.front() != ':') bad("flow", "'" + t + "': expected ':PORT' after ']'");
            port(rest.substr(1));
        }
        if (!parse_addr(host, e) || e.family != 6)
            bad("flow", "'" + t + "': not an IPv6 address in brackets");
        return;
    }
    const size_t colons = static_cast<size_t>(std::count(tok.begin(), tok.end(), ':'));
    if (colons == 1) {  // ADDR:PORT or *:PORT
        const size_t c = tok.find(':');
        host = tok.substr(0, c);
        port(tok.substr(c + 1));
    }
    // More than one ':' is an IPv6 address without a port.
    if (host == "*") return;
    if (!parse_addr(host, e))
        bad("flow", "'" + t + "' is not ADDR, ADDR:PORT, [IPV6]:PORT, *:PORT or *");
}

bool parse_proto(std::string_view tok, uint8_t &proto) {
    static constexpr std::pair<std::string_view, uint8_t> kNames[] = {
        {"tcp", dp::kProtoTcp},
        {"udp", dp::kProtoUdp},
        {"icmp", dp::kProtoIcmp},
        {"icmp6", dp::kProtoIcmp6},
        {"ipv6-icmp", dp::kProtoIcmp6}};
    for (const auto &[name, value] : kNames)
        if (tok == name) {
            proto = value;
            return true;
        }
    // An endpoint is never all digits (an address has dots or colons).
    if (tok.find_first_not_of("0123456789") != std::string_view::npos) return false;
    const uint64_t n = parse_uint("flow", tok, 255);
    if (n == 0) bad("flow", "protocol 0: use 1..255 or a name (tcp, udp, icmp, icmp6)");
    proto = static_cast<uint8_t>(n);
    return true;
}

// The worker's timestamp (TSC) in ns since the epoch, from a (TSC, wall clock) pair taken at the
// start of the capture. Signed: records from several workers reach the writer slightly out of
// order, and a record may predate the pair.
uint64_t tsc_to_ns(uint64_t tsc, uint64_t tsc0, int64_t ns0, uint64_t hz) {
    const __int128 d = static_cast<int64_t>(tsc - tsc0);
    return static_cast<uint64_t>(ns0 + static_cast<int64_t>(d * 1'000'000'000 / hz));
}

int64_t now_ns() {
    timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return int64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

using Clock = std::chrono::steady_clock;

constexpr uint32_t kRingSize = 1024;    // records per worker between two drains
constexpr uint32_t kWorkerPool = 4095;  // copies per worker in flight (ring, stage, writer's hold)
constexpr uint32_t kFormatPool = 511;   // rte_pcapng_copy's blocks on the writer's side
constexpr uint16_t kWriteBatch = 64;    // blocks per rte_pcapng_write_packets
constexpr unsigned kDrainBurst = 256;   // records taken from one ring per round
// With several workers, records wait this long to be written in time order (5 ms of records must
// fit a worker's pool: 4095 copies hold ~800 k per second and worker).
constexpr uint64_t kReorderHoldMs = 5;
// The writer's blocks hold a whole default-sized mbuf's frame plus the EPB header (headroom), its
// options and our comment (tailroom).
constexpr uint16_t kFormatRoom = RTE_PKTMBUF_HEADROOM + RTE_MBUF_DEFAULT_DATAROOM + 256;
constexpr auto kAnswerWait = std::chrono::seconds(2);  // workers answer within a loop

}  // namespace

// ---- parsing ---------------------------------------------------------------------------------

void parse_flow_filter(std::string_view text, CaptureFilter &f) {
    f.proto = 0;
    f.ends[0] = f.ends[1] = {};
    std::vector<std::string_view> toks;
    for (size_t i = 0; i < text.size();) {
        while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) ++i;
        size_t j = i;
        while (j < text.size() && text[j] != ' ' && text[j] != '\t') ++j;
        if (j > i) toks.push_back(text.substr(i, j - i));
        i = j;
    }
    f.flow = !toks.empty();
    if (toks.empty()) return;
    size_t k = 0;
    if (parse_proto(toks[0], f.proto)) ++k;
    if (toks.size() - k > 2)
        bad("flow", "'" + std::string(text) + "': at most a protocol and two endpoints");
    for (size_t e = 0; k < toks.size(); ++k, ++e) parse_end(toks[k], f.ends[e]);
    if (f.ends[0].family && f.ends[1].family && f.ends[0].family != f.ends[1].family)
        bad("flow", "'" + std::string(text) + "': one IPv4 and one IPv6 address match nothing");
}

CaptureRequest parse_capture_request(std::string_view params) {
    CaptureRequest r;
    bool seen[7] = {};
    static constexpr std::string_view kKeys[] = {"file",     "port",    "flow", "count",
                                                 "duration", "snaplen", "lease"};
    while (!params.empty()) {
        const size_t semi = params.find(';');
        std::string_view item = trim(params.substr(0, semi));
        params = semi == std::string_view::npos ? std::string_view() : params.substr(semi + 1);
        if (item.empty()) continue;
        const size_t eq = item.find('=');
        const std::string_view key = trim(item.substr(0, eq));
        const std::string_view val = eq == std::string_view::npos ? "" : trim(item.substr(eq + 1));
        const auto *it = std::find(std::begin(kKeys), std::end(kKeys), key);
        if (it == std::end(kKeys))
            bad(key, "unknown field (file, port, flow, count, duration, snaplen, lease)");
        bool &once = seen[it - std::begin(kKeys)];
        if (once) bad(key, "given twice");
        once = true;
        if (eq == std::string_view::npos) bad(key, "expected " + std::string(key) + "=VALUE");
        if (key == "file") {
            if (val.empty() || val.front() != '/') bad("file", "must be an absolute path");
            for (char c : val)
                if (static_cast<unsigned char>(c) < 0x20) bad("file", "control character");
            r.file = val;
        } else if (key == "port") {
            if (val == "inside")
                r.filter.sides = 1u << dp::kInside;
            else if (val == "outside")
                r.filter.sides = 1u << dp::kOutside;
            else if (val == "both")
                r.filter.sides = (1u << dp::kInside) | (1u << dp::kOutside);
            else
                bad("port", "'" + std::string(val) + "': expected inside, outside or both");
            r.port = val;
        } else if (key == "flow") {
            parse_flow_filter(val, r.filter);
            r.flow = val;
        } else if (key == "count") {
            r.count = parse_uint("count", val, UINT32_MAX);
        } else if (key == "duration") {
            r.duration_s = parse_seconds("duration", val);
        } else if (key == "snaplen") {
            r.snaplen = static_cast<uint32_t>(parse_uint("snaplen", val, 65535));
            if (r.snaplen && r.snaplen < 14)
                bad("snaplen", std::to_string(r.snaplen) + " is shorter than an Ethernet header");
        } else {
            r.lease_s = parse_seconds("lease", val);
        }
    }
    if (r.file.empty()) bad("file", "missing");
    if (!r.count && r.duration_s == 0 && r.lease_s == 0)
        bad("count", "a capture needs count, duration or lease to end");
    return r;
}

// ---- pcapng ------------------------------------------------------------------------------------

namespace {
// The Enhanced Packet Block's fixed part (pcapng spec, "Enhanced Packet Block"); DPDK keeps its
// own definition in a header it does not install.
struct Epb {
    uint32_t block_type;  // 6
    uint32_t block_length;
    uint32_t interface_id;
    uint32_t timestamp_hi, timestamp_lo;
    uint32_t capture_length, original_length;
};
constexpr uint32_t kEpbType = 6;
constexpr uint16_t kOptEndOfOpt = 0, kOptComment = 1;
}  // namespace

bool finish_epb(rte_mbuf *m, uint64_t ns, uint32_t orig_len, std::string_view comment) {
    if (rte_pktmbuf_data_len(m) < sizeof(Epb) || comment.size() > 0xffff) return false;
    Epb *e = rte_pktmbuf_mtod(m, Epb *);
    if (e->block_type != kEpbType || e->block_length != rte_pktmbuf_pkt_len(m)) return false;
    // The block ends with its length; the options before it are 22.11's epb_flags and epb_queue
    // (and epb_hash for RSS), without opt_endofopt. Cut the length, append, write it again.
    if (rte_pktmbuf_trim(m, sizeof(uint32_t)) != 0) return false;
    const uint32_t pad = static_cast<uint32_t>((4 - comment.size() % 4) % 4);
    const uint32_t copt = comment.empty() ? 0 : 4 + static_cast<uint32_t>(comment.size()) + pad;
    uint8_t *p = reinterpret_cast<uint8_t *>(rte_pktmbuf_append(m, copt + 4 + 4));
    if (!p) {
        rte_pktmbuf_append(m, sizeof(uint32_t));  // the length's room, which the trim freed
        return false;
    }
    auto put16 = [](uint8_t *at, uint16_t v) { std::memcpy(at, &v, 2); };  // section byte order
    if (copt) {
        put16(p, kOptComment);
        put16(p + 2, static_cast<uint16_t>(comment.size()));
        std::memcpy(p + 4, comment.data(), comment.size());
        std::memset(p + 4 + comment.size(), 0, pad);
        p += copt;
    }
    put16(p, kOptEndOfOpt);
    put16(p + 2, 0);
    const uint32_t total = rte_pktmbuf_pkt_len(m);
    std::memcpy(p + 4, &total, sizeof total);
    e->block_length = total;
    e->timestamp_hi = static_cast<uint32_t>(ns >> 32);
    e->timestamp_lo = static_cast<uint32_t>(ns);
    e->original_length = orig_len;
    return true;
}

// ---- dpdk-dumpcap -------------------------------------------------------------------------------

namespace {
bool g_pdump = false;
int ipc_probe(const rte_mp_msg *, const void *) {
    return 0;
}
}  // namespace

std::string enable_dumpcap(bool hugepages) {
    // A secondary process maps the primary's memory through hugepage files: with --no-huge there
    // is nothing it can map.
    if (!hugepages)
        return "off: no hugepages (eal.test_mode): dpdk-dumpcap, a secondary process, cannot "
               "attach to --no-huge memory";
    // --no-shconf / --in-memory turn multi-process IPC off; rte_pdump_init would still succeed.
    if (rte_mp_action_register("segwire_ipc_probe", ipc_probe) != 0)
        return "off: multi-process IPC is off (--no-shconf or --in-memory): dpdk-dumpcap "
               "cannot reach this process; use segwirectl capture";
    rte_mp_action_unregister("segwire_ipc_probe");
    if (rte_pdump_init() != 0)
        return std::string("off: rte_pdump_init: ") + rte_strerror(rte_errno);
    g_pdump = true;
    return "ready";
}

void disable_dumpcap() {
    if (g_pdump) rte_pdump_uninit();
    g_pdump = false;
}

// ---- the service --------------------------------------------------------------------------------

namespace {

// A record taken from worker `worker`'s ring, waiting to be written; m is null once freed.
struct Taken {
    CaptureRecord rec;
    uint32_t worker;
};

// One capture: its request, its file, and what became of it. Counters are atomics (the capture
// thread writes them, telemetry threads read them); the strings are under Impl::mu.
struct Run {
    uint64_t id = 0;
    CaptureRequest req;
    rte_pcapng_t *out = nullptr;
    uint64_t tsc0 = 0, hz = 1;
    int64_t ns0 = 0;
    uint64_t rx0[2] = {0, 0};
    Clock::time_point started, deadline;
    std::vector<Taken> pending;  // the capture thread's: taken, not yet old enough to write
    std::atomic<bool> stop{false};
    std::atomic<int64_t> last_poll_ms{0};
    std::atomic<uint64_t> written{0}, bytes{0};
    std::atomic<uint64_t> by_dir[3] = {};  // drop, in, out (CaptureDir)
    std::atomic<uint64_t> fmt_lost[2] = {};
    std::array<std::atomic<uint64_t>, dp::kDropReasonCount> drops{};
    // Final figures, set when the capture has ended.
    uint64_t matched[2] = {0, 0}, lost[2] = {0, 0};
    double elapsed_s = 0;
    // Under Impl::mu.
    std::string state = "running", ended, error;
};

int64_t steady_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch())
        .count();
}

}  // namespace

struct Capture::Impl {
    App &app;
    std::mutex mu;  // telemetry threads and the capture thread
    std::vector<rte_ring *> rings;
    std::vector<rte_mempool *> pools;
    rte_mempool *fmt_pool = nullptr;
    uint32_t generation = 0;
    uint64_t next_id = 1;
    std::shared_ptr<Run> run;  // the current or the last capture
    pthread_t thread{};
    bool thread_live = false;
    std::atomic<bool> workers_gone{false};

    explicit Impl(App &a) : app(a) {}

    uint32_t nworkers() const { return app.workers.size(); }
    uint8_t side_of_port(uint16_t port) const {
        return port == app.ports[dp::kInside].port_id ? dp::kInside : dp::kOutside;
    }

    void make_resources();
    void discard_rings();
    void start(const CaptureRequest &req);
    void loop(Run &r);
    size_t drain(Run &r, bool all);
    void write_batch(Run &r, rte_mbuf **batch, uint16_t &n);
    void finish(Run &r, const std::string &ended);
    void status(rte_tel_data *d);
};

void Capture::Impl::make_resources() {
    if (!rings.empty()) return;
    std::vector<rte_ring *> rs;
    std::vector<rte_mempool *> ps;
    rte_mempool *fp = nullptr;
    auto undo = [&](const std::string &what) {
        const std::string why = rte_strerror(rte_errno);
        for (rte_ring *r : rs) rte_ring_free(r);
        for (rte_mempool *p : ps) rte_mempool_free(p);
        rte_mempool_free(fp);
        throw std::runtime_error("capture: cannot create " + what + ": " + why);
    };
    for (uint32_t w = 0; w < nworkers(); ++w) {
        const std::string rn = "sw_cap_ring_" + std::to_string(w);
        rte_ring *r = rte_ring_create_elem(rn.c_str(), sizeof(CaptureRecord), kRingSize,
                                           SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
        if (!r) undo(rn);
        rs.push_back(r);
        const std::string pn = "sw_cap_pool_" + std::to_string(w);
        rte_mempool *p = rte_pktmbuf_pool_create(pn.c_str(), kWorkerPool, 32, 0,
                                                 RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
        if (!p) undo(pn);
        ps.push_back(p);
    }
    fp = rte_pktmbuf_pool_create("sw_cap_fmt", kFormatPool, 0, 0, kFormatRoom, SOCKET_ID_ANY);
    if (!fp) undo("sw_cap_fmt");
    rings = std::move(rs);
    pools = std::move(ps);
    fmt_pool = fp;
}

// Records a worker enqueued before it answered a disarm that came too late for the last capture.
void Capture::Impl::discard_rings() {
    CaptureRecord recs[64];
    for (rte_ring *ring : rings)
        while (unsigned n =
                   rte_ring_sc_dequeue_burst_elem(ring, recs, sizeof(CaptureRecord), 64, nullptr))
            for (unsigned i = 0; i < n; ++i) rte_pktmbuf_free(recs[i].m);
}

void Capture::Impl::start(const CaptureRequest &req) {
    if (run && run->state == "running")
        throw std::runtime_error("capture " + std::to_string(run->id) + " to " + run->req.file +
                                 " is running; stop it first (segwirectl capture --stop)");
    if (thread_live) {  // the last capture's thread has ended (its state says so)
        pthread_join(thread, nullptr);
        thread_live = false;
    }
    if (nworkers() == 0) throw std::runtime_error("no workers");
    make_resources();
    for (uint32_t w = 0; w < nworkers(); ++w)
        if (app.workers.capture(w).seen.load(std::memory_order_acquire) != 0)
            throw std::runtime_error("worker " + std::to_string(w) +
                                     " has not yet answered the end of the last capture");
    discard_rings();

    const int fd =
        open(req.file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) bad("file", "cannot create " + req.file + ": " + std::strerror(errno));
    auto r = std::make_shared<Run>();
    r->id = next_id++;
    r->req = req;
    utsname u{};
    uname(&u);
    const std::string os = std::string(u.sysname) + " " + u.release;
    const std::string appname = std::string("segwire ") + version_line() + ", " + rte_version();
    const std::string comment =
        "segwire capture " + std::to_string(r->id) + ": port " + req.port +
        (req.flow.empty() ? "" : ", flow " + req.flow) +
        (req.count ? ", count " + std::to_string(req.count) : "") +
        (req.duration_s > 0 ? ", duration " + std::to_string(req.duration_s) + " s" : "");
    // Writes the section header and one interface block per ethdev port (inside, outside).
    r->out = rte_pcapng_fdopen(fd, os.c_str(), nullptr, appname.c_str(), comment.c_str());
    if (!r->out) {
        const std::string why = rte_strerror(rte_errno);
        close(fd);
        unlink(req.file.c_str());
        bad("file", "cannot write " + req.file + ": " + why);
    }
    // The file so far: the section header and the interface blocks.
    if (const off_t at = lseek(fd, 0, SEEK_CUR); at > 0) r->bytes = static_cast<uint64_t>(at);
    for (uint32_t w = 0; w < nworkers(); ++w) {
        const dp::WorkerStats &s = app.workers.stats(w);
        for (int side = 0; side < 2; ++side) r->rx0[side] += s.rx_pkts[side].get();
    }
    r->hz = rte_get_tsc_hz();
    r->tsc0 = rte_rdtsc();
    r->ns0 = now_ns();
    r->started = Clock::now();
    r->deadline =
        req.duration_s > 0
            ? r->started + std::chrono::microseconds(static_cast<int64_t>(req.duration_s * 1e6))
            : Clock::time_point::max();
    r->last_poll_ms = steady_ms();

    // Arm: the settings first, then the generation (release); each worker answers at its next
    // loop. A worker that does not (not running) fails the start rather than a silent capture.
    if (++generation == 0) ++generation;
    for (uint32_t w = 0; w < nworkers(); ++w) {
        dp::CaptureSlot &slot = app.workers.capture(w);
        slot.filter = req.filter;
        slot.snaplen = req.snaplen;
        slot.count = req.count;
        slot.ring = rings[w];
        slot.pool = pools[w];
        slot.armed.store(generation, std::memory_order_release);
    }
    const auto until = Clock::now() + kAnswerWait;
    for (uint32_t w = 0; w < nworkers(); ++w) {
        const dp::CaptureSlot &slot = app.workers.capture(w);
        while (slot.seen.load(std::memory_order_acquire) != generation) {
            if (Clock::now() > until) {
                for (uint32_t v = 0; v < nworkers(); ++v)
                    app.workers.capture(v).armed.store(0, std::memory_order_release);
                rte_pcapng_close(r->out);
                unlink(req.file.c_str());
                throw std::runtime_error("worker " + std::to_string(w) +
                                         " did not take the capture (not running?)");
            }
            std::this_thread::sleep_for(std::chrono::microseconds(200));
        }
    }
    run = r;
    struct Arg {
        Impl *impl;
        std::shared_ptr<Run> run;
    };
    auto *arg = new Arg{this, r};
    // A DPDK control thread: never on a worker's core.
    if (rte_ctrl_thread_create(
            &thread, "sw-capture", nullptr,
            [](void *p) -> void * {
                std::unique_ptr<Arg> a(static_cast<Arg *>(p));
                a->impl->loop(*a->run);
                return nullptr;
            },
            arg) != 0) {
        delete arg;
        for (uint32_t w = 0; w < nworkers(); ++w)  // what they copied meanwhile: discard_rings
            app.workers.capture(w).armed.store(0, std::memory_order_release);
        rte_pcapng_close(r->out);
        unlink(req.file.c_str());
        r->out = nullptr;
        r->state = "failed";
        r->error = "cannot start the capture thread";
        throw std::runtime_error(r->error);
    }
    thread_live = true;
    spdlog::info("capture {}: port {}{}{}{} to {}", r->id, req.port,
                 req.flow.empty() ? "" : ", flow " + req.flow,
                 req.count ? ", count " + std::to_string(req.count) : "",
                 req.duration_s > 0 ? ", duration " + std::to_string(req.duration_s) + " s" : "",
                 req.file);
}

void Capture::Impl::write_batch(Run &r, rte_mbuf **batch, uint16_t &n) {
    if (!n) return;
    const ssize_t w = rte_pcapng_write_packets(r.out, batch, n);
    rte_pktmbuf_free_bulk(batch, n);  // 22.11 does not free them, whatever its header says
    n = 0;
    if (w < 0) throw std::runtime_error("write " + r.req.file + ": " + rte_strerror(rte_errno));
    r.bytes += static_cast<uint64_t>(w);
}

// Takes what every ring holds and writes, in time order across the workers, the records older
// than kReorderHoldMs (all of them when `all` or with one worker), up to the count. A worker hands
// its records over once per loop, so one worker's may reach its ring after a later one of another
// worker's: the hold puts them back in order (unless a worker stalls for longer). Returns how many
// records were taken.
size_t Capture::Impl::drain(Run &r, bool all) {
    std::vector<Taken> &pending = r.pending;
    CaptureRecord recs[kDrainBurst];
    size_t took = 0;
    for (uint32_t w = 0; w < rings.size(); ++w) {
        const unsigned n = rte_ring_sc_dequeue_burst_elem(rings[w], recs, sizeof(CaptureRecord),
                                                          kDrainBurst, nullptr);
        for (unsigned i = 0; i < n; ++i) pending.push_back({recs[i], w});
        took += n;
    }
    std::stable_sort(pending.begin(), pending.end(),
                     [](const Taken &a, const Taken &b) { return a.rec.tsc < b.rec.tsc; });
    size_t ready = pending.size();
    if (!all && rings.size() > 1) {
        const int64_t hold = static_cast<int64_t>(r.hz / 1000 * kReorderHoldMs);
        const uint64_t now = rte_rdtsc();
        while (ready && static_cast<int64_t>(now - pending[ready - 1].rec.tsc) < hold) --ready;
    }
    rte_mbuf *batch[kWriteBatch];
    uint16_t nb = 0;
    try {
        for (size_t i = 0; i < ready; ++i) {
            Taken &t = pending[i];
            const CaptureRecord rec = t.rec;
            t.rec.m = nullptr;
            const uint8_t side = side_of_port(rec.port);
            if (r.req.count && r.written.load() >= r.req.count) {  // beyond the count: unwanted
                rte_pktmbuf_free(rec.m);
                continue;
            }
            const rte_pcapng_direction dir =
                rec.dir == CaptureDir::kOut ? RTE_PCAPNG_DIRECTION_OUT : RTE_PCAPNG_DIRECTION_IN;
            // The timestamp handed to rte_pcapng_copy only moves 22.11's own clock forward (it
            // goes wrong on a time earlier than the last one); finish_epb writes the worker's.
            rte_mbuf *mc = rte_pcapng_copy(rec.port, t.worker, rec.m, fmt_pool, UINT32_MAX,
                                           rte_get_tsc_cycles(), dir);
            rte_pktmbuf_free(rec.m);
            std::string comment;
            if (rec.reason != DropReason::None)
                comment = std::string("segwire drop: ") + dp::drop_reason_name(rec.reason);
            if (!mc ||
                !finish_epb(mc, tsc_to_ns(rec.tsc, r.tsc0, r.ns0, r.hz), rec.orig_len, comment)) {
                if (mc) rte_pktmbuf_free(mc);
                ++r.fmt_lost[side];
                continue;
            }
            batch[nb++] = mc;
            ++r.written;
            ++r.by_dir[static_cast<size_t>(rec.dir)];
            if (rec.reason != DropReason::None) ++r.drops[static_cast<size_t>(rec.reason)];
            if (nb == kWriteBatch) write_batch(r, batch, nb);
        }
        write_batch(r, batch, nb);
    } catch (...) {
        rte_pktmbuf_free_bulk(batch, nb);
        for (const Taken &t : pending)  // the records not reached yet
            if (t.rec.m) rte_pktmbuf_free(t.rec.m);
        pending.clear();
        throw;
    }
    pending.erase(pending.begin(), pending.begin() + static_cast<ptrdiff_t>(ready));
    return took;
}

void Capture::Impl::loop(Run &r) {
    std::string ended;
    try {
        for (;;) {
            const size_t n = drain(r, false);
            if (r.req.count && r.written.load() >= r.req.count) {
                ended = "count";
                break;
            }
            if (r.stop.load()) {
                ended = "stopped";
                break;
            }
            if (Clock::now() >= r.deadline) {
                ended = "duration";
                break;
            }
            if (r.req.lease_s > 0 &&
                double(steady_ms() - r.last_poll_ms.load()) > r.req.lease_s * 1000) {
                ended = "client-gone";
                break;
            }
            // A ring holds 1024 records: at 1 ms between rounds a worker may copy ~1 M packets/s
            // before one fills (and then loses copies, counted).
            if (n == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        finish(r, ended);
    } catch (const std::exception &e) {
        {
            std::lock_guard<std::mutex> lock(mu);
            r.error = e.what();
        }
        finish(r, "error");
    }
}

// Disarms every worker, waits for their answers (unless they have returned), writes what they
// enqueued before answering, the interface statistics, and closes the file.
void Capture::Impl::finish(Run &r, const std::string &ended) {
    for (uint32_t w = 0; w < nworkers(); ++w)
        app.workers.capture(w).armed.store(0, std::memory_order_release);
    std::string late;
    const auto until = Clock::now() + kAnswerWait;
    for (uint32_t w = 0; w < nworkers() && !workers_gone.load(); ++w)
        while (app.workers.capture(w).seen.load(std::memory_order_acquire) != 0) {
            if (Clock::now() > until) {
                late = "worker " + std::to_string(w) + " did not answer the end of the capture";
                break;
            }
            std::this_thread::sleep_for(std::chrono::microseconds(200));
        }
    std::string error;
    try {
        while (drain(r, true) != 0) {
        }
    } catch (const std::exception &e) {
        error = e.what();
    }
    for (uint32_t w = 0; w < nworkers(); ++w) {
        const dp::CaptureSlot &slot = app.workers.capture(w);
        for (int side = 0; side < 2; ++side) {
            r.matched[side] += slot.matched[side].get();
            r.lost[side] += slot.lost[side].get();
        }
    }
    for (int side = 0; side < 2; ++side) r.lost[side] += r.fmt_lost[side].load();
    r.elapsed_s = std::chrono::duration<double>(Clock::now() - r.started).count();
    if (r.out) {
        // One statistics block per captured port: isb_ifrecv = what the port received during the
        // capture, isb_ifdrop = what matched but could not be captured.
        for (uint8_t side = 0; side < 2; ++side) {
            if (!(r.req.filter.sides & (1u << side))) continue;
            uint64_t rx = 0;
            for (uint32_t w = 0; w < nworkers(); ++w)
                rx += app.workers.stats(w).rx_pkts[side].get();
            const std::string c = "segwire capture " + std::to_string(r.id) + ", port " +
                                  (side == dp::kInside ? "inside" : "outside") + ": " +
                                  std::to_string(r.matched[side]) + " packets matched, " +
                                  std::to_string(r.lost[side]) +
                                  " not captured (capture ring full or pool empty)";
            const ssize_t n = rte_pcapng_write_stats(r.out, app.ports[side].port_id, c.c_str(), 0,
                                                     0, rx - r.rx0[side], r.lost[side]);
            if (n > 0) r.bytes += static_cast<uint64_t>(n);
        }
        rte_pcapng_close(r.out);
        r.out = nullptr;
    }
    std::lock_guard<std::mutex> lock(mu);
    if (!error.empty() && r.error.empty()) r.error = error;
    if (!late.empty() && r.error.empty()) r.error = late;
    r.ended = ended;
    r.state = ended == "error" || !r.error.empty() ? "failed" : "done";
    spdlog::info("capture {} {} ({}): {} packets written to {}, {} not captured{}{}", r.id, r.state,
                 ended, r.written.load(), r.req.file, r.lost[0] + r.lost[1],
                 r.error.empty() ? "" : ": ", r.error);
}

void Capture::Impl::status(rte_tel_data *d) {
    rte_tel_data_start_dict(d);
    auto str = [&](const char *k, const std::string &v) {
        rte_tel_data_add_dict_string(d, k, v.substr(0, RTE_TEL_MAX_STRING_LEN - 1).c_str());
    };
    auto u64 = [&](const char *k, uint64_t v) { rte_tel_data_add_dict_u64(d, k, v); };
    str("dumpcap", app.dumpcap);
    if (!run) {
        str("state", "idle");
        return;
    }
    const Run &r = *run;
    const bool running = r.state == "running";
    u64("id", r.id);
    str("state", running && r.stop.load() ? "stopping" : r.state);
    str("file", r.req.file);
    str("port", r.req.port);
    str("flow", r.req.flow);
    u64("count", r.req.count);
    char dur[32];
    std::snprintf(dur, sizeof dur, "%g", r.req.duration_s);
    str("duration_s", dur);
    u64("snaplen", r.req.snaplen);
    u64("written", r.written.load());
    u64("received", r.by_dir[static_cast<size_t>(CaptureDir::kIn)].load());
    u64("sent", r.by_dir[static_cast<size_t>(CaptureDir::kOut)].load());
    u64("dropped", r.by_dir[static_cast<size_t>(CaptureDir::kDrop)].load());
    uint64_t matched[2], lost[2];
    for (int side = 0; side < 2; ++side) {
        matched[side] = r.matched[side];
        lost[side] = r.lost[side];
        if (running) {  // live: what the workers count now
            matched[side] = lost[side] = 0;
            for (uint32_t w = 0; w < nworkers(); ++w) {
                matched[side] += app.workers.capture(w).matched[side].get();
                lost[side] += app.workers.capture(w).lost[side].get();
            }
            lost[side] += r.fmt_lost[side].load();
        }
    }
    u64("matched_inside", matched[dp::kInside]);
    u64("matched_outside", matched[dp::kOutside]);
    u64("lost", lost[0] + lost[1]);
    u64("lost_inside", lost[dp::kInside]);
    u64("lost_outside", lost[dp::kOutside]);
    u64("bytes", r.bytes.load());
    const double elapsed =
        running ? std::chrono::duration<double>(Clock::now() - r.started).count() : r.elapsed_s;
    char el[32];
    std::snprintf(el, sizeof el, "%.3f", elapsed);
    str("elapsed_s", el);
    str("ended", r.ended);
    str("error", r.error);
    rte_tel_data *drops = rte_tel_data_alloc();
    rte_tel_data_start_dict(drops);
    for (size_t i = 1; i < dp::kDropReasonCount; ++i)
        if (uint64_t n = r.drops[i].load())
            rte_tel_data_add_dict_u64(drops,
                                      dp::drop_reason_counter_name(static_cast<DropReason>(i)), n);
    rte_tel_data_add_dict_container(d, "drops", drops, 0);
}

// ---- telemetry ----------------------------------------------------------------------------------

namespace {

std::mutex g_mu;  // guards g_impl against the destructor
Capture::Impl *g_impl = nullptr;

void error_reply(rte_tel_data *d, const std::string &e) {
    rte_tel_data_start_dict(d);
    rte_tel_data_add_dict_string(d, "error", e.substr(0, RTE_TEL_MAX_STRING_LEN - 1).c_str());
}

// /segwire/capture[,ID]: the current or last capture; naming the running capture's id renews its
// lease (what segwirectl does while it waits).
int cmd_status(const char *, const char *params, rte_tel_data *d) {
    std::lock_guard<std::mutex> g(g_mu);
    if (!g_impl) return -EAGAIN;
    std::lock_guard<std::mutex> lock(g_impl->mu);
    if (params && *params && g_impl->run && std::strtoull(params, nullptr, 10) == g_impl->run->id)
        g_impl->run->last_poll_ms = steady_ms();
    g_impl->status(d);
    return 0;
}

// /segwire/capture/start,file=...;port=...;flow=...;count=...;duration=...;snaplen=...;lease=...
int cmd_start(const char *, const char *params, rte_tel_data *d) {
    std::lock_guard<std::mutex> g(g_mu);
    if (!g_impl) return -EAGAIN;
    std::lock_guard<std::mutex> lock(g_impl->mu);
    try {
        g_impl->start(parse_capture_request(params ? params : ""));
    } catch (const std::exception &e) {
        error_reply(d, e.what());
        return 0;
    }
    g_impl->status(d);
    return 0;
}

// /segwire/capture/stop[,ID]: ends the running capture (its thread writes what is left).
int cmd_stop(const char *, const char *params, rte_tel_data *d) {
    std::lock_guard<std::mutex> g(g_mu);
    if (!g_impl) return -EAGAIN;
    std::lock_guard<std::mutex> lock(g_impl->mu);
    const auto &run = g_impl->run;
    if (!run || run->state != "running") {
        error_reply(d, "no capture is running");
        return 0;
    }
    if (params && *params && std::strtoull(params, nullptr, 10) != run->id) {
        error_reply(d, "capture " + std::string(params) + " is not the running one");
        return 0;
    }
    run->stop = true;
    g_impl->status(d);
    return 0;
}

}  // namespace

Capture::Capture(App &app) : impl_(std::make_unique<Impl>(app)) {
    {
        std::lock_guard<std::mutex> g(g_mu);
        g_impl = impl_.get();
    }
    static bool registered = false;  // telemetry commands cannot be unregistered
    if (!registered) {
        rte_telemetry_register_cmd("/segwire/capture", cmd_status,
                                   "The running or last packet capture (segwirectl capture). "
                                   "Param: its id, which renews its lease.");
        rte_telemetry_register_cmd("/segwire/capture/start", cmd_start,
                                   "Starts a pcapng capture. Params: file=PATH;port=inside|"
                                   "outside|both;flow=SPEC;count=N;duration=S;snaplen=N;lease=S");
        rte_telemetry_register_cmd("/segwire/capture/stop", cmd_stop,
                                   "Ends the running capture. Param: its id.");
        registered = true;
    }
}

Capture::~Capture() {
    {
        std::lock_guard<std::mutex> g(g_mu);
        g_impl = nullptr;
    }
    impl_->workers_gone = true;
    std::shared_ptr<Run> run;
    {
        std::lock_guard<std::mutex> lock(impl_->mu);
        run = impl_->run;
    }
    if (run) run->stop = true;
    if (impl_->thread_live) pthread_join(impl_->thread, nullptr);
}

}  // namespace segwire::control
