#include "tools/console/async_server.hpp"

#include <openssl/ssl.h>

#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <spdlog/spdlog.h>

namespace segwire::console {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

// ---- Router -------------------------------------------------------------------------------

bool Router::set_mount_point(const std::string &mount, const std::string &dir,
                             httplib::Headers headers) {
    if (!std::filesystem::is_directory(dir)) return false;
    mounts_.push_back({mount, dir, std::move(headers)});
    return true;
}

namespace {

// What httplib answered for the page's files (detail::find_content_type).
const char *content_type_of(const std::string &path) {
    const std::string ext = std::filesystem::path(path).extension().string();
    static const std::map<std::string, const char *> kTypes = {
        {".html", "text/html"},     {".htm", "text/html"},      {".js", "text/javascript"},
        {".mjs", "text/javascript"}, {".css", "text/css"},       {".json", "application/json"},
        {".png", "image/png"},      {".svg", "image/svg+xml"},  {".ico", "image/x-icon"},
        {".txt", "text/plain"},     {".map", "application/json"}};
    auto it = kTypes.find(ext);
    return it == kTypes.end() ? "application/octet-stream" : it->second;
}

}  // namespace

bool Router::serve_file(const httplib::Request &req, httplib::Response &res) const {
    for (const Mount &m : mounts_) {
        if (req.path.compare(0, m.mount.size(), m.mount) != 0) continue;
        const std::string sub = req.path.substr(m.mount.size());
        // No way out of the directory: no ".." segment, no backslash, no NUL.
        bool ok = sub.find('\\') == std::string::npos && sub.find('\0') == std::string::npos;
        for (size_t pos = 0; ok && pos <= sub.size();) {
            size_t slash = sub.find('/', pos);
            if (slash == std::string::npos) slash = sub.size();
            ok = sub.compare(pos, slash - pos, "..") != 0;
            pos = slash + 1;
        }
        if (!ok) continue;
        std::string path = m.dir + "/" + sub;
        if (path.back() == '/') path += "index.html";
        std::error_code ec;
        if (!std::filesystem::is_regular_file(path, ec)) continue;
        std::ifstream f(path, std::ios::binary);
        if (!f) continue;
        std::ostringstream data;
        data << f.rdbuf();
        for (const auto &[k, v] : m.headers) res.set_header(k, v);
        res.set_content(data.str(), content_type_of(path));
        res.status = 200;
        return true;
    }
    return false;
}

void Router::dispatch(httplib::Request &req, httplib::Response &res) const {
    bool routed = false;
    if (pre_routing_ && pre_routing_(req, res) == HandlerResponse::Handled) {
        routed = true;
    } else if ((req.method == "GET" || req.method == "HEAD") && serve_file(req, res)) {
        routed = true;
    } else {
        const std::string &method = req.method == "HEAD" ? std::string("GET") : req.method;
        for (const Route &r : routes_) {
            if (r.method != method || !std::regex_match(req.path, req.matches, r.re)) continue;
            r.h(req, res);  // may throw ParkRequest: the caller parks the request
            routed = true;
            break;
        }
        if (!routed && res.status == -1) {
            // httplib's answer: an unknown path 404, a method it does not know 400.
            static const std::set<std::string> kKnown = {"GET",    "HEAD",    "POST", "PUT",
                                                         "DELETE", "OPTIONS", "PATCH"};
            res.status = kKnown.count(req.method) ? 404 : 400;
        }
    }
    if (res.status == -1) res.status = routed ? 200 : 404;
    finish(req, res);
}

void Router::finish(const httplib::Request &req, httplib::Response &res) const {
    if (res.status >= 400 && error_) error_(req, res);
}

// ---- the transport ------------------------------------------------------------------------

namespace {

struct Session;

// One request and its answer, kept on the heap from parsing to the write: req.matches points
// into req.path, and a parked request outlives the worker call that parked it.
struct Exchange {
    httplib::Request req;
    httplib::Response res;
    unsigned http_version = 11;
    bool keep_alive = true;
    bool head = false;
    std::shared_ptr<void> hold;  // ParkRequest::hold while parked
    // When the request's wait ends: set when it is first parked, kept if it parks again.
    std::optional<std::chrono::steady_clock::time_point> deadline;
};

// A parked request: completed once, by a version change, its timer, or shutdown.
struct Waiter {
    Waiter(std::shared_ptr<Session> s, std::shared_ptr<Exchange> e, asio::any_io_executor ex)
        : session(std::move(s)), exchange(std::move(e)), timer(ex) {}
    std::shared_ptr<Session> session;
    std::shared_ptr<Exchange> exchange;
    asio::steady_timer timer;  // used on the session's strand only
    std::atomic<bool> done{false};
    // In Impl::waiters (under Impl::mu) while `parked`.
    bool parked = false;
    std::multimap<uint64_t, std::shared_ptr<Waiter>>::iterator it;
};

}  // namespace

struct AsyncServer::Impl {
    Impl(const Router &r, AsyncServerOptions o, std::function<uint64_t()> cur,
         std::function<uint64_t(uint64_t)> wait)
        : router(r),
          opt(o),
          current_version(std::move(cur)),
          wait_version(std::move(wait)),
          ioc(opt.io_threads),
          acceptor(ioc),
          accept_retry(ioc),
          workers(static_cast<size_t>(opt.workers)),
          priority(static_cast<size_t>(std::max(1, opt.priority_workers))) {}

    void accept();
    void on_accept(beast::error_code ec, tcp::socket sock);
    void handle(std::shared_ptr<Session> s, std::shared_ptr<Exchange> ex);
    void park(std::shared_ptr<Session> s, std::shared_ptr<Exchange> ex, ParkRequest &&p);
    void resume(const std::shared_ptr<Waiter> &w, bool new_version);
    void wake(std::vector<std::shared_ptr<Waiter>> woken, bool new_version);
    void watch();
    void begin_stop();

    const Router &router;
    AsyncServerOptions opt;
    std::function<uint64_t()> current_version;
    std::function<uint64_t(uint64_t)> wait_version;

    // Declared before the I/O objects: sessions and waiters destroyed with the io_context
    // still use them.
    std::mutex mu;
    std::multimap<uint64_t, std::shared_ptr<Waiter>> waiters;  // by the version waited past
    std::set<Session *> sessions;
    std::atomic<size_t> open{0};
    std::atomic<size_t> in_flight{0};  // handlers queued or running on the workers
    std::atomic<size_t> parked{0};
    std::atomic<bool> stopping{false}, watch_stop{false};
    std::mutex stop_mu;
    std::condition_variable stop_cv;
    // Connection cap: refused connections since the last log line, and when it was.
    std::atomic<uint64_t> refused{0};
    std::chrono::steady_clock::time_point last_cap_log{};
    std::mutex cap_mu;

    asio::ssl::context ctx{asio::ssl::context::tls_server};
    asio::io_context ioc;
    tcp::acceptor acceptor;
    asio::steady_timer accept_retry;
    asio::thread_pool workers, priority;
    std::thread watcher;
};

namespace {

struct Session : std::enable_shared_from_this<Session> {
    Session(AsyncServer::Impl &srv, tcp::socket &&sock)
        : srv(srv), stream(std::move(sock), srv.ctx) {
        srv.open.fetch_add(1);
    }
    ~Session() {
        {
            std::lock_guard l(srv.mu);
            srv.sessions.erase(this);
        }
        srv.open.fetch_sub(1);
    }

    void start() {
        {
            std::lock_guard l(srv.mu);
            srv.sessions.insert(this);
        }
        beast::error_code ec;
        auto &sock = beast::get_lowest_layer(stream).socket();
        sock.set_option(tcp::no_delay(true), ec);  // one write per answer; no Nagle delay
        if (auto ep = sock.remote_endpoint(ec); !ec) {
            remote_addr = ep.address().to_string();
            remote_port = ep.port();
        }
        if (auto ep = sock.local_endpoint(ec); !ec) {
            local_addr = ep.address().to_string();
            local_port = ep.port();
        }
        beast::get_lowest_layer(stream).expires_after(srv.opt.io_timeout);
        stream.async_handshake(asio::ssl::stream_base::server,
                               [self = shared_from_this()](beast::error_code ec) {
                                   if (ec) return self->close();
                                   self->read();
                               });
    }

    // Waits (up to the idle timeout) for the next request's header.
    void read() {
        if (srv.stopping.load()) return shutdown();
        parser.emplace();
        parser->body_limit(srv.opt.body_limit);
        parser->header_limit(64 * 1024);
        idle = true;
        beast::get_lowest_layer(stream).expires_after(srv.opt.idle_timeout);
        http::async_read_header(
            stream, buf, *parser,
            [self = shared_from_this()](beast::error_code ec, size_t) { self->on_header(ec); });
    }

    void on_header(beast::error_code ec) {
        idle = false;
        if (ec) return refuse(ec);
        auto &m = parser->get();
        beast::get_lowest_layer(stream).expires_after(srv.opt.io_timeout);
        if (beast::iequals(m[http::field::expect], "100-continue")) {
            // curl sends large bodies only after this (httplib answered it too).
            auto cont = std::make_shared<http::response<http::empty_body>>(http::status::continue_,
                                                                           m.version());
            http::async_write(stream, *cont,
                              [self = shared_from_this(), cont](beast::error_code ec, size_t) {
                                  if (ec) return self->close();
                                  self->read_body();
                              });
            return;
        }
        read_body();
    }

    void read_body() {
        http::async_read(
            stream, buf, *parser,
            [self = shared_from_this()](beast::error_code ec, size_t) { self->on_request(ec); });
    }

    // A read that failed: a timeout or a closed connection ends the session; a malformed or
    // oversized request gets httplib's answer (400, 413) and then the connection is closed.
    void refuse(beast::error_code ec) {
        if (ec == http::error::body_limit || ec == http::error::header_limit) {
            auto ex = std::make_shared<Exchange>();
            ex->req.method = std::string(parser->get().method_string());
            ex->req.path = std::string(parser->get().target());
            ex->res.status = ec == http::error::body_limit ? 413 : 431;
            ex->keep_alive = false;
            srv.router.finish(ex->req, ex->res);
            return write(ex);
        }
        if (ec.category() == http::make_error_code(http::error::bad_target).category() &&
            ec != http::error::end_of_stream && ec != http::error::partial_message) {
            auto ex = std::make_shared<Exchange>();
            ex->res.status = 400;
            ex->keep_alive = false;
            srv.router.finish(ex->req, ex->res);
            return write(ex);
        }
        close();
    }

    void on_request(beast::error_code ec) {
        if (ec) return refuse(ec);
        auto ex = std::make_shared<Exchange>();
        auto m = parser->release();
        httplib::Request &req = ex->req;
        req.method = std::string(m.method_string());
        req.target = std::string(m.target());
        req.version = m.version() == 10 ? "HTTP/1.0" : "HTTP/1.1";
        const size_t q = req.target.find('?');
        req.path = httplib::detail::decode_url(req.target.substr(0, q), false);
        if (q != std::string::npos)
            httplib::detail::parse_query_text(req.target.substr(q + 1), req.params);
        for (const auto &f : m)
            req.headers.emplace(std::string(f.name_string()), std::string(f.value()));
        req.headers.erase(kWokenHeader);  // the transport's own, never a client's
        req.headers.emplace("REMOTE_ADDR", remote_addr);
        req.headers.emplace("REMOTE_PORT", std::to_string(remote_port));
        req.remote_addr = remote_addr;
        req.remote_port = remote_port;
        req.local_addr = local_addr;
        req.local_port = local_port;
        req.body = std::move(m.body());
        // The client certificate (realm Certificate, re-registration): handlers read it on a
        // worker while the connection waits for their answer (no TLS I/O meanwhile).
        req.ssl = stream.native_handle();
        ex->http_version = m.version();
        ex->keep_alive = m.keep_alive();
        ex->head = req.method == "HEAD";
        srv.handle(shared_from_this(), std::move(ex));
    }

    // On the strand: the answer, then the next request (keep-alive) or the end.
    void write(std::shared_ptr<Exchange> ex) {
        auto r = std::make_shared<http::response<http::string_body>>();
        r->version(ex->http_version);
        r->result(static_cast<unsigned>(ex->res.status));
        for (const auto &[k, v] : ex->res.headers) r->insert(k, v);
        const bool keep = ex->keep_alive && !srv.stopping.load();
        r->keep_alive(keep);
        const int st = ex->res.status;
        if (st == 204 || st == 304 || (st >= 100 && st < 200)) {
            r->prepare_payload();
        } else if (ex->head) {
            r->content_length(ex->res.body.size());
        } else {
            r->body() = std::move(ex->res.body);
            r->prepare_payload();
        }
        beast::get_lowest_layer(stream).expires_after(srv.opt.io_timeout);
        http::async_write(stream, *r,
                          [self = shared_from_this(), r, ex, keep](beast::error_code ec, size_t) {
                              self->srv.router.log(ex->req, ex->res);
                              if (ec) return self->close();
                              if (!keep) return self->shutdown();
                              self->read();
                          });
    }

    void shutdown() {
        beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(2));
        stream.async_shutdown([self = shared_from_this()](beast::error_code) { self->close(); });
    }

    void close() {
        beast::error_code ec;
        beast::get_lowest_layer(stream).socket().shutdown(tcp::socket::shutdown_both, ec);
        beast::get_lowest_layer(stream).close();
    }

    AsyncServer::Impl &srv;
    beast::ssl_stream<beast::tcp_stream> stream;
    beast::flat_buffer buf;
    std::optional<http::request_parser<http::string_body>> parser;
    bool idle = false;  // waiting for a request (on the strand): shutdown closes these at once
    std::string remote_addr, local_addr;
    int remote_port = -1, local_port = -1;
};

}  // namespace

void AsyncServer::Impl::accept() {
    acceptor.async_accept(asio::make_strand(ioc),
                          [this](beast::error_code ec, tcp::socket sock) {
                              on_accept(ec, std::move(sock));
                          });
}

void AsyncServer::Impl::on_accept(beast::error_code ec, tcp::socket sock) {
    if (!acceptor.is_open() || stopping.load()) return;
    if (ec) {
        // EMFILE and the like: log, and try again shortly rather than spin.
        spdlog::warn("accept: {}", ec.message());
        accept_retry.expires_after(std::chrono::milliseconds(100));
        accept_retry.async_wait([this](beast::error_code e) {
            if (!e && acceptor.is_open()) accept();
        });
        return;
    }
    if (open.load() >= opt.max_connections) {
        // Closed at once (the client sees the connection reset and retries), with one log line
        // per 10 s saying how many were refused.
        refused.fetch_add(1);
        {
            std::lock_guard l(cap_mu);
            const auto now = std::chrono::steady_clock::now();
            if (now - last_cap_log >= std::chrono::seconds(10)) {
                last_cap_log = now;
                spdlog::warn(
                    "connection cap reached: {} connections open (--max-connections {}); refused "
                    "{} new connection(s) since the last such line",
                    open.load(), opt.max_connections, refused.exchange(0));
            }
        }
        sock.close(ec);
    } else {
        std::make_shared<Session>(*this, std::move(sock))->start();
    }
    accept();
}

void AsyncServer::Impl::handle(std::shared_ptr<Session> s, std::shared_ptr<Exchange> ex) {
    in_flight.fetch_add(1);
    const bool lane = opt.priority_lane && opt.priority_lane(ex->req);
    asio::post(lane ? priority : workers, [this, s = std::move(s), ex = std::move(ex)]() mutable {
        ex->res = httplib::Response();
        try {
            router.dispatch(ex->req, ex->res);
        } catch (ParkRequest &p) {
            park(std::move(s), std::move(ex), std::move(p));
            in_flight.fetch_sub(1);
            return;
        } catch (const std::exception &e) {
            // Handlers are `guarded`; this is the transport's own safety net.
            spdlog::error("{} {}: {}", ex->req.method, ex->req.path, e.what());
            ex->res = httplib::Response();
            ex->res.status = 500;
            router.finish(ex->req, ex->res);
        }
        Session *sp = s.get();
        asio::post(sp->stream.get_executor(),
                   [s = std::move(s), ex = std::move(ex)] { s->write(ex); });
        in_flight.fetch_sub(1);
    });
}

void AsyncServer::Impl::park(std::shared_ptr<Session> s, std::shared_ptr<Exchange> ex,
                             ParkRequest &&p) {
    ex->hold = std::move(p.hold);
    if (!ex->deadline) ex->deadline = std::chrono::steady_clock::now() + p.wait;
    auto exec = s->stream.get_executor();
    auto w = std::make_shared<Waiter>(std::move(s), std::move(ex), exec);
    {
        std::lock_guard l(mu);
        // Checked under `mu`: a change after this check finds the waiter in the list (the
        // watcher takes `mu` after it sees the new version).
        if (!stopping.load() && current_version() == p.version) {
            w->it = waiters.emplace(p.version, w);
            w->parked = true;
            parked.fetch_add(1);
            // Posted under `mu`, so a wake (posted after taking `mu`) runs after it on the
            // strand and finds the timer started.
            asio::post(exec, [this, w, deadline = *w->exchange->deadline] {
                w->timer.expires_at(deadline);
                w->timer.async_wait([this, w](beast::error_code) { resume(w, false); });
            });
            return;
        }
    }
    resume(w, false);
}

// Runs the handler again with `wait` set to what is left of the request's wait (whole seconds):
// after the timer, 0, so it answers at once (304); after a change, a handler that finds nothing
// new for this client may park again for the rest.
void AsyncServer::Impl::resume(const std::shared_ptr<Waiter> &w, bool new_version) {
    if (w->done.exchange(true)) return;
    {
        std::lock_guard l(mu);
        if (w->parked) {
            waiters.erase(w->it);
            w->parked = false;
            parked.fetch_sub(1);
        }
    }
    auto ex = w->exchange;
    ex->hold.reset();
    const auto left = *ex->deadline - std::chrono::steady_clock::now();
    const auto secs = std::chrono::duration_cast<std::chrono::seconds>(left).count();
    ex->req.params.erase("wait");
    ex->req.params.emplace("wait", std::to_string(secs > 0 && !stopping.load() ? secs : 0));
    ex->req.headers.erase(kWokenHeader);
    if (new_version) ex->req.headers.emplace(kWokenHeader, "1");
    handle(w->session, std::move(ex));
}

void AsyncServer::Impl::wake(std::vector<std::shared_ptr<Waiter>> woken, bool new_version) {
    for (auto &w : woken) {
        auto exec = w->session->stream.get_executor();
        asio::post(exec, [this, w = std::move(w), new_version] {
            w->timer.cancel();  // its handler finds `done` set
            resume(w, new_version);
        });
    }
}

// One thread for all parked requests: blocks on the policy store's condition variable and, at
// each new version, completes every request parked at an older one.
void AsyncServer::Impl::watch() {
    uint64_t known = current_version();
    while (!watch_stop.load()) {
        const auto t0 = std::chrono::steady_clock::now();
        const uint64_t v = wait_version(known);
        if (v == known) {
            // The store wakes its waiters at shutdown without a new version: do not spin.
            if (std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(100))
                std::this_thread::sleep_for(std::chrono::milliseconds(20));
            continue;
        }
        known = v;
        std::vector<std::shared_ptr<Waiter>> woken;
        {
            std::lock_guard l(mu);
            for (auto it = waiters.begin(); it != waiters.end();) {
                if (it->first == v) {
                    ++it;
                    continue;
                }
                it->second->parked = false;
                parked.fetch_sub(1);
                woken.push_back(std::move(it->second));
                it = waiters.erase(it);
            }
        }
        wake(std::move(woken), true);
    }
}

void AsyncServer::Impl::begin_stop() {
    beast::error_code ec;
    acceptor.close(ec);
    accept_retry.cancel();
    std::vector<std::shared_ptr<Waiter>> woken;
    std::vector<std::shared_ptr<Session>> idle;
    {
        std::lock_guard l(mu);
        for (auto &[v, w] : waiters) {
            w->parked = false;
            parked.fetch_sub(1);
            woken.push_back(std::move(w));
        }
        waiters.clear();
        for (Session *s : sessions)
            if (auto sp = s->weak_from_this().lock()) idle.push_back(std::move(sp));
    }
    // Parked requests answer now (their connections close after the answer).
    wake(std::move(woken), false);
    // Connections waiting for a request close now; those with a request in hand answer first.
    for (auto &s : idle) {
        auto exec = s->stream.get_executor();
        asio::post(exec, [s = std::move(s)] {
            if (s->idle) s->close();
        });
    }
}

AsyncServer::AsyncServer(const Router &router, AsyncServerOptions opt,
                         std::function<uint64_t()> current_version,
                         std::function<uint64_t(uint64_t)> wait_version) {
    if (opt.io_threads <= 0) opt.io_threads = std::max(1u, std::thread::hardware_concurrency());
    if (opt.workers <= 0) opt.workers = 1;
    impl_ = std::make_unique<Impl>(router, opt, std::move(current_version),
                                   std::move(wait_version));
}

AsyncServer::~AsyncServer() {
    if (!impl_) return;
    impl_->watch_stop.store(true);
    if (impl_->watcher.joinable()) impl_->watcher.join();
    impl_->ioc.stop();
    impl_->workers.join();
    impl_->priority.join();
    // Timers must go before their io_context.
    std::multimap<uint64_t, std::shared_ptr<Waiter>> left;
    {
        std::lock_guard l(impl_->mu);
        left.swap(impl_->waiters);
    }
    for (auto &[v, w] : left) w->parked = false;
    left.clear();
}

SSL_CTX *AsyncServer::ssl_ctx() { return impl_->ctx.native_handle(); }

int AsyncServer::bind(const std::string &host, int port, std::string *problem) {
    beast::error_code ec;
    auto addr = asio::ip::make_address(host, ec);
    if (ec) {
        // A name (localhost): resolve it.
        tcp::resolver res(impl_->ioc);
        auto r = res.resolve(host, std::to_string(port), ec);
        if (ec || r.empty()) {
            *problem = host + ": " + (ec ? ec.message() : "no address");
            return -1;
        }
        addr = r.begin()->endpoint().address();
    }
    tcp::endpoint ep(addr, static_cast<unsigned short>(port));
    auto &a = impl_->acceptor;
    a.open(ep.protocol(), ec);
    if (!ec) a.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) a.bind(ep, ec);
    if (!ec) a.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
        *problem = ec.message();
        return -1;
    }
    return a.local_endpoint().port();
}

void AsyncServer::run() {
    Impl &m = *impl_;
    m.watcher = std::thread([&m] { m.watch(); });
    auto guard = asio::make_work_guard(m.ioc);
    asio::post(m.ioc, [&m] {
        if (!m.stopping.load()) m.accept();
    });
    std::vector<std::thread> io;
    for (int i = 0; i < m.opt.io_threads; ++i) io.emplace_back([&m] { m.ioc.run(); });
    {
        std::unique_lock l(m.stop_mu);
        m.stop_cv.wait(l, [&] { return m.stopping.load(); });
    }
    asio::post(m.ioc, [&m] { m.begin_stop(); });
    // Drain: every connection answered and closed, or 10 s. The work guard stays until then: a
    // request on a worker is no I/O work of the io_context, which would otherwise run out of
    // work and return before the worker posts the answer back.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while ((m.open.load() > 0 || m.in_flight.load() > 0) &&
           std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (m.open.load() > 0)
        spdlog::warn("shutdown: {} connection(s) still open after 10 s, closed", m.open.load());
    guard.reset();
    m.ioc.stop();
    for (auto &t : io) t.join();
    m.workers.join();
    m.priority.join();
    m.watch_stop.store(true);
    m.watcher.join();
}

void AsyncServer::stop() {
    {
        std::lock_guard l(impl_->stop_mu);
        impl_->stopping.store(true);
    }
    impl_->stop_cv.notify_all();
}

}  // namespace segwire::console
