#include "control/flowexport/jsonl.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <spdlog/spdlog.h>

namespace segwire::control::flowexport {
namespace {

int open_append(const std::string &path) {
    return ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
}

}  // namespace

std::string json_line(const ExportRecord &x, const std::string &enforcer_id) {
    const FlowReport &r = x.report;
    rapidjson::StringBuffer sb;
    rapidjson::Writer<rapidjson::StringBuffer> w(sb);
    auto str = [&](const char *k, const std::string &v) {
        w.Key(k);
        w.String(v.c_str(), static_cast<rapidjson::SizeType>(v.size()));
    };
    auto num = [&](const char *k, uint64_t v) {
        w.Key(k);
        w.Uint64(v);
    };
    w.StartObject();
    num("timestamp", r.timestamp);
    num("flowStartMilliseconds", x.start_ms);
    num("flowEndMilliseconds", x.end_ms);
    str("flowEndReason", x.end_reason_name);
    str("enforcerID", enforcer_id);
    str("action", r.action);
    str("observedAction", r.observed_action);
    str("sourceType", r.source_type);
    str("sourceID", r.source_id);
    str("sourceIP", r.source_ip);
    num("sourcePort", x.source_port);
    str("destinationType", r.destination_type);
    str("destinationID", r.destination_id);
    str("destinationIP", r.destination_ip);
    num("destinationPort", r.destination_port);
    num("protocol", r.protocol);
    str("policyID", r.policy_id);
    str("observedPolicyID", r.observed_policy_id);
    str("ruleName", r.rule_name);
    str("dropReason", r.drop_reason);
    str("mode", r.mode);
    num("sourcePackets", r.source_packets);
    num("sourceBytes", r.source_bytes);
    num("destinationPackets", r.destination_packets);
    num("destinationBytes", r.destination_bytes);
    w.EndObject();
    return std::string(sb.GetString(), sb.GetSize());
}

JsonlWriter::JsonlWriter(std::string path, uint64_t rotate_bytes, uint32_t keep,
                         const std::string &field)
    : path_(std::move(path)), rotate_bytes_(rotate_bytes), keep_(keep) {
    fd_ = open_append(path_);
    if (fd_ < 0)
        throw std::runtime_error(field + ": cannot open " + path_ + ": " + std::strerror(errno));
    struct stat st;
    if (fstat(fd_, &st) == 0) size_ = static_cast<uint64_t>(st.st_size);
}

JsonlWriter::~JsonlWriter() {
    flush();
    if (fd_ >= 0) ::close(fd_);
}

void JsonlWriter::append(std::string_view line) {
    if (size_ > 0 && size_ + line.size() + 1 > rotate_bytes_) {
        flush();
        rotate();
    }
    pending_.append(line);
    pending_ += '\n';
    ++pending_lines_;
    size_ += line.size() + 1;
}

void JsonlWriter::flush() {
    if (pending_.empty()) return;
    if (fd_ < 0 && !reopen()) {
        counts_.lines_lost += pending_lines_;
    } else {
        size_t off = 0;
        while (off < pending_.size()) {
            const ssize_t n = ::write(fd_, pending_.data() + off, pending_.size() - off);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
            off += static_cast<size_t>(n);
        }
        if (off == pending_.size()) {
            counts_.lines += pending_lines_;
            counts_.bytes += off;
            if (failing_) spdlog::info("export: writing {} again", path_);
            failing_ = false;
        } else {
            // A full disk: the lines of this flush that did not make it whole are lost (counted).
            const int err = errno;
            uint64_t whole = 0;
            for (size_t i = 0; i < off; ++i) whole += pending_[i] == '\n';
            counts_.lines += whole;
            counts_.bytes += off;
            counts_.lines_lost += pending_lines_ - whole;
            if (!failing_)
                spdlog::error(
                    "export: cannot write {}: {} (lines are counted as lost until it works)", path_,
                    std::strerror(err));
            failing_ = true;
        }
    }
    pending_.clear();
    pending_lines_ = 0;
}

// path.(keep-1) -> path.keep, ..., path -> path.1; the oldest beyond keep is overwritten (or,
// with keep 0, the file itself removed). Then a new, empty path.
void JsonlWriter::rotate() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    if (keep_ == 0) {
        ::unlink(path_.c_str());
    } else {
        for (uint32_t k = keep_; k > 1; --k) {
            const std::string from = path_ + "." + std::to_string(k - 1);
            const std::string to = path_ + "." + std::to_string(k);
            if (::rename(from.c_str(), to.c_str()) != 0 && errno != ENOENT)
                spdlog::warn("export: cannot rename {} to {}: {}", from, to, std::strerror(errno));
        }
        if (::rename(path_.c_str(), (path_ + ".1").c_str()) != 0)
            spdlog::warn("export: cannot rename {} to {}.1: {}", path_, path_,
                         std::strerror(errno));
    }
    ++counts_.rotations;
    size_ = 0;
    reopen();
}

bool JsonlWriter::reopen() {
    fd_ = open_append(path_);
    if (fd_ < 0) {
        if (!failing_)
            spdlog::error("export: cannot open {}: {} (lines are counted as lost until it works)",
                          path_, std::strerror(errno));
        failing_ = true;
        return false;
    }
    struct stat st;
    size_ = (fstat(fd_, &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0) + pending_.size();
    return true;
}

}  // namespace segwire::control::flowexport
