// segwirectl capture: asks the running segwire to write a pcapng file (telemetry
// /segwire/capture/start), then polls /segwire/capture until the capture ends - by its count, its
// duration, or Ctrl-C (/segwire/capture/stop). The daemon writes the file itself: telemetry
// replies are capped at 16 KiB, too small to stream packets through. docs/capture.md.
#include "tools/segwirectl/commands.hpp"
#include "tools/segwirectl/telemetry_client.hpp"

#include <getopt.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>

#include <rapidjson/document.h>
#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>

namespace segwire::ctl {
namespace {

volatile sig_atomic_t g_interrupted = 0;
void on_interrupt(int) {
    g_interrupted = 1;
}

void usage(FILE *out) {
    std::fprintf(
        out,
        "usage: segwirectl capture -w FILE [-i inside|outside|both] [-f FLOW] [-c COUNT]\n"
        "                          [-d SECONDS] [-s SNAPLEN]\n"
        "       segwirectl capture --status | --stop\n"
        "  -w, --write FILE     pcapng file, written by segwire (an existing one is replaced)\n"
        "  -i, --port PORT      inside, outside or both (default)\n"
        "  -f, --flow FLOW      [PROTO] [END [END]], both directions; END is ADDR, ADDR:PORT,\n"
        "                       [IPV6]:PORT, *:PORT or *  (e.g. 'tcp 10.0.0.1 10.0.0.2:443')\n"
        "  -c, --count N        stop after N packets written\n"
        "  -d, --duration S     stop after S seconds (without -c or -d: at Ctrl-C)\n"
        "  -s, --snaplen N      bytes kept per packet (default: all)\n"
        "Packets are recorded as received (inbound) and sent (outbound) on each port; a packet\n"
        "segwire drops is recorded once more with the drop reason as its comment.\n");
}

std::string u(const rapidjson::Value &o, const char *k) {
    auto it = o.FindMember(k);
    if (it == o.MemberEnd()) return "0";
    if (it->value.IsUint64()) return std::to_string(it->value.GetUint64());
    return it->value.IsString() ? it->value.GetString() : "0";
}
std::string s(const rapidjson::Value &o, const char *k) {
    auto it = o.FindMember(k);
    return it != o.MemberEnd() && it->value.IsString() ? it->value.GetString() : "";
}

// The reply's value for `cmd`; throws with the daemon's error when it refused.
rapidjson::Document ask(TelemetryClient &tc, const std::string &cmd) {
    const std::string reply = tc.query(cmd);
    rapidjson::Document d;
    d.Parse(reply.c_str());
    const std::string key = cmd.substr(0, cmd.find(','));
    if (d.HasParseError() || !d.IsObject() || !d.HasMember(key.c_str()))
        throw std::runtime_error("malformed reply to " + key + ": " + reply);
    if (!d[key.c_str()].IsObject())
        throw std::runtime_error(key + " failed (unknown command: a segwire without capture?)");
    rapidjson::Document out;
    out.CopyFrom(d[key.c_str()], out.GetAllocator());
    if (out.HasMember("error") && out["error"].IsString() && !out.HasMember("state"))
        throw std::runtime_error(out["error"].GetString());
    return out;
}

void print_json(const rapidjson::Value &v) {
    rapidjson::StringBuffer sb;
    rapidjson::PrettyWriter<rapidjson::StringBuffer> w(sb);
    v.Accept(w);
    std::printf("%s\n", sb.GetString());
}

// `file`: the path as given (telemetry strings stop at 127 characters).
void print_summary(const rapidjson::Value &st, std::string file = "") {
    if (file.empty()) file = s(st, "file");
    std::string drops;
    if (st.HasMember("drops") && st["drops"].IsObject())
        for (auto &m : st["drops"].GetObject())
            if (m.value.IsUint64()) {
                std::string name = m.name.GetString();
                for (char &c : name)
                    if (c == '_') c = '-';  // telemetry spells the reasons with '_'
                drops += (drops.empty() ? " (" : ", ") + name + " " +
                         std::to_string(m.value.GetUint64());
            }
    if (!drops.empty()) drops += ")";
    std::printf(
        "capture %s %s (%s) after %s s: %s packets written: %s received, %s sent, %s "
        "dropped by segwire%s\n",
        u(st, "id").c_str(), s(st, "state").c_str(), s(st, "ended").c_str(),
        s(st, "elapsed_s").c_str(), u(st, "written").c_str(), u(st, "received").c_str(),
        u(st, "sent").c_str(), u(st, "dropped").c_str(), drops.c_str());
    std::printf("matched inside %s, outside %s; not captured (ring full or pool empty): %s\n",
                u(st, "matched_inside").c_str(), u(st, "matched_outside").c_str(),
                u(st, "lost").c_str());
    std::printf("%s: %s bytes\n", file.c_str(), u(st, "bytes").c_str());
    if (!s(st, "error").empty()) std::printf("error: %s\n", s(st, "error").c_str());
}

}  // namespace

int capture_main(int argc, char **argv, bool json, const std::string &socket) {
    TelemetryClient tc(socket);
    std::string file, port = "both", flow, count, duration, snaplen;
    bool status = false, stop = false;
    static option opts[] = {
        {"write", required_argument, nullptr, 'w'},    {"port", required_argument, nullptr, 'i'},
        {"flow", required_argument, nullptr, 'f'},     {"count", required_argument, nullptr, 'c'},
        {"duration", required_argument, nullptr, 'd'}, {"snaplen", required_argument, nullptr, 's'},
        {"status", no_argument, nullptr, 'S'},         {"stop", no_argument, nullptr, 'X'},
        {"help", no_argument, nullptr, 'h'},           {nullptr, 0, nullptr, 0}};
    optind = 1;
    int o;
    while ((o = getopt_long(argc, argv, "w:i:f:c:d:s:h", opts, nullptr)) != -1) {
        switch (o) {
            case 'w':
                file = optarg;
                break;
            case 'i':
                port = optarg;
                break;
            case 'f':
                flow = optarg;
                break;
            case 'c':
                count = optarg;
                break;
            case 'd':
                duration = optarg;
                break;
            case 's':
                snaplen = optarg;
                break;
            case 'S':
                status = true;
                break;
            case 'X':
                stop = true;
                break;
            case 'h':
                usage(stdout);
                return 0;
            default:
                usage(stderr);
                return 2;
        }
    }
    if (optind < argc) {
        std::fprintf(stderr, "segwirectl capture: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (status || stop) {
        rapidjson::Document st = ask(tc, stop ? "/segwire/capture/stop" : "/segwire/capture");
        if (json || s(st, "state") == "idle")
            print_json(st);
        else
            print_summary(st);
        return 0;
    }
    if (file.empty()) {
        std::fprintf(stderr, "segwirectl capture: -w FILE is required\n");
        usage(stderr);
        return 2;
    }
    // The daemon creates the file (never over an existing one, never through a symlink): make
    // the path absolute; what is there is removed with this user's rights once the daemon has
    // accepted everything else.
    if (file.front() != '/') {
        char cwd[4096];
        if (!getcwd(cwd, sizeof cwd))
            throw std::runtime_error("getcwd: " + std::string(strerror(errno)));
        file = std::string(cwd) + "/" + file;
    }
    for (const auto &[name, v] : {std::pair{"-w", &file}, {"-f", &flow}})
        if (v->find(';') != std::string::npos)
            throw std::runtime_error(std::string(name) + ": ';' cannot be passed to segwire");
    struct stat sb;
    if (lstat(file.c_str(), &sb) == 0 && S_ISDIR(sb.st_mode))
        throw std::runtime_error("-w " + file + " is a directory");
    // The lease ends the capture should this process die without stopping it.
    std::string params = "file=" + file + ";port=" + port + ";lease=15";
    if (!flow.empty()) params += ";flow=" + flow;
    if (!count.empty()) params += ";count=" + count;
    if (!duration.empty()) params += ";duration=" + duration;
    if (!snaplen.empty()) params += ";snaplen=" + snaplen;
    const std::string cmd = "/segwire/capture/start," + params;
    if (cmd.size() >= 1000)  // DPDK's telemetry reads one command into a 1 KiB buffer
        throw std::runtime_error("-w / -f too long for the telemetry socket");

    struct sigaction sa {};
    sa.sa_handler = on_interrupt;
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    rapidjson::Document st;
    try {
        st = ask(tc, cmd);
    } catch (const std::runtime_error &e) {
        if (std::string(e.what()).find("File exists") == std::string::npos) throw;
        if (unlink(file.c_str()) != 0)
            throw std::runtime_error("cannot replace " + file + ": " + strerror(errno));
        st = ask(tc, cmd);
    }
    const std::string id = u(st, "id");
    std::printf("capture %s: port %s%s%s%s into %s (Ctrl-C stops)\n", id.c_str(), port.c_str(),
                flow.empty() ? "" : (", flow '" + flow + "'").c_str(),
                count.empty() ? "" : (", " + count + " packets").c_str(),
                duration.empty() ? "" : (", " + duration + " s").c_str(), file.c_str());
    std::fflush(stdout);
    bool stop_sent = false;
    for (;;) {
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        if (g_interrupted && !stop_sent) {
            ask(tc, "/segwire/capture/stop," + id);
            stop_sent = true;
        }
        st = ask(tc, "/segwire/capture," + id);  // also renews the lease
        if (u(st, "id") != id) throw std::runtime_error("capture " + id + " was replaced");
        const std::string state = s(st, "state");
        if (state != "running" && state != "stopping") break;
    }
    json ? print_json(st) : print_summary(st, file);
    return s(st, "state") == "done" ? 0 : 1;
}

}  // namespace segwire::ctl
