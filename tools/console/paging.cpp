#include "tools/console/paging.hpp"

#include <cstdlib>

#include "tools/console/error.hpp"
#include "tools/console/util.hpp"

namespace segwire::console {

std::string Page::json() const {
    std::string out = "[";
    for (size_t i = 0; i < rows.size(); ++i) {
        if (i) out += ",";
        out += rows[i];
    }
    return out + "]";
}

std::string encode_cursor(std::string_view list, bool descending, std::string_view key) {
    std::string raw;
    raw.append(list).append(descending ? "|desc|" : "|asc|").append(key);
    return base64url_encode(raw);
}

std::string decode_cursor(std::string_view cursor, std::string_view list, bool descending) {
    std::string raw;
    auto bad = [&](const std::string &why) {
        return ConsoleError(400, "cursor: " + why + " (use the Link rel=\"next\" URL as given)",
                            "cursor");
    };
    if (cursor.empty() || !base64url_decode(cursor, &raw))
        throw bad("not a cursor of this Console");
    size_t a = raw.find('|');
    size_t b = a == std::string::npos ? a : raw.find('|', a + 1);
    if (b == std::string::npos) throw bad("not a cursor of this Console");
    std::string_view made_for(raw.data(), a);
    std::string_view order(raw.data() + a + 1, b - a - 1);
    if (made_for != list)
        throw bad("made for " + std::string(made_for) + ", not " + std::string(list));
    if (order != (descending ? "desc" : "asc"))
        throw bad("made for order=" + std::string(order) +
                  ", not order=" + (descending ? "desc" : "asc"));
    return raw.substr(b + 1);
}

std::string report_key(int64_t ts, int64_t seq) {
    return std::to_string(ts) + "." + std::to_string(seq);
}

bool parse_report_key(std::string_view key, int64_t *ts, int64_t *seq) {
    std::string k(key);
    char *end = nullptr;
    long long t = std::strtoll(k.c_str(), &end, 10);
    if (end == k.c_str() || *end != '.') return false;
    const char *s = end + 1;
    long long q = std::strtoll(s, &end, 10);
    if (end == s || *end) return false;
    *ts = t;
    *seq = q;
    return true;
}

std::string percent_encode(std::string_view s) {
    static const char *kHex = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : s) {
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += kHex[c >> 4];
            out += kHex[c & 15];
        }
    }
    return out;
}

}  // namespace segwire::console
