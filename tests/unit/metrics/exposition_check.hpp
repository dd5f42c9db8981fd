// An independent reader of the text exposition format 0.0.4 for the tests: it does not share code
// with config/metrics/exposition.cpp, so a bug in the writer is not also a bug in the check.
// (The integration tests lint real scrapes with promtool as well.)
#pragma once

#include <cstdlib>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace segwire::metrics::testing {

struct Sample {
    std::string name;
    std::map<std::string, std::string> labels;  // unescaped values
    double value = 0;
};

struct Parsed {
    std::vector<std::string> problems;
    std::map<std::string, std::string> types;  // family → counter | gauge
    std::map<std::string, std::string> help;   // family → unescaped HELP
    std::vector<Sample> samples;
};

inline Parsed parse_exposition(const std::string &text) {
    Parsed p;
    static const std::regex kName("[a-z_][a-z0-9_]*");
    static const std::regex kSample(R"(([a-z_][a-z0-9_]*)(\{(.*)\})? (\S+))");
    std::string family;  // the family of the last TYPE line
    std::istringstream in(text);
    std::string line;
    int n = 0;
    if (!text.empty() && text.back() != '\n') p.problems.push_back("no line feed at the end");
    while (std::getline(in, line)) {
        ++n;
        const std::string at = "line " + std::to_string(n) + ": ";
        if (line.rfind("# HELP ", 0) == 0) {
            const std::string rest = line.substr(7);
            const std::string name = rest.substr(0, rest.find(' '));
            if (!std::regex_match(name, kName)) p.problems.push_back(at + "bad HELP name");
            if (p.help.count(name)) p.problems.push_back(at + "second HELP for " + name);
            if (p.types.count(name)) p.problems.push_back(at + "HELP after TYPE for " + name);
            std::string h, raw = rest.size() > name.size() ? rest.substr(name.size() + 1) : "";
            for (size_t i = 0; i < raw.size(); ++i) {
                if (raw[i] != '\\') {
                    h += raw[i];
                } else if (i + 1 < raw.size() && (raw[i + 1] == '\\' || raw[i + 1] == 'n')) {
                    h += raw[++i] == 'n' ? '\n' : '\\';
                } else {
                    p.problems.push_back(at + "bad escape in HELP");
                }
            }
            if (h.empty()) p.problems.push_back(at + "empty HELP for " + name);
            p.help[name] = h;
            continue;
        }
        if (line.rfind("# TYPE ", 0) == 0) {
            std::istringstream ts(line.substr(7));
            std::string name, type;
            ts >> name >> type;
            if (type != "counter" && type != "gauge") p.problems.push_back(at + "type " + type);
            if (p.types.count(name)) p.problems.push_back(at + "second TYPE for " + name);
            if (!p.help.count(name)) p.problems.push_back(at + "TYPE without HELP for " + name);
            const bool total = name.size() > 6 && name.substr(name.size() - 6) == "_total";
            if ((type == "counter") != total)
                p.problems.push_back(at + name + ": counters and only counters end in _total");
            p.types[name] = type;
            family = name;
            continue;
        }
        if (line.empty() || line[0] == '#') {
            p.problems.push_back(at + "unexpected line");
            continue;
        }
        std::smatch m;
        if (!std::regex_match(line, m, kSample)) {
            p.problems.push_back(at + "not a sample: " + line);
            continue;
        }
        Sample s;
        s.name = m[1];
        if (s.name != family) p.problems.push_back(at + s.name + " outside its family");
        const std::string labels = m[3];
        for (size_t i = 0; i < labels.size();) {
            size_t eq = labels.find("=\"", i);
            if (eq == std::string::npos) {
                p.problems.push_back(at + "bad labels");
                break;
            }
            std::string lname = labels.substr(i, eq - i), value;
            if (!std::regex_match(lname, kName) || lname.rfind("__", 0) == 0)
                p.problems.push_back(at + "bad label name " + lname);
            size_t j = eq + 2;
            for (; j < labels.size() && labels[j] != '"'; ++j) {
                if (labels[j] != '\\') {
                    if (labels[j] == '\n') p.problems.push_back(at + "raw line feed");
                    value += labels[j];
                    continue;
                }
                char e = j + 1 < labels.size() ? labels[++j] : '?';
                if (e == 'n')
                    value += '\n';
                else if (e == '\\' || e == '"')
                    value += e;
                else
                    p.problems.push_back(at + "bad escape in a label value");
            }
            if (j >= labels.size()) {
                p.problems.push_back(at + "unterminated label value");
                break;
            }
            if (s.labels.count(lname)) p.problems.push_back(at + "label twice: " + lname);
            s.labels[lname] = value;
            i = j + 1;
            if (i < labels.size()) {
                if (labels[i] != ',') p.problems.push_back(at + "labels not comma-separated");
                ++i;
            }
        }
        const std::string v = m[4];
        char *end = nullptr;
        s.value = std::strtod(v.c_str(), &end);
        if (v != "NaN" && v != "+Inf" && v != "-Inf" && (end == v.c_str() || *end))
            p.problems.push_back(at + "bad value " + v);
        p.samples.push_back(std::move(s));
    }
    return p;
}

// The samples of `name` whose labels include `match`.
inline std::vector<Sample> find(const Parsed &p, const std::string &name,
                                const std::map<std::string, std::string> &match = {}) {
    std::vector<Sample> out;
    for (const Sample &s : p.samples) {
        if (s.name != name) continue;
        bool ok = true;
        for (const auto &[k, v] : match) ok = ok && s.labels.count(k) && s.labels.at(k) == v;
        if (ok) out.push_back(s);
    }
    return out;
}

}  // namespace segwire::metrics::testing
