// The one parsed-packet view every later stage reads. parse() only reads inside [data, data+len)
// and never writes; anything that does not add up is a DropReason, counted by the caller.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace segwire::dp {

#define SEGWIRE_DROP_REASONS(X)                           \
    X(None, "none")                                       \
    X(L2Truncated, "l2-truncated")                        \
    X(VlanTruncated, "vlan-truncated")                    \
    X(VlanTooDeep, "vlan-too-deep")                       \
    X(ArpTruncated, "arp-truncated")                      \
    X(Ipv4Truncated, "ipv4-truncated")                    \
    X(Ipv4BadVersion, "ipv4-bad-version")                 \
    X(Ipv4BadIhl, "ipv4-bad-ihl")                         \
    X(Ipv4BadTotalLength, "ipv4-bad-total-length")        \
    X(Ipv4BadOptions, "ipv4-bad-options")                 \
    X(Ipv4BadFragment, "ipv4-bad-fragment")               \
    X(Ipv6Truncated, "ipv6-truncated")                    \
    X(Ipv6BadVersion, "ipv6-bad-version")                 \
    X(Ipv6BadPayloadLength, "ipv6-bad-payload-length")    \
    X(Ipv6BadExtHeader, "ipv6-bad-ext-header")            \
    X(Ipv6TooManyExtHeaders, "ipv6-too-many-ext-headers") \
    X(TcpTruncated, "tcp-truncated")                      \
    X(TcpBadDataOffset, "tcp-bad-data-offset")            \
    X(TcpBadOption, "tcp-bad-option")                     \
    X(TcpBadFlags, "tcp-bad-flags")                       \
    X(UdpTruncated, "udp-truncated")                      \
    X(UdpBadLength, "udp-bad-length")                     \
    X(IcmpTruncated, "icmp-truncated")                    \
    /* drops decided after parsing (dataplane stages) */  \
    X(FlowTableFull, "flow-table-full")                   \
    X(SteerRingFull, "steer-ring-full")                   \
    X(TxFull, "tx-full")                                  \
    /* identity handshake and policy */                   \
    X(PolicyReject, "policy-reject")                      \
    X(FlowRejected, "flow-rejected")                      \
    X(ClaimsInvalid, "claims-invalid")                    \
    X(TokenMalformed, "token-malformed")                  \
    X(MacMismatch, "mac-mismatch")                        \
    X(HoldFull, "hold-full")                              \
    X(SlowpathBusy, "slowpath-busy")                      \
    X(OptionSpace, "option-space")                        \
    X(MtuExceeded, "mtu-exceeded")                        \
    X(HandshakeExpired, "handshake-expired")              \
    X(NoSessionKey, "no-session-key")                     \
    X(SessionKeyFailed, "session-key-failed")             \
    X(PolicyCut, "policy-cut")                            \
    X(UdpControl, "udp-control-stale")                    \
    X(CertificateRevoked, "certificate-revoked")          \
    X(ClaimsUnknownPu, "claims-unknown-pu")               \
    X(ClaimsNotHosted, "claims-pu-not-hosted")            \
    X(ClaimsAddressMismatch, "claims-address-mismatch")   \
    X(IdentityRequired, "identity-required")              \
    X(SpoofedSource, "spoofed-source")                    \
    X(UnmanagedInsideSource, "unmanaged-inside-source")   \
    X(TcpOutOfWindow, "tcp-out-of-window")                \
    X(SourceShare, "source-share")                        \
    X(SourceRate, "source-rate")                          \
    X(SynReplayed, "syn-replayed")                        \
    X(L4NoRecord, "l4-no-record")                         \
    /* routed mode (docs/routed.md) */                    \
    X(NoRoute, "no-route")                                \
    X(TtlExceeded, "ttl-exceeded")                        \
    X(FragmentationNeeded, "fragmentation-needed")        \
    X(NeighbourUnresolved, "neighbour-unresolved")        \
    X(NotRouted, "not-routed")                            \
    X(RouteSamePort, "route-same-port")                   \
    X(LocalUnhandled, "local-unhandled")                  \
    /* GENEVE one-arm mode (docs/geneve.md) */            \
    X(GeneveTruncated, "geneve-truncated")                \
    X(GeneveBadVersion, "geneve-bad-version")             \
    X(GeneveBadOptions, "geneve-bad-options")             \
    X(GeneveCriticalOption, "geneve-critical-option")     \
    X(GeneveBadProtocol, "geneve-bad-protocol")           \
    X(GeneveControl, "geneve-control")                    \
    X(GeneveContextFull, "geneve-context-full")           \
    X(GeneveNoContext, "geneve-no-context")               \
    X(GeneveMtuExceeded, "geneve-mtu-exceeded")           \
    /* no policy yet, identity.fail_mode closed */        \
    X(NoPolicy, "no-policy")

enum class DropReason : uint8_t {
#define X(name, text) name,
    SEGWIRE_DROP_REASONS(X)
#undef X
        Count
};

inline constexpr size_t kDropReasonCount = static_cast<size_t>(DropReason::Count);
// The reason's name in flow reports (dropReason) and connection-exception reports; the one list
// of names, documented in docs/protocol.md §12.
const char *drop_reason_name(DropReason r);
// The same name as a telemetry counter key: '-' written '_' (DPDK telemetry keys allow no '-').
const char *drop_reason_counter_name(DropReason r);

enum class L3 : uint8_t { Other = 0, Ipv4, Ipv6, Arp };

inline constexpr uint8_t kProtoIcmp = 1;
inline constexpr uint8_t kProtoTcp = 6;
inline constexpr uint8_t kProtoUdp = 17;
inline constexpr uint8_t kProtoIcmp6 = 58;

inline constexpr uint8_t kTcpFin = 0x01;
inline constexpr uint8_t kTcpSyn = 0x02;
inline constexpr uint8_t kTcpRst = 0x04;
inline constexpr uint8_t kTcpPsh = 0x08;
inline constexpr uint8_t kTcpAck = 0x10;

inline constexpr uint8_t kMaxVlans = 2;

// 16 bytes for either family; IPv4 sits in the first 4 bytes, the rest zero.
struct IpAddr {
    uint8_t b[16];
    bool operator==(const IpAddr &o) const { return std::memcmp(b, o.b, 16) == 0; }
};

// Offsets of TCP options later stages care about (0 = absent). Offsets are from the frame start.
struct TcpOptions {
    uint16_t mss = 0;      // value, 0 = absent
    uint16_t exp_off = 0;  // first RFC 6994 option (kind 253/254) - its kind byte
    uint8_t exp_len = 0;
    uint8_t wscale = 0xff;  // 0xff = absent
    bool sack_ok = false;
    bool timestamps = false;
    bool tfo = false;  // RFC 7413 kind 34, or the old experimental form 254/0xF989
};

struct PacketView {
    uint32_t frame_len;  // bytes in the frame as received
    uint16_t ethertype;  // innermost, host order
    uint8_t vlan_count;
    uint16_t vlan_tci[kMaxVlans];
    L3 l3;
    uint8_t family;  // 4 or 6 for IP, 0 otherwise
    uint16_t l3_off;
    uint16_t l4_off;  // 0 when there is no L4 header (non-first fragment, other protos)
    uint32_t ip_end;  // end of the IP datagram (frames may carry Ethernet padding after it)
    uint8_t proto;    // upper-layer protocol after IPv6 extension headers
    uint8_t ttl;
    bool fragment;        // any fragment
    bool first_fragment;  // offset 0 (L4 header present)
    IpAddr src, dst;
    uint16_t sport, dport;  // host order; ICMP echo: identifier in both, others 0
    // TCP
    uint8_t tcp_flags;
    uint32_t seq, ack;
    uint16_t tcp_hdr_len;
    TcpOptions opt;
    // UDP
    uint16_t udp_len;  // the UDP header's length field
    // ICMP / ICMPv6
    uint8_t icmp_type, icmp_code;
    // L4 payload
    uint16_t payload_off;
    uint32_t payload_len;

    bool is_ip() const { return family != 0; }
    bool has_l4() const { return l4_off != 0; }
};

// Parses a frame. Returns DropReason::None on success; on any other value `v` is partially
// filled and the frame must be dropped (and counted under that reason).
DropReason parse_packet(const uint8_t *data, uint32_t len, PacketView &v);

// The general parser. parse_packet() takes a shortcut for what nearly every packet of an
// established flow is (untagged IPv4 without options or fragmentation, TCP without options or with
// NOP,NOP,timestamps) and hands everything else here; both give the same result for every frame
// (tests/unit/dataplane/parse_test.cpp compares them).
DropReason parse_packet_generic(const uint8_t *data, uint32_t len, PacketView &v);

}  // namespace segwire::dp
