#include "tools/console/util.hpp"

#include <algorithm>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <fstream>
#include <sstream>

#include <rapidjson/error/en.h>

#include "config/policy/error.hpp"
#include "tools/console/error.hpp"

namespace segwire::console {

ConsoleError ConsoleError::from_policy(const policy::PolicyError &e, int status,
                                       const std::string &note) {
    ConsoleError c(status, e.what() + note, e.field());
    c.object_ = e.object();
    c.reason_ = e.problem();
    return c;
}

std::string ConsoleError::to_json() const {
    rapidjson::StringBuffer buf;
    JsonWriter w(buf);
    w.StartObject();
    write_string(w, "error", what());
    if (!field_.empty()) write_string(w, "field", field_);
    if (!object_.empty()) write_string(w, "object", object_);
    if (!reason_.empty()) write_string(w, "reason", reason_);
    if (has_candidates_) write_strings(w, "candidates", candidates_);
    w.EndObject();
    return std::string(buf.GetString(), buf.GetSize());
}

rapidjson::Document parse_json_object(std::string_view text, const char *what) {
    rapidjson::Document doc;
    doc.Parse(text.data(), text.size());
    if (doc.HasParseError())
        throw ConsoleError(400, std::string(what) + " is not valid JSON: " +
                                    rapidjson::GetParseError_En(doc.GetParseError()) +
                                    " at offset " + std::to_string(doc.GetErrorOffset()));
    if (!doc.IsObject()) throw ConsoleError(400, std::string(what) + " must be a JSON object");
    return doc;
}

std::string to_json(const rapidjson::Value &v) {
    rapidjson::StringBuffer buf;
    JsonWriter w(buf);
    v.Accept(w);
    return std::string(buf.GetString(), buf.GetSize());
}

const rapidjson::Value *member(const rapidjson::Value &obj, const char *key) {
    if (!obj.IsObject()) return nullptr;
    auto it = obj.FindMember(key);
    return it == obj.MemberEnd() || it->value.IsNull() ? nullptr : &it->value;
}

std::string get_string(const rapidjson::Value &obj, const char *key, const std::string &field,
                       bool required, const std::string &fallback) {
    const rapidjson::Value *v = member(obj, key);
    if (!v) {
        if (required) throw ConsoleError(422, field + ": missing", field);
        return fallback;
    }
    if (!v->IsString()) throw ConsoleError(422, field + ": must be a string", field);
    std::string s(v->GetString(), v->GetStringLength());
    if (required && s.empty()) throw ConsoleError(422, field + ": must not be empty", field);
    return s;
}

std::vector<std::string> get_strings(const rapidjson::Value &obj, const char *key,
                                     const std::string &field) {
    std::vector<std::string> out;
    const rapidjson::Value *v = member(obj, key);
    if (!v) return out;
    if (!v->IsArray()) throw ConsoleError(422, field + ": must be an array of strings", field);
    for (rapidjson::SizeType i = 0; i < v->Size(); ++i) {
        const auto &e = (*v)[i];
        std::string f = field + "[" + std::to_string(i) + "]";
        if (!e.IsString()) throw ConsoleError(422, f + ": must be a string", f);
        out.emplace_back(e.GetString(), e.GetStringLength());
    }
    return out;
}

void write_string(JsonWriter &w, const char *key, std::string_view value) {
    w.Key(key);
    w.String(value.data(), static_cast<rapidjson::SizeType>(value.size()));
}

void write_strings(JsonWriter &w, const char *key, const std::vector<std::string> &values) {
    w.Key(key);
    w.StartArray();
    for (const auto &s : values) w.String(s.c_str(), static_cast<rapidjson::SizeType>(s.size()));
    w.EndArray();
}

std::string base64_encode(std::string_view data) {
    std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
    int n = EVP_EncodeBlock(reinterpret_cast<unsigned char *>(out.data()),
                            reinterpret_cast<const unsigned char *>(data.data()),
                            static_cast<int>(data.size()));
    out.resize(static_cast<size_t>(n));
    return out;
}

bool base64_decode(std::string_view text, std::string *out) {
    if (text.size() % 4 != 0) return false;
    std::string buf(3 * text.size() / 4 + 1, '\0');
    int n = EVP_DecodeBlock(reinterpret_cast<unsigned char *>(buf.data()),
                            reinterpret_cast<const unsigned char *>(text.data()),
                            static_cast<int>(text.size()));
    if (n < 0) return false;
    // EVP_DecodeBlock counts padding bytes as output: drop one per '='.
    size_t pad = 0;
    for (size_t i = text.size(); i > 0 && text[i - 1] == '='; --i) ++pad;
    buf.resize(static_cast<size_t>(n) - pad);
    *out = std::move(buf);
    return true;
}

std::string base64url_encode(std::string_view data) {
    std::string s = base64_encode(data);
    while (!s.empty() && s.back() == '=') s.pop_back();
    for (char &c : s) {
        if (c == '+') c = '-';
        if (c == '/') c = '_';
    }
    return s;
}

bool base64url_decode(std::string_view text, std::string *out) {
    std::string s(text);
    for (char &c : s) {
        if (c == '-')
            c = '+';
        else if (c == '_')
            c = '/';
        else if (c == '+' || c == '/' || c == '=')
            return false;  // not the URL alphabet
    }
    if (s.size() % 4 == 1) return false;
    while (s.size() % 4) s.push_back('=');
    return base64_decode(s, out);
}

std::string hex(std::string_view bytes) {
    static const char *digits = "0123456789abcdef";
    std::string out;
    out.reserve(bytes.size() * 2);
    for (unsigned char c : bytes) {
        out.push_back(digits[c >> 4]);
        out.push_back(digits[c & 15]);
    }
    return out;
}

std::string sha256(std::string_view data) {
    std::string out(SHA256_DIGEST_LENGTH, '\0');
    SHA256(reinterpret_cast<const unsigned char *>(data.data()), data.size(),
           reinterpret_cast<unsigned char *>(out.data()));
    return out;
}

std::string random_hex(size_t bytes) {
    std::string raw(bytes, '\0');
    if (RAND_bytes(reinterpret_cast<unsigned char *>(raw.data()), static_cast<int>(bytes)) != 1)
        throw ConsoleError(500, "RAND_bytes failed");
    return hex(raw);
}

int64_t now_unix() {
    return static_cast<int64_t>(std::time(nullptr));
}

std::string rfc3339(int64_t unix_seconds) {
    time_t t = static_cast<time_t>(unix_seconds);
    struct tm tm {};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

bool parse_time(std::string_view text, int64_t *unix_seconds) {
    if (text.empty()) return false;
    bool digits_only = true;
    for (char c : text) digits_only = digits_only && c >= '0' && c <= '9';
    if (digits_only) {
        if (text.size() > 12) return false;
        *unix_seconds = std::stoll(std::string(text));
        return true;
    }
    std::string s(text);
    struct tm tm {};
    int consumed = 0;
    if (std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                    &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &consumed) != 6 ||
        consumed != 19)
        return false;
    if (tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
        tm.tm_min > 59 || tm.tm_sec > 60)
        return false;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    size_t i = 19;
    if (i < s.size() && s[i] == '.') {
        ++i;
        size_t start = i;
        while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
        if (i == start) return false;
    }
    int64_t offset = 0;
    if (i < s.size() && (s[i] == 'Z' || s[i] == 'z')) {
        ++i;
    } else if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
        int hh = 0, mm = 0;
        if (s.size() != i + 6 || std::sscanf(s.c_str() + i + 1, "%2d:%2d", &hh, &mm) != 2)
            return false;
        offset = (s[i] == '+' ? 1 : -1) * (hh * 3600 + mm * 60);
        i += 6;
    } else {
        return false;
    }
    if (i != s.size()) return false;
    *unix_seconds = static_cast<int64_t>(timegm(&tm)) - offset;
    return true;
}

std::string read_file(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw ConsoleError(500, "cannot read " + path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

void write_file(const std::string &path, std::string_view data, unsigned mode) {
    std::string tmp = path + ".tmp";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (fd < 0) throw ConsoleError(500, "cannot write " + tmp);
    size_t off = 0;
    while (off < data.size()) {
        ssize_t n = ::write(fd, data.data() + off, data.size() - off);
        if (n <= 0) {
            ::close(fd);
            throw ConsoleError(500, "cannot write " + tmp);
        }
        off += static_cast<size_t>(n);
    }
    ::fchmod(fd, mode);
    ::fsync(fd);
    ::close(fd);
    if (::rename(tmp.c_str(), path.c_str()) != 0) throw ConsoleError(500, "cannot rename " + tmp);
}

std::string format_table(const std::vector<std::vector<std::string>> &cells) {
    if (cells.empty()) return {};
    std::vector<size_t> width(cells[0].size(), 0);
    for (const auto &row : cells)
        for (size_t i = 0; i < row.size() && i < width.size(); ++i)
            width[i] = std::max(width[i], row[i].size());
    std::string out;
    for (const auto &row : cells) {
        std::string line;
        for (size_t i = 0; i < row.size(); ++i) {
            line += row[i];
            if (i + 1 < row.size() && i < width.size())
                line += std::string(width[i] - row[i].size() + 2, ' ');
        }
        out += line + "\n";
    }
    return out;
}

}  // namespace segwire::console
