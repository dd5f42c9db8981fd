// segwire-connrate: TCP connection rate, the client and the echo server of `segwire-bench system`.
// One thread each, epoll, non-blocking sockets, so neither end is the limit on a small machine.
//
//   segwire-connrate server --port P [--bind ADDR]
//       echoes what it reads, closes on EOF; prints {"listening":true} once it listens.
//   segwire-connrate client --host H --port P [--parallel N] [--duration S] [--timeout S]
//       keeps N connections in flight for S seconds, each: connect, send 1 byte, receive the
//       byte back, close (FIN). Prints one JSON line: completed connections, connections/s,
//       failures by errno name, latency percentiles (connect start -> echo received).
//   segwire-connrate --version
//
// Plain POSIX written in the C subset of C++ (the project builds C++ only).
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "version.hpp"

namespace {

double now_s() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

[[noreturn]] void die(const char *what) {
    std::fprintf(stderr, "segwire-connrate: %s: %s\n", what, std::strerror(errno));
    std::exit(1);
}

bool parse_addr(const char *host, int port, sockaddr_storage &ss, socklen_t &len) {
    std::memset(&ss, 0, sizeof ss);
    auto *a4 = reinterpret_cast<sockaddr_in *>(&ss);
    auto *a6 = reinterpret_cast<sockaddr_in6 *>(&ss);
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons(uint16_t(port));
        len = sizeof *a4;
        return true;
    }
    if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(uint16_t(port));
        len = sizeof *a6;
        return true;
    }
    return false;
}

int run_server(const char *bind_addr, int port) {
    sockaddr_storage ss;
    socklen_t len;
    if (!parse_addr(bind_addr, port, ss, len)) {
        std::fprintf(stderr, "segwire-connrate: bad address %s\n", bind_addr);
        return 2;
    }
    int ls = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (ls < 0) die("socket");
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(ls, reinterpret_cast<sockaddr *>(&ss), len) < 0) die("bind");
    if (listen(ls, 4096) < 0) die("listen");
    int ep = epoll_create1(0);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = ls;
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    std::printf("{\"listening\": true, \"port\": %d}\n", port);
    std::fflush(stdout);
    epoll_event evs[256];
    char buf[4096];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) die("epoll_wait");
        for (int i = 0; i < n; ++i) {
            int fd = evs[i].data.fd;
            if (fd == ls) {
                for (;;) {
                    int c = accept4(ls, nullptr, nullptr, SOCK_NONBLOCK);
                    if (c < 0) break;  // EAGAIN, or a connection reset before accept
                    epoll_event ce{};
                    ce.events = EPOLLIN;
                    ce.data.fd = c;
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
                }
                continue;
            }
            ssize_t r = read(fd, buf, sizeof buf);
            if (r > 0) {
                if (write(fd, buf, size_t(r)) != r) close(fd);  // 1 byte: never partial
            } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
                close(fd);  // closing removes it from the epoll set
            }
        }
    }
}

enum class St : uint8_t { kFree, kConnecting, kWaitEcho };

struct Slot {
    int fd = -1;
    St st = St::kFree;
    double t0 = 0;
};

const char *errname(int e) {
    switch (e) {
        case ECONNREFUSED:
            return "ECONNREFUSED";
        case ECONNRESET:
            return "ECONNRESET";
        case ETIMEDOUT:
            return "ETIMEDOUT";
        case EADDRNOTAVAIL:
            return "EADDRNOTAVAIL";
        case EHOSTUNREACH:
            return "EHOSTUNREACH";
        case ENETUNREACH:
            return "ENETUNREACH";
        case EPIPE:
            return "EPIPE";
        case EMFILE:
            return "EMFILE";
        case 0:
            return "EOF";
        default:
            return "other";
    }
}

int run_client(const char *host, int port, int parallel, double duration, double timeout) {
    sockaddr_storage ss;
    socklen_t len;
    if (!parse_addr(host, port, ss, len)) {
        std::fprintf(stderr, "segwire-connrate: bad address %s\n", host);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    int ep = epoll_create1(0);
    if (ep < 0) die("epoll_create1");
    std::vector<Slot> slots(static_cast<size_t>(parallel));
    std::map<std::string, uint64_t> errors;
    std::vector<float> lat_ms;
    lat_ms.reserve(1 << 20);
    uint64_t completed = 0;
    const double start = now_s(), end = start + duration;
    bool opening = true;

    auto fail = [&](size_t i, int e) {
        ++errors[errname(e)];
        close(slots[i].fd);
        slots[i].fd = -1;
        slots[i].st = St::kFree;
    };
    auto open_one = [&](size_t i) {
        Slot &s = slots[i];
        s.fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
        if (s.fd < 0) {
            ++errors[errname(errno)];
            return;
        }
        int one = 1;
        setsockopt(s.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        s.t0 = now_s();
        s.st = St::kConnecting;
        epoll_event ev{};
        ev.events = EPOLLOUT;
        ev.data.u64 = i;
        epoll_ctl(ep, EPOLL_CTL_ADD, s.fd, &ev);
        if (connect(s.fd, reinterpret_cast<sockaddr *>(&ss), len) < 0 && errno != EINPROGRESS)
            fail(i, errno);
    };

    for (size_t i = 0; i < slots.size(); ++i) open_one(i);
    epoll_event evs[512];
    double last_sweep = start;
    for (;;) {
        double t = now_s();
        if (opening && t >= end) opening = false;
        size_t busy = 0;
        for (auto &s : slots) busy += s.st != St::kFree;
        if (!opening && busy == 0) break;
        if (!opening && t >= end + timeout) break;  // stragglers: left unfinished, not counted
        if (t - last_sweep > 0.1) {                 // per-connection timeout
            last_sweep = t;
            for (size_t i = 0; i < slots.size(); ++i) {
                if (slots[i].st != St::kFree && t - slots[i].t0 > timeout) {
                    fail(i, ETIMEDOUT);
                    if (opening) open_one(i);
                }
            }
        }
        if (opening)
            for (size_t i = 0; i < slots.size(); ++i)
                if (slots[i].st == St::kFree) open_one(i);
        int n = epoll_wait(ep, evs, 512, 20);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) die("epoll_wait");
        for (int k = 0; k < n; ++k) {
            size_t i = size_t(evs[k].data.u64);
            Slot &s = slots[i];
            if (s.st == St::kConnecting) {
                int err = 0;
                socklen_t el = sizeof err;
                getsockopt(s.fd, SOL_SOCKET, SO_ERROR, &err, &el);
                if (err) {
                    fail(i, err);
                } else {
                    char b = 'x';
                    if (write(s.fd, &b, 1) != 1) {
                        fail(i, errno);
                    } else {
                        s.st = St::kWaitEcho;
                        epoll_event ev{};
                        ev.events = EPOLLIN;
                        ev.data.u64 = i;
                        epoll_ctl(ep, EPOLL_CTL_MOD, s.fd, &ev);
                        continue;
                    }
                }
            } else if (s.st == St::kWaitEcho) {
                char b;
                ssize_t r = read(s.fd, &b, 1);
                if (r == 1) {
                    double t1 = now_s();
                    close(s.fd);
                    s.fd = -1;
                    s.st = St::kFree;
                    if (t1 <= end) {
                        ++completed;
                        lat_ms.push_back(float((t1 - s.t0) * 1e3));
                    }
                } else if (r == 0 || errno != EAGAIN) {
                    fail(i, r == 0 ? 0 : errno);
                } else {
                    continue;
                }
            }
            if (opening && now_s() < end) open_one(i);
        }
    }
    for (auto &s : slots)
        if (s.fd >= 0) close(s.fd);
    const double elapsed = std::min(now_s(), end) - start;
    std::sort(lat_ms.begin(), lat_ms.end());
    auto pct = [&](double p) {
        return lat_ms.empty() ? 0.0 : double(lat_ms[size_t(p * double(lat_ms.size() - 1))]);
    };
    uint64_t nerr = 0;
    std::string errs = "{";
    for (auto &[k, v] : errors) {
        errs += (errs.size() > 1 ? ", \"" : "\"") + k + "\": " + std::to_string(v);
        nerr += v;
    }
    errs += "}";
    std::printf(
        "{\"completed\": %llu, \"seconds\": %.3f, \"rate\": %.1f, \"parallel\": %d, "
        "\"failed\": %llu, \"errors\": %s, \"latency_ms_p50\": %.3f, \"latency_ms_p99\": %.3f}\n",
        static_cast<unsigned long long>(completed), elapsed, double(completed) / elapsed, parallel,
        static_cast<unsigned long long>(nerr), errs.c_str(), pct(0.5), pct(0.99));
    return completed > 0 ? 0 : 1;
}

int usage() {
    std::fprintf(stderr,
                 "usage: segwire-connrate server --port P [--bind ADDR]\n"
                 "       segwire-connrate client --host H --port P [--parallel N] "
                 "[--duration S] [--timeout S]\n"
                 "       segwire-connrate --version\n");
    return 2;
}

}  // namespace

int main(int argc, char **argv) {
    if (argc < 2) return usage();
    const std::string cmd = argv[1];
    if (cmd == "--version") {
        std::printf("segwire-connrate %s\n", segwire::version_line());
        return 0;
    }
    std::string host, bind_addr = "0.0.0.0";
    int port = 0, parallel = 32;
    double duration = 5, timeout = 3;
    for (int i = 2; i < argc; ++i) {
        const std::string a = argv[i];
        if (i + 1 >= argc) return usage();
        const char *v = argv[++i];
        if (a == "--host")
            host = v;
        else if (a == "--bind")
            bind_addr = v;
        else if (a == "--port")
            port = std::atoi(v);
        else if (a == "--parallel")
            parallel = std::atoi(v);
        else if (a == "--duration")
            duration = std::atof(v);
        else if (a == "--timeout")
            timeout = std::atof(v);
        else
            return usage();
    }
    if (port <= 0 || port > 65535 || parallel < 1 || duration <= 0 || timeout <= 0) return usage();
    if (cmd == "server") return run_server(bind_addr.c_str(), port);
    if (cmd == "client" && !host.empty())
        return run_client(host.c_str(), port, parallel, duration, timeout);
    return usage();
}
