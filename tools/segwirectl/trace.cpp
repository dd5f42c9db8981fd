// segwirectl trace: a live flow's identity state, peer identity, policy version, rule, hold counts
// and drop reasons, from a running enforcer (the flow tables of every worker and the flow reports
// since start, over the telemetry socket). docs/explain.md, "trace".
#include <getopt.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <stdexcept>
#include <string>
#include <thread>

#include <rapidjson/document.h>
#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>

#include "config/policy/explain.hpp"
#include "config/policy/syntax.hpp"
#include "tools/segwirectl/commands.hpp"
#include "tools/segwirectl/telemetry_client.hpp"

namespace segwire::ctl {

namespace {

const char *kUsage =
    "usage: segwirectl [--prefix NAME] [--json] trace [--follow SECONDS] ADDRESS [ADDRESS]\n"
    "                  [PROTOCOL[/PORT]]\n"
    "  the flows between the addresses (either direction; one address: every flow it is in),\n"
    "  e.g. trace 10.77.0.1 10.77.0.2 tcp/7000. --follow prints each change for SECONDS.\n";

std::string str(const rapidjson::Value &o, const char *k) {
    auto it = o.FindMember(k);
    return it != o.MemberEnd() && it->value.IsString() ? it->value.GetString() : "";
}
uint64_t num(const rapidjson::Value &o, const char *k) {
    auto it = o.FindMember(k);
    return it != o.MemberEnd() && it->value.IsUint64() ? it->value.GetUint64() : 0;
}

struct Filter {
    std::string a, b;   // addresses as the enforcer prints them
    int proto = -1;     // any
    int port = -1;      // destination port, any
    std::string proto_name;

    bool addr_ok(const std::string &src, const std::string &dst) const {
        if (b.empty()) return src == a || dst == a;
        return (src == a && dst == b) || (src == b && dst == a);
    }
};

// The address as the enforcer prints it (inet_ntop), whatever the user typed.
std::string canonical(const std::string &text) {
    std::string problem;
    auto p = policy::explain::parse_address(text, &problem);
    if (!p) throw std::runtime_error("ADDRESS: " + problem);
    const std::string s = p->str();
    return s.substr(0, s.find('/'));
}

std::string proto_of(uint64_t n) {
    switch (n) {
        case 6:
            return "tcp";
        case 17:
            return "udp";
        case 1:
            return "icmp";
        case 58:
            return "icmp6";
        default:
            return std::to_string(n);
    }
}

struct Snapshot {
    rapidjson::Document identity, flows, reports;
};

Snapshot take(TelemetryClient &tc) {
    Snapshot s;
    s.identity = tc.get("/segwire/identity");
    all_entries(tc, "/segwire/flows", 'f', s.flows);
    all_entries(tc, "/segwire/flowlog", 'r', s.reports);
    return s;
}

bool flow_ok(const Filter &f, const rapidjson::Value &r) {
    if (!f.addr_ok(str(r, "src"), str(r, "dst"))) return false;
    if (f.proto >= 0 && str(r, "proto") != f.proto_name) return false;
    return f.port < 0 || num(r, "dport") == uint64_t(f.port) || num(r, "sport") == uint64_t(f.port);
}

bool report_ok(const Filter &f, const rapidjson::Value &r) {
    if (!f.addr_ok(str(r, "sourceIP"), str(r, "destinationIP"))) return false;
    if (f.proto >= 0 && num(r, "protocol") != uint64_t(f.proto)) return false;
    return f.port < 0 || num(r, "destinationPort") == uint64_t(f.port);
}

// `clock`: with age and idle times (off for --follow's change detection).
std::string render_text(const Filter &f, const Snapshot &s, bool clock = true) {
    std::string out;
    char line[512];
    const uint64_t version = num(s.identity, "policy_version");
    std::snprintf(line, sizeof line, "enforcer %s, policy snapshot %llu (bundle %s)\n",
                  str(s.identity, "enforcer_id").c_str(), (unsigned long long)version,
                  str(s.identity, "bundle_version").c_str());
    out += line;
    unsigned flows = 0, reports = 0;
    for (const auto &r : s.flows.GetArray()) {
        if (!flow_ok(f, r)) continue;
        ++flows;
        std::snprintf(line, sizeof line, "flow %s %s:%llu -> %s:%llu (worker %llu)\n",
                      str(r, "proto").c_str(), str(r, "src").c_str(),
                      (unsigned long long)num(r, "sport"), str(r, "dst").c_str(),
                      (unsigned long long)num(r, "dport"), (unsigned long long)num(r, "worker"));
        out += line;
        const std::string peer = str(r, "peer_pu");
        std::snprintf(line, sizeof line, "  identity: %s, role %s, peer %s\n",
                      str(r, "auth").c_str(), str(r, "role").c_str(),
                      peer.empty() ? "without identity (decided by address, or not yet)"
                                   : ("PU " + peer + " signed by " + str(r, "peer_enforcer")).c_str());
        out += line;
        const uint64_t dv = num(r, "decided_version");
        std::snprintf(line, sizeof line, "  policy:   %s\n",
                      dv == 0         ? "not decided yet"
                      : dv == version ? ("decided under snapshot " + std::to_string(dv) + " (current)").c_str()
                                      : ("decided under snapshot " + std::to_string(dv) +
                                         ", re-decision under " + std::to_string(version) + " pending")
                                            .c_str());
        out += line;
        std::snprintf(line, sizeof line,
                      "  packets:  %s, %llu out / %llu back (%llu / %llu bytes), held %llu%s, age %llus, "
                      "idle %llus (%s)\n",
                      str(r, "state").c_str(), (unsigned long long)num(r, "pkts_out"),
                      (unsigned long long)num(r, "pkts_back"), (unsigned long long)num(r, "bytes_out"),
                      (unsigned long long)num(r, "bytes_back"), (unsigned long long)num(r, "held"),
                      num(r, "parked") ? ", waiting for the slow path" : "",
                      (unsigned long long)(clock ? num(r, "age_s") : 0),
                      (unsigned long long)(clock ? num(r, "idle_s") : 0),
                      str(r, "timeout_class").c_str());
        out += line;
    }
    if (flows == 0) out += "no flow entry matches (a refused flow from outside leaves none)\n";
    for (const auto &r : s.reports.GetArray()) {
        if (!report_ok(f, r)) continue;
        ++reports;
        const std::string drop = str(r, "dropReason"), rule = str(r, "ruleName"),
                          obs = str(r, "observedAction");
        std::snprintf(line, sizeof line,
                      "report %s %s -> %s:%llu: %s%s%s%s%s%s, mode %s, %llu flow(s)%s%s\n",
                      proto_of(num(r, "protocol")).c_str(), str(r, "sourceIP").c_str(),
                      str(r, "destinationIP").c_str(), (unsigned long long)num(r, "destinationPort"),
                      str(r, "action").c_str(), rule.empty() ? "" : " by rule ", rule.c_str(),
                      str(r, "policyID").empty() ? "" : " of policy ", str(r, "policyID").c_str(),
                      drop.empty() ? "" : (" (" + drop + ")").c_str(), str(r, "mode").c_str(),
                      (unsigned long long)num(r, "value"),
                      obs.empty() || obs == "NotApplicable" ? "" : ", observed ",
                      obs.empty() || obs == "NotApplicable" ? "" : obs.c_str());
        out += line;
    }
    if (reports == 0) out += "no flow report matches yet\n";
    return out;
}

std::string render_json(const Filter &f, Snapshot &s) {
    rapidjson::Document d(rapidjson::kObjectType);
    auto &al = d.GetAllocator();
    d.AddMember("enforcer_id", rapidjson::Value(str(s.identity, "enforcer_id").c_str(), al), al);
    d.AddMember("policy_version", num(s.identity, "policy_version"), al);
    rapidjson::Value flows(rapidjson::kArrayType), reports(rapidjson::kArrayType);
    for (auto &r : s.flows.GetArray())
        if (flow_ok(f, r)) flows.PushBack(rapidjson::Value(r, al), al);
    for (auto &r : s.reports.GetArray())
        if (report_ok(f, r)) reports.PushBack(rapidjson::Value(r, al), al);
    d.AddMember("flows", flows, al);
    d.AddMember("reports", reports, al);
    rapidjson::StringBuffer sb;
    rapidjson::PrettyWriter<rapidjson::StringBuffer> w(sb);
    d.Accept(w);
    return std::string(sb.GetString()) + "\n";
}

}  // namespace

int trace_main(int argc, char **argv, bool json, const std::string &socket) {
    double follow = 0;
    static option opts[] = {{"follow", required_argument, nullptr, 'f'},
                            {"help", no_argument, nullptr, 'h'},
                            {nullptr, 0, nullptr, 0}};
    optind = 1;
    int o;
    while ((o = getopt_long(argc, argv, "h", opts, nullptr)) != -1) {
        switch (o) {
            case 'f': {
                char *end = nullptr;
                follow = std::strtod(optarg, &end);
                if (*end || follow <= 0)
                    throw std::runtime_error("--follow: a number of seconds, not \"" +
                                             std::string(optarg) + "\"");
                break;
            }
            case 'h':
                std::fputs(kUsage, stdout);
                return 0;
            default:
                std::fputs(kUsage, stderr);
                return 2;
        }
    }
    const int rest = argc - optind;
    if (rest < 1 || rest > 3) {
        std::fputs(kUsage, stderr);
        return 2;
    }
    Filter f;
    f.a = canonical(argv[optind]);
    int next = optind + 1;
    if (next < argc && std::string(argv[next]).find_first_of(".:") != std::string::npos)
        f.b = canonical(argv[next++]);
    if (next < argc) {
        const std::string t = argv[next];
        const auto slash = t.find('/');
        uint8_t proto;
        if (!policy::parse_protocol(t.substr(0, slash), &proto))
            throw std::runtime_error("PROTOCOL: unknown protocol \"" + t.substr(0, slash) + "\"");
        f.proto = proto;
        f.proto_name = proto_of(proto);
        if (slash != std::string::npos) {
            char *end = nullptr;
            const unsigned long port = std::strtoul(t.c_str() + slash + 1, &end, 10);
            if (*end || port > 65535) throw std::runtime_error("PROTOCOL: bad port in \"" + t + "\"");
            f.port = int(port);
        }
    }
    TelemetryClient tc(socket);
    if (follow <= 0) {
        Snapshot s = take(tc);
        std::fputs((json ? render_json(f, s) : render_text(f, s)).c_str(), stdout);
        return 0;
    }
    // Live: a new rendering whenever something about the flows changed.
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(follow);
    std::string last;
    while (std::chrono::steady_clock::now() < end) {
        Snapshot s = take(tc);
        std::string key = render_text(f, s, false);
        if (key != last) {
            char stamp[32];
            const std::time_t t = std::time(nullptr);
            std::strftime(stamp, sizeof stamp, "%H:%M:%S", std::localtime(&t));
            if (!json) std::printf("--- %s\n", stamp);
            std::fputs((json ? render_json(f, s) : render_text(f, s)).c_str(), stdout);
            std::fflush(stdout);
            last = std::move(key);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
    return 0;
}

}  // namespace segwire::ctl
