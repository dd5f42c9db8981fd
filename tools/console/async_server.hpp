// The Console's HTTPS transport (docs/console.md, "Serving: connections, workers and parked
// long-polls"): Boost.Beast/Asio, event driven. A few I/O threads run every connection (TLS,
// reading, writing, keep-alive, timeouts); handlers run on a small worker pool because they do
// blocking database work; a long-poll with nothing new is PARKED — its connection and request are
// kept in a waiter list with an asio timer, and no thread is held until the policy version
// changes or the wait ends.
//
// The handlers keep cpp-httplib's Request/Response types (method, path, headers, body, params,
// matches, the TLS session for the client certificate): Router registers them exactly as
// httplib::Server did (Get/Post/Put/Delete with a path regex, a pre-routing handler, an error
// handler, a logger, a mount point for static files), and the transport builds the structs from
// what Beast parsed. So handler bodies did not change to move off cpp-httplib's thread-per-
// connection server, whose long-polls pinned one pool thread each.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <regex>
#include <string>
#include <utility>
#include <vector>

#include <httplib.h>

typedef struct ssl_ctx_st SSL_CTX;

namespace segwire::console {

// Thrown by a handler (through Router::dispatch; not a std::exception, so `guarded` lets it
// pass) to park its request until the policy version differs from `version` or `wait` passes.
// The transport then runs the handler again with the query parameter `wait` set to what is left
// of the first park's wait, in whole seconds: 0 after the timer (the handler answers 304 at
// once); after a change, the rest — a handler that finds the change does not concern this
// client may park again. `hold` lives as long as the request is parked (the gauge).
// Set by the transport (never by a client: removed from what clients send) on a request it runs
// again because the policy version changed while it was parked.
constexpr const char *kWokenHeader = "X-Segwire-Woken";

struct ParkRequest {
    uint64_t version = 0;
    std::chrono::milliseconds wait{0};
    std::shared_ptr<void> hold;
};

// The routes, in httplib::Server's vocabulary and order: pre-routing handler, static files of a
// mount point (GET/HEAD), then the first route whose regex matches the whole path (GET routes
// also answer HEAD); no route → 404; the error handler sees every status >= 400; the logger every
// answer.
class Router {
  public:
    using Handler = std::function<void(const httplib::Request &, httplib::Response &)>;
    using HandlerResponse = httplib::Server::HandlerResponse;

    Router &Get(const std::string &pattern, Handler h) { return add("GET", pattern, std::move(h)); }
    Router &Post(const std::string &pattern, Handler h) {
        return add("POST", pattern, std::move(h));
    }
    Router &Put(const std::string &pattern, Handler h) { return add("PUT", pattern, std::move(h)); }
    Router &Delete(const std::string &pattern, Handler h) {
        return add("DELETE", pattern, std::move(h));
    }
    void set_pre_routing_handler(
        std::function<HandlerResponse(const httplib::Request &, httplib::Response &)> h) {
        pre_routing_ = std::move(h);
    }
    void set_error_handler(Handler h) { error_ = std::move(h); }
    void set_logger(httplib::Logger h) { logger_ = std::move(h); }
    // Files of `dir` under `mount` ("/ui/" → dir/…, a directory → its index.html), with `headers`.
    bool set_mount_point(const std::string &mount, const std::string &dir,
                         httplib::Headers headers = {});

    // Routes one request (fills res; status 200 when a handler set none). May throw
    // ParkRequest.
    void dispatch(httplib::Request &req, httplib::Response &res) const;
    // The error handler for a status >= 400 (after dispatch, or for a request the transport
    // refused itself: 400, 413).
    void finish(const httplib::Request &req, httplib::Response &res) const;
    void log(const httplib::Request &req, const httplib::Response &res) const {
        if (logger_) logger_(req, res);
    }

  private:
    struct Route {
        std::string method;
        std::regex re;
        Handler h;
    };
    Router &add(const char *method, const std::string &pattern, Handler h) {
        routes_.push_back({method, std::regex(pattern), std::move(h)});
        return *this;
    }
    bool serve_file(const httplib::Request &req, httplib::Response &res) const;

    std::vector<Route> routes_;
    std::function<HandlerResponse(const httplib::Request &, httplib::Response &)> pre_routing_;
    Handler error_;
    httplib::Logger logger_;
    struct Mount {
        std::string mount, dir;
        httplib::Headers headers;
    };
    std::vector<Mount> mounts_;
};

struct AsyncServerOptions {
    int io_threads = 0;                // 0 = the number of CPUs
    int workers = 8;                   // handler threads (--threads)
    // Requests for which `priority_lane` is true run on their own `priority_workers` threads
    // instead: operators' changes answer while enforcers' traffic fills the workers' queue.
    std::function<bool(const httplib::Request &)> priority_lane;
    int priority_workers = 2;
    size_t max_connections = 10000;    // open connections; beyond, new ones are closed at once
    std::chrono::seconds idle_timeout{60};  // a kept-alive connection with no request
    std::chrono::seconds io_timeout{30};    // TLS handshake, reading one request, writing one answer
    size_t body_limit = 64u << 20;     // a full report batch is a few MB; bound memory
};

// The HTTPS server. `current_version` reads the policy version parked requests wait past;
// `wait_version` blocks until it differs from its argument or ~1 s passes (PolicyStore::
// wait_for_change): one watcher thread calls it and completes every parked request at a change.
class AsyncServer {
  public:
    AsyncServer(const Router &router, AsyncServerOptions opt,
                std::function<uint64_t()> current_version,
                std::function<uint64_t(uint64_t)> wait_version);
    ~AsyncServer();
    AsyncServer(const AsyncServer &) = delete;
    AsyncServer &operator=(const AsyncServer &) = delete;

    // OpenSSL's context, to configure before bind() (certificates, verification, client CAs).
    SSL_CTX *ssl_ctx();
    // Binds and listens; port 0 picks one. The port, or -1 (errno-style reason in *problem).
    int bind(const std::string &host, int port, std::string *problem);
    // Serves until stop(); then drains (parked requests answered, in-flight ones finished,
    // connections closed; at most ~10 s) and returns.
    void run();
    // Thread-safe, idempotent, also before run(): stop accepting, wake every parked request.
    void stop();

    struct Impl;

  private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace segwire::console
