// Tags, tag expressions, protocolPorts/servicePorts, CIDRs and external-network entries.
#include <gtest/gtest.h>

#include "config/policy/syntax.hpp"
#include "tests/unit/policy/tag_matrix.hpp"

namespace segwire::policy {
namespace {

struct PredicateCase {
    const char *text;
    bool ok;
    TagOp op;
    const char *key;
    const char *value;
    const char *error;  // substring of the problem when !ok
};

class PredicateTest : public ::testing::TestWithParam<PredicateCase> {};

TEST_P(PredicateTest, Parses) {
    const PredicateCase &c = GetParam();
    TagPredicate p;
    std::string problem;
    ASSERT_EQ(parse_tag_predicate(c.text, &p, &problem), c.ok) << c.text << ": " << problem;
    if (c.ok) {
        EXPECT_EQ(p.op, c.op);
        EXPECT_EQ(p.key, c.key);
        EXPECT_EQ(p.value, c.value);
    } else {
        EXPECT_NE(problem.find(c.error), std::string::npos) << problem;
        EXPECT_NE(problem.find(c.text), std::string::npos) << "problem must quote the text";
    }
}

INSTANTIATE_TEST_SUITE_P(
    Operators, PredicateTest,
    ::testing::Values(PredicateCase{"app=web", true, TagOp::kEqual, "app", "web", ""},
                      PredicateCase{"app!=web", true, TagOp::kNotEqual, "app", "web", ""},
                      PredicateCase{"app=we*", true, TagOp::kPrefix, "app", "we", ""},
                      PredicateCase{"app!=we*", true, TagOp::kNotPrefix, "app", "we", ""},
                      PredicateCase{"app=*", true, TagOp::kExists, "app", "", ""},
                      PredicateCase{"app!=*", true, TagOp::kAbsent, "app", "", ""},
                      PredicateCase{"$identity=processingunit", true, TagOp::kEqual, "$identity",
                                    "processingunit", ""},
                      PredicateCase{"url=a=b", true, TagOp::kEqual, "url", "a=b", ""},
                      PredicateCase{"app", false, TagOp::kEqual, "", "", "not an expression"},
                      PredicateCase{"=web", false, TagOp::kEqual, "", "", "empty key"},
                      PredicateCase{"app=", false, TagOp::kEqual, "", "", "empty value"},
                      PredicateCase{"app=w*b", false, TagOp::kEqual, "", "", "'*' before the end"},
                      PredicateCase{"a*=b", false, TagOp::kEqual, "", "", "invalid key"}));

struct MatchCase {
    TagExpression expr;
    std::vector<std::string> tags;
    bool match;
};

class ExpressionMatchTest : public ::testing::TestWithParam<MatchCase> {};

TEST_P(ExpressionMatchTest, Matches) {
    const MatchCase &c = GetParam();
    ParsedExpression e;
    std::string where, problem;
    ASSERT_TRUE(parse_tag_expression(c.expr, &e, &where, &problem)) << problem;
    EXPECT_EQ(expression_matches(e, c.tags), c.match);
}

INSTANTIATE_TEST_SUITE_P(
    Semantics, ExpressionMatchTest,
    ::testing::Values(
        MatchCase{{{"a=1"}}, {"a=1"}, true}, MatchCase{{{"a=1"}}, {"a=2"}, false},
        MatchCase{{{"a=1"}}, {}, false},
        // AND inside a clause, OR across clauses
        MatchCase{{{"a=1", "b=2"}}, {"a=1"}, false},
        MatchCase{{{"a=1", "b=2"}}, {"a=1", "b=2"}, true},
        MatchCase{{{"a=1"}, {"b=2"}}, {"b=2"}, true}, MatchCase{{{"a=1"}, {"b=2"}}, {"c=3"}, false},
        // != (absent and multi-valued keys: TagMatrixTest below)
        MatchCase{{{"a!=1"}}, {"a=2"}, true}, MatchCase{{{"a!=1"}}, {"a=1"}, false},
        // prefix
        MatchCase{{{"a=we*"}}, {"a=web"}, true}, MatchCase{{{"a=we*"}}, {"a=w"}, false},
        MatchCase{{{"a=we*"}}, {"b=web"}, false}, MatchCase{{{"a!=we*"}}, {"a=web"}, false},
        MatchCase{{{"a!=we*"}}, {"a=db"}, true},
        // exists / absent
        MatchCase{{{"a=*"}}, {"a=x"}, true}, MatchCase{{{"a=*"}}, {"ab=x"}, false},
        MatchCase{{{"a!=*"}}, {"b=x"}, true}, MatchCase{{{"a!=*"}}, {"a=x"}, false},
        // an empty expression matches nothing
        MatchCase{{}, {"a=1"}, false}));

// The fail-closed matrix (tag_matrix.hpp) on the control side's evaluator (profile mapping, the
// reference Console); test_engine.cpp runs the same rows through the compiled snapshot.
class TagMatrixTest : public ::testing::TestWithParam<test::TagCase> {};

TEST_P(TagMatrixTest, ControlSideEvaluator) {
    const test::TagCase &c = GetParam();
    ParsedExpression e;
    std::string where, problem;
    ASSERT_TRUE(parse_tag_expression(c.expr, &e, &where, &problem)) << problem;
    EXPECT_EQ(expression_matches(e, c.tags), c.match);
}

INSTANTIATE_TEST_SUITE_P(FailClosed, TagMatrixTest, ::testing::ValuesIn(test::tag_matrix()));

TEST(Expression, EmptyClauseIsAnErrorWithPosition) {
    ParsedExpression e;
    std::string where, problem;
    EXPECT_FALSE(parse_tag_expression({{"a=1"}, {}}, &e, &where, &problem));
    EXPECT_EQ(where, "[1]");
    EXPECT_NE(problem.find("empty clause"), std::string::npos);
    EXPECT_FALSE(parse_tag_expression({{"a=1", "bad"}}, &e, &where, &problem));
    EXPECT_EQ(where, "[0][1]");
}

TEST(Tag, Parse) {
    std::string k, v, problem;
    EXPECT_TRUE(parse_tag("env=prod", &k, &v, &problem));
    EXPECT_EQ(k, "env");
    EXPECT_EQ(v, "prod");
    EXPECT_FALSE(parse_tag("env", &k, &v, &problem));
    EXPECT_NE(problem.find("not a key=value tag"), std::string::npos);
    EXPECT_FALSE(parse_tag("env!=x", &k, &v, &problem));
}

struct PortsCase {
    std::vector<std::string> list;
    bool ok;
    std::vector<PortRange> ranges;
    const char *error;
    size_t bad_index;
};

class ProtocolPortsTest : public ::testing::TestWithParam<PortsCase> {};

TEST_P(ProtocolPortsTest, Parses) {
    const PortsCase &c = GetParam();
    std::vector<PortRange> out;
    size_t bad = 999;
    std::string problem;
    ASSERT_EQ(parse_protocol_ports(c.list, &out, &bad, &problem), c.ok) << problem;
    if (c.ok) {
        ASSERT_EQ(out.size(), c.ranges.size());
        for (size_t i = 0; i < out.size(); ++i) {
            EXPECT_EQ(out[i].proto, c.ranges[i].proto) << i;
            EXPECT_EQ(out[i].lo, c.ranges[i].lo) << i;
            EXPECT_EQ(out[i].hi, c.ranges[i].hi) << i;
        }
    } else {
        EXPECT_NE(problem.find(c.error), std::string::npos) << problem;
        EXPECT_EQ(bad, c.bad_index);
    }
}

INSTANTIATE_TEST_SUITE_P(
    Syntax, ProtocolPortsTest,
    ::testing::Values(PortsCase{{"any"}, true, {{kAnyProtocol, 0, 65535}}, "", 0},
                      PortsCase{{"ANY"}, true, {{kAnyProtocol, 0, 65535}}, "", 0},
                      PortsCase{{"tcp/80"}, true, {{6, 80, 80}}, "", 0},
                      PortsCase{{"tcp/80:100"}, true, {{6, 80, 100}}, "", 0},
                      PortsCase{{"udp/53"}, true, {{17, 53, 53}}, "", 0},
                      PortsCase{{"tcp"}, true, {{6, 0, 65535}}, "", 0},
                      PortsCase{{"icmp/8/0"}, true, {{1, 0x800, 0x800}}, "", 0},
                      PortsCase{{"icmp/8"}, true, {{1, 0x800, 0x8ff}}, "", 0},
                      PortsCase{
                          {"icmp/3/0,3:15"}, true, {{1, 0x300, 0x300}, {1, 0x303, 0x30f}}, "", 0},
                      PortsCase{{"icmp6/128/0"}, true, {{58, 0x8000, 0x8000}}, "", 0},
                      PortsCase{{"ipv6-icmp"}, true, {{58, 0, 65535}}, "", 0},
                      PortsCase{{"gre"}, true, {{47, 0, 65535}}, "", 0},
                      PortsCase{{"47"}, true, {{47, 0, 65535}}, "", 0},
                      PortsCase{{"sctp", "tcp/22"}, true, {{132, 0, 65535}, {6, 22, 22}}, "", 0},
                      PortsCase{{"tcp/100:80"}, false, {}, "left < right", 0},
                      PortsCase{{"udp/53", "tcp/80:80"}, false, {}, "left < right", 1},
                      PortsCase{{"tcp/0"}, false, {}, "1..65535", 0},
                      PortsCase{{"tcp/65536"}, false, {}, "1..65535", 0},
                      PortsCase{{"tcp/http"}, false, {}, "not a number", 0},
                      PortsCase{{"tcp/"}, false, {}, "not a number", 0},
                      PortsCase{{"gre/5"}, false, {}, "only allowed for tcp and udp", 0},
                      PortsCase{{"foo/80"}, false, {}, "unknown protocol", 0},
                      PortsCase{{"256"}, false, {}, "unknown protocol", 0},
                      PortsCase{{"icmp/300"}, false, {}, "ICMP type", 0},
                      PortsCase{{"icmp/3/"}, false, {}, "empty ICMP code list", 0},
                      PortsCase{{"icmp/3/5:2"}, false, {}, "left < right", 0},
                      PortsCase{{"icmp/3/256"}, false, {}, "0..255", 0},
                      PortsCase{{"tcp/80", "any"}, false, {}, "must be the only element", 1}));

TEST(ProtocolPorts, RangesMatch) {
    std::vector<PortRange> r;
    size_t bad;
    std::string problem;
    ASSERT_TRUE(parse_protocol_ports({{"tcp/80:90", "icmp/3/0,3:15"}}, &r, &bad, &problem));
    EXPECT_TRUE(port_ranges_match(r, 6, 80));
    EXPECT_TRUE(port_ranges_match(r, 6, 90));
    EXPECT_FALSE(port_ranges_match(r, 6, 91));
    EXPECT_FALSE(port_ranges_match(r, 17, 85));
    EXPECT_TRUE(port_ranges_match(r, 1, icmp_key(3, 0)));
    EXPECT_FALSE(port_ranges_match(r, 1, icmp_key(3, 1)));
    EXPECT_TRUE(port_ranges_match(r, 1, icmp_key(3, 4)));
    EXPECT_FALSE(port_ranges_match(r, 1, icmp_key(3, 16)));
    EXPECT_FALSE(port_ranges_match(r, 1, icmp_key(8, 0)));
}

TEST(Prefix, ParsesV4V6AndRejectsHostBits) {
    IpPrefix p;
    std::string problem;
    ASSERT_TRUE(parse_prefix("10.0.0.0/8", &p, &problem));
    EXPECT_FALSE(p.v6);
    EXPECT_EQ(p.len, 8);
    EXPECT_EQ(p.v4_host(), 0x0a000000u);
    ASSERT_TRUE(parse_prefix("10.1.2.3", &p, &problem));
    EXPECT_EQ(p.len, 32);
    ASSERT_TRUE(parse_prefix("fd00::/8", &p, &problem));
    EXPECT_TRUE(p.v6);
    EXPECT_EQ(p.addr[0], 0xfd);
    ASSERT_TRUE(parse_prefix("::1", &p, &problem));
    EXPECT_EQ(p.len, 128);
    EXPECT_FALSE(parse_prefix("10.1.2.3/8", &p, &problem));
    EXPECT_NE(problem.find("host bits"), std::string::npos);
    EXPECT_NE(problem.find("10.0.0.0/8"), std::string::npos) << "suggests the masked prefix";
    EXPECT_FALSE(parse_prefix("10.0.0.0/33", &p, &problem));
    EXPECT_FALSE(parse_prefix("fd00::/129", &p, &problem));
    EXPECT_FALSE(parse_prefix("10.0.0", &p, &problem));
}

TEST(Prefix, Contains) {
    IpPrefix a, b, c, d;
    std::string problem;
    ASSERT_TRUE(parse_prefix("10.0.0.0/8", &a, &problem));
    ASSERT_TRUE(parse_prefix("10.1.0.0/16", &b, &problem));
    ASSERT_TRUE(parse_prefix("11.0.0.0/8", &c, &problem));
    ASSERT_TRUE(parse_prefix("::/0", &d, &problem));
    EXPECT_TRUE(a.contains(b));
    EXPECT_FALSE(b.contains(a));
    EXPECT_FALSE(a.contains(c));
    EXPECT_FALSE(d.contains(a)) << "families never contain each other";
}

struct EntryCase {
    const char *text;
    bool ok;
    NetworkEntry::Kind kind;
    const char *error;
};

class NetworkEntryTest : public ::testing::TestWithParam<EntryCase> {};

TEST_P(NetworkEntryTest, Parses) {
    const EntryCase &c = GetParam();
    NetworkEntry e;
    std::string problem;
    ASSERT_EQ(parse_network_entry(c.text, &e, &problem), c.ok) << c.text << ": " << problem;
    if (c.ok)
        EXPECT_EQ(e.kind, c.kind);
    else
        EXPECT_NE(problem.find(c.error), std::string::npos) << problem;
}

INSTANTIATE_TEST_SUITE_P(
    Entries, NetworkEntryTest,
    ::testing::Values(EntryCase{"0.0.0.0/0", true, NetworkEntry::Kind::kInclude, ""},
                      EntryCase{"!10.0.0.0/8", true, NetworkEntry::Kind::kExclude, ""},
                      EntryCase{"2001:db8::/32", true, NetworkEntry::Kind::kInclude, ""},
                      EntryCase{"!2001:db8:1::/48", true, NetworkEntry::Kind::kExclude, ""},
                      EntryCase{"api.example.com", true, NetworkEntry::Kind::kHostname, ""},
                      EntryCase{"*.Example.COM", true, NetworkEntry::Kind::kHostname, ""},
                      EntryCase{"localhost", false, NetworkEntry::Kind::kHostname,
                                "fully qualified"},
                      EntryCase{"a.*.example.com", false, NetworkEntry::Kind::kHostname,
                                "neither a CIDR nor a hostname"},
                      EntryCase{"-a.example.com", false, NetworkEntry::Kind::kHostname,
                                "neither a CIDR nor a hostname"},
                      EntryCase{"!foo.com", false, NetworkEntry::Kind::kExclude, "exclusion"},
                      EntryCase{"10.0.0.1/8", false, NetworkEntry::Kind::kInclude, "host bits"},
                      EntryCase{"", false, NetworkEntry::Kind::kInclude, "empty entry"}));

TEST(Duration, Parses) {
    uint64_t s;
    std::string problem;
    ASSERT_TRUE(parse_duration_seconds("30m", &s, &problem));
    EXPECT_EQ(s, 1800u);
    ASSERT_TRUE(parse_duration_seconds("1h30m10s", &s, &problem));
    EXPECT_EQ(s, 5410u);
    ASSERT_TRUE(parse_duration_seconds("500ms", &s, &problem));
    EXPECT_EQ(s, 1u);
    EXPECT_FALSE(parse_duration_seconds("30", &s, &problem));
    EXPECT_NE(problem.find("unit"), std::string::npos);
    EXPECT_FALSE(parse_duration_seconds("m", &s, &problem));
    EXPECT_FALSE(parse_duration_seconds("", &s, &problem));
}

}  // namespace
}  // namespace segwire::policy
