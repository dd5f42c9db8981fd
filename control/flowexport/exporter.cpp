#include "control/flowexport/exporter.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <stdexcept>

#include <spdlog/spdlog.h>

namespace segwire::control::flowexport {
namespace {

std::string address_text(const sockaddr *sa) {
    char host[INET6_ADDRSTRLEN] = "";
    uint16_t port = 0;
    if (sa->sa_family == AF_INET6) {
        const auto *s6 = reinterpret_cast<const sockaddr_in6 *>(sa);
        inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof host);
        port = ntohs(s6->sin6_port);
        return "[" + std::string(host) + "]:" + std::to_string(port);
    }
    const auto *s4 = reinterpret_cast<const sockaddr_in *>(sa);
    inet_ntop(AF_INET, &s4->sin_addr, host, sizeof host);
    port = ntohs(s4->sin_port);
    return std::string(host) + ":" + std::to_string(port);
}

}  // namespace

FlowExporter::FlowExporter(const config::FlowExportConfig &cfg, std::string enforcer_id)
    : enforcer_id_(std::move(enforcer_id)),
      writer_(cfg.ipfix.observation_domain),
      now_(static_cast<uint32_t>(std::time(nullptr))) {
    if (cfg.jsonl_enabled())
        jsonl_ =
            std::make_unique<JsonlWriter>(cfg.jsonl.path, cfg.jsonl.rotate_bytes, cfg.jsonl.keep);
    if (cfg.ipfix_enabled()) {
        refresh_s_ = cfg.ipfix.template_refresh_s;
        addrinfo hints{};
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_DGRAM;
        addrinfo *res = nullptr;
        const std::string port = std::to_string(cfg.ipfix.port);
        if (int rc = getaddrinfo(cfg.ipfix.host.c_str(), port.c_str(), &hints, &res); rc != 0)
            throw std::runtime_error("export.ipfix.collector: cannot resolve " + cfg.ipfix.host +
                                     ": " + gai_strerror(rc));
        std::string last_error = "no address";
        for (addrinfo *ai = res; ai; ai = ai->ai_next) {
            // Connected: the kernel then reports an ICMP port unreachable from the collector's
            // host (counted as a refusal). Non-blocking: a full socket buffer drops the datagram
            // instead of stalling the control thread.
            const int fd = ::socket(ai->ai_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (fd < 0) {
                last_error = std::strerror(errno);
                continue;
            }
            if (::connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
                last_error = std::strerror(errno);
                ::close(fd);
                continue;
            }
            fd_ = fd;
            collector_ = address_text(ai->ai_addr);
            break;
        }
        freeaddrinfo(res);
        if (fd_ < 0)
            throw std::runtime_error("export.ipfix.collector: cannot open a UDP socket to " +
                                     cfg.ipfix.collector + ": " + last_error);
    }
    if (jsonl_) spdlog::info("export: JSON lines to {}", cfg.jsonl.path);
    if (fd_ >= 0)
        spdlog::info("export: IPFIX to {} over UDP (observation domain {}, templates every {} s)",
                     collector_, cfg.ipfix.observation_domain, refresh_s_);
}

FlowExporter::~FlowExporter() {
    flush(now_);
    if (fd_ >= 0) ::close(fd_);
}

void FlowExporter::add(const ExportRecord &r) {
    ++c_.records;
    if (jsonl_) jsonl_->append(json_line(r, enforcer_id_));
    if (fd_ < 0) return;
    if (!open_) begin_message(now_);
    if (writer_.add(r)) return;
    send_message();
    begin_message(now_);
    writer_.add(r);  // always fits a message without templates
}

void FlowExporter::begin_message(uint32_t now) {
    // Templates go first in the first message and again every refresh (RFC 7011 section 8.4:
    // over UDP a collector that missed them, or restarted, learns them again).
    const bool due = !templates_sent_ || now - templates_at_ >= refresh_s_;
    writer_.begin(now, due);
    open_ = true;
}

void FlowExporter::send_message() {
    if (!open_ || writer_.empty()) return;
    const bool templates = writer_.has_templates();
    const size_t records = writer_.records();
    const std::span<const uint8_t> msg = writer_.finish();
    open_ = false;
    ssize_t n = ::send(fd_, msg.data(), msg.size(), MSG_DONTWAIT);
    if (n < 0 && errno == ECONNREFUSED) {
        // An earlier datagram met no listener; the error is reported (and cleared) here. The
        // collector may be back: send this one again.
        ++c_.ipfix_refused;
        n = ::send(fd_, msg.data(), msg.size(), MSG_DONTWAIT);
    }
    if (n == static_cast<ssize_t>(msg.size())) {
        ++c_.ipfix_messages;
        c_.ipfix_records += records;
        if (templates) {
            ++c_.ipfix_templates;
            templates_sent_ = true;
            templates_at_ = now_;
        }
        return;
    }
    ++c_.ipfix_messages_lost;
    c_.ipfix_records_lost += records;
}

void FlowExporter::flush(uint32_t now_unix) {
    now_ = now_unix;
    if (jsonl_) jsonl_->flush();
    if (fd_ >= 0) {
        if (!open_ && (!templates_sent_ || now_ - templates_at_ >= refresh_s_))
            begin_message(now_);  // a template-only message when the refresh is due
        send_message();
    }
    publish();
}

void FlowExporter::publish() {
    if (jsonl_) {
        const JsonlCounts &j = jsonl_->counts();
        c_.jsonl_lines = j.lines;
        c_.jsonl_bytes = j.bytes;
        c_.jsonl_rotations = j.rotations;
        c_.jsonl_lines_lost = j.lines_lost;
    }
    std::lock_guard<std::mutex> lock(mu_);
    published_ = c_;
}

ExportCounts FlowExporter::counts() const {
    std::lock_guard<std::mutex> lock(mu_);
    return published_;
}

}  // namespace segwire::control::flowexport
