#include "config/metrics/exposition.hpp"

#include <charconv>
#include <cmath>
#include <stdexcept>

namespace segwire::metrics {
namespace {

// Length of the valid UTF-8 sequence at s[i], 0 when it is not one (truncated, overlong, a
// surrogate, above U+10FFFF, or a stray continuation byte).
size_t utf8_sequence(std::string_view s, size_t i) {
    const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
    const unsigned char c = b(i);
    if (c < 0x80) return 1;
    size_t n;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
        n = 2, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
        n = 3, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
        n = 4, cp = c & 0x07;
    } else {
        return 0;
    }
    if (i + n > s.size()) return 0;
    for (size_t k = 1; k < n; ++k) {
        if ((b(i + k) & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (b(i + k) & 0x3F);
    }
    static constexpr uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return n;
}

// Escapes `s`: backslash and line feed always, double quote when `quote`.
std::string escape(std::string_view s, bool quote) {
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size();) {
        const size_t n = utf8_sequence(s, i);
        if (n == 0) {
            out += "\xEF\xBF\xBD";  // U+FFFD REPLACEMENT CHARACTER
            ++i;
            continue;
        }
        if (n > 1) {
            out.append(s.substr(i, n));
        } else if (s[i] == '\\') {
            out += "\\\\";
        } else if (s[i] == '\n') {
            out += "\\n";
        } else if (s[i] == '"' && quote) {
            out += "\\\"";
        } else {
            out += s[i];
        }
        i += n;
    }
    return out;
}

bool ends_with(std::string_view s, std::string_view tail) {
    return s.size() >= tail.size() && s.substr(s.size() - tail.size()) == tail;
}

}  // namespace

bool valid_name(std::string_view name) {
    if (name.empty() || (name[0] >= '0' && name[0] <= '9')) return false;
    for (char c : name)
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
    return true;
}

std::string escape_label_value(std::string_view value) {
    return escape(value, true);
}

std::string escape_help(std::string_view help) {
    return escape(help, false);
}

std::string format_value(double value) {
    if (std::isnan(value)) return "NaN";
    if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
    char buf[64];
    auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), value);
    return ec == std::errc() ? std::string(buf, end) : "NaN";
}

Exposition &Exposition::counter(std::string_view name, std::string_view help) {
    return family(name, Type::kCounter, help);
}

Exposition &Exposition::gauge(std::string_view name, std::string_view help) {
    return family(name, Type::kGauge, help);
}

Exposition &Exposition::family(std::string_view name, Type type, std::string_view help) {
    const std::string n(name);
    if (!valid_name(name)) throw std::logic_error("metric name \"" + n + "\" is not snake_case");
    if (type == Type::kCounter && !ends_with(name, "_total"))
        throw std::logic_error("counter \"" + n + "\" must end in _total");
    if (type != Type::kCounter && ends_with(name, "_total"))
        throw std::logic_error("only counters end in _total: \"" + n + "\"");
    if (help.empty()) throw std::logic_error("metric \"" + n + "\" has no HELP text");
    if (!declared_.insert(n).second) throw std::logic_error("metric \"" + n + "\" declared twice");
    current_ = n;
    out_ += "# HELP ";
    out_ += n;
    out_ += ' ';
    out_ += escape_help(help);
    out_ += "\n# TYPE ";
    out_ += n;
    out_ += type == Type::kCounter ? " counter\n" : " gauge\n";
    return *this;
}

void Exposition::labels(std::initializer_list<Label> labels) {
    if (labels.size() == 0) return;
    out_ += '{';
    bool first = true;
    for (auto it = labels.begin(); it != labels.end(); ++it) {
        const std::string n(it->name);
        if (!valid_name(it->name) || it->name.substr(0, 2) == "__")
            throw std::logic_error("metric \"" + current_ + "\": bad label name \"" + n + "\"");
        for (auto prev = labels.begin(); prev != it; ++prev)
            if (prev->name == it->name)
                throw std::logic_error("metric \"" + current_ + "\": label \"" + n + "\" twice");
        if (!first) out_ += ',';
        first = false;
        out_ += n;
        out_ += "=\"";
        out_ += escape_label_value(it->value);
        out_ += '"';
    }
    out_ += '}';
}

Exposition &Exposition::sample(uint64_t value, std::initializer_list<Label> l) {
    if (current_.empty()) throw std::logic_error("a sample before any metric family");
    out_ += current_;
    labels(l);
    out_ += ' ';
    out_ += std::to_string(value);
    out_ += '\n';
    return *this;
}

Exposition &Exposition::sample_double(double value, std::initializer_list<Label> l) {
    if (current_.empty()) throw std::logic_error("a sample before any metric family");
    out_ += current_;
    labels(l);
    out_ += ' ';
    out_ += format_value(value);
    out_ += '\n';
    return *this;
}

}  // namespace segwire::metrics
