#include "control/l7.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <poll.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <set>
#include <stdexcept>

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <rte_mbuf_dyn.h>
#include <spdlog/spdlog.h>

#include "config/policy/syntax.hpp"

extern char **environ;

namespace segwire::control {
namespace {

namespace fs = std::filesystem;

constexpr size_t kMaxReport = 4096;  // bytes of one API report datagram
constexpr size_t kMaxPendingReports = 100000;
constexpr size_t kMaxFlows = 65536;     // remembered steered flows
constexpr uint64_t kFlowMemoryS = 600;  // ... for this long at most once the map is full
constexpr size_t kMaxClients = 64;      // identity socket connections
constexpr size_t kMaxLine = 1024;       // one identity query

uint64_t now_s() {
    return static_cast<uint64_t>(std::time(nullptr));
}

void write_atomic(const std::string &path, const std::string &text, mode_t mode) {
    const std::string tmp = path + ".tmp";
    {
        std::ofstream out(tmp, std::ios::trunc);
        if (!out || !(out << text)) throw std::runtime_error("cannot write " + tmp);
    }
    chmod(tmp.c_str(), mode);
    if (std::rename(tmp.c_str(), path.c_str()) != 0)
        throw std::runtime_error("cannot rename " + tmp);
}

int unix_socket(const std::string &path, int type) {
    sockaddr_un a{};
    if (path.size() >= sizeof a.sun_path) throw std::runtime_error(path + ": path too long");
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path, path.c_str(), path.size());
    ::unlink(path.c_str());
    const int fd = ::socket(AF_UNIX, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) throw std::runtime_error(path + ": socket: " + std::strerror(errno));
    if (::bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0 ||
        (type == SOCK_STREAM && ::listen(fd, 16) != 0)) {
        const int e = errno;
        ::close(fd);
        throw std::runtime_error(path + ": bind: " + std::strerror(e));
    }
    chmod(path.c_str(), 0660);
    return fd;
}

// Runs the kernel-side setup (l7.setup) and waits for it. Throws with its exit status.
void run_setup(const config::L7Config &l) {
    std::vector<std::string> args = {l.setup,
                                     "up",
                                     l.iface,
                                     std::to_string(l.proxy_port),
                                     std::to_string(l.fwmark),
                                     std::to_string(l.table)};
    for (const auto &n : l.networks) args.push_back(n.str());
    std::vector<char *> argv;
    for (auto &a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid;
    if (int rc = posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), environ); rc != 0)
        throw std::runtime_error("l7.setup: cannot run " + l.setup + ": " + std::strerror(rc));
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        throw std::runtime_error("l7.setup: " + l.setup + " up " + l.iface + " failed (status " +
                                 std::to_string(status) + ")");
}

std::string host_of(const std::string &addr) {
    const auto slash = addr.find('/');
    return slash == std::string::npos ? addr : addr.substr(0, slash);
}

[[maybe_unused]] std::string to_json(const rapidjson::Value &v) {
    rapidjson::StringBuffer sb;
    rapidjson::Writer<rapidjson::StringBuffer> w(sb);
    v.Accept(w);
    return sb.GetString();
}

}  // namespace

L7Path::L7Path(const config::ApplianceConfig &cfg, uint16_t queues, rte_mempool *pool) : cfg_(cfg) {
    port_ = setup_port(l7_port_config(cfg), "l7", queues, pool);
    {
        ifreq ifr{};
        std::strncpy(ifr.ifr_name, cfg.l7.iface.c_str(), IFNAMSIZ - 1);
        const int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        const int rc = s < 0 ? -1 : ioctl(s, SIOCGIFHWADDR, &ifr);
        if (s >= 0) ::close(s);
        if (rc != 0)
            throw std::runtime_error("l7.iface " + cfg.l7.iface +
                                     ": no such kernel interface after the port started");
        std::memcpy(mac_, ifr.ifr_hwaddr.sa_data, 6);
    }
    // The mark that moves a packet from the inside queue to the exception port: an mbuf dynamic
    // flag (DPDK's facility for per-packet application bits), so no mbuf field is overloaded.
    static const rte_mbuf_dynflag flag = {"segwire_l7_exception", 0};
    const int bit = rte_mbuf_dynflag_register(&flag);
    if (bit < 0) throw std::runtime_error("l7: cannot register an mbuf dynamic flag");
    mark_ = uint64_t(1) << bit;
    neighbours_ = std::make_unique<dp::L7Neighbours>();
    run_setup(cfg.l7);
    dir_ = cfg.state_dir + "/l7";
    fs::create_directories(dir_);
    chmod(dir_.c_str(), 0700);
    identity_fd_ = unix_socket(dir_ + "/identity.sock", SOCK_STREAM);
    reports_fd_ = unix_socket(dir_ + "/reports.sock", SOCK_DGRAM);
    if (::pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0) throw std::runtime_error("l7: pipe");
    thread_ = std::thread([this] { serve(); });
    spdlog::info(
        "l7: exception interface {} ({}), kernel MAC {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}, "
        "proxy port {}; {}/identity.sock, {}/reports.sock",
        cfg.l7.iface, port_.driver, mac_[0], mac_[1], mac_[2], mac_[3], mac_[4], mac_[5],
        cfg.l7.proxy_port, dir_, dir_);
}

L7Path::~L7Path() {
    stop_.store(true);
    if (wake_[1] >= 0) {
        const char c = 0;
        (void)!::write(wake_[1], &c, 1);
    }
    if (thread_.joinable()) thread_.join();
    for (int fd : {identity_fd_, reports_fd_, wake_[0], wake_[1]})
        if (fd >= 0) ::close(fd);
    stop_port(port_.port_id);
}

std::vector<uint64_t> L7Path::policy_installed(
    const policy::PolicySet &set, const std::string &enforcer_id,
    const std::unordered_map<std::string, uint32_t> &pu_of) {
    std::vector<uint64_t> ports;
    std::set<std::pair<std::string, uint16_t>> targets;
    policy::L7Document doc;
    std::map<std::string, std::vector<std::string>> tls;
    doc.version = set.version;
    doc.http_resource_specs = set.http_resource_specs;
    for (const policy::Service &s : set.services) {
        policy::ParsedExpression sel;
        std::string where, problem;
        if (!policy::parse_tag_expression(s.selector, &sel, &where, &problem))
            continue;  // validated
        policy::Service out = s;
        out.upstreams.clear();
        for (const policy::ProcessingUnit &pu : set.processing_units) {
            if (pu.enforcer_id != enforcer_id) continue;
            if (!policy::expression_matches(sel, policy::effective_tags(pu))) continue;
            const auto idx = pu_of.find(pu.id.empty() ? pu.name : pu.id);
            if (idx == pu_of.end()) continue;
            ports.push_back(uint64_t(idx->second) << 16 | s.effective_exposed_port());
            for (const std::string &a : pu.addresses) {
                const std::string h = host_of(a);
                out.upstreams.push_back(h);
                targets.insert({h, s.effective_exposed_port()});
            }
        }
        if (out.upstreams.empty()) continue;  // selects no PU hosted here
        if (out.tls_type == "Aporeto") tls[out.name] = out.hosts;
        doc.services.push_back(std::move(out));
    }
    write_atomic(dir_ + "/services.json", policy::serialize_l7_document(doc), 0644);
    std::sort(ports.begin(), ports.end());
    ports.erase(std::unique(ports.begin(), ports.end()), ports.end());
    {
        std::lock_guard<std::mutex> lock(mu_);
        pus_.clear();
        for (const policy::ProcessingUnit &pu : set.processing_units)
            pus_[pu.id.empty() ? pu.name : pu.id] = {policy::effective_tags(pu), pu.enforcer_id};
        targets_.clear();
        for (const auto &t : targets) targets_[t] = true;
        tls_ = std::move(tls);
        ++tls_generation_;
    }
    spdlog::info("l7: policy {}: {} service(s), {} port(s) on hosted PUs; {}/services.json written",
                 set.version, doc.services.size(), ports.size(), dir_);
    return ports;
}

void L7Path::flow_decided(const std::string &src, uint16_t sport, const std::string &dst,
                          uint16_t dport, const std::string &peer_pu) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!targets_.count({dst, dport})) return;
    const uint64_t now = now_s();
    if (flows_.size() >= kMaxFlows) {
        for (auto it = flows_.begin(); it != flows_.end();)
            it = now - it->second.seen_s > kFlowMemoryS ? flows_.erase(it) : std::next(it);
        if (flows_.size() >= kMaxFlows) flows_.clear();
    }
    flows_[src + " " + std::to_string(sport) + " " + dst + " " + std::to_string(dport)] =
        Peer{peer_pu, now};
    ++counts_.identities;
}

void L7Path::refresh_credentials(const std::string &cert, const std::string &key,
                                 const std::string &ca) {
    if (cert == cert_ && key == key_ && ca == ca_) return;
    try {
        write_atomic(dir_ + "/enforcer.key", key, 0600);
        write_atomic(dir_ + "/enforcer.crt", cert, 0644);
        write_atomic(dir_ + "/ca.crt", ca, 0644);
        cert_ = cert, key_ = key, ca_ = ca;
        spdlog::info("l7: enforcer credential and CA written to {}", dir_);
    } catch (const std::exception &e) {
        spdlog::error("l7: {}", e.what());
    }
}

std::map<std::string, std::vector<std::string>> L7Path::tls_services(uint64_t *generation) const {
    std::lock_guard<std::mutex> lock(mu_);
    *generation = tls_generation_;
    return tls_;
}

std::vector<std::string> L7Path::take_reports() {
    std::lock_guard<std::mutex> lock(mu_);
    return std::exchange(reports_, {});
}

L7Counts L7Path::counts() const {
    std::lock_guard<std::mutex> lock(mu_);
    return counts_;
}

// One thread serves both sockets (poll): identity queries are answered at once, not at the
// control loop's 50 ms pace, since the proxy waits for them before its first request.
void L7Path::serve() {
    struct Client {
        int fd;
        std::string buf;
    };
    std::vector<Client> clients;
    std::vector<char> dgram(kMaxReport + 1);
    while (!stop_.load()) {
        std::vector<pollfd> p = {
            {wake_[0], POLLIN, 0}, {identity_fd_, POLLIN, 0}, {reports_fd_, POLLIN, 0}};
        for (auto &c : clients) p.push_back({c.fd, POLLIN, 0});
        if (::poll(p.data(), p.size(), 1000) < 0) continue;
        if (p[1].revents & POLLIN) {
            const int fd = ::accept4(identity_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
            if (fd >= 0) {
                if (clients.size() >= kMaxClients)
                    ::close(fd);
                else
                    clients.push_back({fd, {}});
            }
        }
        if (p[2].revents & POLLIN) {
            for (int i = 0; i < 256; ++i) {
                const ssize_t n = ::recv(reports_fd_, dgram.data(), dgram.size(), MSG_TRUNC);
                if (n < 0) break;
                on_report(dgram.data(), static_cast<size_t>(n));
            }
        }
        for (size_t i = 3; i < p.size(); ++i) {
            if (!p[i].revents) continue;
            Client &c = clients[i - 3];
            char buf[4096];
            const ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
            if (n <= 0) {
                ::close(c.fd);
                c.fd = -1;
                continue;
            }
            c.buf.append(buf, static_cast<size_t>(n));
            answer(c.fd, c.buf);
            if (c.buf.size() > kMaxLine) {  // no newline in sight: not a query
                ::close(c.fd);
                c.fd = -1;
            }
        }
        std::erase_if(clients, [](const Client &c) { return c.fd < 0; });
    }
    for (auto &c : clients) ::close(c.fd);
}

void L7Path::answer(int fd, std::string &buf) {
    size_t nl;
    while ((nl = buf.find('\n')) != std::string::npos) {
        const std::string line = buf.substr(0, nl);
        buf.erase(0, nl + 1);
        rapidjson::Document q;
        q.Parse(line.c_str());
        std::string reply;
        auto s = [&](const char *k) { return q.IsObject() && q.HasMember(k) && q[k].IsString(); };
        auto u = [&](const char *k) {
            return q.IsObject() && q.HasMember(k) && q[k].IsUint() && q[k].GetUint() <= 65535;
        };
        if (q.HasParseError() || !s("src") || !s("dst") || !u("sport") || !u("dport")) {
            std::lock_guard<std::mutex> lock(mu_);
            ++counts_.bad_queries;
            reply = R"({"found":false,"error":"a query is {\"src\",\"sport\",\"dst\",\"dport\"}"})";
        } else {
            const std::string key =
                std::string(q["src"].GetString()) + " " + std::to_string(q["sport"].GetUint()) +
                " " + q["dst"].GetString() + " " + std::to_string(q["dport"].GetUint());
            rapidjson::StringBuffer sb;
            rapidjson::Writer<rapidjson::StringBuffer> w(sb);
            std::lock_guard<std::mutex> lock(mu_);
            ++counts_.queries;
            const auto it = flows_.find(key);
            w.StartObject();
            w.Key("found");
            w.Bool(it != flows_.end());
            if (it != flows_.end()) {
                ++counts_.found;
                w.Key("pu");
                if (it->second.pu.empty()) {
                    w.Null();
                } else {
                    w.String(it->second.pu.c_str());
                    const auto pu = pus_.find(it->second.pu);
                    w.Key("tags");
                    w.StartArray();
                    if (pu != pus_.end())
                        for (const auto &t : pu->second.first) w.String(t.c_str());
                    w.EndArray();
                    w.Key("enforcer");
                    w.String(pu != pus_.end() ? pu->second.second.c_str() : "");
                }
            } else {
                ++counts_.not_found;
            }
            w.EndObject();
            reply = sb.GetString();
        }
        reply += '\n';
        // A client that does not read its answers loses them (non-blocking, never waited on).
        (void)!::send(fd, reply.data(), reply.size(), MSG_NOSIGNAL);
    }
}

// An API report (docs/l7-path.md "API reports"): a bounded JSON object with the contract's fields
// only; anything else is counted and dropped.
void L7Path::on_report(const char *data, size_t n) {
    bool ok = n <= kMaxReport;
    rapidjson::Document d;
    if (ok) {
        d.Parse(data, n);
        ok = !d.HasParseError() && d.IsObject();
    }
    static const std::set<std::string> strings = {"service", "method", "path",  "callerIP",
                                                  "verdict", "rule",   "reason"};
    static const std::set<std::string> nullable = {"callerPU", "callerUser"};
    static const std::set<std::string> numbers = {"status", "latencyUs", "timestamp"};
    if (ok) ok = d.MemberCount() <= 16;
    // MemberBegin/End assert on anything but an object: only walked once it is one.
    for (auto it = ok ? d.MemberBegin() : rapidjson::Value::MemberIterator();
         ok && it != d.MemberEnd(); ++it) {
        const std::string k = it->name.GetString();
        if (strings.count(k))
            ok = it->value.IsString() && it->value.GetStringLength() <= 1024;
        else if (nullable.count(k))
            ok = it->value.IsNull() || (it->value.IsString() && it->value.GetStringLength() <= 256);
        else if (numbers.count(k))
            ok = it->value.IsUint64();
        else
            ok = false;
    }
    if (ok)
        for (const char *k : {"service", "method", "path", "verdict", "timestamp"})
            ok &= d.HasMember(k);
    if (ok) {
        const std::string v = d["verdict"].GetString();
        ok = v == "accept" || v == "reject";
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (!ok || reports_.size() >= kMaxPendingReports) {
        ++counts_.bad_reports;
        return;
    }
    ++counts_.reports;
    reports_.push_back(to_json(d));
}

}  // namespace segwire::control
