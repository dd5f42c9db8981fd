// segwirectl: the operator CLI. Talks to a running segwire over DPDK's telemetry socket, the same
// one dpdk-telemetry.py reads, so every figure it shows is also scriptable.
#include <getopt.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <chrono>
#include <ctime>
#include <fstream>
#include <sys/stat.h>

#include <rapidjson/document.h>
#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>

#include "crypto/pki.hpp"
#include "tools/segwirectl/commands.hpp"
#include "tools/segwirectl/telemetry_client.hpp"
#include "version.hpp"

namespace {

using segwire::ctl::TelemetryClient;

void usage(FILE *out) {
    std::fprintf(out,
                 "usage: segwirectl [--prefix NAME | --socket PATH] [--json] COMMAND | --version\n"
                 "commands:\n"
                 "  stats            totals: packets, bytes, flows, drops by reason\n"
                 "  workers          per-worker counters\n"
                 "  ports            the inside and outside ports\n"
                 "  flows            the flow table of every worker\n"
                 "  identity         identity handshake counters, policy version, HMAC back-end\n"
                 "  flowlog          flow reports (action, policy, rule, drop reason, packets, "
                 "bytes) since start\n"
                 "  export           flow export: JSON lines and IPFIX counters\n"
                 "  routing          routed mode: ports' addresses, route table, counters\n"
                 "  neighbours       routed mode: the neighbour table (ARP and ND)\n"
                 "  geneve           GENEVE mode: settings, decapsulated / encapsulated, health\n"
                 "                   checks, contexts, endpoints, malformed GENEVE by reason\n"
                 "  l7               L7 mode: exception interface packets, identity queries, API "
                 "reports\n"
                 "  explain [--policy FILE|DIR | --console URL --token T] SRC DST PROTO[/PORT]\n"
                 "                   offline: each enforcer's decision for a flow, every rule and why\n"
                 "                   the others did not match (segwirectl explain --help)\n"
                 "  trace [--follow S] ADDR [ADDR] [PROTO[/PORT]]\n"
                 "                   live: the flows' identity state, peer, policy version, rule,\n"
                 "                   held packets and drop reasons\n"
                 "  capture -w FILE [-i PORT] [-f FLOW] [-c N] [-d S]   packets to a pcapng file\n"
                 "  raw CMD          any telemetry command, printed as JSON (e.g. raw "
                 "/help,/segwire/flows)\n"
                 "  pki ca --out DIR [--name N]               a CA for an offline deployment\n"
                 "  pki enforcer --ca DIR --id ID --out DIR [--validity SECONDS] [--group G]\n"
                 "                   an enforcer key + certificate signed by that CA\n"
                 "--prefix is the daemon's eal.file_prefix (default: segwire).\n");
}

std::string human(uint64_t v) {
    char b[32];
    if (v >= 10'000'000'000ull)
        std::snprintf(b, sizeof b, "%.1fG", v / 1e9);
    else if (v >= 10'000'000)
        std::snprintf(b, sizeof b, "%.1fM", v / 1e6);
    else if (v >= 100'000)
        std::snprintf(b, sizeof b, "%.1fk", v / 1e3);
    else
        std::snprintf(b, sizeof b, "%llu", static_cast<unsigned long long>(v));
    return b;
}

uint64_t u(const rapidjson::Value &o, const char *k) {
    auto it = o.FindMember(k);
    return it != o.MemberEnd() && it->value.IsUint64() ? it->value.GetUint64() : 0;
}
std::string s(const rapidjson::Value &o, const char *k) {
    auto it = o.FindMember(k);
    return it != o.MemberEnd() && it->value.IsString() ? it->value.GetString() : "";
}

void print_json(const rapidjson::Value &v) {
    rapidjson::StringBuffer sb;
    rapidjson::PrettyWriter<rapidjson::StringBuffer> w(sb);
    v.Accept(w);
    std::printf("%s\n", sb.GetString());
}

// Every page of a paged telemetry listing (/segwire/flows, /segwire/flowlog) as one JSON object:
// the first page's summary fields (total, overflow, ...) and `list` holding every entry (keys
// starting with `entry`) in page order. Telemetry replies are capped in size, so one page holds
// only a few dozen entries.
void print_all_pages(TelemetryClient &tc, const std::string &cmd, char entry, const char *list) {
    rapidjson::Document out = tc.get(cmd);
    const uint64_t pages = u(out, "pages");
    rapidjson::Value all(rapidjson::kArrayType);
    auto &alloc = out.GetAllocator();
    auto take = [&](const rapidjson::Value &page) {
        for (auto &m : page.GetObject())
            if (m.name.GetString()[0] == entry && m.value.IsObject())
                all.PushBack(rapidjson::Value(m.value, alloc), alloc);
    };
    take(out);
    for (uint64_t p = 1; p < pages; ++p) take(tc.get(cmd + "," + std::to_string(p)));
    rapidjson::Value summary(rapidjson::kObjectType);
    for (auto &m : out.GetObject())
        if (m.name.GetString()[0] != entry || !m.value.IsObject())
            summary.AddMember(rapidjson::Value(m.name, alloc), rapidjson::Value(m.value, alloc),
                              alloc);
    summary.RemoveMember("pages");
    summary.AddMember(rapidjson::StringRef(list), all, alloc);
    print_json(summary);
}

void print_stats(const rapidjson::Value &st) {
    std::printf("workers %llu, up %llus\n", (unsigned long long)u(st, "workers"),
                (unsigned long long)u(st, "uptime_s"));
    std::printf("%-10s %12s %12s %12s %12s\n", "port", "rx pkts", "rx bytes", "tx pkts",
                "tx bytes");
    for (const char *p : {"inside", "outside"}) {
        std::string b = p;
        std::printf("%-10s %12s %12s %12s %12s\n", p,
                    human(u(st, ("rx_" + b + "_pkts").c_str())).c_str(),
                    human(u(st, ("rx_" + b + "_bytes").c_str())).c_str(),
                    human(u(st, ("tx_" + b + "_pkts").c_str())).c_str(),
                    human(u(st, ("tx_" + b + "_bytes").c_str())).c_str());
    }
    std::printf(
        "flows: %llu active, %llu created, %llu expired, %llu refused (table full)\n",
        (unsigned long long)u(st, "flows_active"), (unsigned long long)u(st, "flows_created"),
        (unsigned long long)u(st, "flows_expired"), (unsigned long long)u(st, "flows_refused"));
    std::printf("non-ip %llu, fragments %llu, steered %llu\n", (unsigned long long)u(st, "non_ip"),
                (unsigned long long)u(st, "fragments"), (unsigned long long)u(st, "steered_out"));
    std::printf("dropped %llu", (unsigned long long)u(st, "dropped"));
    if (st.HasMember("drops") && st["drops"].IsObject()) {
        bool first = true;
        for (auto &m : st["drops"].GetObject()) {
            if (!m.value.IsUint64() || m.value.GetUint64() == 0) continue;
            std::printf("%s%s=%llu", first ? ": " : ", ", m.name.GetString(),
                        (unsigned long long)m.value.GetUint64());
            first = false;
        }
    }
    std::printf("\n");
}

int print_flows(TelemetryClient &tc) {
    rapidjson::Document first = tc.get("/segwire/flows");
    uint64_t pages = u(first, "pages");
    std::printf("%-5s %-28s %-28s %-13s %-6s %10s %10s %6s\n", "proto", "source", "destination",
                "state", "worker", "pkts out", "pkts back", "idle");
    auto print_page = [](const rapidjson::Value &page) {
        for (auto &m : page.GetObject()) {
            if (m.name.GetString()[0] != 'f' || !m.value.IsObject()) continue;
            const auto &f = m.value;
            std::string src = s(f, "src"), dst = s(f, "dst");
            bool v6 = src.find(':') != std::string::npos;
            std::string sa = (v6 ? "[" + src + "]" : src) + ":" + std::to_string(u(f, "sport"));
            std::string da = (v6 ? "[" + dst + "]" : dst) + ":" + std::to_string(u(f, "dport"));
            std::printf("%-5s %-28s %-28s %-13s %-6llu %10s %10s %5llus\n", s(f, "proto").c_str(),
                        sa.c_str(), da.c_str(), s(f, "state").c_str(),
                        (unsigned long long)u(f, "worker"), human(u(f, "pkts_out")).c_str(),
                        human(u(f, "pkts_back")).c_str(), (unsigned long long)u(f, "idle_s"));
        }
    };
    print_page(first);
    for (uint64_t p = 1; p < pages; ++p) print_page(tc.get("/segwire/flows," + std::to_string(p)));
    std::printf("%llu flow(s)\n", (unsigned long long)u(first, "total"));
    return 0;
}

int print_neighbours(TelemetryClient &tc) {
    rapidjson::Document first = tc.get("/segwire/neighbours");
    uint64_t pages = u(first, "pages");
    std::printf("%-28s %-8s %-18s %-11s %9s %9s %6s %5s %11s\n", "address", "port", "mac", "state",
                "confirmed", "used", "probes", "held", "resolutions");
    auto age = [](const rapidjson::Value &n, const char *k) -> std::string {
        if (!n.HasMember(k) || !n[k].IsInt64() || n[k].GetInt64() < 0) return "never";
        char b[32];
        std::snprintf(b, sizeof b, "%.1fs", static_cast<double>(n[k].GetInt64()) / 1000.0);
        return b;
    };
    auto print_page = [&](const rapidjson::Value &page) {
        for (auto &m : page.GetObject()) {
            if (m.name.GetString()[0] != 'n' || !m.value.IsObject()) continue;
            const auto &n = m.value;
            std::printf("%-28s %-8s %-18s %-11s %9s %9s %6llu %5llu %11llu\n",
                        s(n, "address").c_str(), s(n, "port").c_str(),
                        s(n, "mac").empty() ? "-" : s(n, "mac").c_str(), s(n, "state").c_str(),
                        age(n, "confirmed_ms").c_str(), age(n, "used_ms").c_str(),
                        (unsigned long long)u(n, "probes"), (unsigned long long)u(n, "held"),
                        (unsigned long long)u(n, "resolutions"));
        }
    };
    print_page(first);
    for (uint64_t p = 1; p < pages; ++p)
        print_page(tc.get("/segwire/neighbours," + std::to_string(p)));
    std::printf("%llu neighbour(s)\n", (unsigned long long)u(first, "total"));
    return 0;
}

int print_flowlog(TelemetryClient &tc) {
    rapidjson::Document first = tc.get("/segwire/flowlog");
    uint64_t pages = u(first, "pages");
    std::printf("%-7s %-9s %-24s %-24s %6s %-24s %-16s %-22s %8s %8s %8s\n", "action", "observed",
                "source", "destination", "port", "policy", "rule", "reason", "count", "packets",
                "bytes");
    auto print_page = [](const rapidjson::Value &page) {
        for (auto &m : page.GetObject()) {
            if (m.name.GetString()[0] != 'r' || !m.value.IsObject()) continue;
            const auto &r = m.value;
            std::string src = s(r, "sourceID").empty() ? s(r, "sourceIP") : s(r, "sourceID");
            std::string dst =
                s(r, "destinationID").empty() ? s(r, "destinationIP") : s(r, "destinationID");
            // Both directions' packets and bytes (the flows' counter records, docs/export.md).
            std::printf("%-7s %-9s %-24s %-24s %6llu %-24s %-16s %-22s %8llu %8s %8s\n",
                        s(r, "action").c_str(), s(r, "observedAction").c_str(), src.c_str(),
                        dst.c_str(), (unsigned long long)u(r, "destinationPort"),
                        s(r, "policyID").c_str(), s(r, "ruleName").c_str(),
                        s(r, "dropReason").c_str(), (unsigned long long)u(r, "value"),
                        human(u(r, "sourcePackets") + u(r, "destinationPackets")).c_str(),
                        human(u(r, "sourceBytes") + u(r, "destinationBytes")).c_str());
        }
    };
    print_page(first);
    for (uint64_t p = 1; p < pages; ++p)
        print_page(tc.get("/segwire/flowlog," + std::to_string(p)));
    if (uint64_t over = u(first, "overflow"))
        std::printf("(full at %llu reports: %llu record(s) of other flows not shown)\n",
                    (unsigned long long)u(first, "max"), (unsigned long long)over);
    return 0;
}

void write_file(const std::string &path, const std::string &text, mode_t mode) {
    std::ofstream out(path, std::ios::trunc);
    if (!out || !(out << text)) throw std::runtime_error("cannot write " + path);
    out.close();
    chmod(path.c_str(), mode);
}

std::string read_text(const std::string &path) {
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot read " + path);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

template <class T>
T must(segwire::crypto::Result<T> r, const std::string &what) {
    if (!r) throw std::runtime_error(what + ": " + r.error().what());
    return std::move(r.value());
}

// Offline PKI: what the Console does for enrolled enforcers, for deployments and tests without one.
int pki(int argc, char **argv) {
    namespace c = segwire::crypto;
    std::string sub = argc > 0 ? argv[0] : "", out, ca_dir, id, group, name = "segwire offline CA";
    long validity_s = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        std::string k = argv[i];
        if (k == "--out")
            out = argv[i + 1];
        else if (k == "--ca")
            ca_dir = argv[i + 1];
        else if (k == "--id")
            id = argv[i + 1];
        else if (k == "--group")
            group = argv[i + 1];
        else if (k == "--name")
            name = argv[i + 1];
        else if (k == "--validity")
            validity_s = std::stol(argv[i + 1]);
        else
            throw std::runtime_error("pki: unknown option " + k);
    }
    if (out.empty()) throw std::runtime_error("pki: --out DIR is required");
    mkdir(out.c_str(), 0700);
    if (sub == "ca") {
        auto ca = must(c::create_ca(name, std::chrono::hours(24 * 365)), "create CA");
        write_file(out + "/ca.key", must(c::private_key_to_pem(ca.key.get()), "CA key"), 0600);
        write_file(out + "/ca.crt", must(c::cert_to_pem(ca.cert.get()), "CA certificate"), 0644);
        std::printf("%s/ca.crt, %s/ca.key\n", out.c_str(), out.c_str());
        return 0;
    }
    if (sub == "enforcer") {
        if (ca_dir.empty() || id.empty())
            throw std::runtime_error("pki enforcer: --ca DIR and --id ID are required");
        c::CertAuthority ca{
            must(c::private_key_from_pem(read_text(ca_dir + "/ca.key")), "CA key"),
            must(c::cert_from_pem(read_text(ca_dir + "/ca.crt")), "CA certificate")};
        auto key = must(c::generate_p256_key(), "enforcer key");
        auto csr = must(c::create_csr(key.get(), id), "CSR");
        c::IssueOptions opt;
        if (!group.empty() && !c::valid_enforcer_group(group))
            throw std::runtime_error("pki enforcer: --group: \"" + group +
                                     "\" is not 1..64 of A-Z a-z 0-9 - _ .");
        opt.enforcer_group = group;  // bound by this CA, as the Console binds a credential's
        if (validity_s > 0) {  // short-lived certificates (tests of expiry)
            opt.validity = std::chrono::seconds(validity_s);
            opt.not_before_unix = static_cast<int64_t>(std::time(nullptr));
        }
        auto cert = must(c::sign_enforcer_csr(ca, csr.get(), opt), "sign");
        write_file(out + "/" + id + ".key", must(c::private_key_to_pem(key.get()), "key"), 0600);
        write_file(out + "/" + id + ".crt", must(c::cert_to_pem(cert.get()), "certificate"), 0644);
        std::printf("%s/%s.crt, %s/%s.key\n", out.c_str(), id.c_str(), out.c_str(), id.c_str());
        return 0;
    }
    throw std::runtime_error("pki: expected 'ca' or 'enforcer'");
}

}  // namespace

int main(int argc, char **argv) {
    std::string prefix = "segwire", sock;
    bool json = false;
    static option opts[] = {
        {"prefix", required_argument, nullptr, 'p'}, {"socket", required_argument, nullptr, 's'},
        {"json", no_argument, nullptr, 'j'},         {"help", no_argument, nullptr, 'h'},
        {"version", no_argument, nullptr, 'V'},      {nullptr, 0, nullptr, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "+p:s:jhV", opts, nullptr)) != -1) {
        switch (o) {
            case 'V':
                std::printf("segwirectl %s\n", segwire::version_line());
                return 0;
            case 'p':
                prefix = optarg;
                break;
            case 's':
                sock = optarg;
                break;
            case 'j':
                json = true;
                break;
            case 'h':
                usage(stdout);
                return 0;
            default:
                usage(stderr);
                return 2;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return 2;
    }
    if (sock.empty()) sock = "/var/run/dpdk/" + prefix + "/dpdk_telemetry.v2";
    std::string cmd = argv[optind];
    TelemetryClient tc(sock);
    try {
        if (cmd == "pki") return pki(argc - optind - 1, argv + optind + 1);
        if (cmd == "explain") return segwire::ctl::explain_main(argc - optind, argv + optind, json);
        if (cmd == "trace") return segwire::ctl::trace_main(argc - optind, argv + optind, json, sock);
        if (cmd == "capture") return segwire::ctl::capture_main(argc - optind, argv + optind, json, sock);
        if (cmd == "identity") {
            print_json(tc.get("/segwire/identity"));
        } else if (cmd == "flowlog") {
            if (json) {
                print_all_pages(tc, "/segwire/flowlog", 'r', "reports");
            } else {
                return print_flowlog(tc);
            }
        } else if (cmd == "raw") {
            if (optind + 1 >= argc) {
                std::fprintf(stderr, "segwirectl: raw needs a telemetry command\n");
                return 2;
            }
            std::printf("%s\n", tc.query(argv[optind + 1]).c_str());
        } else if (cmd == "stats") {
            auto d = tc.get("/segwire/stats");
            json ? print_json(d) : print_stats(d);
        } else if (cmd == "neighbours") {
            if (json) {
                print_all_pages(tc, "/segwire/neighbours", 'n', "neighbours");
            } else {
                return print_neighbours(tc);
            }
        } else if (cmd == "workers" || cmd == "ports" || cmd == "export" || cmd == "routing" ||
                   cmd == "geneve" || cmd == "l7") {
            print_json(tc.get("/segwire/" + cmd));
        } else if (cmd == "flows") {
            if (json) {
                print_all_pages(tc, "/segwire/flows", 'f', "flows");
            } else {
                return print_flows(tc);
            }
        } else {
            std::fprintf(stderr, "segwirectl: unknown command '%s'\n", cmd.c_str());
            usage(stderr);
            return 2;
        }
    } catch (const std::exception &e) {
        std::fprintf(stderr, "segwirectl: %s\n", e.what());
        return 1;
    }
    return 0;
}
