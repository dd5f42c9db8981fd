// The fail gate (dataplane/contract/fail_gate.hpp): which parsed packets a worker refuses while no
// policy is in force under identity.fail_mode closed. Real frames through the real parser.
#include "dataplane/contract/fail_gate.hpp"

#include <algorithm>

#include <gtest/gtest.h>

#include "tests/unit/dataplane/frame_builder.hpp"

namespace {

using namespace segwire::dp;
using namespace segwire::dptest;

FailGate::Net net4(V4 a, uint8_t len) {
    FailGate::Net n{4, len, {}};
    std::copy(a.begin(), a.end(), n.addr);
    return n;
}
FailGate::Net net6(V6 a, uint8_t len) {
    FailGate::Net n{6, len, {}};
    std::copy(a.begin(), a.end(), n.addr);
    return n;
}

// The default: identity.fail_closed_networks absent = 0.0.0.0/0 and ::/0.
FailGate everything() {
    FailGate g;
    g.nets = {net4({}, 0), net6({}, 0)};
    return g;
}

PacketView view(const Bytes &frame) {
    Parsed p = parse(frame);
    EXPECT_EQ(p.r, DropReason::None);
    return p.v;
}

constexpr V6 kLinkLocal = {0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01};
constexpr V6 kSolicited = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, 0, 0, 0x02};

TEST(FailGate, RefusesManagedTcpUdpIcmpBothFamiliesAndBothDirections) {
    const FailGate g = everything();
    EXPECT_TRUE(g.refuses(view(v4_tcp())));
    EXPECT_TRUE(g.refuses(view(v4_tcp({}, {.src = kDst4, .dst = kSrc4}))));
    EXPECT_TRUE(g.refuses(view(v6_tcp())));
    EXPECT_TRUE(g.refuses(view(v4_udp())));
    EXPECT_TRUE(g.refuses(view(v6_udp())));
    Ip4Spec ping;
    ping.proto = kProtoIcmp;
    EXPECT_TRUE(g.refuses(view(eth(kEthIpv4, ipv4(ping, icmp(8, 0, 1, 1))))));
    // A non-first fragment has no ports: refused by its addresses.
    Ip4Spec frag;
    frag.frag = 100;
    EXPECT_TRUE(g.refuses(view(eth(kEthIpv4, ipv4(frag, seq_bytes(64))))));
}

TEST(FailGate, LinkScopeTrafficPasses) {
    const FailGate g = everything();
    // IPv4 link-local either way, limited broadcast (DHCP discover), 224.0.0.0/24.
    EXPECT_FALSE(g.refuses(view(v4_udp({}, {.src = {169, 254, 1, 2}, .dst = kDst4}))));
    EXPECT_FALSE(g.refuses(view(v4_udp({}, {.src = kSrc4, .dst = {169, 254, 9, 9}}))));
    EXPECT_FALSE(
        g.refuses(view(v4_udp({68, 67}, {.src = {0, 0, 0, 0}, .dst = {255, 255, 255, 255}}))));
    EXPECT_FALSE(g.refuses(view(v4_udp({}, {.src = kSrc4, .dst = {224, 0, 0, 251}}))));
    // But not other multicast, nor a DHCP answer unicast to a managed address.
    EXPECT_TRUE(g.refuses(view(v4_udp({}, {.src = kSrc4, .dst = {239, 1, 1, 1}}))));
    EXPECT_TRUE(g.refuses(view(v4_udp({67, 68}, {.src = kSrc4, .dst = kDst4}))));
    // IPv6 link-local either way, ff02::/16, and Neighbor Discovery to a global address.
    EXPECT_FALSE(g.refuses(view(v6_udp({}, {.src = kLinkLocal, .dst = kDst6}))));
    EXPECT_FALSE(g.refuses(view(v6_tcp({}, {.src = kSrc6, .dst = kLinkLocal}))));
    Ip6Spec ns{.src = kSrc6, .dst = kSolicited, .proto = kProtoIcmp6, .hlim = 255};
    EXPECT_FALSE(g.refuses(view(eth(kEthIpv6, ipv6(ns, icmp(135, 0))))));
    Ip6Spec na{.src = kDst6, .dst = kSrc6, .proto = kProtoIcmp6, .hlim = 255};
    for (uint8_t type : {133, 134, 135, 136, 137})
        EXPECT_FALSE(g.refuses(view(eth(kEthIpv6, ipv6(na, icmp(type, 0)))))) << int(type);
    // Other ICMPv6 between global addresses is managed (an echo request, a packet too big).
    EXPECT_TRUE(g.refuses(view(eth(kEthIpv6, ipv6(na, icmp(128, 0, 1, 1))))));
    EXPECT_TRUE(g.refuses(view(eth(kEthIpv6, ipv6(na, icmp(2, 0))))));
}

TEST(FailGate, NamedNetworksNarrowWhatIsManaged) {
    FailGate g;
    // 198.51.100.0/25 and 2001:db8::/120 (the builders' default destinations lie inside).
    g.nets = {net4({198, 51, 100, 0}, 25), net6({0x20, 0x01, 0x0d, 0xb8}, 120)};
    EXPECT_TRUE(g.refuses(view(v4_tcp())));  // to 198.51.100.7
    EXPECT_TRUE(g.refuses(view(v4_tcp({}, {.src = kDst4, .dst = {203, 0, 113, 1}}))));  // from it
    EXPECT_FALSE(g.refuses(view(v4_tcp({}, {.src = kSrc4, .dst = {198, 51, 100, 128}}))));
    EXPECT_FALSE(g.refuses(view(v4_tcp({}, {.src = kSrc4, .dst = {203, 0, 113, 1}}))));
    EXPECT_TRUE(g.refuses(view(v6_tcp())));
    V6 outside = kDst6;
    outside[14] = 0x01;  // 2001:db8::a02 → 2001:db8::102: outside the /120
    EXPECT_FALSE(g.refuses(view(v6_tcp({}, {.src = outside, .dst = outside}))));
    // A family without a network is not managed.
    FailGate v4only;
    v4only.nets = {net4({}, 0)};
    EXPECT_FALSE(v4only.refuses(view(v6_tcp())));
    // No networks at all: nothing is managed.
    EXPECT_FALSE(FailGate{}.refuses(view(v4_tcp())));
}

}  // namespace
