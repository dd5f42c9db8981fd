// Flow export (docs/export.md) without DPDK: IPFIX messages read back field by field by a decoder
// written here from RFC 7011 (sections 3.1-3.4, 7), the JSON lines writer's rotation (no line lost
// or split, keep bound), the exporter to a real UDP socket (and to none: a dead collector costs
// datagrams only), and the config's `export` section, whose errors name the field.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "config/appliance_config.hpp"
#include "control/flowexport/exporter.hpp"
#include "control/flowexport/ipfix.hpp"
#include "control/flowexport/jsonl.hpp"

namespace segwire::control::flowexport {
namespace {

namespace fs = std::filesystem;

ExportRecord record(uint8_t family = 4, uint16_t sport = 40000) {
    ExportRecord x;
    FlowReport &r = x.report;
    r.action = "Accept";
    r.observed_action = "NotApplicable";
    r.source_type = "ProcessingUnit";
    r.source_id = "pu-client";
    r.destination_type = "ProcessingUnit";
    r.destination_id = "pu-server";
    r.destination_port = 7000;
    r.protocol = 6;
    r.policy_id = "pol-server";
    r.rule_name = "from-client";
    r.mode = "v1";
    r.source_packets = 12;
    r.source_bytes = 1234;
    r.destination_packets = 10;
    r.destination_bytes = 987654;
    r.timestamp = 1'800'000'000;
    x.source_port = sport;
    x.family = family;
    if (family == 4) {
        r.source_ip = "10.77.0.1";
        r.destination_ip = "10.77.0.2";
        inet_pton(AF_INET, "10.77.0.1", x.src);
        inet_pton(AF_INET, "10.77.0.2", x.dst);
    } else {
        r.source_ip = "fd77::1";
        r.destination_ip = "fd77::2";
        inet_pton(AF_INET6, "fd77::1", x.src);
        inet_pton(AF_INET6, "fd77::2", x.dst);
    }
    x.start_ms = 1'800'000'000'123ull;
    x.end_ms = 1'800'000'004'567ull;
    x.end_reason = 3;
    x.end_reason_name = "end";
    return x;
}

// ---- an IPFIX decoder from RFC 7011, independent of the writer ----

uint16_t be16(const uint8_t *p) {
    return static_cast<uint16_t>(p[0] << 8 | p[1]);
}
uint32_t be32(const uint8_t *p) {
    return uint32_t(be16(p)) << 16 | be16(p + 2);
}

struct Spec {
    uint16_t id, len;
    uint32_t pen;
};
// A decoded field: numbers for fixed-length IEs (bytes for addresses), text for variable ones.
struct Value {
    uint64_t num = 0;
    std::string bytes;
};
using Rec = std::map<std::string, Value>;  // key: "pen/id"

struct Message {
    uint16_t version = 0, length = 0;
    uint32_t export_time = 0, sequence = 0, domain = 0;
    std::map<uint16_t, std::vector<Spec>> templates;
    std::vector<std::pair<uint16_t, Rec>> records;  // (template id, fields)
};

std::string key(uint32_t pen, uint16_t id) {
    return std::to_string(pen) + "/" + std::to_string(id);
}

// Decodes one message; templates learned earlier may be passed in (a message without them).
Message decode(std::span<const uint8_t> m, std::map<uint16_t, std::vector<Spec>> known = {}) {
    Message out;
    out.templates = std::move(known);
    EXPECT_GE(m.size(), 16u);
    out.version = be16(&m[0]);
    out.length = be16(&m[2]);
    out.export_time = be32(&m[4]);
    out.sequence = be32(&m[8]);
    out.domain = be32(&m[12]);
    EXPECT_EQ(out.length, m.size());
    size_t off = 16;
    while (off + 4 <= m.size()) {
        const uint16_t set_id = be16(&m[off]), set_len = be16(&m[off + 2]);
        EXPECT_GE(set_len, 4);
        EXPECT_LE(off + set_len, m.size());
        const size_t end = off + set_len;
        size_t p = off + 4;
        if (set_id == 2) {
            while (p + 4 <= end) {
                const uint16_t tid = be16(&m[p]), count = be16(&m[p + 2]);
                p += 4;
                std::vector<Spec> fields;
                for (uint16_t i = 0; i < count; ++i) {
                    Spec s{be16(&m[p]), be16(&m[p + 2]), 0};
                    p += 4;
                    if (s.id & 0x8000) {
                        s.id &= 0x7fff;
                        s.pen = be32(&m[p]);
                        p += 4;
                    }
                    fields.push_back(s);
                }
                out.templates[tid] = fields;
            }
        } else if (set_id >= 256) {
            const auto &fields = out.templates.at(set_id);
            while (p < end) {
                Rec r;
                for (const Spec &s : fields) {
                    Value v;
                    size_t len = s.len;
                    if (len == 65535) {
                        len = m[p++];
                        if (len == 255) {
                            len = be16(&m[p]);
                            p += 2;
                        }
                    }
                    EXPECT_LE(p + len, end);
                    v.bytes.assign(reinterpret_cast<const char *>(&m[p]), len);
                    if (s.len != 65535 && len <= 8)
                        for (size_t i = 0; i < len; ++i) v.num = v.num << 8 | m[p + i];
                    p += len;
                    r[key(s.pen, s.id)] = v;
                }
                out.records.emplace_back(set_id, r);
            }
        }
        off = end;
    }
    EXPECT_EQ(off, m.size());
    return out;
}

const uint32_t kPen = ipfix::kSegwirePen, kRev = ipfix::kReversePen;

TEST(Ipfix, MessageCarriesTemplatesAndOneBiflowRecordPerFlow) {
    ipfix::Writer w(7);
    w.begin(1'800'000'005, true);
    ASSERT_TRUE(w.add(record(4)));
    ASSERT_TRUE(w.add(record(6, 40001)));
    ASSERT_TRUE(w.add(record(4, 40002)));
    const auto bytes = w.finish();
    const Message m = decode(bytes);
    EXPECT_EQ(m.version, 10);
    EXPECT_EQ(m.export_time, 1'800'000'005u);
    EXPECT_EQ(m.sequence, 0u);
    EXPECT_EQ(m.domain, 7u);
    ASSERT_EQ(m.templates.size(), 2u);
    ASSERT_EQ(m.records.size(), 3u);
    // Template 256 is IPv4: sourceIPv4Address (8) first; 257 is IPv6: sourceIPv6Address (27).
    EXPECT_EQ(m.templates.at(256)[0].id, 8);
    EXPECT_EQ(m.templates.at(257)[0].id, 27);
    EXPECT_EQ(m.records[0].first, 256);
    EXPECT_EQ(m.records[1].first, 257);
    EXPECT_EQ(m.records[2].first, 256);

    const Rec &v4 = m.records[0].second;
    EXPECT_EQ(v4.at(key(0, 8)).bytes, std::string("\x0a\x4d\x00\x01", 4));
    EXPECT_EQ(v4.at(key(0, 12)).bytes, std::string("\x0a\x4d\x00\x02", 4));
    EXPECT_EQ(v4.at(key(0, 7)).num, 40000u);
    EXPECT_EQ(v4.at(key(0, 11)).num, 7000u);
    EXPECT_EQ(v4.at(key(0, 4)).num, 6u);
    EXPECT_EQ(v4.at(key(0, 2)).num, 12u);         // packetDeltaCount
    EXPECT_EQ(v4.at(key(0, 1)).num, 1234u);       // octetDeltaCount
    EXPECT_EQ(v4.at(key(kRev, 2)).num, 10u);      // reversePacketDeltaCount (RFC 5103)
    EXPECT_EQ(v4.at(key(kRev, 1)).num, 987654u);  // reverseOctetDeltaCount
    EXPECT_EQ(v4.at(key(0, 152)).num, 1'800'000'000'123ull);
    EXPECT_EQ(v4.at(key(0, 153)).num, 1'800'000'004'567ull);
    EXPECT_EQ(v4.at(key(0, 136)).num, 3u);
    EXPECT_EQ(v4.at(key(kPen, 1)).bytes, "pu-client");
    EXPECT_EQ(v4.at(key(kPen, 2)).bytes, "pu-server");
    EXPECT_EQ(v4.at(key(kPen, 3)).bytes, "Accept");
    EXPECT_EQ(v4.at(key(kPen, 4)).bytes, "NotApplicable");
    EXPECT_EQ(v4.at(key(kPen, 5)).bytes, "pol-server");
    EXPECT_EQ(v4.at(key(kPen, 6)).bytes, "from-client");
    EXPECT_EQ(v4.at(key(kPen, 7)).bytes, "");
    EXPECT_EQ(v4.at(key(kPen, 8)).bytes, "v1");
    EXPECT_EQ(v4.at(key(kPen, 9)).bytes, "ProcessingUnit");

    const Rec &v6 = m.records[1].second;
    uint8_t a6[16];
    inet_pton(AF_INET6, "fd77::1", a6);
    EXPECT_EQ(v6.at(key(0, 27)).bytes, std::string(reinterpret_cast<char *>(a6), 16));
    EXPECT_EQ(v6.at(key(0, 7)).num, 40001u);

    // The next message continues the sequence with the data records sent before it.
    w.begin(1'800'000'006, false);
    ASSERT_TRUE(w.add(record(4)));
    const Message m2 = decode(w.finish(), m.templates);
    EXPECT_EQ(m2.sequence, 3u);
    EXPECT_TRUE(m2.templates.size() == 2 && m2.records.size() == 1);
    EXPECT_EQ(w.sequence(), 4u);
}

TEST(Ipfix, EveryTemplateFieldIsDocumentedAndRecordsFitOneMessage) {
    for (bool v6 : {false, true}) {
        const auto fields = ipfix::template_fields(v6);
        EXPECT_EQ(fields.size(), 23u);
        size_t strings = 0;
        for (const auto &f : fields) strings += f.length == ipfix::kVariable;
        EXPECT_EQ(strings, 11u);
    }
    // Long strings are cut at kMaxString (at a UTF-8 boundary); a record full of them still fits
    // an empty message, and a full message refuses the next record instead of growing.
    ExportRecord big = record(6);
    std::string s(300, 'x');
    s[ipfix::kMaxString - 1] = '\xc3';  // a two-byte character across the cut
    s[ipfix::kMaxString] = '\xa9';
    for (std::string *f :
         {&big.report.source_id, &big.report.destination_id, &big.report.policy_id,
          &big.report.rule_name, &big.report.drop_reason, &big.report.observed_policy_id,
          &big.report.source_type, &big.report.destination_type, &big.report.action,
          &big.report.observed_action, &big.report.mode})
        *f = s;
    ipfix::Writer w(1);
    w.begin(1, true);
    size_t added = 0;
    while (w.add(record(4, static_cast<uint16_t>(added)))) ++added;
    EXPECT_GT(added, 5u);
    auto bytes = w.finish();
    EXPECT_LE(bytes.size(), ipfix::kMaxMessage);
    EXPECT_EQ(decode(bytes).records.size(), added);
    w.begin(2, true);
    EXPECT_FALSE(w.add(big));  // with the templates it does not fit ...
    w.finish();
    w.begin(2, false);
    ASSERT_TRUE(w.add(big));  // ... without them it always does
    bytes = w.finish();
    EXPECT_LE(bytes.size(), ipfix::kMaxMessage);
    ipfix::Writer t(1);
    t.begin(1, true);
    const Message m = decode(bytes, decode(t.finish()).templates);
    ASSERT_EQ(m.records.size(), 1u);
    EXPECT_EQ(m.records[0].second.at(key(kPen, 1)).bytes, std::string(ipfix::kMaxString - 1, 'x'));
}

// ---- JSON lines ----

struct TempDir {
    fs::path dir;
    TempDir() {
        char t[] = "/tmp/segwire-export-test-XXXXXX";
        dir = mkdtemp(t);
    }
    ~TempDir() { fs::remove_all(dir); }
};

std::vector<std::string> lines_of(const fs::path &p) {
    std::vector<std::string> out;
    std::ifstream in(p);
    for (std::string l; std::getline(in, l);) out.push_back(l);
    return out;
}

TEST(Jsonl, LineHasTheConsolesFieldNames) {
    rapidjson::Document d;
    const std::string line = json_line(record(4), "enf-a");
    EXPECT_EQ(line.find('\n'), std::string::npos);
    d.Parse(line.c_str());
    ASSERT_FALSE(d.HasParseError());
    EXPECT_STREQ(d["enforcerID"].GetString(), "enf-a");
    EXPECT_STREQ(d["action"].GetString(), "Accept");
    EXPECT_STREQ(d["sourceID"].GetString(), "pu-client");
    EXPECT_STREQ(d["destinationIP"].GetString(), "10.77.0.2");
    EXPECT_EQ(d["sourcePort"].GetUint(), 40000u);
    EXPECT_EQ(d["destinationPort"].GetUint(), 7000u);
    EXPECT_EQ(d["protocol"].GetUint(), 6u);
    EXPECT_EQ(d["sourcePackets"].GetUint64(), 12u);
    EXPECT_EQ(d["destinationBytes"].GetUint64(), 987654u);
    EXPECT_EQ(d["flowStartMilliseconds"].GetUint64(), 1'800'000'000'123ull);
    EXPECT_STREQ(d["flowEndReason"].GetString(), "end");
    EXPECT_STREQ(d["mode"].GetString(), "v1");
}

TEST(Jsonl, RotatesBetweenLinesKeepsNFilesAndLosesNoLineItKeeps) {
    TempDir t;
    const fs::path p = t.dir / "flows.jsonl";
    {
        JsonlWriter w(p.string(), 1024, 50);
        for (int i = 0; i < 200; ++i) {
            w.append("{\"n\":" + std::to_string(i) + ",\"pad\":\"" + std::string(90, 'p') + "\"}");
            if (i % 7 == 0) w.flush();  // flushes between rotations and across them
        }
        w.flush();
        EXPECT_GT(w.counts().rotations, 10u);
        EXPECT_EQ(w.counts().lines, 200u);
        EXPECT_EQ(w.counts().lines_lost, 0u);
    }
    // Oldest first: path.N ... path.1, path. Every line whole, in order, each exactly once.
    std::vector<fs::path> files;
    for (int k = 50; k >= 1; --k)
        if (fs::exists(p.string() + "." + std::to_string(k)))
            files.emplace_back(p.string() + "." + std::to_string(k));
    files.push_back(p);
    int next = 0;
    for (const auto &f : files) {
        EXPECT_LE(fs::file_size(f), 1024u) << f;
        for (const std::string &l : lines_of(f)) {
            rapidjson::Document d;
            d.Parse(l.c_str());
            ASSERT_FALSE(d.HasParseError()) << f << ": " << l;
            EXPECT_EQ(d["n"].GetInt(), next++);
        }
    }
    EXPECT_EQ(next, 200);

    // keep = 2: only path.1 and path.2 stay beside path.
    const fs::path q = t.dir / "few.jsonl";
    {
        JsonlWriter w(q.string(), 1024, 2);
        for (int i = 0; i < 100; ++i) w.append(std::string(200, 'a' + i % 26));
        w.flush();
    }
    EXPECT_TRUE(fs::exists(q.string() + ".1") && fs::exists(q.string() + ".2"));
    EXPECT_FALSE(fs::exists(q.string() + ".3"));
    // A line longer than rotate_bytes gets a file of its own.
    const fs::path r = t.dir / "long.jsonl";
    {
        JsonlWriter w(r.string(), 1024, 3);
        w.append(std::string(3000, 'l'));
        w.append("short");
        w.flush();
    }
    EXPECT_EQ(lines_of(r.string() + ".1"), std::vector<std::string>{std::string(3000, 'l')});
    EXPECT_EQ(lines_of(r), std::vector<std::string>{"short"});
}

TEST(Jsonl, AnUnopenableFileNamesTheField) {
    try {
        JsonlWriter w("/nonexistent-dir/flows.jsonl", 1 << 20, 1);
        FAIL() << "opened a file in a missing directory";
    } catch (const std::runtime_error &e) {
        EXPECT_NE(std::string(e.what()).find("export.jsonl.path: cannot open /nonexistent-dir"),
                  std::string::npos)
            << e.what();
    }
}

// ---- the exporter ----

struct UdpListener {
    int fd;
    uint16_t port = 0;
    UdpListener() {
        fd = socket(AF_INET, SOCK_DGRAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a), 0);
        socklen_t n = sizeof a;
        getsockname(fd, reinterpret_cast<sockaddr *>(&a), &n);
        port = ntohs(a.sin_port);
        timeval tv{5, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    }
    ~UdpListener() { close(fd); }
    std::vector<uint8_t> receive() {
        std::vector<uint8_t> b(65536);
        const ssize_t n = recv(fd, b.data(), b.size(), 0);
        b.resize(n > 0 ? static_cast<size_t>(n) : 0);
        return b;
    }
};

config::FlowExportConfig ipfix_to(uint16_t port) {
    config::FlowExportConfig c;
    c.ipfix.collector = "127.0.0.1:" + std::to_string(port);
    c.ipfix.host = "127.0.0.1";
    c.ipfix.port = port;
    c.ipfix.observation_domain = 42;
    c.ipfix.template_refresh_s = 60;
    return c;
}

TEST(Exporter, SendsTemplatesFirstFillsMessagesAndRefreshesTemplates) {
    UdpListener l;
    FlowExporter x(ipfix_to(l.port), "enf-a");
    for (int i = 0; i < 40; ++i) x.add(record(i % 2 ? 6 : 4, static_cast<uint16_t>(i)));
    x.flush(1000);
    std::map<uint16_t, std::vector<Spec>> templates;
    size_t got = 0, messages = 0;
    uint32_t expect_seq = 0;
    while (got < 40) {
        const auto b = l.receive();
        ASSERT_FALSE(b.empty()) << "timed out after " << got << " records";
        const Message m = decode(b, templates);
        if (messages == 0) {
            EXPECT_EQ(m.templates.size(), 2u);  // the first message has them
        }
        templates = m.templates;
        EXPECT_EQ(m.domain, 42u);
        EXPECT_EQ(m.sequence, expect_seq);
        EXPECT_LE(b.size(), ipfix::kMaxMessage);
        expect_seq += static_cast<uint32_t>(m.records.size());
        got += m.records.size();
        ++messages;
    }
    EXPECT_EQ(got, 40u);
    EXPECT_GT(messages, 1u);
    ExportCounts c = x.counts();
    EXPECT_EQ(c.records, 40u);
    EXPECT_EQ(c.ipfix_records, 40u);
    EXPECT_EQ(c.ipfix_messages, messages);
    EXPECT_EQ(c.ipfix_templates, 1u);
    // Nothing to send and the refresh not due: nothing; due: a template-only message.
    x.flush(1030);
    x.flush(1060);
    const Message t = decode(l.receive());
    EXPECT_EQ(t.templates.size(), 2u);
    EXPECT_TRUE(t.records.empty());
    EXPECT_EQ(x.counts().ipfix_templates, 2u);
    EXPECT_EQ(x.counts().ipfix_messages, messages + 1);
}

TEST(Exporter, ADeadCollectorCostsDatagramsOnlyAndTheJsonLinesStayWhole) {
    TempDir t;
    uint16_t dead;
    {
        UdpListener l;  // a port nobody listens on once this closes
        dead = l.port;
    }
    config::FlowExportConfig c = ipfix_to(dead);
    c.jsonl.path = (t.dir / "flows.jsonl").string();
    FlowExporter x(c, "enf-a");
    for (int round = 0; round < 5; ++round) {
        for (int i = 0; i < 30; ++i) x.add(record(4, static_cast<uint16_t>(round * 30 + i)));
        x.flush(static_cast<uint32_t>(2000 + round));
    }
    const ExportCounts n = x.counts();
    EXPECT_EQ(n.records, 150u);
    EXPECT_EQ(n.jsonl_lines, 150u);
    EXPECT_EQ(lines_of(c.jsonl.path).size(), 150u);
    // Loopback answers each datagram with an ICMP port unreachable: the next send reports it.
    EXPECT_GT(n.ipfix_refused, 0u);
    EXPECT_EQ(n.ipfix_records + n.ipfix_records_lost, 150u);
}

TEST(Exporter, AnUnresolvableCollectorNamesTheField) {
    config::FlowExportConfig c = ipfix_to(4739);
    c.ipfix.host = "no-such-host.invalid";
    try {
        FlowExporter x(c, "enf-a");
        FAIL() << "resolved a .invalid name";
    } catch (const std::runtime_error &e) {
        EXPECT_NE(std::string(e.what()).find("export.ipfix.collector: cannot resolve"),
                  std::string::npos)
            << e.what();
    }
}

// ---- config ----

constexpr const char *kBase = R"({
  "ports": {"inside": {"device": "net_af_packet0,iface=a"},
            "outside": {"device": "net_af_packet1,iface=b"}},
  "identity": {"enforcer_id": "enf-a", "key": "k", "certificate": "c", "trusted_cas": "t"},
  "export": %s
})";

std::string with_export(const std::string &section) {
    std::string s = kBase;
    s.replace(s.find("%s"), 2, section);
    return s;
}

std::string config_error(const std::string &section) {
    try {
        config::parse_appliance_config(with_export(section));
    } catch (const config::ConfigError &e) {
        return e.what();
    }
    return "";
}

TEST(ExportConfig, DefaultsAndFields) {
    auto c = config::parse_appliance_config(with_export(
        R"({"jsonl": {"path": "/var/log/segwire/flows.jsonl"},
            "ipfix": {"collector": "[fd00::9]:4739"}})"));
    EXPECT_EQ(c.flow_export.active_timeout_s, 60u);
    EXPECT_EQ(c.flow_export.jsonl.rotate_bytes, 64ull << 20);
    EXPECT_EQ(c.flow_export.jsonl.keep, 5u);
    EXPECT_EQ(c.flow_export.ipfix.host, "fd00::9");
    EXPECT_EQ(c.flow_export.ipfix.port, 4739);
    EXPECT_EQ(c.flow_export.ipfix.observation_domain, 1u);
    EXPECT_EQ(c.flow_export.ipfix.template_refresh_s, 60u);
    EXPECT_TRUE(c.flow_export.enabled());
    c = config::parse_appliance_config(
        with_export(R"({"active_timeout_s": 5, "ipfix": {"collector": "collector.lab:2055",
                         "observation_domain": 7, "template_refresh_s": 10}})"));
    EXPECT_EQ(c.flow_export.active_timeout_s, 5u);
    EXPECT_EQ(c.flow_export.ipfix.host, "collector.lab");
    EXPECT_FALSE(c.flow_export.jsonl_enabled());
    // Off by default.
    std::string none = kBase;
    none.replace(none.find(",\n  \"export\": %s"), std::string(",\n  \"export\": %s").size(), "");
    EXPECT_FALSE(config::parse_appliance_config(none).flow_export.enabled());
}

TEST(ExportConfig, ErrorsNameTheField) {
    EXPECT_EQ(config_error(R"({"jsonl": {}})"), "export.jsonl.path: missing");
    EXPECT_EQ(config_error(R"({"jsonl": {"path": "/tmp/"}})"),
              "export.jsonl.path: must name a file");
    EXPECT_NE(config_error(R"({"jsonl": {"path": "/tmp/f", "rotate_bytes": 10}})")
                  .find("export.jsonl.rotate_bytes: must be between 1024"),
              std::string::npos);
    EXPECT_NE(config_error(R"({"jsonl": {"path": "/tmp/f", "keep": 5000}})")
                  .find("export.jsonl.keep: must be between 0 and 1000"),
              std::string::npos);
    EXPECT_EQ(config_error(R"({"jsonl": {"path": "/tmp/f", "rotate": 1}})"),
              "export.jsonl.rotate: unknown field");
    EXPECT_EQ(config_error(R"({"ipfix": {}})"), "export.ipfix.collector: missing");
    EXPECT_NE(config_error(R"({"ipfix": {"collector": "127.0.0.1"}})")
                  .find("export.ipfix.collector: \"127.0.0.1\" is not HOST:PORT"),
              std::string::npos);
    EXPECT_NE(config_error(R"({"ipfix": {"collector": "127.0.0.1:0"}})")
                  .find("export.ipfix.collector: \"127.0.0.1:0\" needs a port in 1..65535"),
              std::string::npos);
    EXPECT_NE(config_error(R"({"ipfix": {"collector": "fd00::1:4739"}})").find("in brackets"),
              std::string::npos);
    EXPECT_NE(
        config_error(R"({"ipfix": {"collector": "[fd00::1]4739"}})").find("is not [IPv6]:PORT"),
        std::string::npos);
    EXPECT_NE(config_error(R"({"ipfix": {"collector": "h:1", "template_refresh_s": 0}})")
                  .find("export.ipfix.template_refresh_s: must be between 1 and 86400"),
              std::string::npos);
    EXPECT_NE(config_error(R"({"active_timeout_s": 0})")
                  .find("export.active_timeout_s: must be between 1 and 86400"),
              std::string::npos);
    EXPECT_EQ(config_error(R"({"ipfx": {}})"), "export.ipfx: unknown field");
    // Without an identity nothing records flows.
    try {
        config::parse_appliance_config(R"({
          "ports": {"inside": {"device": "net_af_packet0,iface=a"},
                    "outside": {"device": "net_af_packet1,iface=b"}},
          "export": {"jsonl": {"path": "/tmp/f"}}})");
        FAIL();
    } catch (const config::ConfigError &e) {
        EXPECT_EQ(e.field(), "export");
    }
}

}  // namespace
}  // namespace segwire::control::flowexport
