// Parser unit tests: one table of malformed frames covering every DropReason the parser returns,
// field-by-field checks on well-formed frames, and properties over every truncation and over
// single-byte mutations of a set of valid frames. Every frame is parsed from a heap buffer of
// exactly its size, so the ASan build (-Db_sanitize=address,undefined) catches any overread.
#include "dataplane/packet/parse.hpp"

#include <cstring>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/fuzz/dataplane/view_check.hpp"
#include "tests/unit/dataplane/frame_builder.hpp"

namespace segwire::dp {
// Readable failure messages: "tcp-bad-option" rather than a byte value.
void PrintTo(DropReason r, std::ostream *os) {
    *os << drop_reason_name(r);
}
}  // namespace segwire::dp

namespace {

using namespace segwire::dp;
using namespace segwire::dptest;

constexpr uint32_t kEth = 14, kIp4 = 20, kIp6 = 40;

// The reasons parse_packet() itself returns; the rest are decided by later dataplane stages.
bool is_parser_reason(DropReason r) {
    return r != DropReason::None && r < DropReason::FlowTableFull;
}

// ---- malformed frames ---------------------------------------------------------------------------

struct DropCase {
    std::string name;
    Bytes frame;
    DropReason want;
};

void PrintTo(const DropCase &c, std::ostream *os) {
    *os << c.name;
}

// A SYN whose option area is exactly `opts` (padded with EOL to a multiple of 4).
Bytes syn_with_options(Bytes opts, Bytes payload = {}) {
    TcpSpec t;
    t.options = std::move(opts);
    t.payload = std::move(payload);
    return v4_tcp(t);
}

Bytes tcp_flags_frame(uint8_t flags) {
    TcpSpec t;
    t.flags = flags;
    return v4_tcp(t);
}

// IPv4 carrying `l4` bytes as protocol `proto`, optionally padded at the Ethernet layer.
Bytes v4_raw(uint8_t proto, const Bytes &l4, size_t pad_to = 0) {
    Ip4Spec ip;
    ip.proto = proto;
    return eth(kEthIpv4, ipv4(ip, l4), {}, pad_to);
}

Bytes v6_raw(uint8_t proto, const Bytes &l4, std::vector<Ext> ext = {}) {
    Ip6Spec ip;
    ip.proto = proto;
    ip.ext = std::move(ext);
    return eth(kEthIpv6, ipv6(ip, l4));
}

Bytes v4_with(Ip4Spec ip, const Bytes &l4 = tcp({})) {
    return eth(kEthIpv4, ipv4(ip, l4));
}

Bytes v4_options(Bytes opts) {
    Ip4Spec ip;
    ip.options = std::move(opts);
    return v4_with(ip);
}

std::vector<DropCase> drop_cases() {
    std::vector<DropCase> c;
    auto add = [&](std::string name, Bytes f, DropReason r) {
        c.push_back({std::move(name), std::move(f), r});
    };
    const Bytes base = v4_tcp();

    // Ethernet
    add("Empty", {}, DropReason::L2Truncated);
    add("OneByte", cut(base, 1), DropReason::L2Truncated);
    add("EthHeader13", cut(base, 13), DropReason::L2Truncated);

    // 802.1Q / 802.1ad
    add("VlanTpidOnly", eth(kTpid8021q, {}), DropReason::VlanTruncated);
    add("VlanTciWithoutEthertype", eth(kTpid8021q, {0x00, 0x64, 0x08}), DropReason::VlanTruncated);
    add("QinqInnerTagCut", eth(kTpid8021q, {0x00, 0x0a}, {{kTpid8021ad, 0x0064}}),
        DropReason::VlanTruncated);
    add("Vlan9100TpidOnly", eth(kTpidOld, {}), DropReason::VlanTruncated);
    add("VlanThreeTags",
        eth(kEthIpv4, ipv4({}, tcp({})), {{kTpid8021ad, 1}, {kTpid8021q, 2}, {kTpid8021q, 3}}),
        DropReason::VlanTooDeep);
    add("VlanThirdTagWithoutBody", eth(kTpid8021q, {}, {{kTpid8021ad, 1}, {kTpid8021q, 2}}),
        DropReason::VlanTooDeep);

    // ARP
    add("ArpNoBody", eth(kEthArp, {}), DropReason::ArpTruncated);
    add("ArpBody27", eth(kEthArp, cut(arp_body(), 27)), DropReason::ArpTruncated);
    add("ArpInVlanBody27", eth(kEthArp, cut(arp_body(), 27), {{kTpid8021q, 5}}),
        DropReason::ArpTruncated);

    // IPv4 header
    add("Ipv4NoHeader", eth(kEthIpv4, {}), DropReason::Ipv4Truncated);
    add("Ipv4Header19", cut(base, kEth + 19), DropReason::Ipv4Truncated);
    add("Ipv4InQinqHeader19",
        cut(eth(kEthIpv4, ipv4({}, tcp({})), {{kTpid8021ad, 1}, {kTpid8021q, 2}}), 22 + 19),
        DropReason::Ipv4Truncated);
    {
        Ip4Spec ip;
        ip.version = 6;
        add("Ipv4Version6", v4_with(ip), DropReason::Ipv4BadVersion);
        ip.version = 0;
        add("Ipv4Version0", v4_with(ip), DropReason::Ipv4BadVersion);
    }
    {
        Ip4Spec ip;
        ip.ihl = 4;
        add("Ipv4Ihl4", v4_with(ip), DropReason::Ipv4BadIhl);
        ip.ihl = 0;
        add("Ipv4Ihl0", v4_with(ip), DropReason::Ipv4BadIhl);
        ip.ihl = 15;  // 60 bytes of header, but the frame holds 20 + 20
        ip.total = 40;
        add("Ipv4IhlPastFrame", v4_with(ip), DropReason::Ipv4BadIhl);
    }
    {
        Ip4Spec ip;
        ip.total = 19;
        add("Ipv4TotalBelow20", v4_with(ip), DropReason::Ipv4BadTotalLength);
        ip.total = 0;
        add("Ipv4Total0", v4_with(ip), DropReason::Ipv4BadTotalLength);
        ip.options = {1, 1, 1, 0};
        ip.total = 23;  // below the 24-byte header
        add("Ipv4TotalBelowIhl", v4_with(ip), DropReason::Ipv4BadTotalLength);
        ip = {};
        ip.total = 41;  // one past the frame
        add("Ipv4TotalPastFrame", v4_with(ip), DropReason::Ipv4BadTotalLength);
        ip.total = 60;
        add("Ipv4TotalIntoMissingBytes", v4_with(ip), DropReason::Ipv4BadTotalLength);
    }
    // IPv4 options
    add("Ipv4OptLen0", v4_options({7, 0, 0, 0}), DropReason::Ipv4BadOptions);
    add("Ipv4OptLen1", v4_options({0x44, 1, 0, 0}), DropReason::Ipv4BadOptions);
    add("Ipv4OptPastIhl", v4_options({7, 8, 4, 0}), DropReason::Ipv4BadOptions);
    add("Ipv4OptPastIhlAfterValid", v4_options({1, 7, 7, 4, 0, 0, 0, 0, 0x94, 8, 0, 0}),
        DropReason::Ipv4BadOptions);
    add("Ipv4OptKindWithoutLength", v4_options({1, 1, 1, 7}), DropReason::Ipv4BadOptions);
    {
        // The frame ends with the options: reading a length byte would be past the frame.
        Ip4Spec ip;
        ip.proto = 47;
        ip.options = {1, 1, 1, 7};
        add("Ipv4OptKindWithoutLengthAtFrameEnd", v4_with(ip, {}), DropReason::Ipv4BadOptions);
    }
    // IPv4 fragments
    {
        Ip4Spec ip;
        ip.frag = kReservedFrag;
        add("Ipv4ReservedFragBit", v4_with(ip), DropReason::Ipv4BadFragment);
        ip.frag = kReservedFrag | kDf;
        add("Ipv4ReservedFragBitWithDf", v4_with(ip), DropReason::Ipv4BadFragment);
        ip.frag = kReservedFrag | kMf | 10;
        add("Ipv4ReservedFragBitInFragment", v4_with(ip), DropReason::Ipv4BadFragment);
        ip.frag = 0x1fff;  // offset 65528 + 40 data bytes > 65535
        add("Ipv4FragmentOverflow", v4_with(ip, seq_bytes(40)), DropReason::Ipv4BadFragment);
        ip.frag = kMf | 8190;  // offset 65520 + 16 > 65535
        add("Ipv4FragmentOverflowMf", v4_with(ip, seq_bytes(16)), DropReason::Ipv4BadFragment);
    }

    // IPv6 header
    add("Ipv6NoHeader", eth(kEthIpv6, {}), DropReason::Ipv6Truncated);
    add("Ipv6Header39", cut(v6_tcp(), kEth + 39), DropReason::Ipv6Truncated);
    {
        Ip6Spec ip;
        ip.version = 4;
        add("Ipv6Version4", eth(kEthIpv6, ipv6(ip, tcp({}))), DropReason::Ipv6BadVersion);
        ip = {};
        ip.plen = 21;  // TCP header is 20
        add("Ipv6PayloadPastFrame", eth(kEthIpv6, ipv6(ip, tcp({}))),
            DropReason::Ipv6BadPayloadLength);
        ip.plen = 0;  // jumbogram form: not supported
        add("Ipv6PayloadLength0Tcp", eth(kEthIpv6, ipv6(ip, tcp({}))),
            DropReason::Ipv6BadPayloadLength);
        ip.ext = {{kHbh, 8}};
        add("Ipv6JumbogramHbh", eth(kEthIpv6, ipv6(ip, tcp({}))), DropReason::Ipv6BadPayloadLength);
    }
    // IPv6 extension headers
    add("Ipv6HbhNotFirst", v6_raw(kProtoTcp, tcp({}), {{kDestOpts, 8}, {kHbh, 8}}),
        DropReason::Ipv6BadExtHeader);
    add("Ipv6HbhAfterFragment", v6_raw(kProtoTcp, tcp({}), {{kFragHdr, 8, 1}, {kHbh, 8}}),
        DropReason::Ipv6BadExtHeader);
    add("Ipv6HbhTwice", v6_raw(kProtoTcp, tcp({}), {{kHbh, 8}, {kHbh, 8}}),
        DropReason::Ipv6BadExtHeader);
    add("Ipv6DestOptsCut", v6_raw(kDestOpts, {6, 0, 1, 2}), DropReason::Ipv6BadExtHeader);
    add("Ipv6RoutingCut", v6_raw(kRouting, {6, 0, 0, 0, 0, 0, 0}), DropReason::Ipv6BadExtHeader);
    add("Ipv6FragmentHeaderCut", v6_raw(kFragHdr, {6, 0, 0, 0}), DropReason::Ipv6BadExtHeader);
    add("Ipv6AhCut", v6_raw(kAh, {6, 4, 0, 0, 0, 0}), DropReason::Ipv6BadExtHeader);
    {
        // Header length byte says 16 bytes; only 8 are in the datagram.
        Bytes f = v6_raw(kNoNext, {}, {{kDestOpts, 8}});
        add("Ipv6DestOptsLengthPastDatagram", with_byte(f, kEth + kIp6 + 1, 1),
            DropReason::Ipv6BadExtHeader);
        Bytes r = v6_raw(kNoNext, {}, {{kRouting, 16}});
        add("Ipv6RoutingLengthPastDatagram", with_byte(r, kEth + kIp6 + 1, 255),
            DropReason::Ipv6BadExtHeader);
        Bytes a = v6_raw(kNoNext, {}, {{kAh, 12}});  // AH: (1 + 2) * 4 = 12
        add("Ipv6AhLengthPastDatagram", with_byte(a, kEth + kIp6 + 1, 2),
            DropReason::Ipv6BadExtHeader);
        // The datagram ends before the frame does: the ext header must fit the datagram.
        Bytes p = v6_raw(kNoNext, {}, {{kDestOpts, 8}});
        p.resize(p.size() + 8, 0);
        add("Ipv6DestOptsIntoEthPadding", with_byte(p, kEth + kIp6 + 1, 1),
            DropReason::Ipv6BadExtHeader);
    }
    {
        std::vector<Ext> nine(9, Ext{kDestOpts, 8});
        add("Ipv6NineExtHeaders", v6_raw(kProtoTcp, tcp({}), nine),
            DropReason::Ipv6TooManyExtHeaders);
        std::vector<Ext> ah(8, Ext{kDestOpts, 8});
        ah.push_back({kAh, 12});
        add("Ipv6NinthIsAh", v6_raw(kProtoTcp, tcp({}), ah), DropReason::Ipv6TooManyExtHeaders);
        std::vector<Ext> fr(8, Ext{kRouting, 8});
        fr.push_back({kFragHdr, 8, 0});
        add("Ipv6NinthIsFragment", v6_raw(kProtoTcp, tcp({}), fr),
            DropReason::Ipv6TooManyExtHeaders);
    }

    // TCP header
    add("TcpNoHeader", v4_raw(kProtoTcp, {}), DropReason::TcpTruncated);
    add("TcpHeader19", v4_raw(kProtoTcp, cut(tcp({}), 19)), DropReason::TcpTruncated);
    add("TcpHeader19EthPadded", v4_raw(kProtoTcp, cut(tcp({}), 19), 60), DropReason::TcpTruncated);
    add("Tcp6Header19", v6_raw(kProtoTcp, cut(tcp({}), 19)), DropReason::TcpTruncated);
    add("Tcp6AfterExtHeader19", v6_raw(kProtoTcp, cut(tcp({}), 19), {{kDestOpts, 8}}),
        DropReason::TcpTruncated);
    {
        TcpSpec t;
        t.doff = 4;
        add("TcpDataOffset4", v4_tcp(t), DropReason::TcpBadDataOffset);
        t.doff = 0;
        add("TcpDataOffset0", v4_tcp(t), DropReason::TcpBadDataOffset);
        t.doff = 6;  // 24 bytes, the segment has 20
        add("TcpDataOffsetPastDatagram", v4_tcp(t), DropReason::TcpBadDataOffset);
        add("TcpDataOffsetIntoEthPadding", eth(kEthIpv4, ipv4({}, tcp(t)), {}, 60),
            DropReason::TcpBadDataOffset);
        t.doff = 15;
        t.payload = seq_bytes(39);  // 59 bytes of segment < 60
        add("TcpDataOffset15", v4_tcp(t), DropReason::TcpBadDataOffset);
        add("Tcp6DataOffset15", v6_tcp(t), DropReason::TcpBadDataOffset);
    }
    add("TcpSynFin", tcp_flags_frame(kTcpSyn | kTcpFin), DropReason::TcpBadFlags);
    add("TcpSynRst", tcp_flags_frame(kTcpSyn | kTcpRst), DropReason::TcpBadFlags);
    add("TcpSynFinAckPsh", tcp_flags_frame(kTcpSyn | kTcpFin | kTcpAck | kTcpPsh),
        DropReason::TcpBadFlags);
    add("TcpNoFlags", tcp_flags_frame(0), DropReason::TcpBadFlags);
    add("TcpOnlyEceCwr", tcp_flags_frame(0xc0), DropReason::TcpBadFlags);

    // TCP options
    add("TcpOptMssLen3", syn_with_options({2, 3, 5, 1}), DropReason::TcpBadOption);
    add("TcpOptMssLen5", syn_with_options({2, 5, 5, 0xb4, 1, 1, 1, 1}), DropReason::TcpBadOption);
    add("TcpOptMssLen2", syn_with_options({2, 2, 1, 1}), DropReason::TcpBadOption);
    add("TcpOptWscaleLen2", syn_with_options({3, 2, 1, 1}), DropReason::TcpBadOption);
    add("TcpOptWscaleLen4", syn_with_options({3, 4, 7, 1}), DropReason::TcpBadOption);
    add("TcpOptSackOkLen3", syn_with_options({4, 3, 0, 1}), DropReason::TcpBadOption);
    add("TcpOptSackLen2", syn_with_options({5, 2, 1, 1}), DropReason::TcpBadOption);
    add("TcpOptSackLen9", syn_with_options({5, 9, 0, 0, 0, 1, 0, 0, 0, 2, 1, 1}),
        DropReason::TcpBadOption);
    add("TcpOptSackLen12", syn_with_options({5, 12, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0}),
        DropReason::TcpBadOption);
    add("TcpOptTimestampsLen8", syn_with_options({8, 8, 0, 0, 0, 1, 0, 0}),
        DropReason::TcpBadOption);
    add("TcpOptTimestampsLen11", syn_with_options({8, 11, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1}),
        DropReason::TcpBadOption);
    add("TcpOptTfoLen3", syn_with_options({34, 3, 0, 1}), DropReason::TcpBadOption);
    add("TcpOptTfoLen5", syn_with_options({34, 5, 0, 0, 0, 1, 1, 1}), DropReason::TcpBadOption);
    {
        Bytes o = {34, 19};
        o.resize(20, 0xaa);
        add("TcpOptTfoLen19", syn_with_options(o), DropReason::TcpBadOption);
    }
    add("TcpOptExp253Len3", syn_with_options({253, 3, 0xab, 1}), DropReason::TcpBadOption);
    add("TcpOptExp254Len2", syn_with_options({254, 2, 1, 1}), DropReason::TcpBadOption);
    add("TcpOptUnknownLen0", syn_with_options({30, 0, 1, 1}), DropReason::TcpBadOption);
    add("TcpOptUnknownLen1", syn_with_options({30, 1, 1, 1}), DropReason::TcpBadOption);
    add("TcpOptMssLen0", syn_with_options({2, 0, 1, 1}), DropReason::TcpBadOption);
    add("TcpOptPastHeader", syn_with_options({8, 10, 0, 0, 0, 1, 0, 0}), DropReason::TcpBadOption);
    add("TcpOptUnknownPastHeader", syn_with_options({1, 30, 12, 0, 0, 0, 0, 0}),
        DropReason::TcpBadOption);
    // The payload follows, but options end at the data offset.
    add("TcpOptPastHeaderIntoPayload", syn_with_options({1, 8, 10, 0}, seq_bytes(16)),
        DropReason::TcpBadOption);
    add("TcpOptKindWithoutLength", syn_with_options({1, 1, 1, 2}), DropReason::TcpBadOption);
    add("TcpOptBadAfterValid", syn_with_options({2, 4, 5, 0xb4, 4, 2, 3, 2}),
        DropReason::TcpBadOption);
    {
        TcpSpec t;
        t.options = {2, 3, 5, 1};
        add("Tcp6OptMssLen3", v6_tcp(t), DropReason::TcpBadOption);
    }

    // UDP
    add("UdpNoHeader", v4_raw(kProtoUdp, {}), DropReason::UdpTruncated);
    add("UdpHeader7", v4_raw(kProtoUdp, cut(udp({}), 7)), DropReason::UdpTruncated);
    add("UdpHeader7EthPadded", v4_raw(kProtoUdp, cut(udp({}), 7), 60), DropReason::UdpTruncated);
    add("Udp6Header7", v6_raw(kProtoUdp, cut(udp({}), 7)), DropReason::UdpTruncated);
    {
        UdpSpec u;
        u.payload = seq_bytes(8);
        u.len = 7;
        add("UdpLength7", v4_udp(u), DropReason::UdpBadLength);
        u.len = 0;
        add("UdpLength0", v4_udp(u), DropReason::UdpBadLength);
        u.len = 17;  // datagram holds 16
        add("UdpLengthPastDatagram", v4_udp(u), DropReason::UdpBadLength);
        add("Udp6LengthPastDatagram", v6_udp(u), DropReason::UdpBadLength);
        add("UdpLengthIntoEthPadding", eth(kEthIpv4, ipv4({.proto = kProtoUdp}, udp(u)), {}, 64),
            DropReason::UdpBadLength);
        Ip4Spec first;
        first.frag = kMf;  // a first fragment still needs a sane length
        u.len = 4;
        add("UdpLength4InFirstFragment", v4_udp(u, first), DropReason::UdpBadLength);
    }

    // ICMP / ICMPv6
    add("IcmpNoHeader", v4_raw(kProtoIcmp, {}), DropReason::IcmpTruncated);
    add("IcmpHeader3", v4_raw(kProtoIcmp, cut(icmp(3, 1), 3)), DropReason::IcmpTruncated);
    add("IcmpEchoRequest7", v4_raw(kProtoIcmp, cut(icmp(8, 0, 7), 7)), DropReason::IcmpTruncated);
    add("IcmpEchoReply7", v4_raw(kProtoIcmp, cut(icmp(0, 0, 7), 7)), DropReason::IcmpTruncated);
    add("Icmp6Header3", v6_raw(kProtoIcmp6, cut(icmp(1, 4), 3)), DropReason::IcmpTruncated);
    add("Icmp6EchoRequest7", v6_raw(kProtoIcmp6, cut(icmp(128, 0, 7), 7)),
        DropReason::IcmpTruncated);
    add("Icmp6EchoReply7", v6_raw(kProtoIcmp6, cut(icmp(129, 0, 7), 7)), DropReason::IcmpTruncated);
    return c;
}

class ParseDrop : public ::testing::TestWithParam<DropCase> {};

TEST_P(ParseDrop, ReturnsReason) {
    const DropCase &c = GetParam();
    Parsed p = parse(c.frame);
    EXPECT_EQ(p.r, c.want);
    EXPECT_EQ(p.v.frame_len, c.frame.size());
}

INSTANTIATE_TEST_SUITE_P(Malformed, ParseDrop, ::testing::ValuesIn(drop_cases()),
                         [](const ::testing::TestParamInfo<DropCase> &i) { return i.param.name; });

// Every reason the parser can return is exercised by the table above.
TEST(ParseDropTable, CoversEveryParserReason) {
    std::set<DropReason> seen;
    for (const DropCase &c : drop_cases()) seen.insert(c.want);
    for (size_t i = 0; i < kDropReasonCount; ++i) {
        auto r = static_cast<DropReason>(i);
        if (!is_parser_reason(r)) continue;
        EXPECT_TRUE(seen.count(r)) << "no malformed-frame case for " << drop_reason_name(r);
    }
}

TEST(DropReasonName, NamesEveryReason) {
    EXPECT_STREQ(drop_reason_name(DropReason::None), "none");
    EXPECT_STREQ(drop_reason_name(DropReason::TcpBadOption), "tcp-bad-option");
    EXPECT_STREQ(drop_reason_name(DropReason::TxFull), "tx-full");
    EXPECT_STREQ(drop_reason_name(DropReason::Count), "unknown");
    std::set<std::string> names;
    for (size_t i = 0; i < kDropReasonCount; ++i) {
        const char *n = drop_reason_name(static_cast<DropReason>(i));
        ASSERT_NE(n, nullptr);
        EXPECT_STRNE(n, "unknown");
        names.insert(n);
    }
    EXPECT_EQ(names.size(), kDropReasonCount) << "two reasons share a counter name";
}

// ---- well-formed frames ---------------------------------------------------------------------

void expect_v4_addrs(const PacketView &v, V4 src = kSrc4, V4 dst = kDst4) {
    IpAddr s{}, d{};
    std::memcpy(s.b, src.data(), 4);
    std::memcpy(d.b, dst.data(), 4);
    EXPECT_TRUE(v.src == s);
    EXPECT_TRUE(v.dst == d);
}

void expect_v6_addrs(const PacketView &v) {
    IpAddr s{}, d{};
    std::memcpy(s.b, kSrc6.data(), 16);
    std::memcpy(d.b, kDst6.data(), 16);
    EXPECT_TRUE(v.src == s);
    EXPECT_TRUE(v.dst == d);
}

// Parses `f`, expects success and a consistent view.
PacketView ok(const Bytes &f) {
    Parsed p = parse(f);
    EXPECT_EQ(p.r, DropReason::None);
    const char *bad = check_view(f.data(), static_cast<uint32_t>(f.size()), p.v);
    EXPECT_EQ(bad, nullptr) << bad;
    return p.v;
}

TEST(ParseIpv4, TcpSynAllFields) {
    TcpSpec t;
    t.sport = 40001;
    t.dport = 8443;
    t.seq = 0xdeadbeef;
    t.ack = 0x01020304;
    t.flags = kTcpSyn;
    t.options = linux_syn_options();
    Ip4Spec ip;
    ip.ttl = 61;
    Bytes f = v4_tcp(t, ip);
    ASSERT_EQ(f.size(), kEth + kIp4 + 40);
    PacketView v = ok(f);
    EXPECT_EQ(v.frame_len, f.size());
    EXPECT_EQ(v.ethertype, kEthIpv4);
    EXPECT_EQ(v.vlan_count, 0);
    EXPECT_EQ(v.l3, L3::Ipv4);
    EXPECT_EQ(v.family, 4);
    EXPECT_TRUE(v.is_ip());
    EXPECT_TRUE(v.has_l4());
    EXPECT_EQ(v.l3_off, kEth);
    EXPECT_EQ(v.l4_off, kEth + kIp4);
    EXPECT_EQ(v.ip_end, f.size());
    EXPECT_EQ(v.proto, kProtoTcp);
    EXPECT_EQ(v.ttl, 61);
    EXPECT_FALSE(v.fragment);
    EXPECT_FALSE(v.first_fragment);
    expect_v4_addrs(v);
    EXPECT_EQ(v.sport, 40001);
    EXPECT_EQ(v.dport, 8443);
    EXPECT_EQ(v.tcp_flags, kTcpSyn);
    EXPECT_EQ(v.seq, 0xdeadbeefu);
    EXPECT_EQ(v.ack, 0x01020304u);
    EXPECT_EQ(v.tcp_hdr_len, 40);
    EXPECT_EQ(v.opt.mss, 1460);
    EXPECT_EQ(v.opt.wscale, 7);
    EXPECT_TRUE(v.opt.sack_ok);
    EXPECT_TRUE(v.opt.timestamps);
    EXPECT_FALSE(v.opt.tfo);
    EXPECT_EQ(v.opt.exp_off, 0);
    EXPECT_EQ(v.opt.exp_len, 0);
    EXPECT_EQ(v.payload_off, kEth + kIp4 + 40);
    EXPECT_EQ(v.payload_len, 0u);
}

TEST(ParseIpv4, TcpWithoutOptionsReportsAbsentOptions) {
    TcpSpec t;
    t.flags = kTcpAck | kTcpPsh;
    t.payload = seq_bytes(100);
    PacketView v = ok(v4_tcp(t));
    EXPECT_EQ(v.tcp_flags, kTcpAck | kTcpPsh);
    EXPECT_EQ(v.tcp_hdr_len, 20);
    EXPECT_EQ(v.opt.mss, 0);
    EXPECT_EQ(v.opt.wscale, 0xff);
    EXPECT_FALSE(v.opt.sack_ok);
    EXPECT_FALSE(v.opt.timestamps);
    EXPECT_FALSE(v.opt.tfo);
    EXPECT_EQ(v.payload_off, kEth + kIp4 + 20);
    EXPECT_EQ(v.payload_len, 100u);
}

TEST(ParseIpv4, TcpFlagsKeepUrgAndDropEceCwr) {
    PacketView v = ok(tcp_flags_frame(0xc0 | kTcpAck | 0x20));
    EXPECT_EQ(v.tcp_flags, kTcpAck | 0x20);
    // SYN-ACK, FIN-ACK and RST-ACK are valid combinations.
    EXPECT_EQ(ok(tcp_flags_frame(kTcpSyn | kTcpAck)).tcp_flags, kTcpSyn | kTcpAck);
    EXPECT_EQ(ok(tcp_flags_frame(kTcpFin | kTcpAck)).tcp_flags, kTcpFin | kTcpAck);
    EXPECT_EQ(ok(tcp_flags_frame(kTcpRst | kTcpAck)).tcp_flags, kTcpRst | kTcpAck);
    EXPECT_EQ(ok(tcp_flags_frame(kTcpRst)).tcp_flags, kTcpRst);
}

TEST(ParseTcpOptions, SackBlocksUnknownKindsAndEol) {
    // NOP, NOP, SACK with one block, an unknown kind with a valid length, then EOL followed by
    // bytes that would be an invalid MSS: after EOL everything is padding.
    TcpSpec t;
    t.flags = kTcpAck;
    t.options = {1, 1, 5, 10, 0, 0, 0, 1, 0, 0, 0, 2, 30, 4, 0xaa, 0xbb, 0, 2, 1, 9};
    PacketView v = ok(v4_tcp(t));
    EXPECT_EQ(v.tcp_hdr_len, 40);
    EXPECT_EQ(v.opt.mss, 0) << "the MSS-like bytes after EOL must not be read";
    // Three and four SACK blocks (26 and 34 bytes), NOP-padded.
    for (uint8_t len : {26, 34}) {
        Bytes o = {1, 1, 5, len};
        o.resize(2 + len, 0x11);
        t.options = o;
        v = ok(v4_tcp(t));
        EXPECT_EQ(v.tcp_hdr_len, 20 + o.size()) << int(len);
        EXPECT_EQ(v.payload_len, 0u);
    }
}

TEST(ParseTcpOptions, FastOpenForms) {
    // RFC 7413 cookie request (length 2)
    EXPECT_TRUE(ok(syn_with_options({34, 2, 1, 1})).opt.tfo);
    // RFC 7413 with an 8-byte cookie, and the 4- and 16-byte extremes
    EXPECT_TRUE(ok(syn_with_options({34, 10, 1, 2, 3, 4, 5, 6, 7, 8, 1, 1})).opt.tfo);
    EXPECT_TRUE(ok(syn_with_options({34, 6, 1, 2, 3, 4, 1, 1})).opt.tfo);
    Bytes c16 = {34, 18};
    c16.resize(18, 0x5a);
    c16.push_back(1), c16.push_back(1);
    EXPECT_TRUE(ok(syn_with_options(c16)).opt.tfo);
    // Linux's experimental form: kind 254, ExID 0xF989; it is TFO and not "the" exp option.
    PacketView v = ok(syn_with_options({254, 4, 0xf9, 0x89}));
    EXPECT_TRUE(v.opt.tfo);
    EXPECT_EQ(v.opt.exp_off, 0);
    EXPECT_EQ(v.opt.exp_len, 0);
    v = ok(syn_with_options({254, 12, 0xf9, 0x89, 1, 2, 3, 4, 5, 6, 7, 8}));
    EXPECT_TRUE(v.opt.tfo);
    EXPECT_EQ(v.opt.exp_off, 0);
    // Same ExID under kind 253 is an ordinary experimental option.
    v = ok(syn_with_options({253, 4, 0xf9, 0x89}));
    EXPECT_FALSE(v.opt.tfo);
    EXPECT_EQ(v.opt.exp_off, kEth + kIp4 + 20);
}

TEST(ParseTcpOptions, ExperimentalOptionOffsetAndLength) {
    // NOP, NOP, MSS, then kind 253 with ExID 0x5357 and 4 data bytes, then a second one.
    Bytes o = {1, 1, 2, 4, 0x05, 0xb4, 253, 8, 0x53, 0x57, 1, 2, 3, 4, 254, 4, 0x12, 0x34};
    PacketView v = ok(syn_with_options(o));
    EXPECT_EQ(v.opt.mss, 1460);
    EXPECT_EQ(v.opt.exp_off, kEth + kIp4 + 20 + 6) << "offset of the first exp option's kind";
    EXPECT_EQ(v.opt.exp_len, 8);
    EXPECT_FALSE(v.opt.tfo);
    // The TFO form first does not hide a later RFC 6994 option.
    v = ok(syn_with_options({254, 4, 0xf9, 0x89, 254, 6, 0xab, 0xcd, 9, 9}));
    EXPECT_TRUE(v.opt.tfo);
    EXPECT_EQ(v.opt.exp_off, kEth + kIp4 + 20 + 4);
    EXPECT_EQ(v.opt.exp_len, 6);
    // In IPv6 with an extension header the offset is still from the frame start.
    TcpSpec t;
    t.options = {253, 4, 0x53, 0x57};
    Ip6Spec ip;
    ip.ext = {{kDestOpts, 16}};
    v = ok(v6_tcp(t, ip));
    EXPECT_EQ(v.opt.exp_off, kEth + kIp6 + 16 + 20);
    EXPECT_EQ(v.opt.exp_len, 4);
}

TEST(ParseTcpOptions, OptionEndingExactlyAtDataOffset) {
    // 40 bytes of options: the maximum. Timestamps end on the last byte.
    Bytes o(30, 1);
    Bytes ts = {8, 10, 0, 0, 0, 1, 0, 0, 0, 2};
    o.insert(o.end(), ts.begin(), ts.end());
    PacketView v = ok(syn_with_options(o));
    EXPECT_EQ(v.tcp_hdr_len, 60);
    EXPECT_TRUE(v.opt.timestamps);
}

TEST(ParseIpv4, EthernetPaddingAfterDatagramIsIgnored) {
    TcpSpec t;
    t.flags = kTcpAck;
    Bytes f = eth(kEthIpv4, ipv4({}, tcp(t)), {}, 60);
    ASSERT_EQ(f.size(), 60u);
    PacketView v = ok(f);
    EXPECT_EQ(v.frame_len, 60u);
    EXPECT_EQ(v.ip_end, kEth + kIp4 + 20);
    EXPECT_EQ(v.payload_off, kEth + kIp4 + 20);
    EXPECT_EQ(v.payload_len, 0u) << "padding is not TCP payload";

    UdpSpec u;
    u.payload = {1, 2};
    Bytes g = eth(kEthIpv4, ipv4({.proto = kProtoUdp}, udp(u)), {}, 60);
    v = ok(g);
    EXPECT_EQ(v.ip_end, kEth + kIp4 + 10);
    EXPECT_EQ(v.payload_len, 2u);
}

TEST(ParseIpv4, OptionsAreSkipped) {
    // NOP, Record Route (len 7, pointer 4, one slot), EOL, then padding
    Ip4Spec ip;
    ip.options = {1, 7, 7, 4, 0, 0, 0, 0, 0};
    TcpSpec t;
    t.sport = 1234;
    PacketView v = ok(v4_tcp(t, ip));
    EXPECT_EQ(v.l4_off, kEth + 32);
    EXPECT_EQ(v.sport, 1234);
    // 40 bytes of options (IHL 15), router alert + NOPs
    ip.options = Bytes(36, 1);
    Bytes ra = {0x94, 4, 0, 0};
    ip.options.insert(ip.options.end(), ra.begin(), ra.end());
    v = ok(v4_tcp(t, ip));
    EXPECT_EQ(v.l4_off, kEth + 60);
    EXPECT_EQ(v.sport, 1234);
}

TEST(ParseIpv4, DontFragmentIsNotAFragment) {
    Ip4Spec ip;
    ip.frag = kDf;
    PacketView v = ok(v4_tcp({}, ip));
    EXPECT_FALSE(v.fragment);
    EXPECT_FALSE(v.first_fragment);
    EXPECT_TRUE(v.has_l4());
}

TEST(ParseIpv4, FirstFragmentHasPorts) {
    Ip4Spec ip;
    ip.frag = kMf;
    UdpSpec u;
    u.sport = 1111;
    u.dport = 2222;
    u.payload = seq_bytes(32);
    u.len = 8 + 3000;  // the datagram continues in later fragments
    PacketView v = ok(v4_udp(u, ip));
    EXPECT_TRUE(v.fragment);
    EXPECT_TRUE(v.first_fragment);
    EXPECT_TRUE(v.has_l4());
    EXPECT_EQ(v.sport, 1111);
    EXPECT_EQ(v.dport, 2222);
    EXPECT_EQ(v.udp_len, 3008);
    EXPECT_EQ(v.payload_off, kEth + kIp4 + 8);
    EXPECT_EQ(v.payload_len, 32u) << "only what this fragment carries";
}

TEST(ParseIpv4, LaterFragmentHasNoL4) {
    Ip4Spec ip;
    ip.frag = kMf | 185;  // offset 1480
    // Bytes that would fail as a TCP header (data offset 0) are not looked at.
    PacketView v = ok(v4_with(ip, Bytes(24, 0)));
    EXPECT_TRUE(v.fragment);
    EXPECT_FALSE(v.first_fragment);
    EXPECT_FALSE(v.has_l4());
    EXPECT_EQ(v.l4_off, 0);
    EXPECT_EQ(v.proto, kProtoTcp);
    EXPECT_EQ(v.sport, 0);
    EXPECT_EQ(v.dport, 0);
    EXPECT_EQ(v.ip_end, kEth + kIp4 + 24);
    expect_v4_addrs(v);
    // Last fragment (MF clear), and a short one at the highest offset that still fits.
    ip.frag = 185;
    v = ok(v4_with(ip, Bytes(3, 0)));
    EXPECT_TRUE(v.fragment);
    EXPECT_FALSE(v.first_fragment);
    ip.frag = 8000;  // 64000 + 100 bytes
    v = ok(v4_with(ip, Bytes(100, 0)));
    EXPECT_TRUE(v.fragment);
    EXPECT_FALSE(v.has_l4());
}

TEST(ParseIpv4, OpaqueProtocolHasNoL4) {
    PacketView v = ok(v4_raw(47, seq_bytes(12)));  // GRE
    EXPECT_EQ(v.proto, 47);
    EXPECT_FALSE(v.has_l4());
    EXPECT_EQ(v.payload_len, 0u);
    v = ok(v4_raw(kEsp, {}));
    EXPECT_EQ(v.proto, kEsp);
    EXPECT_FALSE(v.has_l4());
}

TEST(ParseUdp, PortsLengthAndPayload) {
    UdpSpec u;
    u.sport = 5353;
    u.dport = 53;
    u.payload = seq_bytes(29);
    PacketView v = ok(v4_udp(u));
    EXPECT_EQ(v.proto, kProtoUdp);
    EXPECT_EQ(v.sport, 5353);
    EXPECT_EQ(v.dport, 53);
    EXPECT_EQ(v.udp_len, 37);
    EXPECT_EQ(v.payload_off, kEth + kIp4 + 8);
    EXPECT_EQ(v.payload_len, 29u);
    // Header only
    v = ok(v4_udp({}));
    EXPECT_EQ(v.udp_len, 8);
    EXPECT_EQ(v.payload_len, 0u);
}

TEST(ParseUdp, SurplusAreaAfterUdpLengthIsAllowed) {
    UdpSpec u;
    u.payload = seq_bytes(10);
    u.surplus = {1, 1, 0, 0, 0, 0};  // RFC 9868 options
    Bytes f = v4_udp(u);
    PacketView v = ok(f);
    EXPECT_EQ(v.udp_len, 18);
    EXPECT_EQ(v.ip_end, f.size());
    EXPECT_EQ(v.payload_off, kEth + kIp4 + 8);
    EXPECT_EQ(v.payload_len, 10u) << "the surplus area is not UDP payload";
    v = ok(v6_udp(u));
    EXPECT_EQ(v.payload_len, 10u);
    EXPECT_EQ(v.ip_end, kEth + kIp6 + 24);
}

TEST(ParseIcmp, EchoIdentifierInBothPorts) {
    PacketView v = ok(v4_raw(kProtoIcmp, icmp(8, 0, 0xbeef, 3, seq_bytes(56))));
    EXPECT_EQ(v.proto, kProtoIcmp);
    EXPECT_EQ(v.icmp_type, 8);
    EXPECT_EQ(v.icmp_code, 0);
    EXPECT_EQ(v.sport, 0xbeef);
    EXPECT_EQ(v.dport, 0xbeef);
    EXPECT_EQ(v.payload_off, kEth + kIp4 + 4);
    EXPECT_EQ(v.payload_len, 60u);
    v = ok(v4_raw(kProtoIcmp, icmp(0, 0, 0x0102, 3)));  // reply
    EXPECT_EQ(v.sport, 0x0102);
    EXPECT_EQ(v.dport, 0x0102);
}

TEST(ParseIcmp, NonEchoHasNoPorts) {
    // Destination unreachable with only its 4-byte header is complete.
    PacketView v = ok(v4_raw(kProtoIcmp, cut(icmp(3, 3, 0x1234), 4)));
    EXPECT_EQ(v.icmp_type, 3);
    EXPECT_EQ(v.icmp_code, 3);
    EXPECT_EQ(v.sport, 0);
    EXPECT_EQ(v.dport, 0);
    EXPECT_EQ(v.payload_len, 0u);
}

TEST(ParseIcmp, Icmp6Echo) {
    PacketView v = ok(v6_raw(kProtoIcmp6, icmp(128, 0, 0x4242, 1, seq_bytes(8))));
    EXPECT_EQ(v.family, 6);
    EXPECT_EQ(v.proto, kProtoIcmp6);
    EXPECT_EQ(v.icmp_type, 128);
    EXPECT_EQ(v.sport, 0x4242);
    EXPECT_EQ(v.dport, 0x4242);
    v = ok(v6_raw(kProtoIcmp6, icmp(129, 0, 0x4343)));
    EXPECT_EQ(v.sport, 0x4343);
    v = ok(v6_raw(kProtoIcmp6, cut(icmp(135, 0, 0x4444), 4)));  // neighbour solicitation
    EXPECT_EQ(v.icmp_type, 135);
    EXPECT_EQ(v.sport, 0);
}

TEST(ParseL2, SingleVlanTci) {
    TcpSpec t;
    t.sport = 999;
    Bytes f = eth(kEthIpv4, ipv4({}, tcp(t)), {{kTpid8021q, 0xa064}});  // PCP 5, VID 100
    PacketView v = ok(f);
    EXPECT_EQ(v.vlan_count, 1);
    EXPECT_EQ(v.vlan_tci[0], 0xa064);
    EXPECT_EQ(v.ethertype, kEthIpv4);
    EXPECT_EQ(v.l3_off, kEth + 4);
    EXPECT_EQ(v.l4_off, kEth + 4 + kIp4);
    EXPECT_EQ(v.sport, 999);
}

TEST(ParseL2, QinqBothTcis) {
    for (uint16_t outer : {kTpid8021ad, kTpidOld, kTpid8021q}) {
        Bytes f = eth(kEthIpv6, ipv6({.proto = kProtoUdp}, udp({})),
                      {{outer, 0x0fff}, {kTpid8021q, 0x2001}});
        PacketView v = ok(f);
        EXPECT_EQ(v.vlan_count, 2);
        EXPECT_EQ(v.vlan_tci[0], 0x0fff);
        EXPECT_EQ(v.vlan_tci[1], 0x2001);
        EXPECT_EQ(v.ethertype, kEthIpv6);
        EXPECT_EQ(v.l3_off, kEth + 8);
        EXPECT_EQ(v.l4_off, kEth + 8 + kIp6);
        EXPECT_EQ(v.dport, 53);
    }
}

TEST(ParseL2, Arp) {
    PacketView v = ok(eth(kEthArp, arp_body(), {}, 60));
    EXPECT_EQ(v.l3, L3::Arp);
    EXPECT_EQ(v.ethertype, kEthArp);
    EXPECT_EQ(v.family, 0);
    EXPECT_FALSE(v.is_ip());
    EXPECT_FALSE(v.has_l4());
    v = ok(eth(kEthArp, arp_body(), {{kTpid8021q, 7}}));
    EXPECT_EQ(v.l3, L3::Arp);
    EXPECT_EQ(v.vlan_tci[0], 7);
    EXPECT_EQ(v.l3_off, kEth + 4);
}

TEST(ParseL2, OtherEthertypesPassUntouched) {
    PacketView v = ok(eth(0x88cc, seq_bytes(30)));  // LLDP
    EXPECT_EQ(v.l3, L3::Other);
    EXPECT_EQ(v.ethertype, 0x88cc);
    EXPECT_FALSE(v.is_ip());
    // A bare Ethernet header with nothing after it is a complete frame of an unknown type.
    v = ok(eth(0x88b5, {}));
    EXPECT_EQ(v.l3, L3::Other);
    EXPECT_EQ(v.l3_off, kEth);
}

TEST(ParseIpv6, TcpAllFields) {
    TcpSpec t;
    t.sport = 50000;
    t.dport = 22;
    t.seq = 7;
    t.ack = 9;
    t.flags = kTcpSyn | kTcpAck;
    t.options = {2, 4, 0x05, 0xa0, 1, 3, 3, 14};
    Ip6Spec ip;
    ip.hlim = 255;
    Bytes f = v6_tcp(t, ip);
    PacketView v = ok(f);
    EXPECT_EQ(v.ethertype, kEthIpv6);
    EXPECT_EQ(v.l3, L3::Ipv6);
    EXPECT_EQ(v.family, 6);
    EXPECT_EQ(v.l3_off, kEth);
    EXPECT_EQ(v.l4_off, kEth + kIp6);
    EXPECT_EQ(v.ip_end, f.size());
    EXPECT_EQ(v.ttl, 255);
    EXPECT_EQ(v.proto, kProtoTcp);
    expect_v6_addrs(v);
    EXPECT_EQ(v.sport, 50000);
    EXPECT_EQ(v.dport, 22);
    EXPECT_EQ(v.seq, 7u);
    EXPECT_EQ(v.ack, 9u);
    EXPECT_EQ(v.tcp_flags, kTcpSyn | kTcpAck);
    EXPECT_EQ(v.opt.mss, 1440);
    EXPECT_EQ(v.opt.wscale, 14);
    EXPECT_FALSE(v.fragment);
}

TEST(ParseIpv6, ExtensionHeadersThenTcp) {
    TcpSpec t;
    t.dport = 8080;
    t.payload = seq_bytes(5);
    Ip6Spec ip;
    ip.ext = {{kHbh, 8}, {kRouting, 24}, {kAh, 16}, {kDestOpts, 8}};
    Bytes f = v6_tcp(t, ip);
    PacketView v = ok(f);
    EXPECT_EQ(v.proto, kProtoTcp);
    EXPECT_EQ(v.l4_off, kEth + kIp6 + 56);
    EXPECT_EQ(v.dport, 8080);
    EXPECT_EQ(v.payload_off, kEth + kIp6 + 56 + 20);
    EXPECT_EQ(v.payload_len, 5u);
    // Eight extension headers is the limit and still parses.
    ip.ext = std::vector<Ext>(8, Ext{kDestOpts, 8});
    ip.ext[0] = {kHbh, 8};
    v = ok(v6_tcp(t, ip));
    EXPECT_EQ(v.l4_off, kEth + kIp6 + 64);
    EXPECT_EQ(v.dport, 8080);
}

TEST(ParseIpv6, FirstFragmentHasPorts) {
    UdpSpec u;
    u.sport = 4000;
    u.dport = 4001;
    u.payload = seq_bytes(16);
    u.len = 2000;  // longer than this piece
    Ip6Spec ip;
    ip.ext = {{kFragHdr, 8, 0x0001}};  // offset 0, M=1
    PacketView v = ok(v6_udp(u, ip));
    EXPECT_TRUE(v.fragment);
    EXPECT_TRUE(v.first_fragment);
    EXPECT_EQ(v.proto, kProtoUdp);
    EXPECT_EQ(v.l4_off, kEth + kIp6 + 8);
    EXPECT_EQ(v.sport, 4000);
    EXPECT_EQ(v.dport, 4001);
    EXPECT_EQ(v.payload_len, 16u);
}

TEST(ParseIpv6, LaterFragmentHasNoL4) {
    Ip6Spec ip;
    ip.proto = kProtoTcp;
    ip.ext = {{kDestOpts, 8}, {kFragHdr, 8, 1448 | 1}};  // offset 1448, M=1
    PacketView v = ok(eth(kEthIpv6, ipv6(ip, Bytes(10, 0))));
    EXPECT_TRUE(v.fragment);
    EXPECT_FALSE(v.first_fragment);
    EXPECT_FALSE(v.has_l4());
    EXPECT_EQ(v.proto, kProtoTcp);
    EXPECT_EQ(v.sport, 0);
    expect_v6_addrs(v);
}

TEST(ParseIpv6, AtomicFragmentIsNotAFragment) {
    Ip6Spec ip;
    ip.ext = {{kFragHdr, 8, 0}};
    TcpSpec t;
    t.sport = 4242;
    PacketView v = ok(v6_tcp(t, ip));
    EXPECT_FALSE(v.fragment);
    EXPECT_FALSE(v.first_fragment);
    EXPECT_EQ(v.sport, 4242);
    // ...so its UDP length is checked like any unfragmented datagram's.
    UdpSpec u;
    u.len = 9;
    EXPECT_EQ(parse(v6_udp(u, ip)).r, DropReason::UdpBadLength);
}

TEST(ParseIpv6, NoNextHeaderAndOpaqueUpperLayer) {
    Ip6Spec ip;
    ip.proto = kNoNext;
    PacketView v = ok(eth(kEthIpv6, ipv6(ip, {})));  // payload length 0 is fine with NH 59
    EXPECT_EQ(v.proto, kNoNext);
    EXPECT_FALSE(v.has_l4());
    EXPECT_EQ(v.ip_end, kEth + kIp6);
    ip.ext = {{kDestOpts, 8}};
    v = ok(eth(kEthIpv6, ipv6(ip, {})));
    EXPECT_EQ(v.proto, kNoNext);
    EXPECT_FALSE(v.has_l4());
    v = ok(v6_raw(kEsp, seq_bytes(16)));
    EXPECT_EQ(v.proto, kEsp);
    EXPECT_FALSE(v.has_l4());
}

// ---- properties -----------------------------------------------------------------------------

// Valid frames covering every layer the parser reads, each with the end of its required headers.
struct Sample {
    const char *name;
    Bytes frame;
};

std::vector<Sample> samples() {
    std::vector<Sample> s;
    TcpSpec syn;
    syn.options = linux_syn_options();
    syn.payload = seq_bytes(7);
    s.push_back({"v4_tcp_syn", v4_tcp(syn)});
    Ip4Spec opts;
    opts.options = {1, 7, 7, 4, 0, 0, 0, 0, 0};
    s.push_back({"v4_options_udp", v4_udp({.payload = seq_bytes(9)}, opts)});
    Ip6Spec ext;
    ext.ext = {{kHbh, 8}, {kRouting, 24}, {kAh, 16}, {kFragHdr, 8, 1}, {kDestOpts, 8}};
    TcpSpec exp;
    exp.flags = kTcpAck;
    exp.options = {1, 1, 253, 6, 0x53, 0x57, 9, 9, 254, 4, 0xf9, 0x89};
    s.push_back({"v6_ext_tcp", v6_tcp(exp, ext)});
    s.push_back({"qinq_v4_udp", eth(kEthIpv4, ipv4({.proto = kProtoUdp}, udp({})),
                                    {{kTpid8021ad, 1}, {kTpid8021q, 2}})});
    s.push_back({"vlan_v6_icmp6_echo",
                 eth(kEthIpv6, ipv6({.proto = kProtoIcmp6}, icmp(128, 0, 1, 1, seq_bytes(4))),
                     {{kTpid8021q, 3}})});
    s.push_back({"v4_icmp_echo_padded",
                 eth(kEthIpv4, ipv4({.proto = kProtoIcmp}, icmp(8, 0, 1, 1)), {}, 60)});
    s.push_back({"arp", eth(kEthArp, arp_body())});
    s.push_back({"v4_udp_surplus", v4_udp({.payload = seq_bytes(3), .surplus = {1, 0, 0, 0}})});
    return s;
}

// How far the parser must see: the end of the IP datagram, or of the ARP body.
uint32_t required_end(const PacketView &v) {
    if (v.l3 == L3::Arp) return v.l3_off + 28u;
    return v.is_ip() ? v.ip_end : v.l3_off;
}

TEST(ParseProperty, EveryTruncationIsDropped) {
    for (const Sample &s : samples()) {
        SCOPED_TRACE(s.name);
        const Parsed full = parse(s.frame);
        ASSERT_EQ(full.r, DropReason::None);
        const uint32_t need = required_end(full.v);
        ASSERT_GT(need, kEth);
        for (uint32_t n = 0; n < s.frame.size(); ++n) {
            Parsed p = parse(cut(s.frame, n));
            if (n < need) {
                EXPECT_TRUE(is_parser_reason(p.r))
                    << "cut at " << n << " of " << need << " gave " << drop_reason_name(p.r);
            } else {
                // Only Ethernet padding is gone: same result.
                EXPECT_EQ(p.r, DropReason::None) << "cut at " << n;
                EXPECT_EQ(p.v.payload_len, full.v.payload_len);
                EXPECT_EQ(p.v.l4_off, full.v.l4_off);
            }
        }
    }
}

TEST(ParseProperty, SingleByteMutationsStayConsistent) {
    // Every byte of every sample set to a spread of values: the parser either drops the frame with
    // a parser reason or returns a view that check_view() accepts. Runs ~100k parses.
    const uint8_t values[] = {0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x08, 0x0a, 0x0f, 0x10,
                              0x11, 0x22, 0x2c, 0x33, 0x3a, 0x3b, 0x44, 0x45, 0x4f, 0x5f, 0x60,
                              0x7f, 0x80, 0x81, 0x86, 0x88, 0xa8, 0xdd, 0xfd, 0xfe, 0xff};
    size_t accepted = 0, dropped = 0;
    for (const Sample &s : samples()) {
        for (size_t i = 0; i < s.frame.size(); ++i) {
            for (uint8_t val : values) {
                Bytes f = with_byte(s.frame, i, val);
                Parsed p = parse(f);
                if (p.r == DropReason::None) {
                    ++accepted;
                    const char *bad = check_view(f.data(), static_cast<uint32_t>(f.size()), p.v);
                    ASSERT_EQ(bad, nullptr)
                        << s.name << " byte " << i << " = " << int(val) << ": " << bad;
                } else {
                    ++dropped;
                    ASSERT_TRUE(is_parser_reason(p.r)) << drop_reason_name(p.r);
                }
            }
        }
    }
    EXPECT_GT(accepted, 0u);
    EXPECT_GT(dropped, 0u);
}

// parse_packet() takes a shortcut for plain IPv4/TCP; it must agree with the general parser on
// every frame: the samples, every truncation and byte mutation of them, and variations around the
// shortcut's own conditions (options, DF/MF, lengths, flags, padding).
void expect_same_view(const PacketView &a, const PacketView &b, const std::string &what) {
    EXPECT_EQ(a.frame_len, b.frame_len) << what;
    EXPECT_EQ(a.ethertype, b.ethertype) << what;
    EXPECT_EQ(a.vlan_count, b.vlan_count) << what;
    EXPECT_EQ(a.vlan_tci[0], b.vlan_tci[0]) << what;
    EXPECT_EQ(a.vlan_tci[1], b.vlan_tci[1]) << what;
    EXPECT_EQ(a.l3, b.l3) << what;
    EXPECT_EQ(a.family, b.family) << what;
    EXPECT_EQ(a.l3_off, b.l3_off) << what;
    EXPECT_EQ(a.l4_off, b.l4_off) << what;
    EXPECT_EQ(a.ip_end, b.ip_end) << what;
    EXPECT_EQ(a.proto, b.proto) << what;
    EXPECT_EQ(a.ttl, b.ttl) << what;
    EXPECT_EQ(a.fragment, b.fragment) << what;
    EXPECT_EQ(a.first_fragment, b.first_fragment) << what;
    EXPECT_TRUE(a.src == b.src) << what;
    EXPECT_TRUE(a.dst == b.dst) << what;
    EXPECT_EQ(a.sport, b.sport) << what;
    EXPECT_EQ(a.dport, b.dport) << what;
    EXPECT_EQ(a.tcp_flags, b.tcp_flags) << what;
    EXPECT_EQ(a.seq, b.seq) << what;
    EXPECT_EQ(a.ack, b.ack) << what;
    EXPECT_EQ(a.tcp_hdr_len, b.tcp_hdr_len) << what;
    EXPECT_EQ(a.opt.mss, b.opt.mss) << what;
    EXPECT_EQ(a.opt.exp_off, b.opt.exp_off) << what;
    EXPECT_EQ(a.opt.exp_len, b.opt.exp_len) << what;
    EXPECT_EQ(a.opt.wscale, b.opt.wscale) << what;
    EXPECT_EQ(a.opt.sack_ok, b.opt.sack_ok) << what;
    EXPECT_EQ(a.opt.timestamps, b.opt.timestamps) << what;
    EXPECT_EQ(a.opt.tfo, b.opt.tfo) << what;
    EXPECT_EQ(a.udp_len, b.udp_len) << what;
    EXPECT_EQ(a.icmp_type, b.icmp_type) << what;
    EXPECT_EQ(a.icmp_code, b.icmp_code) << what;
    EXPECT_EQ(a.payload_off, b.payload_off) << what;
    EXPECT_EQ(a.payload_len, b.payload_len) << what;
}

// Both parsers on a heap copy of exactly the frame's size (ASan sees any overread).
size_t compare_parsers(const Bytes &f, const std::string &what) {
    auto buf = std::make_unique<uint8_t[]>(f.size());
    std::copy(f.begin(), f.end(), buf.get());
    PacketView fast, gen;
    const DropReason rf = parse_packet(buf.get(), static_cast<uint32_t>(f.size()), fast);
    const DropReason rg = parse_packet_generic(buf.get(), static_cast<uint32_t>(f.size()), gen);
    EXPECT_EQ(rf, rg) << what;
    if (rf == DropReason::None && rg == DropReason::None) expect_same_view(fast, gen, what);
    return rf == DropReason::None ? 1 : 0;
}

TEST(ParseFastPath, AgreesWithTheGeneralParser) {
    const Bytes ts = {1, 1, 8, 10, 0, 0, 0, 7, 0, 0, 0, 9};
    std::vector<Sample> s = samples();
    s.push_back({"v4_ack", v4_tcp({.flags = kTcpAck})});
    s.push_back({"v4_ack_ts", v4_tcp({.flags = kTcpAck, .options = ts, .payload = seq_bytes(5)})});
    s.push_back({"v4_ack_padded", eth(kEthIpv4, ipv4({}, tcp({.flags = kTcpAck})), {}, 60)});
    s.push_back({"v4_ack_df", v4_tcp({.flags = kTcpAck}, {.frag = kDf})});
    s.push_back({"v4_ack_mf", v4_tcp({.flags = kTcpAck}, {.frag = kMf})});
    s.push_back({"v4_ack_reserved", v4_tcp({.flags = kTcpAck}, {.frag = kReservedFrag})});
    s.push_back({"v4_ack_offset", v4_tcp({.flags = kTcpAck}, {.frag = 3})});
    s.push_back({"v4_ts_then_data", v4_tcp({.flags = kTcpAck | kTcpPsh,
                                            .options = {1, 1, 8, 10, 1, 2, 3, 4, 5, 6, 7, 8},
                                            .payload = seq_bytes(40)})});
    s.push_back({"v4_other_12_byte_options",
                 v4_tcp({.flags = kTcpAck, .options = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}})});
    s.push_back({"v4_ts_doff_too_big", v4_tcp({.flags = kTcpAck, .options = ts, .doff = 15})});
    s.push_back({"v4_total_short", v4_tcp({.flags = kTcpAck, .options = ts}, {.total = 45})});
    s.push_back({"v4_total_long", v4_tcp({.flags = kTcpAck}, {.total = 200})});
    s.push_back({"v4_ihl6", v4_tcp({.flags = kTcpAck}, {.options = {1, 1, 1, 1}})});
    s.push_back({"v4_syn_fin", v4_tcp({.flags = kTcpSyn | kTcpFin})});
    s.push_back({"v4_no_flags", v4_tcp({.flags = 0})});
    s.push_back({"v4_urg_ece_cwr", v4_tcp({.flags = 0xe0 | 0x20 | kTcpAck})});
    const uint8_t values[] = {0x00, 0x01, 0x02, 0x04, 0x06, 0x08, 0x0a, 0x11, 0x20, 0x3f, 0x40,
                              0x44, 0x45, 0x46, 0x50, 0x80, 0x81, 0x86, 0x88, 0xbf, 0xdd, 0xff};
    size_t fast_accepted = 0;
    for (const Sample &x : s) {
        fast_accepted += compare_parsers(x.frame, x.name);
        for (size_t n = 0; n < x.frame.size(); ++n)
            compare_parsers(cut(x.frame, n), std::string(x.name) + " cut " + std::to_string(n));
        for (size_t i = 0; i < x.frame.size(); ++i)
            for (uint8_t val : values)
                fast_accepted += compare_parsers(
                    with_byte(x.frame, i, val),
                    std::string(x.name) + " byte " + std::to_string(i) + "=" + std::to_string(val));
        if (::testing::Test::HasFailure()) return;  // one frame's worth of messages is enough
    }
    EXPECT_GT(fast_accepted, 0u);
}

TEST(ParseProperty, ViewIsResetBetweenParses) {
    PacketView v;
    Bytes good = v4_tcp({.options = linux_syn_options()});
    ASSERT_EQ(parse_packet(good.data(), static_cast<uint32_t>(good.size()), v), DropReason::None);
    ASSERT_EQ(v.opt.mss, 1460);
    Bytes lldp = eth(0x88cc, seq_bytes(20));
    ASSERT_EQ(parse_packet(lldp.data(), static_cast<uint32_t>(lldp.size()), v), DropReason::None);
    EXPECT_EQ(v.opt.mss, 0);
    EXPECT_EQ(v.family, 0);
    EXPECT_EQ(v.sport, 0);
    EXPECT_FALSE(v.has_l4());
}

}  // namespace
