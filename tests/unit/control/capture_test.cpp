// Packet capture (docs/capture.md): the flow filter and request grammar, the worker's capture tap
// on real mbufs, rings and pools, and the pcapng blocks the writer produces, read back field by
// field against the pcapng spec (not through DPDK's own definitions).
#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_memzone.h>
#include <rte_mbuf.h>
#include <rte_pcapng.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>

#include "control/capture.hpp"
#include "dataplane/worker/capture_tap.hpp"
#include "tests/unit/dataplane/frame_builder.hpp"

using namespace segwire;
using namespace segwire::dptest;
using control::CaptureRequest;
using control::parse_capture_request;
using control::parse_flow_filter;
using dp::CaptureDir;
using dp::CaptureFilter;
using dp::CaptureRecord;
using dp::DropReason;

namespace {

rte_mempool *g_pool = nullptr;

CaptureFilter flow(const std::string &spec) {
    CaptureFilter f;
    parse_flow_filter(spec, f);
    return f;
}

std::string refusal(const std::string &spec) {
    try {
        flow(spec);
    } catch (const std::invalid_argument &e) {
        return e.what();
    }
    return "accepted";
}

bool matches(const CaptureFilter &f, const Bytes &frame) {
    dp::PacketView v;
    if (dp::parse_packet(frame.data(), static_cast<uint32_t>(frame.size()), v) != DropReason::None)
        return false;
    return dp::capture_flow_matches(f, v);
}

// 192.0.2.1:40000 -> 198.51.100.7:443 and its answer.
const Bytes kOut = v4_tcp({.sport = 40000, .dport = 443});
const Bytes kBack = v4_tcp({.sport = 443, .dport = 40000}, {.src = kDst4, .dst = kSrc4});
const Bytes kOther = v4_tcp({.sport = 40001, .dport = 80});

}  // namespace

TEST(CaptureFilter, FiveTupleMatchesBothDirectionsOfOneFlowOnly) {
    const CaptureFilter f = flow("tcp 192.0.2.1:40000 198.51.100.7:443");
    EXPECT_TRUE(f.flow);
    EXPECT_EQ(f.proto, dp::kProtoTcp);
    EXPECT_TRUE(matches(f, kOut));
    EXPECT_TRUE(matches(f, kBack));
    EXPECT_FALSE(matches(f, kOther));
    EXPECT_FALSE(matches(f, v4_udp({.sport = 40000, .dport = 443})));
    EXPECT_FALSE(matches(f, eth(kEthArp, arp_body())));
}

TEST(CaptureFilter, SubsetsOfTheTuple) {
    EXPECT_FALSE(flow("").flow);
    const CaptureFilter host = flow("198.51.100.7");
    EXPECT_TRUE(matches(host, kOut) && matches(host, kBack) && matches(host, kOther));
    EXPECT_FALSE(matches(host, v4_tcp({}, {.src = kSrc4, .dst = {203, 0, 113, 9}})));
    const CaptureFilter port = flow("*:443");
    EXPECT_TRUE(matches(port, kOut) && matches(port, kBack));
    EXPECT_FALSE(matches(port, kOther));
    EXPECT_TRUE(matches(flow("udp *:53"), v4_udp({.sport = 5353, .dport = 53})));
    EXPECT_FALSE(matches(flow("udp *:53"), v4_tcp({.sport = 5353, .dport = 53})));
    EXPECT_TRUE(matches(flow("6"), kOther));
    EXPECT_TRUE(matches(flow("tcp 192.0.2.1 *:443"), kBack));
    EXPECT_FALSE(matches(flow("tcp 192.0.2.1 *:80"), kBack));
}

TEST(CaptureFilter, Ipv6WithAndWithoutBrackets) {
    const Bytes f6 = v6_tcp({.sport = 40000, .dport = 443});
    EXPECT_TRUE(matches(flow("2001:db8::1"), f6));
    EXPECT_TRUE(matches(flow("tcp 2001:db8::1 [2001:db8::a02]:443"), f6));
    EXPECT_FALSE(matches(flow("[2001:db8::1]:443"), f6));  // the client's port is 40000
    EXPECT_FALSE(matches(flow("192.0.2.1"), f6));
}

TEST(CaptureFilter, RefusalsNameTheFieldAndTheToken) {
    EXPECT_EQ(refusal("tcp 10.0.0.300"),
              "flow: '10.0.0.300' is not ADDR, ADDR:PORT, [IPV6]:PORT, *:PORT or *");
    EXPECT_EQ(refusal("tcp 10.0.0.1 10.0.0.2 10.0.0.3"),
              "flow: 'tcp 10.0.0.1 10.0.0.2 10.0.0.3': at most a protocol and two endpoints");
    EXPECT_EQ(refusal("*:0"), "flow: '*:0': port 0 matches nothing");
    EXPECT_EQ(refusal("*:70000"), "flow: 70000 is more than 65535");
    EXPECT_EQ(refusal("*:"), "flow: '*:': no port after ':'");
    EXPECT_EQ(refusal("[::1"), "flow: '[::1': no closing ']'");
    EXPECT_EQ(refusal("[10.0.0.1]:80"), "flow: '[10.0.0.1]:80': not an IPv6 address in brackets");
    EXPECT_EQ(refusal("tcp 10.0.0.1 fd00::1"),
              "flow: 'tcp 10.0.0.1 fd00::1': one IPv4 and one IPv6 address match nothing");
    EXPECT_EQ(refusal("0 *:1"), "flow: protocol 0: use 1..255 or a name (tcp, udp, icmp, icmp6)");
    EXPECT_EQ(refusal("256"), "flow: 256 is more than 255");
}

TEST(CaptureRequest, ParsesEveryField) {
    const CaptureRequest r = parse_capture_request(
        "file=/tmp/x.pcapng; port=outside;flow=tcp "
        "*:443;count=20;duration=1.5;snaplen=128;lease=15");
    EXPECT_EQ(r.file, "/tmp/x.pcapng");
    EXPECT_EQ(r.port, "outside");
    EXPECT_EQ(r.filter.sides, 1u << dp::kOutside);
    EXPECT_EQ(r.flow, "tcp *:443");
    EXPECT_TRUE(r.filter.flow);
    EXPECT_EQ(r.count, 20u);
    EXPECT_DOUBLE_EQ(r.duration_s, 1.5);
    EXPECT_EQ(r.snaplen, 128u);
    EXPECT_DOUBLE_EQ(r.lease_s, 15);
    const CaptureRequest d = parse_capture_request("file=/x;count=1");
    EXPECT_EQ(d.filter.sides, 3);
    EXPECT_FALSE(d.filter.flow);
}

TEST(CaptureRequest, RefusalsNameTheField) {
    auto refused = [](const std::string &p) {
        try {
            parse_capture_request(p);
        } catch (const std::invalid_argument &e) {
            return std::string(e.what());
        }
        return std::string("accepted");
    };
    EXPECT_EQ(refused("count=1"), "file: missing");
    EXPECT_EQ(refused("file=x.pcapng;count=1"), "file: must be an absolute path");
    EXPECT_EQ(refused("file=/x"), "count: a capture needs count, duration or lease to end");
    EXPECT_EQ(refused("file=/x;count=1;colour=red"),
              "colour: unknown field (file, port, flow, count, duration, snaplen, lease)");
    EXPECT_EQ(refused("file=/x;count=1;count=2"), "count: given twice");
    EXPECT_EQ(refused("file=/x;count=-1"), "count: '-1' is not a whole number");
    EXPECT_EQ(refused("file=/x;port=sideways;count=1"),
              "port: 'sideways': expected inside, outside or both");
    EXPECT_EQ(refused("file=/x;duration=soon"), "duration: 'soon' is not a number of seconds");
    EXPECT_EQ(refused("file=/x;count=1;snaplen=8"),
              "snaplen: 8 is shorter than an Ethernet header");
    EXPECT_EQ(refused("file=/x;count=1;flow=tcp 1.2.3"),
              "flow: '1.2.3' is not ADDR, ADDR:PORT, [IPV6]:PORT, *:PORT or *");
}

// ---- the worker's tap --------------------------------------------------------------------------

namespace {

rte_mbuf *mbuf(const Bytes &frame, uint16_t port) {
    rte_mbuf *m = rte_pktmbuf_alloc(g_pool);
    std::memcpy(rte_pktmbuf_append(m, static_cast<uint16_t>(frame.size())), frame.data(),
                frame.size());
    m->port = port;
    return m;
}

struct TapBed {
    static constexpr uint16_t kPorts[2] = {3, 7};  // inside, outside
    dp::CaptureSlot slot;
    dp::CaptureTap tap;
    rte_ring *ring;
    rte_mempool *pool;

    explicit TapBed(unsigned ring_size = 64, unsigned pool_size = 63) {
        static int n = 0;
        const std::string id = std::to_string(++n);
        ring = rte_ring_create_elem(("tap_ring" + id).c_str(), sizeof(CaptureRecord), ring_size,
                                    SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
        pool = rte_pktmbuf_pool_create(("tap_pool" + id).c_str(), pool_size, 0, 0,
                                       RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
        tap.init(0, kPorts, &slot);
    }
    ~TapBed() {
        for (const CaptureRecord &r : take()) rte_pktmbuf_free(r.m);
        rte_ring_free(ring);
        rte_mempool_free(pool);
    }
    void arm(uint32_t gen, CaptureFilter f = {}, uint64_t count = 0, uint32_t snaplen = 0) {
        slot.filter = f;
        slot.count = count;
        slot.snaplen = snaplen;
        slot.ring = ring;
        slot.pool = pool;
        slot.armed.store(gen);
        tap.loop();
    }
    std::vector<CaptureRecord> take() {
        std::vector<CaptureRecord> out(rte_ring_count(ring));
        rte_ring_sc_dequeue_bulk_elem(ring, out.data(), sizeof(CaptureRecord),
                                      static_cast<unsigned>(out.size()), nullptr);
        return out;
    }
    // Runs frames through rx on `side` as a worker's loop would, then frees them.
    void rx(const std::vector<Bytes> &frames, uint8_t side) {
        std::vector<rte_mbuf *> ms;
        for (const Bytes &f : frames) ms.push_back(mbuf(f, kPorts[side]));
        tap.rx(ms.data(), static_cast<uint16_t>(ms.size()), side);
        for (rte_mbuf *m : ms) rte_pktmbuf_free(m);
    }
};

}  // namespace

TEST(CaptureTap, OffCopiesNothing) {
    TapBed b;
    b.tap.loop();
    EXPECT_FALSE(b.tap.on());
    b.rx({kOut, kBack}, dp::kInside);
    rte_mbuf *m = mbuf(kOut, TapBed::kPorts[dp::kOutside]);
    b.tap.dropped(m, DropReason::PolicyReject);
    rte_pktmbuf_free(m);
    b.tap.loop();
    EXPECT_EQ(rte_ring_count(b.ring), 0u);
    EXPECT_EQ(b.slot.matched[0].get() + b.slot.matched[1].get(), 0u);
    EXPECT_EQ(rte_mempool_avail_count(b.pool), 63u);
}

TEST(CaptureTap, ArmedCopiesTheFlowFilteredPacketsWithDirectionPortAndDropReason) {
    TapBed b;
    b.arm(5, flow("tcp 192.0.2.1:40000 198.51.100.7:443"));
    EXPECT_EQ(b.slot.seen.load(), 5u);
    EXPECT_TRUE(b.tap.on());
    b.rx({kOut, kOther, kOut}, dp::kInside);
    rte_mbuf *back = mbuf(kBack, TapBed::kPorts[dp::kOutside]);
    b.tap.tx(&back, 1, dp::kInside);
    b.tap.dropped(back, DropReason::PolicyReject);  // arrived on the outside
    rte_mbuf *other = mbuf(kOther, TapBed::kPorts[dp::kOutside]);
    b.tap.dropped(other, DropReason::PolicyReject);  // another flow: not wanted
    rte_pktmbuf_free(back);
    rte_pktmbuf_free(other);
    EXPECT_EQ(rte_ring_count(b.ring), 0u);  // staged until the next loop
    b.tap.loop();
    const auto recs = b.take();
    ASSERT_EQ(recs.size(), 4u);
    for (int i : {0, 1}) {
        EXPECT_EQ(recs[i].dir, CaptureDir::kIn);
        EXPECT_EQ(recs[i].port, TapBed::kPorts[dp::kInside]);
        EXPECT_EQ(recs[i].reason, DropReason::None);
        ASSERT_EQ(rte_pktmbuf_pkt_len(recs[i].m), kOut.size());
        EXPECT_EQ(std::memcmp(rte_pktmbuf_mtod(recs[i].m, uint8_t *), kOut.data(), kOut.size()), 0);
    }
    EXPECT_EQ(recs[2].dir, CaptureDir::kOut);
    EXPECT_EQ(recs[2].port, TapBed::kPorts[dp::kInside]);
    EXPECT_EQ(recs[3].dir, CaptureDir::kDrop);
    EXPECT_EQ(recs[3].port, TapBed::kPorts[dp::kOutside]);
    EXPECT_EQ(recs[3].reason, DropReason::PolicyReject);
    EXPECT_EQ(b.slot.matched[dp::kInside].get(), 3u);
    EXPECT_EQ(b.slot.matched[dp::kOutside].get(), 1u);
    for (const CaptureRecord &r : recs) rte_pktmbuf_free(r.m);
    // Disarmed: answered, and nothing more is copied.
    b.slot.armed.store(0);
    b.tap.loop();
    EXPECT_EQ(b.slot.seen.load(), 0u);
    b.rx({kOut}, dp::kInside);
    b.tap.loop();
    EXPECT_EQ(rte_ring_count(b.ring), 0u);
}

TEST(CaptureTap, PortSelectionCountAndSnaplen) {
    TapBed b;
    CaptureFilter outside_only;
    outside_only.sides = 1u << dp::kOutside;
    b.arm(1, outside_only, /*count=*/2, /*snaplen=*/40);
    b.rx({kOut, kOut}, dp::kInside);                   // the other port
    b.rx({kBack, kBack, kBack, kBack}, dp::kOutside);  // two taken, then the count is reached
    EXPECT_FALSE(b.tap.on());
    b.tap.loop();
    const auto recs = b.take();
    ASSERT_EQ(recs.size(), 2u);
    for (const CaptureRecord &r : recs) {
        EXPECT_EQ(rte_pktmbuf_pkt_len(r.m), 40u);  // cut at the snaplen
        EXPECT_EQ(r.orig_len, kBack.size());       // the length on the wire is kept
        rte_pktmbuf_free(r.m);
    }
    EXPECT_EQ(b.slot.matched[dp::kInside].get(), 0u);
    // A new generation re-arms with its own count, and zeroes the counters.
    b.arm(2);
    EXPECT_TRUE(b.tap.on());
    EXPECT_EQ(b.slot.matched[dp::kOutside].get(), 0u);
}

TEST(CaptureTap, AFullRingOrAnEmptyPoolLosesCopiesCountedPerPort) {
    TapBed full(/*ring_size=*/4);  // holds 3
    full.arm(1);
    full.rx({kOut, kOut, kOut, kOut, kOut}, dp::kInside);
    full.tap.loop();
    EXPECT_EQ(rte_ring_count(full.ring), 3u);
    EXPECT_EQ(full.slot.lost[dp::kInside].get(), 2u);
    EXPECT_EQ(full.slot.matched[dp::kInside].get(), 5u);
    for (const CaptureRecord &r : full.take()) rte_pktmbuf_free(r.m);
    EXPECT_EQ(rte_mempool_avail_count(full.pool), 63u);  // the lost copies went back

    TapBed empty(/*ring_size=*/64, /*pool_size=*/3);
    empty.arm(1);
    empty.rx({kBack, kBack, kBack, kBack}, dp::kOutside);
    empty.tap.loop();
    EXPECT_EQ(rte_ring_count(empty.ring), 3u);
    EXPECT_EQ(empty.slot.lost[dp::kOutside].get(), 1u);
}

// ---- pcapng ------------------------------------------------------------------------------------

namespace {

struct Block {
    uint32_t type;
    std::vector<uint8_t> body;  // between the leading and the trailing length
};

uint32_t le32(const uint8_t *p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}
uint16_t le16(const uint8_t *p) {
    uint16_t v;
    std::memcpy(&v, p, 2);
    return v;
}

// Splits a pcapng file into blocks, checking the framing every block must have.
std::vector<Block> blocks(const std::vector<uint8_t> &f) {
    std::vector<Block> out;
    size_t at = 0;
    while (at < f.size()) {
        EXPECT_LE(at + 12, f.size());
        const uint32_t len = le32(&f[at + 4]);
        EXPECT_EQ(len % 4, 0u);
        EXPECT_LE(at + len, f.size());
        EXPECT_EQ(le32(&f[at + len - 4]), len) << "trailing length of block " << out.size();
        out.push_back({le32(&f[at]), std::vector<uint8_t>(&f[at + 8], &f[at + len - 4])});
        at += len;
    }
    return out;
}

struct Option {
    uint16_t code;
    std::string value;
};

// The options from `off` to the end of a block body; each padded to 32 bits.
std::vector<Option> options(const std::vector<uint8_t> &body, size_t off) {
    std::vector<Option> out;
    while (off + 4 <= body.size()) {
        const uint16_t code = le16(&body[off]), len = le16(&body[off + 2]);
        EXPECT_LE(off + 4 + len, body.size());
        out.push_back({code, std::string(&body[off + 4], &body[off + 4] + len)});
        off += 4 + (len + 3u) / 4 * 4;
    }
    EXPECT_EQ(off, body.size());
    return out;
}

const Option *find(const std::vector<Option> &opts, uint16_t code) {
    for (const Option &o : opts)
        if (o.code == code) return &o;
    return nullptr;
}

}  // namespace

TEST(CapturePcapng, BlocksFollowTheSpecWithCommentEndOfOptionsAndInterfaceStatistics) {
    uint16_t port = 0;
    ASSERT_EQ(rte_eth_dev_get_port_by_name("net_null0", &port), 0);
    const std::string path = "/tmp/segwire-capture-test-" + std::to_string(getpid()) + ".pcapng";
    unlink(path.c_str());
    const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
    ASSERT_GE(fd, 0);
    rte_pcapng_t *w = rte_pcapng_fdopen(fd, "os", nullptr, "segwire test", "a comment");
    ASSERT_NE(w, nullptr);

    rte_mempool *fmt = rte_pktmbuf_pool_create("fmt_pool", 15, 0, 0,
                                               RTE_PKTMBUF_HEADROOM + 2048 + 256, SOCKET_ID_ANY);
    ASSERT_NE(fmt, nullptr);
    rte_mbuf *src = mbuf(kOut, port);
    const uint64_t ns = 1'764'720'000'123'456'789ull;
    rte_mbuf *blocks_out[2];
    blocks_out[0] = rte_pcapng_copy(port, 1, src, fmt, UINT32_MAX, rte_get_tsc_cycles(),
                                    RTE_PCAPNG_DIRECTION_IN);
    blocks_out[1] = rte_pcapng_copy(port, 1, src, fmt, UINT32_MAX, rte_get_tsc_cycles(),
                                    RTE_PCAPNG_DIRECTION_OUT);
    ASSERT_TRUE(blocks_out[0] && blocks_out[1]);
    EXPECT_TRUE(control::finish_epb(blocks_out[0], ns, 1514, "segwire drop: policy-reject"));
    EXPECT_TRUE(control::finish_epb(blocks_out[1], ns + 1000, kOut.size(), ""));
    EXPECT_FALSE(control::finish_epb(src, ns, 0, ""));  // not a block
    ASSERT_GT(rte_pcapng_write_packets(w, blocks_out, 2), 0);
    rte_pktmbuf_free_bulk(blocks_out, 2);
    rte_pktmbuf_free(src);
    ASSERT_GT(rte_pcapng_write_stats(w, port, "stats", 0, 0, 7, 2), 0);
    rte_pcapng_close(w);
    rte_mempool_free(fmt);

    std::ifstream in(path, std::ios::binary);
    const std::vector<uint8_t> file((std::istreambuf_iterator<char>(in)), {});
    unlink(path.c_str());
    const auto bs = blocks(file);
    ASSERT_EQ(bs.size(), 5u);  // section, interface (net_null0), 2 packets, statistics
    EXPECT_EQ(bs[0].type, 0x0A0D0D0Au);
    EXPECT_EQ(bs[1].type, 1u);
    for (int i : {2, 3}) {
        const Block &e = bs[i];
        ASSERT_EQ(e.type, 6u);
        // interface, timestamp (high, low), captured length, original length, data
        const uint64_t want_ns = ns + (i == 3 ? 1000 : 0);
        EXPECT_EQ(le32(&e.body[0]), 0u);
        EXPECT_EQ(le32(&e.body[4]), uint32_t(want_ns >> 32));
        EXPECT_EQ(le32(&e.body[8]), uint32_t(want_ns));
        EXPECT_EQ(le32(&e.body[12]), kOut.size());
        EXPECT_EQ(le32(&e.body[16]), i == 2 ? 1514u : kOut.size());
        EXPECT_EQ(std::memcmp(&e.body[20], kOut.data(), kOut.size()), 0);
        const auto opts = options(e.body, 20 + (kOut.size() + 3) / 4 * 4);
        ASSERT_FALSE(opts.empty());
        EXPECT_EQ(opts.back().code, 0) << "opt_endofopt ends the list";
        EXPECT_EQ(opts.back().value, "");
        const Option *flags = find(opts, 2);  // epb_flags: bits 0-1 are the direction
        ASSERT_NE(flags, nullptr);
        EXPECT_EQ(le32(reinterpret_cast<const uint8_t *>(flags->value.data())) & 3,
                  i == 2 ? 1u : 2u);
        const Option *comment = find(opts, 1);
        if (i == 2) {
            ASSERT_NE(comment, nullptr);
            EXPECT_EQ(comment->value, "segwire drop: policy-reject");
        } else {
            EXPECT_EQ(comment, nullptr);
        }
    }
    const Block &isb = bs[4];
    ASSERT_EQ(isb.type, 5u);
    const auto opts = options(isb.body, 12);  // interface, timestamp
    auto u64 = [&](uint16_t code) {
        const Option *o = find(opts, code);
        uint64_t v = 0;
        if (o && o->value.size() == 8) std::memcpy(&v, o->value.data(), 8);
        return v;
    };
    EXPECT_EQ(u64(4), 7u);  // isb_ifrecv
    EXPECT_EQ(u64(5), 2u);  // isb_ifdrop
}

// dpdk-dumpcap support: rte_pdump_init runs (its statistics memzone and its IPC action exist)
// when the EAL qualifies, and not without hugepages. This EAL has no hugepages but keeps IPC on,
// so the hugepage case is told, not detected.
TEST(CaptureDumpcap, PdumpInitRunsOnlyWithHugepages) {
    EXPECT_EQ(control::enable_dumpcap(false),
              "off: no hugepages (eal.test_mode): dpdk-dumpcap, a secondary process, cannot "
              "attach to --no-huge memory");
    EXPECT_EQ(rte_memzone_lookup("rte_pdump_stats"), nullptr);
    ASSERT_EQ(control::enable_dumpcap(true), "ready");
    EXPECT_NE(rte_memzone_lookup("rte_pdump_stats"), nullptr);
    auto noop = [](const rte_mp_msg *, const void *) { return 0; };
    EXPECT_NE(rte_mp_action_register("mp_pdump", noop), 0);  // pdump's server action is there
    EXPECT_EQ(rte_errno, EEXIST);
    control::disable_dumpcap();
    EXPECT_EQ(rte_memzone_lookup("rte_pdump_stats"), nullptr);
}

int main(int argc, char **argv) {
    ::testing::InitGoogleTest(&argc, argv);
    // No hugepages; multi-process IPC on (no --no-shconf) for the dumpcap test: the runtime
    // directory it needs is removed at the end.
    const std::string prefix = "segwire-capture-test-" + std::to_string(getpid());
    std::vector<std::string> args = {"test", "--no-huge", "--no-pci",  "-l",
                                     "0",    "-m",        "256",       "--file-prefix",
                                     prefix, "--vdev",    "net_null0", "--log-level=*:error"};
    std::vector<char *> av;
    for (auto &a : args) av.push_back(a.data());
    if (rte_eal_init(static_cast<int>(av.size()), av.data()) < 0) return 1;
    g_pool = rte_pktmbuf_pool_create("capture_test", 1023, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, 0);
    if (!g_pool) return 1;
    const int rc = RUN_ALL_TESTS();
    const std::string rundir = rte_eal_get_runtime_dir();
    rte_eal_cleanup();
    std::error_code ec;
    std::filesystem::remove_all(rundir, ec);
    return rc;
}
