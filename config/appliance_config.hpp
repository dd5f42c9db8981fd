// The appliance (daemon) configuration: one JSON file, validated field by field.
// Every error names the JSON path of the field and what is wrong with it.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "config/policy/syntax.hpp"

namespace segwire::config {

// Thrown by the loader only (never on the packet path). `field` is a JSON path like
// "ports.inside.device"; what() is "<field>: <problem>".
class ConfigError : public std::runtime_error {
  public:
    ConfigError(std::string field, const std::string &problem)
        : std::runtime_error(field + ": " + problem), field_(std::move(field)) {}
    const std::string &field() const { return field_; }

  private:
    std::string field_;
};

struct PortConfig {
    // A DPDK device: a vdev spec ("net_af_packet0,iface=veth0") or a PCI address ("0000:03:00.0").
    std::string device;
    uint16_t rx_desc = 1024;
    uint16_t tx_desc = 1024;
    // The largest IP datagram sent on this port (0: the port's own MTU, as read at start). Above
    // the port's current MTU the port is asked for it (jumbo frames up to 9000).
    uint16_t mtu = 0;
    // Routed mode only: the port's own addresses with their prefix ("10.1.0.1/24", "fd01::1/64").
    // addr is the address, len the connected prefix's length.
    std::vector<policy::IpPrefix> addresses;
    bool is_pci() const;
    std::string name() const;  // the ethdev name: the vdev name or the PCI address
};

struct EalConfig {
    bool test_mode = false;  // --no-huge --no-shconf, memory from the heap
    std::string file_prefix = "segwire";
    uint32_t memory_mb = 512;  // only with test_mode (-m)
    std::string lcores;        // EAL --lcores value; empty = derived from workers
    std::vector<std::string> extra_args;
};

struct IdleConfig {
    bool backoff = true;          // sleep when idle instead of spinning
    uint32_t spin_polls = 256;    // empty polls before the first sleep
    uint32_t max_sleep_us = 200;  // back-off ceiling
};

struct FlowTimeouts {
    uint32_t tcp_handshake_s = 20;
    uint32_t tcp_established_s = 3600;
    uint32_t tcp_closing_s = 20;
    uint32_t udp_s = 60;
    uint32_t other_s = 30;
    uint32_t rejected_s = 2;  // hold-down of a refused flow before its tuple is tried again
};

struct FlowConfig {
    uint32_t max_per_worker = 65536;
    FlowTimeouts timeouts;
};

struct LogConfig {
    std::string level = "info";  // trace|debug|info|warn|error|critical|off
    std::string file;            // empty = stderr only
};

// The enforcer's identity. Without `key`, segwire only forwards and tracks flows.
struct IdentityConfig {
    std::string enforcer_id;        // must equal the certificate's subject CN
    // identity.enforcer_group (optional): the enforcer group this enforcer expects. Its CSR asks
    // for it (the Console refuses the registration unless the credential binds that group) and
    // segwire refuses to start when its certificate carries another (docs/scale-out.md). The
    // group in force is always the certificate's.
    std::string enforcer_group;
    std::vector<std::string> tags;  // the enforcer's own tags (profile mapping)
    std::string key;                // PEM file: the enforcer's long-term P-256 key
    std::string certificate;        // PEM file: its certificate, issued by the Console CA
    std::string trusted_cas;        // PEM file: CA bundle peer certificates must chain to
    std::vector<std::string> peer_certificates;  // PEM files of peer enforcers' certificates
    std::string policy_file;  // a policy bundle (JSON) enforced without a Console
    // identity.fail_mode: what the workers do while no policy is in force (first boot, Console
    // not answering, no usable fail-static cache): "closed" (true) refuses managed traffic,
    // dropped and counted as no-policy; "open" forwards every packet untouched.
    bool fail_closed = true;
    // identity.fail_closed_networks: what "managed" means before any profile is known: a packet
    // whose source or destination lies in one of these. Default: every address (0.0.0.0/0,
    // ::/0). Link-scope traffic (ARP, ND, link-local addresses) is never refused
    // (docs/control.md, "Fail mode").
    std::vector<policy::IpPrefix> fail_closed_networks = {policy::IpPrefix{false, 0, {}},
                                                          policy::IpPrefix{true, 0, {}}};
    bool enabled() const { return !key.empty() || !enforcer_id.empty(); }
};

struct HandshakeConfig {
    bool reject_with_rst = true;  // "reject": "rst" | "drop"
    // L4 mode: TCP Fast Open between enforcers (R1 in the SYN once the peer's cookie is known;
    // docs/l4-mode.md). Off: R1 always follows the handshake, one round trip later.
    bool l4_tfo = true;
    uint32_t hold_per_flow = 16;
    // Budgets (docs/handshake.md "Budgets"). Mbufs a worker's handshakes may pin: held packets
    // (hold_total) and kept UDP control datagrams (kept_control, one per UDP handshake context).
    // 0 = derived at start from what the pool can give them (control/mbuf_budget.cpp); a value
    // the pool cannot give is refused at start, naming the field.
    uint32_t hold_total = 0;
    uint32_t kept_control = 0;
    // Share of the mbuf pool that handshakes can never take: forwarding keeps it.
    uint32_t mbuf_reserve_percent = 25;
    // Share of each per-worker resource (handshake contexts, held packets, slow-path jobs) one
    // source address may hold: the flow initiator's address.
    uint32_t per_source_percent = 25;
    // Handshakes a packet from outside may start per second and source (each answered with a
    // signed SYN-ACK, or a UDP SYN-ACK / RESET): bounds reflection onto a forged source. 0 = off.
    uint32_t answers_per_source = 20000;
    // handshake.midstream_resets_per_s: per worker, refused TCP segments picked up mid-stream
    // answered with RSTs to both hosts (token bucket, burst the same; 0 = unlimited). Beyond it
    // they are dropped without RSTs: a flood of forged mid-stream segments cannot make the
    // appliance spray RSTs (docs/scale-out.md "Mid-stream").
    uint32_t midstream_resets_per_s = 1000;
    uint32_t max_handshakes = 16384;  // concurrent handshakes per worker
    uint32_t peer_cache = 4096;
    uint32_t key_cache = 4096;
    uint32_t slowpath_queue = 256;  // slow-path requests in flight per worker
    std::string hmac = "auto";      // auto | ipsec-mb | ipsec-mb-multi-buffer | openssl
    uint32_t key_rotation_s = 300;  // ephemeral X25519 key period; claims live 3x this
};

// DNS snooping (docs/dns.md): which answers may teach the enforcer addresses for hostname entries.
struct DnsConfig {
    // Outstanding queries tracked per worker (flow, ID, type, name); at the bound a new query is
    // not tracked and its answer teaches nothing (counted: dns_queries_dropped).
    uint32_t queries_per_worker = 4096;
    // An answer after this teaches nothing (dns_refused_late); the query is forgotten then.
    uint32_t query_timeout_ms = 10000;
    // Learned addresses live for the answer's TTL clamped to [min_ttl_s, max_ttl_s].
    uint32_t min_ttl_s = 30;
    uint32_t max_ttl_s = 3600;
};

// The Console this enforcer syncs with. Without `url`/`appcred`, policy comes from
// identity.policy_file only.
struct ConsoleConfig {
    std::string url;  // https://...; default: the app credential's APIURL
    // console.url given as a list: Console replicas sharing one database (docs/console.md,
    // "Replicas"), tried in order; `url` is the first. One URL as a string keeps working.
    std::vector<std::string> urls;
    std::string ca;       // PEM file of the Console CA; default: the app credential's
    std::string appcred;  // app credential JSON (realm Certificate)
    std::string realm =
        "Certificate";  // Certificate | AWSSecurityToken | GCPIdentityToken | AzureIdentityToken
    std::string metadata_url;  // cloud instance metadata base URL (tests point it at a fake)
    // The Console's deployment-specific audience (cloud realms; required for them): the GCP/Azure
    // identity token's audience, and the X-Segwire-Audience header signed into the AWS login.
    std::string audience;
    std::string aws_sts_url = "https://sts.amazonaws.com/";  // the STS the AWS login is signed for
    std::string aws_region = "us-east-1";
    std::string token_validity = "1h";  // asked of POST /issue; renewed at half of it
    std::string enforcer_name;          // default: identity.enforcer_id
    uint32_t poll_wait_s = 30;          // long-poll wait
    uint32_t heartbeat_s = 10;
    uint32_t report_interval_s = 0;  // 0: the profile's flowReportInterval
    uint32_t peer_refresh_s = 5;     // how often peer enforcer certificates are fetched
    uint64_t spool_max_bytes = 16u << 20;
    // Distinct reports aggregated per interval and kind (flow, DNS lookup, connection exception);
    // records beyond it are not reported and are counted (docs/control.md, "Reports").
    uint32_t max_reports_per_interval = 10000;
    // The fail-static cache (state_dir/bundle.json) is refused at start when the Console last
    // vouched for it longer ago than this; the fail mode applies instead (docs/control.md).
    uint32_t cache_max_age_s = 7 * 86400;
    bool insecure_skip_verify = false;  // tests only: do not verify the Console's certificate
    bool enabled() const { return !url.empty() || !appcred.empty() || realm != "Certificate"; }
};

// The Prometheus endpoint (docs/metrics.md): GET /metrics over plain HTTP, served by a control
// thread. Off unless `metrics.listen` is given; no credential, so bind it to loopback or a
// management address.
struct MetricsConfig {
    std::string listen;  // as written: "127.0.0.1:9470", "[::1]:9470"
    std::string host;    // the address, without brackets
    uint16_t port = 0;   // 0 = off
    bool enabled() const { return port != 0; }
};

// Flow export beside the Console (docs/export.md): JSON lines files and IPFIX to a collector,
// each off unless its section is given. The JSON key is `export` (a C++ keyword, hence the name).
struct JsonlExportConfig {
    std::string path;                     // the file written; rotated files are path.1 .. path.N
    uint64_t rotate_bytes = 64ull << 20;  // a file is rotated before a line would take it past this
    uint32_t keep = 5;                    // rotated files kept (path.1 newest); older are removed
};
struct IpfixExportConfig {
    std::string collector;  // as written: "HOST:PORT" or "[IPv6]:PORT" (UDP)
    std::string host;       // without brackets: an address or a name resolved at start
    uint16_t port = 0;      // 0 = off
    uint32_t observation_domain = 1;
    uint32_t template_refresh_s = 60;  // templates are sent again this often (RFC 7011 8.4)
};
struct FlowExportConfig {
    // Counter records of a flow that lasts are made at least every 1.5 x this (its packets and
    // bytes so far). Also governs the counts in the Console's flow reports.
    uint32_t active_timeout_s = 60;
    JsonlExportConfig jsonl;
    IpfixExportConfig ipfix;
    bool jsonl_enabled() const { return !jsonl.path.empty(); }
    bool ipfix_enabled() const { return ipfix.port != 0; }
    bool enabled() const { return jsonl_enabled() || ipfix_enabled(); }
};

// "HOST:PORT" or "[IPv6]:PORT" with a port in 1..65535. False with `*problem` set (a sentence
// without the field name) otherwise. The host may be a name (resolved by the caller).
bool parse_host_port(const std::string &text, std::string *host, uint16_t *port,
                     std::string *problem);

// Routed mode (docs/routed.md): the appliance is a routed next hop between its two ports.
struct RouteConfig {
    policy::IpPrefix prefix;  // destination
    policy::IpPrefix via;     // next hop (len 32/128); the family of prefix
    int port = -1;            // 0 inside, 1 outside; -1 = the port whose connected prefix has via
};
struct RoutingConfig {
    std::vector<RouteConfig> routes;
    uint32_t neighbours = 1024;       // neighbour table entries per worker (ARP and ND together)
    uint32_t reachable_s = 30;        // a confirmed entry is used without question for this long
    uint32_t stale_s = 600;           // an entry nobody used for this long is removed
    uint32_t retrans_ms = 1000;       // between two requests (solicitations) for one neighbour
    uint32_t probes = 3;              // unanswered requests before an entry is given up
    uint32_t hold_per_neighbour = 8;  // packets held while their next hop is resolved
    uint32_t icmp_rate = 100;         // ICMP / ICMPv6 messages generated per second and worker
    uint32_t icmp_burst = 50;         // ... and at most this many at once
};

// GENEVE one-arm mode (docs/geneve.md): the load balancer (AWS Gateway Load Balancer's contract,
// RFC 8926) sends every packet encapsulated to the one port's address; segwire enforces on the
// inner packet and sends it back with the same options.
struct GeneveOption {
    uint16_t cls;
    uint8_t type;  // without the critical bit
};
struct GeneveConfig {
    uint16_t udp_port = 6081;
    // geneve.health_check.tcp_port: the load balancer's TCP health check, answered in the
    // dataplane (SYN -> SYN-ACK, anything else -> RST). 0: none.
    uint16_t health_port = 0;
    // The largest inner IP datagram (0: the arm's MTU less the GWLB overhead of 68 bytes). TCP
    // SYNs get their MSS clamped to it; the identity stage checks its rewrites against it.
    uint16_t inner_mtu = 0;
    // Options whose values identify the load balancer's endpoint: part of every flow key (GWLB:
    // class 0x0108 type 1 = endpoint ID, type 2 = attachment ID).
    std::vector<GeneveOption> endpoint_options = {{0x0108, 1}, {0x0108, 2}};
    // Further options understood (RFC 8926: an unknown option with the critical bit drops the
    // packet). GWLB: type 3 = the flow cookie.
    std::vector<GeneveOption> options = {{0x0108, 3}};
    uint32_t contexts = 16384;    // outer headers kept (about one per flow), per worker
    uint32_t endpoints = 1024;    // distinct endpoint identities, per worker
    uint32_t context_idle_s = 0;  // 0: the longest flow timeout + 60 s
};

// L7 mode's enforcer side (docs/l7-path.md): the kernel exception interface flows to an L7
// service port are steered into, where Linux TPROXY hands them to segwire-proxy.
struct L7Config {
    bool enabled = false;               // an "l7" section is present
    std::string exception = "tap";      // "tap" (net_tap) | "virtio_user" (virtio_user + vhost-net)
    std::string iface = "sw-l7";        // the kernel interface's name
    uint16_t proxy_port = 15001;        // where segwire-proxy listens (TPROXY target)
    uint32_t fwmark = 0x5e7;            // the mark TPROXY sets; ip rule sends it to table `table`
    uint32_t table = 157;               // the routing table of marked packets (local delivery)
    std::vector<policy::IpPrefix> networks;  // routed to the exception interface (clients, PUs)
    std::string setup = "/usr/lib/segwire/segwire-l7-net";  // the script that configures the
                                                            // kernel side (routes, nft, rules)
};

struct ApplianceConfig {
    EalConfig eal;
    // "mode": "bump-in-the-wire" (default) | "routed" | "geneve". GENEVE mode is routed = true
    // as well: it uses routed mode's addresses, ARP / ND and FIB for its one port ("arm").
    bool routed = false;
    bool geneve = false;
    GeneveConfig geneve_cfg;
    RoutingConfig routing;
    PortConfig inside;
    PortConfig outside;
    uint32_t workers = 1;
    uint32_t burst = 32;
    uint32_t mbufs = 16383;
    IdleConfig idle;
    FlowConfig flows;
    LogConfig log;
    std::string state_dir = "/var/lib/segwire";
    IdentityConfig identity;
    HandshakeConfig handshake;
    DnsConfig dns;
    ConsoleConfig console;
    MetricsConfig metrics;
    FlowExportConfig flow_export;  // "export"
    L7Config l7;
};

// Parse and validate. Throws ConfigError naming the field.
ApplianceConfig parse_appliance_config(const std::string &json_text);
ApplianceConfig load_appliance_config(const std::string &path);

}  // namespace segwire::config
