// The DPDK telemetry socket as segwirectl's commands use it (one query per connection).
#pragma once

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include <rapidjson/document.h>

namespace segwire::ctl {

class TelemetryClient {
  public:
    explicit TelemetryClient(std::string path) : path_(std::move(path)) {}

    // Returns the JSON reply; throws std::runtime_error with the socket path on failure.
    std::string query(const std::string &cmd) {
        int fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
        if (fd < 0) throw std::runtime_error("socket: " + std::string(strerror(errno)));
        sockaddr_un sun{};
        sun.sun_family = AF_UNIX;
        std::snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path_.c_str());
        if (connect(fd, reinterpret_cast<sockaddr *>(&sun), sizeof(sun)) != 0) {
            std::string e = strerror(errno);
            close(fd);
            throw std::runtime_error("cannot connect to " + path_ + ": " + e +
                                     " (is segwire running with this --prefix?)");
        }
        std::vector<char> buf(1 << 20);
        ssize_t n = recv(fd, buf.data(), buf.size(), 0);  // greeting
        if (n <= 0 || send(fd, cmd.data(), cmd.size(), 0) < 0) {
            close(fd);
            throw std::runtime_error("telemetry socket " + path_ + " closed");
        }
        n = recv(fd, buf.data(), buf.size() - 1, 0);
        close(fd);
        if (n <= 0) throw std::runtime_error("no reply to " + cmd);
        return std::string(buf.data(), static_cast<size_t>(n));
    }

    rapidjson::Document get(const std::string &cmd) {
        rapidjson::Document d;
        std::string reply = query(cmd);
        d.Parse(reply.c_str());
        if (d.HasParseError() || !d.IsObject())
            throw std::runtime_error("malformed reply to " + cmd + ": " + reply);
        auto key = cmd.substr(0, cmd.find(','));
        if (!d.HasMember(key.c_str()) || d[key.c_str()].IsNull())
            throw std::runtime_error(cmd + " failed (unknown command or daemon busy)");
        rapidjson::Document out;
        out.CopyFrom(d[key.c_str()], out.GetAllocator());
        return out;
    }

  private:
    std::string path_;
};

// Every entry (keys starting with `entry`, in page order) of a paged listing (/segwire/flows,
// /segwire/flowlog) copied into `out` (an array in out's allocator).
inline void all_entries(TelemetryClient &tc, const std::string &cmd, char entry,
                        rapidjson::Document &out) {
    out.SetArray();
    auto take = [&](const rapidjson::Value &page) {
        for (auto &m : page.GetObject())
            if (m.name.GetString()[0] == entry && m.value.IsObject())
                out.PushBack(rapidjson::Value(m.value, out.GetAllocator()), out.GetAllocator());
    };
    rapidjson::Document first = tc.get(cmd);
    take(first);
    const auto pages = first.HasMember("pages") && first["pages"].IsUint64() ? first["pages"].GetUint64() : 0;
    for (uint64_t p = 1; p < pages; ++p) take(tc.get(cmd + "," + std::to_string(p)));
}

}  // namespace segwire::ctl
