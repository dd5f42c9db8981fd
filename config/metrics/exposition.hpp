// The Prometheus text exposition format 0.0.4 (docs/metrics.md): what `segwire` and
// `segwire-console` answer on GET /metrics. A plain library (no DPDK, no threads, no I/O): both
// binaries and the unit tests link it, so the two endpoints cannot disagree on escaping or naming.
//
// The writer enforces the naming conventions instead of trusting each caller: lower snake_case
// names, counters end in `_total` and nothing else does, every family has HELP and TYPE, a family
// is declared once and its samples follow it. A name that breaks them is a programming error
// (std::logic_error, thrown on the control side while rendering, never on a packet path); the
// unit tests render every family once, so such an error cannot reach a scrape.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <set>
#include <string>
#include <string_view>

namespace segwire::metrics {

// What GET /metrics answers with (Prometheus text format 0.0.4).
inline constexpr const char *kContentType = "text/plain; version=0.0.4; charset=utf-8";

enum class Type : uint8_t { kCounter, kGauge };

struct Label {
    std::string_view name;
    std::string_view value;
};

class Exposition {
  public:
    // Begins a family: writes its # HELP and # TYPE lines. Counters must end in `_total`, gauges
    // must not; names are [a-z_][a-z0-9_]*. Throws std::logic_error otherwise, or when `name` was
    // declared before.
    Exposition &counter(std::string_view name, std::string_view help);
    Exposition &gauge(std::string_view name, std::string_view help);

    // One sample of the family begun last. Label names are [a-z_][a-z0-9_]* (not starting with
    // "__", reserved by Prometheus), each at most once; values are escaped (escape_label_value).
    // Throws std::logic_error before any family, or on a bad or repeated label name.
    Exposition &sample(uint64_t value, std::initializer_list<Label> labels = {});
    Exposition &sample_double(double value, std::initializer_list<Label> labels = {});
    // A gauge that is 1 or 0 (state sets, flags).
    Exposition &sample_bool(bool value, std::initializer_list<Label> labels = {}) {
        return sample(value ? 1 : 0, labels);
    }

    const std::string &text() const { return out_; }
    std::string take() { return std::move(out_); }

  private:
    Exposition &family(std::string_view name, Type type, std::string_view help);
    void labels(std::initializer_list<Label> labels);

    std::string out_;
    std::string current_;  // the family samples belong to ("" before the first)
    std::set<std::string, std::less<>> declared_;
};

// [a-z_][a-z0-9_]*: segwire's metric and label names (Prometheus allows upper case and ':' too;
// ':' is for recording rules, and upper case breaks the snake_case convention).
bool valid_name(std::string_view name);

// A label value as the format requires: backslash, double quote and line feed escaped (\\, \", \n).
// Bytes that are not valid UTF-8 become U+FFFD, since Prometheus refuses the whole scrape
// otherwise (a bundle version is whatever string a policy file carried).
std::string escape_label_value(std::string_view value);
// HELP text: backslash and line feed escaped; invalid UTF-8 replaced as above.
std::string escape_help(std::string_view help);
// A sample value: integers exactly, other numbers in the shortest form that reads back the same,
// NaN, +Inf, -Inf.
std::string format_value(double value);

}  // namespace segwire::metrics
