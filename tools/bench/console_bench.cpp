// segwire-bench console: N simulated enforcers against a real segwire-console (docs/console.md,
// "Scale"). Each one does what control/console_sync.cpp does - app credential, POST /issue (mTLS),
// registration with its own key and CSR, then the long-poll for its bundle, heartbeats, peer
// certificate refreshes and flow reports (100 flows a second) - all of them from one thread over
// libcurl's multi interface, so the load generator holds thousands of connections on a core.
// Figures per run of the Console: how many enforcers it held (every one connected and polling),
// the policy-propagation latency (from an admin's write to every enforcer holding the new bundle)
// p50 / p99 / max, the flow reports it ingested per second against what was offered, and its
// memory (VmRSS, VmHWM).
#include "tools/bench/console_bench.hpp"

#include <curl/curl.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <rapidjson/document.h>

#include "control/console_client.hpp"
#include "crypto/pki.hpp"

namespace segwire::bench {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double since_ms(Clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

std::string json_str(const std::string &body, const char *field) {
    rapidjson::Document d;
    d.Parse(body.c_str());
    if (d.HasParseError() || !d.IsObject() || !d.HasMember(field) || !d[field].IsString())
        return "";
    return d[field].GetString();
}

// ---- SIGINT / SIGTERM: nothing of the run outlives it ----

// pg_ctl daemonizes PostgreSQL, so a bench killed by Ctrl-C or a harness's timeout left the
// cluster (and its Consoles) running. SIGINT and SIGTERM are blocked in every thread of the run
// and taken by one watcher (sigwait), which stops the Consoles and the cluster registered below
// and exits 128 + the signal; children get an empty mask back before exec (restore_signals()).
std::mutex g_live_mu;
std::vector<std::pair<pid_t, std::string>> g_live_consoles;  // started, not stopped: pid, data
std::function<void()> g_stop_cluster;  // the PostgreSQL cluster, while it runs

void restore_signals() {  // in a forked child, before exec
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
}

// SIGTERM, up to 10 s for it to end, then SIGKILL; reaped either way.
void terminate(pid_t pid) {
    kill(pid, SIGTERM);
    for (int i = 0; i < 100; ++i) {
        if (waitpid(pid, nullptr, WNOHANG) != 0) return;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
}

void untrack_console(pid_t pid) {
    std::lock_guard<std::mutex> g(g_live_mu);
    std::erase_if(g_live_consoles, [pid](const auto &c) { return c.first == pid; });
}

// The cluster's stop, callable from the watcher while run_stores() runs.
class ClusterStop {
  public:
    explicit ClusterStop(std::function<void()> stop) {
        std::lock_guard<std::mutex> g(g_live_mu);
        g_stop_cluster = std::move(stop);
    }
    ~ClusterStop() {
        std::lock_guard<std::mutex> g(g_live_mu);
        g_stop_cluster = nullptr;
    }
    ClusterStop(const ClusterStop &) = delete;
    ClusterStop &operator=(const ClusterStop &) = delete;
};

class SignalStop {
  public:
    SignalStop() {
        sigemptyset(&set_);
        sigaddset(&set_, SIGINT);
        sigaddset(&set_, SIGTERM);
        sigaddset(&set_, SIGUSR2);  // the run ended: the watcher returns
        pthread_sigmask(SIG_BLOCK, &set_, &old_);
        watcher_ = std::thread([this] {
            int sig = 0;
            if (sigwait(&set_, &sig) != 0 || sig == SIGUSR2) return;
            std::fprintf(stderr,
                         "segwire-bench console: %s: stopping the Consoles and PostgreSQL\n",
                         strsignal(sig));
            std::lock_guard<std::mutex> g(g_live_mu);
            for (const auto &[p, dir] : g_live_consoles) {
                terminate(p);
                std::error_code ec;
                fs::remove_all(dir, ec);
            }
            if (g_stop_cluster) g_stop_cluster();
            std::fflush(nullptr);
            _exit(128 + sig);
        });
    }
    ~SignalStop() {
        pthread_kill(watcher_.native_handle(), SIGUSR2);
        watcher_.join();
        pthread_sigmask(SIG_SETMASK, &old_, nullptr);
    }
    SignalStop(const SignalStop &) = delete;
    SignalStop &operator=(const SignalStop &) = delete;

  private:
    sigset_t set_, old_;
    std::thread watcher_;
};

// ---- the Console under test: its own process and data directory ----

// The URL of a Console's "listening on URL" line read from its stdout (`fd`), or "" when it ended
// without one; a thread keeps draining the pipe afterwards so that it never blocks on it.
std::string listening_url(int fd) {
    FILE *f = fdopen(fd, "r");
    std::string url;
    char line[512];
    while (std::fgets(line, sizeof line, f)) {
        const char *p = std::strstr(line, "listening on ");
        if (p) {
            url = std::string(p + 13);
            while (!url.empty() && (url.back() == '\n' || url.back() == '\r')) url.pop_back();
            break;
        }
    }
    std::thread([f] {
        char b[512];
        while (std::fgets(b, sizeof b, f)) {
        }
        std::fclose(f);
    }).detach();
    return url;
}

// Starts `args` (a `segwire-console serve` command line, plus --threads N when set) with its
// stderr to /dev/null (it logs every request) and its stdout read for the URL it listens on;
// returns its pid (-1 when it could not be started), registered with its data directory `dir`
// for the signal watcher. *url stays "" when no URL came.
pid_t spawn_console(std::vector<std::string> args, int threads, const std::string &dir,
                    std::string *url) {
    if (threads) {
        args.push_back("--threads");
        args.push_back(std::to_string(threads));
    }
    int out[2];
    if (pipe(out) != 0) return -1;
    const pid_t pid = fork();
    if (pid == 0) {
        restore_signals();
        dup2(out[1], 1);
        close(out[0]);
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 2);
        std::vector<char *> argv;
        for (auto &a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        execv(argv[0], argv.data());
        _exit(127);
    }
    close(out[1]);
    if (pid > 0) {
        std::lock_guard<std::mutex> g(g_live_mu);
        g_live_consoles.emplace_back(pid, dir);
    }
    *url = listening_url(out[0]);
    return pid;
}

struct ConsoleProc {
    pid_t pid = -1;
    std::string url, dir, ca_pem, admin_token;
    control::HttpResponse admin(const std::string &method, const std::string &path,
                                const std::string &body = "") const {
        control::ConsoleClient c(url, ca_pem, false);
        c.set_token(admin_token);
        return c.call(method, path, body, 30);
    }
    // (VmRSS, VmHWM) in MiB.
    std::pair<double, double> memory() const {
        std::ifstream f("/proc/" + std::to_string(pid) + "/status");
        std::string line;
        double rss = 0, hwm = 0;
        while (std::getline(f, line)) {
            if (line.rfind("VmRSS:", 0) == 0) rss = std::atof(line.c_str() + 6) / 1024.0;
            if (line.rfind("VmHWM:", 0) == 0) hwm = std::atof(line.c_str() + 6) / 1024.0;
        }
        return {rss, hwm};
    }
    void stop() {
        if (pid <= 0) return;
        untrack_console(pid);
        terminate(pid);
        pid = -1;
    }
    ~ConsoleProc() {
        stop();
        if (!dir.empty()) {
            std::error_code ec;
            fs::remove_all(dir, ec);
        }
    }
};

int run_quiet(const std::vector<std::string> &argv) {
    pid_t p = fork();
    if (p == 0) {
        restore_signals();
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        std::vector<char *> a;
        for (const auto &s : argv) a.push_back(const_cast<char *>(s.c_str()));
        a.push_back(nullptr);
        execv(a[0], a.data());
        _exit(127);
    }
    int st = 0;
    waitpid(p, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

bool start_console(const ConsoleBenchOptions &o, ConsoleProc &c, std::string &err) {
    char tmpl[] = "/tmp/segwire-bench-console-XXXXXX";
    if (!mkdtemp(tmpl)) {
        err = "mkdtemp: " + std::string(std::strerror(errno));
        return false;
    }
    c.dir = tmpl;
    const std::string bin = o.console_bin;
    const std::string cred = c.dir + "/admin.json";
    std::vector<std::string> db_args;
    if (!o.database.empty()) {
        // A fresh store per run, as SQLite gets a fresh directory.
        if (run_quiet({"/usr/bin/psql", o.database, "-qXc",
                       "DROP SCHEMA public CASCADE; CREATE SCHEMA public"}) != 0) {
            err = "psql " + o.database + ": cannot empty the public schema";
            return false;
        }
        db_args = {"--database", o.database};
    }
    std::vector<std::string> create = {bin,     "appcred", "create",      "--data",
                                       c.dir,   "--name",  "bench-admin", "--role",
                                       "admin", "--out",   cred};
    create.insert(create.end(), db_args.begin(), db_args.end());
    if (run_quiet(create) != 0) {
        err = bin + " appcred create failed";
        return false;
    }
    std::vector<std::string> args = {bin,        "serve",      "--data",   c.dir,
                                     "--policy", o.policy_dir, "--listen", "127.0.0.1:0"};
    args.insert(args.end(), db_args.begin(), db_args.end());
    c.pid = spawn_console(args, o.threads, c.dir, &c.url);
    if (c.url.empty()) {
        err = "the Console did not start (no \"listening on\" line)";
        return false;
    }
    // The admin's token: mTLS with the credential's certificate.
    std::ifstream in(cred);
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string text = ss.str();
    const std::string crt = control::base64_decode(json_str(text, "certificate"));
    const std::string key = control::base64_decode(json_str(text, "certificateKey"));
    c.ca_pem = control::base64_decode(json_str(text, "certificateAuthority"));
    control::ConsoleClient issuer(c.url, c.ca_pem, false);
    issuer.set_client_certificate(crt, key);
    auto r = issuer.call("POST", "/issue", R"({"realm":"Certificate","validity":"4h"})");
    c.admin_token = json_str(r.body, "token");
    if (c.admin_token.empty()) {
        err = "POST /issue (admin): " + std::to_string(r.status) + " " + r.body + r.error;
        return false;
    }
    return true;
}

// ---- the PostgreSQL rows: a cluster of this run, and Console replicas ----

// An unprivileged PostgreSQL cluster in a temporary directory, as tests/integration/console/
// pg_harness.py starts one: initdb and pg_ctl as the `postgres` system user (or `segwire-pg`,
// made for the purpose), listening only on a Unix socket in that directory. Stopped and removed
// by stop() (the destructor too).
struct PgCluster {
    std::string dir, user, bin;
    bool started = false;
    int databases = 0;

    bool as_user(const std::vector<std::string> &cmd) const {
        std::vector<std::string> a = {"/usr/sbin/runuser", "-u", user, "--"};
        a.insert(a.end(), cmd.begin(), cmd.end());
        return run_quiet(a) == 0;
    }
    bool start(const std::string &pg_bin, std::string &err) {
        bin = pg_bin;
        if (!fs::exists(bin + "/initdb")) {
            err = bin + "/initdb missing: run tools/setup (postgresql)";
            return false;
        }
        const passwd *pw = nullptr;
        for (const char *name : {"postgres", "segwire-pg"})
            if ((pw = getpwnam(name))) break;
        if (!pw) {
            run_quiet({"/usr/sbin/useradd", "--system", "--no-create-home", "--shell",
                       "/usr/sbin/nologin", "segwire-pg"});
            pw = getpwnam("segwire-pg");
        }
        if (!pw) {
            err = "no postgres or segwire-pg system user to run PostgreSQL as";
            return false;
        }
        user = pw->pw_name;
        char tmpl[] = "/tmp/segwire-bench-pg-XXXXXX";
        if (!mkdtemp(tmpl)) {
            err = "mkdtemp: " + std::string(std::strerror(errno));
            return false;
        }
        dir = tmpl;
        if (chown(dir.c_str(), pw->pw_uid, pw->pw_gid) != 0 || chmod(dir.c_str(), 0755) != 0) {
            err = "chown/chmod " + dir + ": " + std::strerror(errno);
            return false;
        }
        if (!as_user({bin + "/initdb", "-D", dir + "/data", "-A", "trust", "-U", "segwire",
                      "--no-sync", "-E", "UTF8"})) {
            err = "initdb failed in " + dir;
            return false;
        }
        // fsync stays on: a commit costs what it costs on this disk (group commit is measured).
        if (!as_user({bin + "/pg_ctl", "-D", dir + "/data", "-l", dir + "/server.log", "-w", "-t",
                      "60", "-o", "-c listen_addresses='' -k " + dir + " -c max_connections=200",
                      "start"})) {
            err = "pg_ctl start failed (see " + dir + "/server.log)";
            return false;
        }
        started = true;
        return true;
    }
    std::string uri(const std::string &db) const {
        return "postgresql://segwire@/" + db + "?host=" + dir;
    }
    // A fresh, empty database for one row.
    std::string new_database(std::string &err) {
        const std::string name = "bench_" + std::to_string(++databases);
        if (run_quiet({"/usr/bin/psql", uri("postgres"), "-qXc", "CREATE DATABASE " + name}) != 0) {
            err = "psql: CREATE DATABASE " + name + " failed";
            return "";
        }
        return uri(name);
    }
    void stop() {
        if (started) {
            as_user({bin + "/pg_ctl", "-D", dir + "/data", "-m", "fast", "-w", "stop"});
            started = false;
        }
        if (!dir.empty()) {
            std::error_code ec;
            fs::remove_all(dir, ec);
            dir.clear();
        }
    }
    ~PgCluster() { stop(); }
};

// A second Console on the first one's PostgreSQL database: its own data directory holding
// copies of the first one's keys (docs/console.md, "PostgreSQL store, replicas and enforcer
// failover"), so that tokens, app credentials and certificates of one are good at the other.
bool start_replica(const ConsoleBenchOptions &o, const ConsoleProc &first, ConsoleProc &c,
                   std::string &err) {
    char tmpl[] = "/tmp/segwire-bench-console-XXXXXX";
    if (!mkdtemp(tmpl)) {
        err = "mkdtemp: " + std::string(std::strerror(errno));
        return false;
    }
    c.dir = tmpl;
    for (const char *k : {"ca.pem", "ca.key", "appcred-ca.pem", "appcred-ca.key", "token.key"}) {
        std::error_code ec;
        fs::copy_file(first.dir + "/" + k, c.dir + "/" + k, ec);
        if (ec) {
            err = "replica: cannot copy " + std::string(k) + ": " + ec.message();
            return false;
        }
    }
    c.pid = spawn_console({o.console_bin, "serve", "--data", c.dir, "--database", o.database,
                           "--listen", "127.0.0.1:0"},
                          o.threads, c.dir, &c.url);
    if (c.url.empty()) {
        err = "the replica did not start (no \"listening on\" line)";
        return false;
    }
    c.ca_pem = first.ca_pem;
    c.admin_token = first.admin_token;  // one signing key
    return true;
}

// ---- one simulated enforcer ----

struct SimEnforcer {
    std::string id, token, etag;
    // Requests in flight (at most one of each kind).
    CURL *poll = nullptr, *report = nullptr, *beat = nullptr, *peers = nullptr;
    curl_slist *auth = nullptr, *poll_hdrs = nullptr;
    std::string poll_body, poll_etag, report_body, sink;
    Clock::time_point next_report, next_beat, next_peers;
    uint64_t batch = 0, poll_errors = 0, report_errors = 0;
    bool polled = false;  // holds a bundle
    std::string before;   // its ETag when the write being measured was made ("" = none)
    double got_ms = -1;   // when it got a newer bundle than `before` (ms after the write)
    // Its Console (a replica's URL; "" = the run's first Console), and the peer certificate
    // fetch made conditional as control/console_sync.cpp makes it (If-None-Match).
    std::string url;
    curl_slist *peers_hdrs = nullptr;
    std::string peers_etag, peers_new_etag;
    uint64_t peers_304 = 0, peers_200 = 0;
};

// Registration (setup, not measured): credential, token, key + CSR, POST /enforcers.
bool enroll(const ConsoleProc &c, SimEnforcer &e, std::string &err) {
    auto r =
        c.admin("POST", "/appcreds",
                R"({"name":")" + e.id + R"(","role":"enforcer","enforcerID":")" + e.id + "\"}");
    if (r.status != 201) {
        err = "POST /appcreds: " + std::to_string(r.status) + " " + r.body + r.error;
        return false;
    }
    control::ConsoleClient issuer(c.url, c.ca_pem, false);
    issuer.set_client_certificate(control::base64_decode(json_str(r.body, "certificate")),
                                  control::base64_decode(json_str(r.body, "certificateKey")));
    auto t = issuer.call("POST", "/issue", R"({"realm":"Certificate","validity":"4h"})");
    e.token = json_str(t.body, "token");
    if (e.token.empty()) {
        err = "POST /issue: " + std::to_string(t.status) + " " + t.body + t.error;
        return false;
    }
    auto key = crypto::generate_p256_key();
    if (!key) return false;
    auto csr = crypto::create_csr(key->get(), e.id);
    if (!csr) return false;
    std::string pem = *crypto::csr_to_pem(csr->get());
    std::string esc;
    for (char ch : pem) esc += ch == '\n' ? std::string("\\n") : std::string(1, ch);
    control::ConsoleClient cl(c.url, c.ca_pem, false);
    cl.set_token(e.token);
    auto reg =
        cl.call("POST", "/enforcers",
                R"({"name":")" + e.id +
                    R"(","associatedTags":["role=appliance","site=dc1"],"csr":")" + esc + "\"}",
                30);
    if (!reg.ok()) {
        err = "POST /enforcers: " + std::to_string(reg.status) + " " + reg.body + reg.error;
        return false;
    }
    return true;
}

size_t on_body(char *p, size_t s, size_t n, void *ud) {
    static_cast<std::string *>(ud)->append(p, s * n);
    return s * n;
}

size_t on_header(char *p, size_t s, size_t n, void *ud) {
    std::string h(p, s * n);
    if (h.size() > 5 && strncasecmp(h.c_str(), "etag:", 5) == 0) {
        std::string v = h.substr(5);
        v.erase(0, v.find_first_not_of(" \t\""));
        v.erase(v.find_last_not_of(" \t\r\n\"") + 1);
        *static_cast<std::string *>(ud) = v;
    }
    return s * n;
}

// What one run measured.
struct RunResult {
    uint32_t enforcers = 0, enrolled = 0, connected = 0;
    double enroll_s = 0;
    std::vector<double> propagation_ms;  // one per enforcer that got the version, per write
    uint32_t writes = 0, missed = 0;     // enforcers that did not get a write's version in time
    double reports_offered_per_s = 0, reports_per_s = 0;
    uint64_t report_errors = 0, poll_errors = 0;
    double rss_mib = 0, hwm_mib = 0;
    std::string error;
    uint32_t replicas = 1;
    uint64_t peers_304 = 0, peers_200 = 0;  // conditional certificate fetches: 304s and 200s
};

class Load {
  public:
    Load(const ConsoleProc &c, std::vector<SimEnforcer> &es, uint32_t poll_wait_s)
        : c_(c), es_(es), wait_s_(poll_wait_s) {
        multi_ = curl_multi_init();
        curl_multi_setopt(multi_, CURLMOPT_MAXCONNECTS, long(es.size() * 4 + 16));
        ca_ = {const_cast<char *>(c.ca_pem.data()), c.ca_pem.size(), CURL_BLOB_NOCOPY};
        for (auto &e : es_) {
            e.auth = curl_slist_append(nullptr, ("Authorization: Bearer " + e.token).c_str());
            e.auth = curl_slist_append(e.auth, "Content-Type: application/json");
            const auto now = Clock::now();
            // Spread the periodic work over its period, as real enforcers started apart would.
            const auto jitter = [&](int ms) { return std::chrono::milliseconds(rand() % ms); };
            e.next_report = now + jitter(1000);
            e.next_beat = now + jitter(10000);
            e.next_peers = now + jitter(5000);
        }
    }
    ~Load() {
        for (auto &e : es_) {
            for (CURL **h : {&e.poll, &e.report, &e.beat, &e.peers})
                if (*h) {
                    curl_multi_remove_handle(multi_, *h);
                    curl_easy_cleanup(*h);
                    *h = nullptr;
                }
            curl_slist_free_all(e.auth);
            curl_slist_free_all(e.poll_hdrs);
            curl_slist_free_all(e.peers_hdrs);
            e.auth = e.poll_hdrs = e.peers_hdrs = nullptr;
        }
        curl_multi_cleanup(multi_);
    }

    // Runs the enforcers' loops until `until` returns true or `deadline` passes.
    template <class F>
    bool run_until(Clock::time_point deadline, F &&until) {
        while (Clock::now() < deadline) {
            schedule();
            int running = 0;
            curl_multi_perform(multi_, &running);
            reap();
            if (until()) return true;
            curl_multi_poll(multi_, nullptr, 0, 20, nullptr);
        }
        return false;
    }

    uint64_t reports_acked = 0;
    Clock::time_point write_t0{};
    uint32_t got = 0;

  private:
    CURL *easy(SimEnforcer &e, const std::string &path, long timeout_s) {
        CURL *h = curl_easy_init();
        curl_easy_setopt(h, CURLOPT_URL, ((e.url.empty() ? c_.url : e.url) + path).c_str());
        curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &ca_);
        curl_easy_setopt(h, CURLOPT_TIMEOUT, timeout_s);
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 30L);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, e.auth);
        curl_easy_setopt(h, CURLOPT_PRIVATE, &e);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
        return h;
    }

    void schedule() {
        const auto now = Clock::now();
        for (auto &e : es_) {
            if (!e.poll) {
                e.poll_body.clear();
                e.poll_etag.clear();
                curl_slist_free_all(e.poll_hdrs);
                e.poll_hdrs =
                    curl_slist_append(nullptr, ("Authorization: Bearer " + e.token).c_str());
                if (!e.etag.empty())
                    e.poll_hdrs = curl_slist_append(e.poll_hdrs,
                                                    ("If-None-Match: \"" + e.etag + "\"").c_str());
                e.poll = easy(e, "/enforcers/" + e.id + "/policy?wait=" + std::to_string(wait_s_),
                              long(wait_s_) + 30);
                curl_easy_setopt(e.poll, CURLOPT_HTTPHEADER, e.poll_hdrs);
                curl_easy_setopt(e.poll, CURLOPT_WRITEDATA, &e.poll_body);
                curl_easy_setopt(e.poll, CURLOPT_HEADERFUNCTION, on_header);
                curl_easy_setopt(e.poll, CURLOPT_HEADERDATA, &e.poll_etag);
                curl_multi_add_handle(multi_, e.poll);
            }
            if (!e.report && now >= e.next_report && e.polled) {
                e.next_report += std::chrono::seconds(1);
                if (e.next_report < now) e.next_report = now + std::chrono::seconds(1);
                e.report_body = report_batch(e);
                e.report = easy(e, "/flowreports", 30);
                curl_easy_setopt(e.report, CURLOPT_POSTFIELDS, e.report_body.c_str());
                curl_easy_setopt(e.report, CURLOPT_POSTFIELDSIZE, long(e.report_body.size()));
                curl_easy_setopt(e.report, CURLOPT_WRITEDATA, &e.sink);
                curl_multi_add_handle(multi_, e.report);
            }
            if (!e.beat && now >= e.next_beat) {
                e.next_beat = now + std::chrono::seconds(10);
                e.beat = easy(e, "/enforcers/" + e.id + "/heartbeat", 30);
                static const char kBeat[] = R"({"status":"running","stats":{}})";
                curl_easy_setopt(e.beat, CURLOPT_POSTFIELDS, kBeat);
                curl_easy_setopt(e.beat, CURLOPT_WRITEDATA, &e.sink);
                curl_multi_add_handle(multi_, e.beat);
            }
            if (!e.peers && now >= e.next_peers) {
                e.next_peers = now + std::chrono::seconds(5);
                e.peers = easy(e, "/enforcers", 30);
                peers_conditional(e);
                curl_easy_setopt(e.peers, CURLOPT_WRITEDATA, &e.sink);
                curl_multi_add_handle(multi_, e.peers);
            }
        }
    }

    // GET /enforcers with If-None-Match: the ETag of the last full answer, as the enforcer sends.
    static void peers_conditional(SimEnforcer &e) {
        curl_slist_free_all(e.peers_hdrs);
        e.peers_hdrs = curl_slist_append(nullptr, ("Authorization: Bearer " + e.token).c_str());
        if (!e.peers_etag.empty())
            e.peers_hdrs = curl_slist_append(e.peers_hdrs,
                                             ("If-None-Match: \"" + e.peers_etag + "\"").c_str());
        e.peers_new_etag.clear();
        curl_easy_setopt(e.peers, CURLOPT_HTTPHEADER, e.peers_hdrs);
        curl_easy_setopt(e.peers, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(e.peers, CURLOPT_HEADERDATA, &e.peers_new_etag);
    }

    // 100 flow reports, as control/console_sync.cpp writes them.
    static std::string report_batch(SimEnforcer &e) {
        std::string s;
        s.reserve(100 * 420);
        s += R"({"batchID":")" + e.id + "-" + std::to_string(e.batch++) +
             R"(-flowreports","enforcerID":")" + e.id + R"(","reports":[)";
        const auto ts = std::to_string(time(nullptr));
        for (int i = 0; i < 100; ++i) {
            if (i) s += ',';
            s += R"({"action":"Accept","observedAction":"","sourceType":"ProcessingUnit",)"
                 R"("sourceID":"pu-web","sourceIP":"10.1.0.)" +
                 std::to_string(i) +
                 R"(","destinationType":"ProcessingUnit","destinationID":"pu-db",)"
                 R"("destinationIP":"10.2.0.5","destinationPort":5432,"protocol":6,)"
                 R"("policyID":"web-to-db","observedPolicyID":"","ruleName":"allow-db",)"
                 R"("dropReason":"","mode":"identity","serviceType":"L3","value":1,)"
                 R"("sourcePackets":10,"sourceBytes":1200,"destinationPackets":8,)"
                 R"("destinationBytes":9000,"timestamp":)" +
                 ts + "}";
        }
        s += "]}";
        return s;
    }

    void reap() {
        int left = 0;
        while (CURLMsg *m = curl_multi_info_read(multi_, &left)) {
            if (m->msg != CURLMSG_DONE) continue;
            CURL *h = m->easy_handle;
            SimEnforcer *e = nullptr;
            curl_easy_getinfo(h, CURLINFO_PRIVATE, &e);
            long status = 0;
            curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
            const bool ok = m->data.result == CURLE_OK;
            if (h == e->poll) {
                if (ok && status == 200 && !e->poll_etag.empty()) {
                    e->polled = true;
                    if (!e->before.empty() && e->poll_etag != e->before && e->got_ms < 0) {
                        e->got_ms = since_ms(write_t0);
                        ++got;
                    }
                    e->etag = e->poll_etag;
                } else if (!(ok && status == 304)) {
                    ++e->poll_errors;
                }
                e->poll = nullptr;
            } else if (h == e->report) {
                if (ok && status >= 200 && status < 300)
                    reports_acked += 100;
                else
                    ++e->report_errors;
                e->report = nullptr;
            } else if (h == e->beat) {
                e->beat = nullptr;
            } else if (h == e->peers) {
                if (ok && status == 200) {
                    ++e->peers_200;
                    e->peers_etag = e->peers_new_etag;
                } else if (ok && status == 304) {
                    ++e->peers_304;
                }
                e->peers = nullptr;
            }
            e->sink.clear();
            curl_multi_remove_handle(multi_, h);
            curl_easy_cleanup(h);
        }
    }

    const ConsoleProc &c_;
    std::vector<SimEnforcer> &es_;
    uint32_t wait_s_;
    CURLM *multi_;
    curl_blob ca_;
};

double percentile(std::vector<double> v, double p) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    size_t i = static_cast<size_t>(p * double(v.size() - 1) + 0.5);
    return v[std::min(i, v.size() - 1)];
}

RunResult run_one(const ConsoleBenchOptions &o, uint32_t n, uint32_t replicas = 1) {
    RunResult res;
    res.enforcers = n;
    res.replicas = replicas;
    ConsoleProc c;
    if (!start_console(o, c, res.error)) return res;
    // More replicas on its PostgreSQL database: the simulated enforcers are split across them.
    std::vector<std::unique_ptr<ConsoleProc>> more;
    for (uint32_t r = 1; r < replicas; ++r) {
        more.push_back(std::make_unique<ConsoleProc>());
        if (!start_replica(o, c, *more.back(), res.error)) return res;
    }
    auto console_of = [&](uint32_t i) -> const ConsoleProc & {
        return i % replicas == 0 ? c : *more[i % replicas - 1];
    };
    std::fprintf(stderr, "  %u enforcers: enrolling ...\n", n);
    std::vector<SimEnforcer> es(n);
    const auto t0 = Clock::now();
    std::atomic<uint32_t> next{0}, enrolled{0};
    std::mutex emu;
    std::vector<std::thread> ts;
    for (int t = 0; t < 4; ++t)
        ts.emplace_back([&] {
            for (uint32_t i; (i = next++) < n;) {
                es[i].id = "sim-" + std::to_string(i);
                es[i].url = console_of(i).url;
                std::string err;
                if (enroll(console_of(i), es[i], err)) {
                    ++enrolled;
                } else {
                    std::lock_guard l(emu);
                    if (res.error.empty()) res.error = es[i].id + ": " + err;
                }
            }
        });
    for (auto &t : ts) t.join();
    res.enrolled = enrolled;
    res.enroll_s = since_ms(t0) / 1000;
    if (res.enrolled < n) return res;

    Load load(c, es, o.poll_wait_s);
    // Connected: every enforcer holds a bundle.
    std::fprintf(stderr, "  %u enforcers: connecting ...\n", n);
    auto holding = [&] {
        uint32_t k = 0;
        for (const auto &e : es) k += e.polled;
        return k;
    };
    load.run_until(Clock::now() + std::chrono::seconds(o.connect_s),
                   [&] { return holding() == n; });
    res.connected = holding();
    if (res.connected < n) {
        res.error = "only " + std::to_string(res.connected) + " of " + std::to_string(n) +
                    " enforcers got their bundle within " + std::to_string(o.connect_s) + " s";
    }
    // Policy writes: each one a new processing unit, which every enforcer's bundle carries
    // (bundles are per enforcer: an external network no rule of its PUs names is not sent).
    const auto window0 = Clock::now();
    const uint64_t acked0 = load.reports_acked;
    for (uint32_t w = 0; w < o.writes && res.connected == n; ++w) {
        // Let the long-polls settle (each enforcer waiting with the current ETag).
        load.run_until(Clock::now() + std::chrono::seconds(2), [] { return false; });
        for (auto &e : es) e.got_ms = -1, e.before = e.etag;
        load.got = 0;
        load.write_t0 = Clock::now();
        auto r = c.admin("POST", "/processingunits",
                         R"({"ID":"bench-)" + std::to_string(w) + R"(","name":"bench-)" +
                             std::to_string(w) + R"(","associatedTags":["app=bench)" +
                             std::to_string(w) + R"("],"addresses":["198.18.)" +
                             std::to_string(w % 250) + ".1/32\"]}");
        if (r.status != 201) {
            res.error = "the admin's POST /processingunits: " +
                        (r.status ? std::to_string(r.status) + " " + r.body : r.error);
            break;
        }
        std::fprintf(stderr, "  %u enforcers: write %u, waiting for every enforcer ...\n", n,
                     w + 1);
        load.run_until(Clock::now() + std::chrono::seconds(o.propagate_s),
                       [&] { return load.got == n; });
        ++res.writes;
        for (const auto &e : es)
            if (e.got_ms >= 0)
                res.propagation_ms.push_back(e.got_ms);
            else
                ++res.missed;
        for (auto &e : es) e.before.clear();
    }
    // The reports for the rest of the window.
    load.run_until(window0 + std::chrono::seconds(o.report_s), [] { return false; });
    const double secs = since_ms(window0) / 1000;
    res.reports_per_s = double(load.reports_acked - acked0) / secs;
    res.reports_offered_per_s = 100.0 * n;
    for (const auto &e : es) res.report_errors += e.report_errors, res.poll_errors += e.poll_errors;
    for (const auto &e : es) res.peers_304 += e.peers_304, res.peers_200 += e.peers_200;
    auto [rss, hwm] = c.memory();
    res.rss_mib = rss, res.hwm_mib = hwm;
    for (const auto &m : more) {  // the Console's memory: every replica's
        auto [r2, h2] = m->memory();
        res.rss_mib += r2, res.hwm_mib += h2;
    }
    return res;
}

// --stores: every count on every store in one run (SQLite, PostgreSQL with 1 and 2 replicas),
// one row each. The PostgreSQL cluster is started once for the run, each row on a fresh database.
int run_stores(const ConsoleBenchOptions &o) {
    std::printf("%-7s %6s %9s %9s %9s %9s %7s %8s %10s %8s %8s %8s %9s\n", "store", "enfs", "held",
                "prop p50", "prop p99", "prop max", "missed", "offered", "ingested", "rep errs",
                "RSS MiB", "HWM MiB", "cert 304");
    std::printf("%-7s %6s %9s %9s %9s %9s %7s %8s %10s %8s %8s %8s %9s\n", "", "", "", "ms", "ms",
                "ms", "", "rep/s", "rep/s", "", "", "", "of fetch");
    std::FILE *csv = o.csv.empty() ? nullptr : std::fopen(o.csv.c_str(), "w");
    if (csv)
        std::fprintf(csv,
                     "store,replicas,enforcers,connected,writes,propagation_p50_ms,"
                     "propagation_p99_ms,propagation_max_ms,missed,reports_offered_per_s,"
                     "reports_per_s,report_errors,poll_errors,rss_mib,hwm_mib,enroll_s,"
                     "cert_fetches_304,cert_fetches_200,loadavg_1m,error\n");
    PgCluster pg;
    const ClusterStop on_signal([&pg] { pg.stop(); });
    bool all_ok = true;
    std::vector<std::string> failed;  // stores that did not hold a count: no larger one for them
    for (uint32_t n : o.counts) {
        for (const std::string &store : o.stores) {
            if (std::find(failed.begin(), failed.end(), store) != failed.end()) continue;
            ConsoleBenchOptions ro = o;
            uint32_t replicas = 1;
            RunResult r;
            if (store == "sqlite") {
                ro.database.clear();
            } else {
                replicas = store == "pg2" ? 2 : 1;
                if (o.database.empty()) {
                    if (!pg.started && !pg.start(o.pg_bin, r.error))
                        ro.database.clear();
                    else
                        ro.database = pg.new_database(r.error);
                }
            }
            if (store != "sqlite" && ro.database.empty()) {
                r.enforcers = n;
            } else {
                std::fprintf(stderr, "%s, %u enforcers:\n", store.c_str(), n);
                r = run_one(ro, n, replicas);
            }
            double load1 = 0;
            if (std::FILE *la = std::fopen("/proc/loadavg", "r")) {
                if (std::fscanf(la, "%lf", &load1) != 1) load1 = 0;
                std::fclose(la);
            }
            const double p50 = percentile(r.propagation_ms, 0.5),
                         p99 = percentile(r.propagation_ms, 0.99),
                         mx = percentile(r.propagation_ms, 1.0);
            const std::string label = store == "sqlite" ? "sqlite"
                                      : store == "pg2"  ? "pg-2"
                                                        : "pg-1";
            char held[32], c304[32];
            std::snprintf(held, sizeof held, "%u/%u", r.connected, n);
            std::snprintf(c304, sizeof c304, "%lu/%lu", (unsigned long)r.peers_304,
                          (unsigned long)(r.peers_304 + r.peers_200));
            std::printf("%-7s %6u %9s %9.0f %9.0f %9.0f %7u %8.0f %10.0f %8lu %8.0f %8.0f %9s\n",
                        label.c_str(), n, held, p50, p99, mx, r.missed, r.reports_offered_per_s,
                        r.reports_per_s, (unsigned long)r.report_errors, r.rss_mib, r.hwm_mib,
                        c304);
            if (!r.error.empty()) std::printf("    %s\n", r.error.c_str());
            std::fflush(stdout);
            if (csv) {
                std::fprintf(
                    csv,
                    "%s,%u,%u,%u,%u,%.1f,%.1f,%.1f,%u,%.0f,%.0f,%lu,%lu,%.1f,%.1f,%.1f,%lu,"
                    "%lu,%.2f,\"%s\"\n",
                    label.c_str(), replicas, n, r.connected, r.writes, p50, p99, mx, r.missed,
                    r.reports_offered_per_s, r.reports_per_s, (unsigned long)r.report_errors,
                    (unsigned long)r.poll_errors, r.rss_mib, r.hwm_mib, r.enroll_s,
                    (unsigned long)r.peers_304, (unsigned long)r.peers_200, load1, r.error.c_str());
                std::fflush(csv);
            }
            if (r.enrolled < n || r.writes == 0) all_ok = false;
            if (r.connected < n || r.missed) failed.push_back(store);
        }
    }
    if (csv) std::fclose(csv);
    return all_ok ? 0 : 1;
}

}  // namespace

int run_console_bench(const ConsoleBenchOptions &o) {
    // Thousands of connections: the load generator and the Console (its child) need descriptors.
    rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const SignalStop signals;
    if (!o.stores.empty()) {
        const int rc = run_stores(o);
        curl_global_cleanup();
        return rc;
    }
    std::printf("%-8s %6s %9s %9s %9s %9s %9s %8s %10s %10s %8s %8s\n", "store", "enfs", "held",
                "prop p50", "prop p99", "prop max", "missed", "offered", "ingested", "rep errs",
                "RSS MiB", "HWM MiB");
    std::printf("%-8s %6s %9s %9s %9s %9s %9s %8s %10s %10s %8s %8s\n", "", "", "", "ms", "ms",
                "ms", "", "rep/s", "rep/s", "", "", "");
    std::FILE *csv = o.csv.empty() ? nullptr : std::fopen(o.csv.c_str(), "w");
    if (csv)
        std::fprintf(csv,
                     "store,enforcers,connected,writes,propagation_p50_ms,propagation_p99_ms,"
                     "propagation_max_ms,missed,reports_offered_per_s,reports_per_s,"
                     "report_errors,poll_errors,rss_mib,hwm_mib,enroll_s,error\n");
    bool all_ok = true;
    for (uint32_t n : o.counts) {
        RunResult r = run_one(o, n);
        const double p50 = percentile(r.propagation_ms, 0.5),
                     p99 = percentile(r.propagation_ms, 0.99),
                     mx = percentile(r.propagation_ms, 1.0);
        char held[32];
        std::snprintf(held, sizeof held, "%u/%u", r.connected, n);
        const char *store = o.database.empty() ? "sqlite" : "postgres";
        std::printf("%-8s %6u %9s %9.0f %9.0f %9.0f %9u %8.0f %10.0f %10lu %8.0f %8.0f\n", store, n,
                    held, p50, p99, mx, r.missed, r.reports_offered_per_s, r.reports_per_s,
                    (unsigned long)r.report_errors, r.rss_mib, r.hwm_mib);
        if (!r.error.empty()) std::printf("    %s\n", r.error.c_str());
        std::fflush(stdout);
        if (csv)
            std::fprintf(
                csv, "%s,%u,%u,%u,%.1f,%.1f,%.1f,%u,%.0f,%.0f,%lu,%lu,%.1f,%.1f,%.1f,\"%s\"\n",
                store, n, r.connected, r.writes, p50, p99, mx, r.missed, r.reports_offered_per_s,
                r.reports_per_s, (unsigned long)r.report_errors, (unsigned long)r.poll_errors,
                r.rss_mib, r.hwm_mib, r.enroll_s, r.error.c_str());
        if (r.enrolled < n || r.writes == 0) all_ok = false;
        // The first count the Console does not hold ends the series: larger ones say no more.
        if (r.connected < n || r.missed) break;
    }
    if (csv) std::fclose(csv);
    curl_global_cleanup();
    return all_ok ? 0 : 1;
}

}  // namespace segwire::bench
