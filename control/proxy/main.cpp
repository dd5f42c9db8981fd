// segwire-proxy: the enforcer's L7 API proxy (docs/l7.md). Runs on the enforcer host beside
// segwire's control plane: segwire writes the services it hosts, its datapath key and the service
// certificates into <run_dir>/l7/ and hands it the flows to L7 service ports with TPROXY; the
// proxy authorizes every HTTP call (caller PU from segwire's identity socket, user from a bearer
// JWT), injects a signed identity header, forwards to the PU and reports each call.
//
//   segwire-proxy --run-dir DIR [--tproxy ADDR:PORT] [--listen ADDR:PORT] [--upstream HOST:PORT]
//                 [--service NAME] [--jwks-ca FILE] [--threads N]
//
// HTTP is Boost.Beast's (parser, serializer, buffer_body streaming), I/O Boost.Asio's (C++20
// coroutines, a strand per connection), TLS OpenSSL's through asio::ssl, JWS libcjose's through
// crypto/jws.hpp, the URI matcher and scopes config/policy/l7.hpp's.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <limits>
#include <utility>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "config/policy/l7.hpp"
#include "config/policy/model.hpp"
#include "control/proxy/auth.hpp"
#include "crypto/jws.hpp"
#include "version.hpp"

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using asio::awaitable;
using asio::use_awaitable;
using asio::ip::tcp;
using boost::system::error_code;

namespace segwire::proxy {
namespace {

constexpr const char *kIdentityHeader = "X-Segwire-Identity";
constexpr size_t kChunk = 64 * 1024;  // the streaming buffer, each direction

// ---- counters (logged every minute when they changed, and at exit) ---------------------------

struct Counters {
    std::atomic<uint64_t> connections{0}, accepted{0}, rejected_401{0}, rejected_403{0},
        not_http{0}, upstream_errors{0}, reports_sent{0}, reports_lost{0}, upgrades{0};
    std::string line(const JwksCache &j) const {
        return fmt::format(
            "connections={} requests_accepted={} requests_401={} requests_403={} not_http={} "
            "upstream_errors={} upgrades={} reports_sent={} reports_lost={} jwks_fetches={} "
            "jwks_errors={}",
            connections.load(), accepted.load(), rejected_401.load(), rejected_403.load(),
            not_http.load(), upstream_errors.load(), upgrades.load(), reports_sent.load(),
            reports_lost.load(), j.fetches.load(), j.fetch_errors.load());
    }
};

// ---- the run directory ----------------------------------------------------------------------

struct ServiceState {
    policy::Service svc;
    policy::ApiRoutes routes;
    std::shared_ptr<ssl::context> tls;  // TLSType Aporeto / External; null for None
};

struct Snapshot {
    std::string version;
    std::vector<std::shared_ptr<ServiceState>> services;
    crypto::jws::JwkPtr signer;  // enforcer.key as a JWK (ES256)
    std::string enforcer_id;     // CN of enforcer.crt
};

std::string read_text(const std::filesystem::path &p) {
    std::ifstream in(p, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + p.string());
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::shared_ptr<ssl::context> tls_context(const std::string &cert_pem, const std::string &key_pem) {
    auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
    ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                     ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    ctx->use_certificate_chain(asio::buffer(cert_pem));
    ctx->use_private_key(asio::buffer(key_pem), ssl::context::pem);
    return ctx;
}

std::shared_ptr<Snapshot> load_snapshot(const std::filesystem::path &dir) {
    auto snap = std::make_shared<Snapshot>();
    policy::L7Document doc = policy::parse_l7_document(read_text(dir / "services.json"));
    snap->version = doc.version;
    for (const policy::Service &s : doc.services) {
        auto st = std::make_shared<ServiceState>();
        st->svc = s;
        st->routes = policy::ApiRoutes(s, doc.http_resource_specs);
        if (s.tls_type == "Aporeto") {
            auto crt = dir / "tls" / (s.name + ".crt"), key = dir / "tls" / (s.name + ".key");
            if (std::filesystem::exists(crt) && std::filesystem::exists(key))
                st->tls = tls_context(read_text(crt), read_text(key));
            else
                spdlog::warn("service {}: no certificate yet in {}; its connections are refused",
                             s.name, (dir / "tls").string());
        } else if (s.tls_type == "External") {
            st->tls = tls_context(s.tls_certificate, s.tls_certificate_key);
        }
        snap->services.push_back(std::move(st));
    }
    // The enforcer's key signs the injected header; its certificate's CN is the enforcer ID.
    const std::string key_pem = read_text(dir / "enforcer.key");
    std::unique_ptr<BIO, decltype(&BIO_free)> kb(
        BIO_new_mem_buf(key_pem.data(), int(key_pem.size())), BIO_free);
    std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
        PEM_read_bio_PrivateKey(kb.get(), nullptr, nullptr, nullptr), EVP_PKEY_free);
    if (!key) throw std::runtime_error("enforcer.key: not a PEM private key");
    std::string problem;
    snap->signer = crypto::jws::ec_jwk_from_key(key.get(), &problem);
    if (!snap->signer) throw std::runtime_error("enforcer.key: " + problem + " (P-256 expected)");
    const std::string crt_pem = read_text(dir / "enforcer.crt");
    std::unique_ptr<BIO, decltype(&BIO_free)> cb(
        BIO_new_mem_buf(crt_pem.data(), int(crt_pem.size())), BIO_free);
    std::unique_ptr<X509, decltype(&X509_free)> crt(
        PEM_read_bio_X509(cb.get(), nullptr, nullptr, nullptr), X509_free);
    if (!crt) throw std::runtime_error("enforcer.crt: not a PEM certificate");
    char cn[256] = "";
    X509_NAME_get_text_by_NID(X509_get_subject_name(crt.get()), NID_commonName, cn, sizeof cn);
    snap->enforcer_id = cn;
    return snap;
}

// A signature of the files the snapshot is made of: reload when it changes.
std::string dir_stamp(const std::filesystem::path &dir) {
    std::string s;
    std::error_code ec;
    auto add = [&](const std::filesystem::path &p) {
        struct stat st {};
        if (::stat(p.c_str(), &st) == 0)
            s += p.filename().string() + ":" + std::to_string(st.st_mtim.tv_sec) + "." +
                 std::to_string(st.st_mtim.tv_nsec) + ":" + std::to_string(st.st_ino) + ";";
    };
    for (const char *f : {"services.json", "enforcer.crt", "enforcer.key"}) add(dir / f);
    for (const auto &e : std::filesystem::directory_iterator(dir / "tls", ec)) add(e.path());
    return s;
}

class SnapshotHolder {
  public:
    std::shared_ptr<const Snapshot> get() const {
        std::lock_guard l(mu_);
        return cur_;
    }
    void set(std::shared_ptr<const Snapshot> s) {
        std::lock_guard l(mu_);
        cur_ = std::move(s);
    }

  private:
    mutable std::mutex mu_;
    std::shared_ptr<const Snapshot> cur_;
};

// ---- segwire's identity socket (contract "Identity query") -------------------------------------

struct PeerIdentity {
    bool known = false;  // a PU with identity
    std::string pu;
    std::vector<std::string> tags;
};

class IdentityClient {
  public:
    explicit IdentityClient(std::string path) : path_(std::move(path)) {}

    // Blocking (the caller's thread; one query per connection): up to 1 s of retries while
    // segwire does not know the 5-tuple yet, then "no PU".
    PeerIdentity query(const tcp::endpoint &peer, const tcp::endpoint &local) {
        const std::string req = fmt::format(
            "{{\"src\":\"{}\",\"sport\":{},\"dst\":\"{}\",\"dport\":{}}}\n",
            peer.address().to_string(), peer.port(), local.address().to_string(), local.port());
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
        std::lock_guard l(mu_);
        for (;;) {
            std::string line;
            if (!roundtrip_locked(req, &line)) return {};  // no socket: no PU identity
            rapidjson::Document d;
            d.Parse(line.c_str());
            if (d.HasParseError() || !d.IsObject()) return {};
            auto found = d.FindMember("found");
            if (found != d.MemberEnd() && found->value.IsBool() && found->value.GetBool()) {
                PeerIdentity id;
                auto pu = d.FindMember("pu");
                if (pu == d.MemberEnd() || !pu->value.IsString()) return id;  // ACL peer
                id.known = true;
                id.pu = pu->value.GetString();
                auto tags = d.FindMember("tags");
                if (tags != d.MemberEnd() && tags->value.IsArray())
                    for (const auto &t : tags->value.GetArray())
                        if (t.IsString()) id.tags.emplace_back(t.GetString());
                return id;
            }
            if (std::chrono::steady_clock::now() >= deadline) return {};
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
    }

  private:
    bool roundtrip_locked(const std::string &req, std::string *line) {
        for (int attempt = 0; attempt < 2; ++attempt) {
            if (fd_ < 0 && !connect_locked()) return false;
            if (::send(fd_, req.data(), req.size(), MSG_NOSIGNAL) == ssize_t(req.size())) {
                line->clear();
                char c;
                while (::recv(fd_, &c, 1, 0) == 1) {
                    if (c == '\n') return true;
                    line->push_back(c);
                }
            }
            ::close(fd_);  // the server restarted: reconnect once
            fd_ = -1;
        }
        return false;
    }
    bool connect_locked() {
        int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path_.c_str());
        timeval tv{2, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        if (::connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0) {
            ::close(fd);
            return false;
        }
        fd_ = fd;
        return true;
    }

    std::string path_;
    std::mutex mu_;
    int fd_ = -1;
};

// ---- API reports (contract "API reports") ------------------------------------------------------

struct Report {
    std::string service, method, path, caller_pu, caller_user, caller_ip, verdict, rule, reason;
    bool has_pu = false, has_user = false;
    unsigned status = 0;
    int64_t latency_us = 0;
};

class Reporter {
  public:
    Reporter(std::string path, Counters &c) : path_(std::move(path)), counters_(c) {
        fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    }
    ~Reporter() { ::close(fd_); }

    // One datagram per call; when segwire's socket is absent or full the report is counted as
    // lost and the call goes on (reports must never hold traffic).
    void send(const Report &r) {
        rapidjson::StringBuffer buf;
        rapidjson::Writer<rapidjson::StringBuffer> w(buf);
        auto s = [&](const char *k, const std::string &v) {
            w.Key(k);
            w.String(v.c_str(), rapidjson::SizeType(v.size()));
        };
        w.StartObject();
        s("service", r.service);
        s("method", r.method);
        s("path", r.path);
        w.Key("callerPU");
        r.has_pu ? (void)w.String(r.caller_pu.c_str()) : (void)w.Null();
        w.Key("callerUser");
        r.has_user ? (void)w.String(r.caller_user.c_str()) : (void)w.Null();
        s("callerIP", r.caller_ip);
        s("verdict", r.verdict);
        s("rule", r.rule);
        s("reason", r.reason);
        w.Key("status");
        w.Uint(r.status);
        w.Key("latencyUs");
        w.Int64(r.latency_us);
        w.Key("timestamp");
        w.Int64(std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count());
        w.EndObject();
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path_.c_str());
        if (::sendto(fd_, buf.GetString(), buf.GetSize(), 0, reinterpret_cast<sockaddr *>(&a),
                     sizeof a) == ssize_t(buf.GetSize()))
            ++counters_.reports_sent;
        else
            ++counters_.reports_lost;
    }

  private:
    std::string path_;
    Counters &counters_;
    int fd_ = -1;
};

// ---- the proxy ----------------------------------------------------------------------------------

struct Options {
    std::string run_dir, jwks_ca, service;
    std::vector<std::string> listen, tproxy;
    std::optional<tcp::endpoint> upstream;
    unsigned threads = 2;
};

struct Shared {
    Options opt;
    std::filesystem::path l7_dir;
    SnapshotHolder snapshot;
    Counters counters;
    JwksCache jwks;
    IdentityClient identity;
    Reporter reporter;
    Shared(Options o, std::filesystem::path dir)
        : opt(std::move(o)),
          l7_dir(dir),
          jwks(opt.jwks_ca),
          identity((dir / "identity.sock").string()),
          reporter((dir / "reports.sock").string(), counters) {}
};

int64_t unix_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::string random_id() {
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    return fmt::format("{:016x}{:016x}", rng(), rng());
}

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

// A header value must not be able to end the header (claims come from a token).
bool safe_header_value(const std::string &v) {
    for (unsigned char c : v)
        if (c < 0x20 && c != '\t') return false;
    return !v.empty();
}

using Request = http::request<http::buffer_body>;

template <class Stream>
class Session : public std::enable_shared_from_this<Session<Stream>> {
  public:
    Session(Shared &sh, Stream client, std::shared_ptr<ServiceState> svc,
            std::shared_ptr<const Snapshot> snap, tcp::endpoint peer, tcp::endpoint local)
        : sh_(sh),
          client_(std::move(client)),
          upstream_(client_.get_executor()),
          svc_(std::move(svc)),
          snap_(std::move(snap)),
          peer_(peer),
          local_(local) {}

    awaitable<void> run() {
        auto self = this->shared_from_this();
        error_code ec;
        bool first = true;
        for (;;) {
            http::request_parser<http::buffer_body> p;
            p.body_limit(std::numeric_limits<std::uint64_t>::max());  // bodies are streamed, never
                                                                      // held: no size limit here
            p.header_limit(64 * 1024);
            co_await http::async_read_header(client_, cbuf_, p,
                                             asio::redirect_error(use_awaitable, ec));
            if (ec) {
                // A peer that speaks something else than HTTP/1.x on an L7 port: closed and
                // reported. A clean close between requests is just the end.
                if (ec != http::error::end_of_stream && ec != asio::error::eof &&
                    ec != asio::error::connection_reset && ec != asio::error::operation_aborted &&
                    (first || ec != beast::error::timeout)) {
                    if (ec.category() ==
                            http::make_error_code(http::error::bad_target).category() ||
                        first) {
                        ++sh_.counters.not_http;
                        Report r = base_report();
                        r.method = "-";
                        r.path = "-";
                        r.verdict = "reject";
                        r.rule = "not-http";
                        r.reason = "not-http";
                        sh_.reporter.send(r);
                        spdlog::info("{}: not HTTP from {} ({}): closed", svc_->svc.name,
                                     peer_.address().to_string(), ec.message());
                    }
                }
                co_return;
            }
            first = false;
            const auto t0 = std::chrono::steady_clock::now();
            bool keep = co_await handle(p, t0);
            if (!keep) co_return;
        }
    }

  private:
    Report base_report() {
        Report r;
        r.service = svc_->svc.name;
        r.caller_ip = peer_.address().to_string();
        if (identity_ && identity_->known) {
            r.has_pu = true;
            r.caller_pu = identity_->pu;
        }
        return r;
    }

    void lookup_identity() {
        if (!identity_) identity_ = sh_.identity.query(peer_, local_);
    }

    // Answers a refused request; the connection stays open only when no body is pending.
    awaitable<bool> refuse(http::request_parser<http::buffer_body> &p, unsigned status,
                           const char *error, const std::string &reason, Report r,
                           std::chrono::steady_clock::time_point t0) {
        (status == 401 ? sh_.counters.rejected_401 : sh_.counters.rejected_403)++;
        rapidjson::StringBuffer buf;
        rapidjson::Writer<rapidjson::StringBuffer> w(buf);
        w.StartObject();
        w.Key("error");
        w.String(error);
        w.Key("reason");
        w.String(reason.c_str());
        w.EndObject();
        http::response<http::string_body> res{static_cast<http::status>(status), p.get().version()};
        res.set(http::field::content_type, "application/json");
        res.set(http::field::server, "segwire-proxy");
        if (status == 401)
            res.set(http::field::www_authenticate, "Bearer realm=\"" + svc_->svc.name + "\"");
        res.body() = std::string(buf.GetString(), buf.GetSize()) + "\n";
        // A refused request's body is never read: unless it has none, the connection ends here.
        const bool body_pending = !p.is_done();
        const bool keep = p.get().keep_alive() && !body_pending;
        res.keep_alive(keep);
        res.prepare_payload();
        error_code ec;
        co_await http::async_write(client_, res, asio::redirect_error(use_awaitable, ec));
        r.verdict = "reject";
        r.status = status;
        r.reason = std::string(error) + ": " + reason;
        r.latency_us = std::chrono::duration_cast<std::chrono::microseconds>(
                           std::chrono::steady_clock::now() - t0)
                           .count();
        sh_.reporter.send(r);
        co_return keep && !ec;
    }

    awaitable<bool> handle(http::request_parser<http::buffer_body> &p,
                           std::chrono::steady_clock::time_point t0) {
        Request &req = p.get();
        const ServiceState &svc = *svc_;
        Report r = base_report();
        r.method = std::string(req.method_string());
        r.path = "-";
        const std::string method = r.method;
        const std::string target(req.target());

        policy::ApiRoutes::Miss miss{};
        const policy::ApiRoute *route = svc.routes.match(method, target, &miss);
        if (!route) {
            lookup_identity();
            r = base_report();
            r.method = method;
            r.path = "-";
            // Arguments of a co_await are named locals: GCC 12 destroys some temporaries made
            // inside a co_await expression twice.
            const std::string why = miss == policy::ApiRoutes::Miss::kMethod ? "method not allowed"
                                    : miss == policy::ApiRoutes::Miss::kBadPath
                                        ? "path not canonical"
                                        : "no endpoint";
            co_return co_await refuse(p, 403, "forbidden", why, r, t0);
        }
        r.path = route->uri;

        // The caller: the peer PU (asked once per connection) and/or the user of a bearer token.
        lookup_identity();
        r = base_report();
        r.method = method;
        r.path = route->uri;
        std::vector<std::string> tags;
        if (identity_->known) tags = identity_->tags;
        std::optional<User> user;
        std::string token_problem;
        bool token_present = false;
        if (svc.svc.needs_user_auth()) {
            auto it = req.find(http::field::authorization);
            if (it != req.end()) {
                const std::string_view v(it->value().data(), it->value().size());
                if (v.size() > 7 && iequals(v.substr(0, 7), "Bearer ")) {
                    token_present = true;
                    User u;
                    if (authenticate(sh_.jwks, svc.svc, v.substr(7), unix_now(), &u,
                                     &token_problem)) {
                        for (const auto &t : u.tags) tags.push_back(t);
                        r.has_user = true;
                        r.caller_user = u.name;
                        user.emplace(std::move(u));
                    }
                }
            }
        }
        if (!route->allows(tags)) {
            if (svc.svc.needs_user_auth() && !user) {
                const std::string why =
                    token_present ? token_problem : std::string("a bearer token is required");
                co_return co_await refuse(p, 401, "unauthorized", why, r, t0);
            }
            const std::string why = "not allowed";
            co_return co_await refuse(p, 403, "forbidden", why, r, t0);
        }
        const bool upgrade = req.find(http::field::upgrade) != req.end();
        if (upgrade && !svc.svc.allow_upgrade) {
            const std::string why = "upgrade not allowed";
            co_return co_await refuse(p, 403, "forbidden", why, r, t0);
        }

        // Accepted: rewrite the identity headers, then stream the request to the PU.
        req.erase(kIdentityHeader);
        for (const auto &m : svc.svc.claims_to_http_headers) req.erase(m.target_http_header);
        req.set(kIdentityHeader, identity_token(user ? &*user : nullptr));
        if (user)
            for (const auto &m : svc.svc.claims_to_http_headers) {
                auto it = user->claims.FindMember(m.claim_name.c_str());
                if (it == user->claims.MemberEnd()) continue;
                std::string v;
                for (const auto &x : claim_values(it->value)) v += (v.empty() ? "" : ",") + x;
                if (safe_header_value(v)) req.set(m.target_http_header, v);
            }
        // The proxy answers "100 Continue" itself once it has decided: the client sends the body
        // now, the PU does not see the expectation.
        if (auto it = req.find(http::field::expect); it != req.end()) {
            if (iequals(std::string_view(it->value().data(), it->value().size()), "100-continue") &&
                !p.is_done()) {
                http::response<http::empty_body> cont{http::status::continue_, req.version()};
                error_code ec;
                co_await http::async_write(client_, cont, asio::redirect_error(use_awaitable, ec));
                if (ec) co_return false;
            }
            req.erase(http::field::expect);
        }

        error_code ec;
        if (!upstream_open_) {
            if (!bind_as_client(ec)) {
                ++sh_.counters.upstream_errors;
                spdlog::warn(
                    "{}: cannot bind the upstream connection to the client's address {}: {}",
                    svc.svc.name, peer_.address().to_string(), ec.message());
            } else {
                co_await upstream_.async_connect(upstream_endpoint(),
                                                 asio::redirect_error(use_awaitable, ec));
            }
            if (ec) {
                ++sh_.counters.upstream_errors;
                spdlog::warn("{}: upstream {} unreachable: {}", svc.svc.name,
                             upstream_endpoint().address().to_string(), ec.message());
                http::response<http::string_body> res{http::status::bad_gateway, req.version()};
                res.set(http::field::content_type, "application/json");
                res.body() = "{\"error\":\"bad gateway\",\"reason\":\"upstream unreachable\"}\n";
                res.keep_alive(false);
                res.prepare_payload();
                co_await http::async_write(client_, res, asio::redirect_error(use_awaitable, ec));
                r.verdict = "accept";
                r.rule = route->uri;
                r.status = 502;
                sh_.reporter.send(r);
                co_return false;
            }
            upstream_.set_option(tcp::no_delay(true));
            upstream_open_ = true;
        }
        ++sh_.counters.accepted;
        {
            http::serializer<true, http::buffer_body> sr{req};
            spdlog::debug("{}: {} {} forwarded", svc.svc.name, method, target);
            if (!co_await relay(client_, cbuf_, p, upstream_, sr)) {
                ++sh_.counters.upstream_errors;
                co_return false;
            }
        }
        // The PU's answer, streamed back (1xx interim answers passed on first).
        unsigned status = 0;
        bool keep = false;
        for (;;) {
            http::response_parser<http::buffer_body> rp;
            rp.body_limit(std::numeric_limits<std::uint64_t>::max());
            if (req.method() == http::verb::head) rp.skip(true);
            co_await http::async_read_header(upstream_, ubuf_, rp,
                                             asio::redirect_error(use_awaitable, ec));
            if (ec) {
                spdlog::debug("{}: upstream answer: {}", svc.svc.name, ec.message());
                ++sh_.counters.upstream_errors;
                co_return false;
            }
            status = rp.get().result_int();
            http::serializer<false, http::buffer_body> sr{rp.get()};
            if (!co_await relay(upstream_, ubuf_, rp, client_, sr)) {
                ++sh_.counters.upstream_errors;
                co_return false;
            }
            if (status == 101 && upgrade) break;
            if (status >= 100 && status < 200) continue;
            keep = rp.get().keep_alive() && req.keep_alive();
            break;
        }
        r.verdict = "accept";
        r.rule = route->uri;
        r.status = status;
        r.latency_us = std::chrono::duration_cast<std::chrono::microseconds>(
                           std::chrono::steady_clock::now() - t0)
                           .count();
        sh_.reporter.send(r);
        if (status == 101 && upgrade) {
            ++sh_.counters.upgrades;
            co_await tunnel();
            co_return false;
        }
        co_return keep;
    }

    // A connection TPROXY handed over (the accepted socket is transparent, inherited from the
    // listener): the connection to the PU leaves from the client's own address, on a port of the
    // kernel's choosing, so the PU sees who called (docs/l7-path.md) and segwire relays the
    // connection to the PU and the PU's answers back to the exception interface. A plain
    // listener (tests, --upstream) connects from the proxy's own address.
    bool bind_as_client(error_code &ec) {
        if (sh_.opt.upstream) return true;
        const int fd = beast::get_lowest_layer(client_).native_handle();
        const bool v6 = peer_.address().is_v6();
        const int level = v6 ? SOL_IPV6 : SOL_IP, opt = v6 ? IPV6_TRANSPARENT : IP_TRANSPARENT;
        int on = 0;
        socklen_t len = sizeof on;
        if (::getsockopt(fd, level, opt, &on, &len) != 0 || !on) return true;
        upstream_.open(peer_.protocol(), ec);
        if (ec) return false;
        const int one = 1;
        if (::setsockopt(upstream_.native_handle(), level, opt, &one, sizeof one) != 0) {
            ec = error_code(errno, asio::error::get_system_category());
            return false;
        }
        upstream_.bind(tcp::endpoint(peer_.address(), 0), ec);
        return !ec;
    }

    tcp::endpoint upstream_endpoint() const {
        if (sh_.opt.upstream) return *sh_.opt.upstream;
        return tcp::endpoint(local_.address(), svc_->svc.port);
    }

    // The injected header: a short-lived ES256 JWS by the enforcer's key (contract "Injected
    // header").
    std::string identity_token(const User *user) {
        rapidjson::StringBuffer buf;
        rapidjson::Writer<rapidjson::StringBuffer> w(buf);
        const int64_t now = unix_now();
        const std::string iss = "segwire:" + snap_->enforcer_id, jti = random_id();
        w.StartObject();
        w.Key("iss");
        w.String(iss.c_str());
        w.Key("aud");
        w.String(svc_->svc.name.c_str());
        w.Key("iat");
        w.Int64(now);
        w.Key("exp");
        w.Int64(now + 60);
        w.Key("jti");
        w.String(jti.c_str());
        if (identity_ && identity_->known) {
            w.Key("sub");
            w.String(identity_->pu.c_str());
        }
        w.Key("tags");
        w.StartArray();
        if (identity_ && identity_->known)
            for (const auto &t : identity_->tags) w.String(t.c_str());
        w.EndArray();
        w.Key("usr");
        w.StartObject();
        if (user) {
            for (const char *k : {"sub", "iss"})
                if (auto it = user->claims.FindMember(k);
                    it != user->claims.MemberEnd() && it->value.IsString()) {
                    w.Key(k);
                    w.String(it->value.GetString());
                }
            for (const std::string &c : svc_->svc.user_claims_to_tags)
                if (auto it = user->claims.FindMember(c.c_str()); it != user->claims.MemberEnd()) {
                    w.Key(c.c_str());
                    it->value.Accept(w);
                }
        }
        w.EndObject();
        w.EndObject();
        std::string problem;
        std::string t = crypto::jws::sign_es256(
            snap_->signer, "", std::string_view(buf.GetString(), buf.GetSize()), &problem);
        if (t.empty()) spdlog::error("identity header: {}", problem);
        return t;
    }

    // Streams one message from `in` (header already read into `p`) to `out` through `sr`, 64 KiB
    // at a time: beast's buffer_body relay, so no body is ever held whole.
    template <bool isRequest, class In, class Out>
    awaitable<bool> relay(In &in, beast::flat_buffer &buf,
                          http::parser<isRequest, http::buffer_body> &p, Out &out,
                          http::serializer<isRequest, http::buffer_body> &sr) {
        error_code ec;
        do {
            if (!p.is_done()) {
                p.get().body().data = chunk_;
                p.get().body().size = kChunk;
                co_await http::async_read(in, buf, p, asio::redirect_error(use_awaitable, ec));
                if (ec == http::error::need_buffer) ec = {};
                if (ec) {
                    spdlog::debug("relay read: {}", ec.message());
                    co_return false;
                }
                p.get().body().size = kChunk - p.get().body().size;
                p.get().body().data = chunk_;
                p.get().body().more = !p.is_done();
            } else {
                p.get().body().data = nullptr;
                p.get().body().size = 0;
                p.get().body().more = false;
            }
            co_await http::async_write(out, sr, asio::redirect_error(use_awaitable, ec));
            if (ec == http::error::need_buffer) ec = {};
            if (ec) {
                spdlog::debug("relay write: {}", ec.message());
                co_return false;
            }
        } while (!p.is_done() && !sr.is_done());
        co_return true;
    }

    // After "101 Switching Protocols": bytes both ways until either side closes.
    awaitable<void> tunnel() {
        auto self = this->shared_from_this();
        error_code ec;
        // What each side sent past the upgrade is already in our buffers.
        if (cbuf_.size())
            co_await asio::async_write(upstream_, cbuf_.data(),
                                       asio::redirect_error(use_awaitable, ec));
        cbuf_.consume(cbuf_.size());
        if (ubuf_.size())
            co_await asio::async_write(client_, ubuf_.data(),
                                       asio::redirect_error(use_awaitable, ec));
        ubuf_.consume(ubuf_.size());
        asio::co_spawn(
            client_.get_executor(),
            [self]() -> awaitable<void> {
                std::vector<char> b(kChunk);
                error_code e;
                for (;;) {
                    size_t n = co_await self->upstream_.async_read_some(
                        asio::buffer(b), asio::redirect_error(use_awaitable, e));
                    if (e) break;
                    co_await asio::async_write(self->client_, asio::buffer(b.data(), n),
                                               asio::redirect_error(use_awaitable, e));
                    if (e) break;
                }
                beast::get_lowest_layer(self->client_).shutdown(tcp::socket::shutdown_both, e);
            },
            asio::detached);
        std::vector<char> b(kChunk);
        for (;;) {
            size_t n = co_await client_.async_read_some(asio::buffer(b),
                                                        asio::redirect_error(use_awaitable, ec));
            if (ec) break;
            co_await asio::async_write(upstream_, asio::buffer(b.data(), n),
                                       asio::redirect_error(use_awaitable, ec));
            if (ec) break;
        }
        upstream_.shutdown(tcp::socket::shutdown_both, ec);
    }

    Shared &sh_;
    Stream client_;
    tcp::socket upstream_;
    bool upstream_open_ = false;
    beast::flat_buffer cbuf_, ubuf_;
    char chunk_[kChunk];
    std::shared_ptr<ServiceState> svc_;
    std::shared_ptr<const Snapshot> snap_;
    tcp::endpoint peer_, local_;
    std::optional<PeerIdentity> identity_;
};

// Which service a connection is for: the one whose exposedPort is the original destination port
// (and, with several, whose upstreams hold the destination address); --service when given.
std::shared_ptr<ServiceState> pick_service(const Shared &sh, const Snapshot &snap,
                                           const tcp::endpoint &local) {
    std::shared_ptr<ServiceState> by_port;
    for (const auto &s : snap.services) {
        if (!sh.opt.service.empty()) {
            if (s->svc.name == sh.opt.service) return s;
            continue;
        }
        if (s->svc.effective_exposed_port() != local.port()) continue;
        for (const auto &u : s->svc.upstreams)
            if (u == local.address().to_string()) return s;
        if (!by_port) by_port = s;
    }
    if (!sh.opt.service.empty()) return nullptr;
    if (!by_port && sh.opt.upstream && snap.services.size() == 1) return snap.services[0];
    return by_port;
}

awaitable<void> serve_connection(Shared &sh, tcp::socket sock) {
    ++sh.counters.connections;
    error_code ec;
    const tcp::endpoint peer = sock.remote_endpoint(ec), local = sock.local_endpoint(ec);
    if (ec) co_return;
    sock.set_option(tcp::no_delay(true), ec);
    auto snap = sh.snapshot.get();
    std::shared_ptr<ServiceState> svc = snap ? pick_service(sh, *snap, local) : nullptr;
    if (!svc) {
        spdlog::warn("connection to {}:{} from {}: no L7 service there; closed",
                     local.address().to_string(), local.port(), peer.address().to_string());
        co_return;
    }
    if (svc->svc.tls_type == "None") {
        auto s =
            std::make_shared<Session<tcp::socket>>(sh, std::move(sock), svc, snap, peer, local);
        co_await s->run();
        co_return;
    }
    if (!svc->tls) co_return;  // no certificate yet (logged at load)
    beast::ssl_stream<tcp::socket> tls(std::move(sock), *svc->tls);
    co_await tls.async_handshake(ssl::stream_base::server, asio::redirect_error(use_awaitable, ec));
    if (ec) {
        ++sh.counters.not_http;
        Report r;
        r.service = svc->svc.name;
        r.caller_ip = peer.address().to_string();
        r.method = r.path = "-";
        r.verdict = "reject";
        r.rule = r.reason = "not-tls";
        sh.reporter.send(r);
        co_return;
    }
    auto s = std::make_shared<Session<beast::ssl_stream<tcp::socket>>>(sh, std::move(tls), svc,
                                                                       snap, peer, local);
    co_await s->run();
}

awaitable<void> accept_loop(Shared &sh, tcp::acceptor acc) {
    for (;;) {
        error_code ec;
        tcp::socket sock = co_await acc.async_accept(asio::make_strand(acc.get_executor()),
                                                     asio::redirect_error(use_awaitable, ec));
        if (ec) {
            if (ec == asio::error::operation_aborted) co_return;
            continue;
        }
        auto ex = sock.get_executor();
        asio::co_spawn(ex, serve_connection(sh, std::move(sock)), [](std::exception_ptr e) {
            if (!e) return;
            try {
                std::rethrow_exception(e);
            } catch (const std::exception &x) {
                spdlog::warn("connection ended: {}", x.what());
            }
        });
    }
}

bool parse_endpoint(const std::string &s, tcp::endpoint *out) {
    size_t colon = s.rfind(':');
    if (colon == std::string::npos) return false;
    std::string host = s.substr(0, colon);
    if (host.size() > 1 && host.front() == '[' && host.back() == ']')
        host = host.substr(1, host.size() - 2);
    error_code ec;
    auto addr = asio::ip::make_address(host, ec);
    if (ec) return false;
    try {
        int port = std::stoi(s.substr(colon + 1));
        if (port < 0 || port > 65535) return false;
        *out = tcp::endpoint(addr, static_cast<uint16_t>(port));
    } catch (...) {
        return false;
    }
    return true;
}

tcp::acceptor make_acceptor(asio::io_context &io, const tcp::endpoint &ep, bool transparent) {
    tcp::acceptor acc(io);
    acc.open(ep.protocol());
    acc.set_option(asio::socket_base::reuse_address(true));
    if (transparent) {
        // TPROXY hands this socket connections to any address: the accepted socket's local
        // endpoint is the client's original destination (the PU). Needs CAP_NET_ADMIN.
        int one = 1;
        const int level = ep.address().is_v6() ? SOL_IPV6 : SOL_IP;
        const int opt = ep.address().is_v6() ? IPV6_TRANSPARENT : IP_TRANSPARENT;
        if (::setsockopt(acc.native_handle(), level, opt, &one, sizeof one) != 0)
            throw std::runtime_error(std::string("IP_TRANSPARENT: ") + std::strerror(errno));
    }
    acc.bind(ep);
    acc.listen(asio::socket_base::max_listen_connections);
    return acc;
}

constexpr const char *kUsage =
    "usage: segwire-proxy --run-dir DIR [--tproxy ADDR:PORT]... [--listen ADDR:PORT]...\n"
    "                     [--upstream HOST:PORT] [--service NAME] [--jwks-ca FILE] [--threads N]\n"
    "                     | --version\n"
    "  DIR is segwire's run directory: the proxy reads DIR/l7/ (services.json, enforcer.crt,\n"
    "  enforcer.key, tls/) and uses DIR/l7/identity.sock and DIR/l7/reports.sock.\n";

}  // namespace
}  // namespace segwire::proxy

int main(int argc, char **argv) {
    using namespace segwire::proxy;
    // Logs go to stderr; stdout carries only the "listening on" lines.
    spdlog::set_default_logger(spdlog::stderr_logger_mt("proxy"));
    spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ segwire-proxy: %v");
    if (const char *lv = std::getenv("SEGWIRE_PROXY_LOG"))
        spdlog::set_level(spdlog::level::from_str(lv));
    Options o;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto val = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "segwire-proxy: %s needs a value\n%s", a.c_str(), kUsage);
                std::exit(2);
            }
            return argv[++i];
        };
        if (a == "--version") {
            std::printf("segwire-proxy %s\n", segwire::version_line());
            return 0;
        }
        if (a == "--run-dir")
            o.run_dir = val();
        else if (a == "--listen")
            o.listen.push_back(val());
        else if (a == "--tproxy")
            o.tproxy.push_back(val());
        else if (a == "--service")
            o.service = val();
        else if (a == "--jwks-ca")
            o.jwks_ca = val();
        else if (a == "--threads")
            o.threads = static_cast<unsigned>(std::max(1, std::atoi(val().c_str())));
        else if (a == "--upstream") {
            tcp::endpoint ep;
            std::string v = val();
            if (!parse_endpoint(v, &ep)) {
                std::fprintf(stderr, "segwire-proxy: --upstream: \"%s\" is not ADDR:PORT\n",
                             v.c_str());
                return 2;
            }
            o.upstream = ep;
        } else if (a == "--help" || a == "-h") {
            std::fputs(kUsage, stdout);
            return 0;
        } else {
            std::fprintf(stderr, "segwire-proxy: unknown option %s\n%s", a.c_str(), kUsage);
            return 2;
        }
    }
    if (o.run_dir.empty() || (o.listen.empty() && o.tproxy.empty())) {
        std::fputs(kUsage, stderr);
        return 2;
    }
    const std::filesystem::path dir = std::filesystem::path(o.run_dir) / "l7";
    Shared sh(o, dir);
    std::string stamp = dir_stamp(dir);
    try {
        sh.snapshot.set(load_snapshot(dir));
    } catch (const std::exception &e) {
        // segwire may not have written the directory yet: start, refuse connections, reload.
        spdlog::error("{}: {}", dir.string(), e.what());
        stamp.clear();
    }
    asio::io_context io(static_cast<int>(o.threads));
    try {
        for (const auto &[list, transparent] :
             {std::pair{&o.listen, false}, std::pair{&o.tproxy, true}})
            for (const std::string &l : *list) {
                tcp::endpoint ep;
                if (!parse_endpoint(l, &ep)) {
                    std::fprintf(stderr, "segwire-proxy: \"%s\" is not ADDR:PORT\n", l.c_str());
                    return 2;
                }
                tcp::acceptor acc = make_acceptor(io, ep, transparent);
                spdlog::info("listening on {}:{}{}", acc.local_endpoint().address().to_string(),
                             acc.local_endpoint().port(), transparent ? " (transparent)" : "");
                std::printf("listening on %s:%u\n",
                            acc.local_endpoint().address().to_string().c_str(),
                            acc.local_endpoint().port());
                std::fflush(stdout);
                asio::co_spawn(io, accept_loop(sh, std::move(acc)), asio::detached);
            }
    } catch (const std::exception &e) {
        std::fprintf(stderr, "segwire-proxy: %s\n", e.what());
        return 1;
    }
    // Reload when segwire replaces a file (it renames new versions in); counters every minute.
    asio::co_spawn(
        io,
        [&]() -> awaitable<void> {
            asio::steady_timer t(io);
            std::string last_counters;
            for (int tick = 1;; ++tick) {
                t.expires_after(std::chrono::seconds(1));
                co_await t.async_wait(use_awaitable);
                std::string now = dir_stamp(dir);
                if (now != stamp) {
                    stamp = now;
                    try {
                        auto s = load_snapshot(dir);
                        spdlog::info("loaded policy version {} ({} service(s))", s->version,
                                     s->services.size());
                        sh.snapshot.set(std::move(s));
                    } catch (const std::exception &e) {
                        spdlog::error("{}: {} (the previous version stays)", dir.string(),
                                      e.what());
                    }
                }
                if (tick % 60 == 0) {
                    std::string c = sh.counters.line(sh.jwks);
                    if (c != last_counters) spdlog::info("{}", c);
                    last_counters = c;
                }
            }
        },
        asio::detached);
    asio::signal_set sigs(io, SIGINT, SIGTERM);
    sigs.async_wait([&](const error_code &, int) { io.stop(); });
    std::vector<std::thread> pool;
    for (unsigned i = 1; i < o.threads; ++i) pool.emplace_back([&] { io.run(); });
    io.run();
    for (auto &t : pool) t.join();
    spdlog::info("{}", sh.counters.line(sh.jwks));
    return 0;
}
