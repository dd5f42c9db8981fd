// FQDN pattern matching, pattern validation, and the learner/set pair. Time is always passed in
// explicitly (`now`), so expiry is tested without sleeping.
#include "control/dns/fqdn.hpp"

#include <arpa/inet.h>

#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/unit/control/dns_builder.hpp"

namespace {

using namespace segwire::control::dns;
using segwire::dptest::Bytes;

// ---- fqdn_match
// ----------------------------------------------------------------------------------

struct MatchCase {
    const char *pattern;
    const char *name;
    bool want;
};

TEST(FqdnMatch, Table) {
    const MatchCase cases[] = {
        {"example.com", "example.com", true},
        {"example.com", "EXAMPLE.Com", true},
        {"Example.COM.", "example.com", true},
        {"example.com", "example.com.", true},
        {"example.com.", "example.com.", true},
        {"example.com", "www.example.com", false},
        {"example.com", "example.co", false},
        {"example.com", "example.com.evil.net", false},
        {"example.com", "", false},
        {"", "", false},
        {"*.example.com", "www.example.com", true},
        {"*.example.com", "a.b.example.com", true},
        {"*.EXAMPLE.com", "WWW.example.COM", true},
        {"*.example.com", "www.example.com.", true},
        {"*.example.com.", "www.example.com", true},
        {"*.example.com", "example.com", false},
        {"*.example.com", "example.com.", false},
        {"*.example.com", ".example.com", false},
        {"*.example.com", "wwwexample.com", false},
        {"*.example.com", "www.example.org", false},
        {"*.example.com", "www.example.com.evil.net", false},
        {"*.com", "example.com", true},
        {"*", "anything", false},
        {"*", "*", true},  // not a wildcard: the literal name
        {"www.*.com", "www.x.com", false},
        {"a*.example.com", "ab.example.com", false},
    };
    for (const MatchCase &c : cases)
        EXPECT_EQ(fqdn_match(c.pattern, c.name), c.want)
            << "pattern \"" << c.pattern << "\" name \"" << c.name << "\"";
}

// ---- valid_fqdn_pattern
// --------------------------------------------------------------------------

TEST(FqdnPattern, Valid) {
    const std::string label63(63, 'a');
    std::string long_ok = label63 + "." + label63 + "." + label63 + "." + std::string(61, 'b');
    ASSERT_EQ(long_ok.size(), 253u);
    for (const std::string &p :
         {std::string("example.com"), std::string("*.example.com"), std::string("EXAMPLE.com"),
          std::string("_sip._tcp.example.com"), std::string("a-b.c-d"), std::string("example.com."),
          std::string("localhost"), std::string("*.com"), label63 + ".com", long_ok}) {
        std::string why = "untouched";
        EXPECT_TRUE(valid_fqdn_pattern(p, &why)) << p << ": " << why;
        EXPECT_EQ(why, "untouched");
    }
}

TEST(FqdnPattern, InvalidWithReason) {
    const std::string label64(64, 'a');
    const std::string too_long = std::string(63, 'a') + "." + std::string(63, 'b') + "." +
                                 std::string(63, 'c') + "." + std::string(62, 'd');  // 254
    struct Bad {
        std::string pattern;
        const char *reason;
    } bad[] = {
        {"", "empty"},
        {".", "empty"},
        {"*", "needs a domain"},
        {"*.", "needs a domain"},
        {"a..b", "empty label"},
        {".a", "empty label"},
        {"a.*.b", "only as the whole first label"},
        {"*a.b", "only as the whole first label"},
        {"a*.b", "only as the whole first label"},
        {"**.b", "only as the whole first label"},
        {label64 + ".com", "longer than 63"},
        {too_long, "longer than 253"},
        {"exa mple.com", "invalid character ' '"},
        {"a/b.com", "invalid character '/'"},
        {"10.0.0.0/8", "invalid character '/'"},
    };
    for (const Bad &b : bad) {
        std::string why;
        EXPECT_FALSE(valid_fqdn_pattern(b.pattern, &why)) << b.pattern;
        EXPECT_NE(why.find(b.reason), std::string::npos) << b.pattern << ": " << why;
        EXPECT_NE(why.find(b.pattern), std::string::npos) << why;  // names the pattern
    }
    EXPECT_FALSE(valid_fqdn_pattern("a..b", nullptr));  // no reason wanted
}

// ---- FqdnLearner / FqdnSet
// -----------------------------------------------------------------------

DnsAddress a4(uint8_t a, uint8_t b, uint8_t c, uint8_t d, uint32_t ttl) {
    DnsAddress x{};
    x.addr[10] = x.addr[11] = 0xff;
    x.addr[12] = a;
    x.addr[13] = b;
    x.addr[14] = c;
    x.addr[15] = d;
    x.v4 = true;
    x.ttl = ttl;
    return x;
}

DnsAddress a6(const char *text, uint32_t ttl) {
    DnsAddress x{};
    inet_pton(AF_INET6, text, x.addr);
    x.ttl = ttl;
    return x;
}

// The networks `a` was learned for from PU `pu`'s answers (learn() defaults to PU 0).
std::vector<uint32_t> nets(const FqdnSet &s, const DnsAddress &a, uint32_t now, uint32_t pu = 0) {
    auto sp = s.networks_for(a.addr, pu, now);
    return {sp.begin(), sp.end()};
}

using Nets = std::vector<uint32_t>;
using Patterns = std::vector<HostnameEntry>;
constexpr uint32_t kNow = 1'700'000'000;

LearnResult learn1(FqdnLearner &l, std::string_view name, const DnsAddress &a, uint32_t now,
                   const Patterns &p, std::vector<std::string_view> cnames = {}) {
    return l.learn(name, cnames, std::span<const DnsAddress>(&a, 1), now, p);
}

TEST(FqdnLearner, LearnThenLookupUntilExpiry) {
    const Patterns p = {{3, "api.example.com"}};
    FqdnLearner l;
    const DnsAddress addr = a4(192, 0, 2, 1, 300);
    const LearnResult r = learn1(l, "api.example.com", addr, kNow, p);
    EXPECT_TRUE(r.matched);
    EXPECT_EQ(r.added, 1u);
    EXPECT_TRUE(r.changed());
    EXPECT_TRUE(r.publish_before_release());
    EXPECT_EQ(l.size(), 1u);

    const std::shared_ptr<const FqdnSet> s = l.build(kNow);  // converts to what RCU readers hold
    EXPECT_EQ(s->addresses(), 1u);
    EXPECT_EQ(nets(*s, addr, kNow), Nets{3});
    EXPECT_EQ(nets(*s, addr, kNow + 299), Nets{3});
    EXPECT_EQ(nets(*s, addr, kNow + 300), Nets{});  // now < expires_at, strictly
    const uint8_t v4[4] = {192, 0, 2, 1};
    auto sp = s->networks_for_v4(v4, 0, kNow);
    EXPECT_EQ(Nets(sp.begin(), sp.end()), Nets{3});
    EXPECT_EQ(nets(*s, a4(192, 0, 2, 2, 0), kNow), Nets{});  // another address
    // The dataplane's IPv4 form (address in the first 4 bytes) is not the key: use _v4.
    DnsAddress raw{};
    std::memcpy(raw.addr, v4, 4);
    EXPECT_EQ(nets(*s, raw, kNow), Nets{});
}

TEST(FqdnLearner, EmptySetMatchesNothing) {
    const FqdnSet empty;
    EXPECT_TRUE(empty.networks_for(a4(192, 0, 2, 1, 0).addr, 0, kNow).empty());
    FqdnLearner l;
    EXPECT_EQ(l.build(kNow)->size(), 0u);
}

TEST(FqdnLearner, Ipv6Addresses) {
    const Patterns p = {{1, "v6.example.com"}};
    FqdnLearner l;
    const DnsAddress x = a6("2001:db8::5", 600);
    learn1(l, "v6.example.com", x, kNow, p);
    auto s = l.build(kNow);
    EXPECT_EQ(nets(*s, x, kNow), Nets{1});
    EXPECT_EQ(nets(*s, a6("2001:db8::6", 0), kNow), Nets{});
}

TEST(FqdnLearner, TtlIsClampedToDefaults) {
    const Patterns p = {{0, "*.example.com"}};
    FqdnLearner l;
    EXPECT_EQ(l.config().min_ttl_s, 30u);
    EXPECT_EQ(l.config().max_ttl_s, 3600u);  // issue 17: no answer is trusted beyond an hour
    const DnsAddress zero = a4(192, 0, 2, 1, 0), huge = a4(192, 0, 2, 2, 7 * 86400),
                     mid = a4(192, 0, 2, 3, 100);
    learn1(l, "a.example.com", zero, kNow, p);
    learn1(l, "b.example.com", huge, kNow, p);
    learn1(l, "c.example.com", mid, kNow, p);
    EXPECT_EQ(l.counters().ttl_clamped, 2u);
    auto s = l.build(kNow);
    EXPECT_EQ(nets(*s, zero, kNow + 29), Nets{0});
    EXPECT_EQ(nets(*s, zero, kNow + 30), Nets{});
    EXPECT_EQ(nets(*s, huge, kNow + 3599), Nets{0});
    EXPECT_EQ(nets(*s, huge, kNow + 3600), Nets{});
    EXPECT_EQ(nets(*s, mid, kNow + 99), Nets{0});
    EXPECT_EQ(nets(*s, mid, kNow + 100), Nets{});
}

TEST(FqdnLearner, TtlClampIsConfigurable) {
    FqdnLearnerConfig cfg;
    cfg.min_ttl_s = 60;
    cfg.max_ttl_s = 600;
    FqdnLearner l(cfg);
    EXPECT_EQ(l.clamp_ttl(0), 60u);
    EXPECT_EQ(l.clamp_ttl(59), 60u);
    EXPECT_EQ(l.clamp_ttl(300), 300u);
    EXPECT_EQ(l.clamp_ttl(601), 600u);
    const Patterns p = {{0, "x.example.com"}};
    const DnsAddress a = a4(192, 0, 2, 1, 5000);
    learn1(l, "x.example.com", a, kNow, p);
    auto s = l.build(kNow);
    EXPECT_EQ(nets(*s, a, kNow + 599), Nets{0});
    EXPECT_EQ(nets(*s, a, kNow + 600), Nets{});
}

TEST(FqdnLearner, WildcardVersusExact) {
    const Patterns p = {{1, "*.example.com"}, {2, "example.com"}, {3, "www.example.com"}};
    FqdnLearner l;
    const DnsAddress apex = a4(192, 0, 2, 1, 300), sub = a4(192, 0, 2, 2, 300),
                     deep = a4(192, 0, 2, 3, 300), www = a4(192, 0, 2, 4, 300),
                     other = a4(192, 0, 2, 5, 300);
    learn1(l, "example.com", apex, kNow, p);
    learn1(l, "a.example.com", sub, kNow, p);
    learn1(l, "x.y.example.com", deep, kNow, p);
    learn1(l, "WWW.Example.com.", www, kNow, p);
    EXPECT_FALSE(learn1(l, "example.org", other, kNow, p).matched);
    auto s = l.build(kNow);
    EXPECT_EQ(nets(*s, apex, kNow), Nets{2});
    EXPECT_EQ(nets(*s, sub, kNow), Nets{1});
    EXPECT_EQ(nets(*s, deep, kNow), Nets{1});
    EXPECT_EQ(nets(*s, www, kNow), (Nets{1, 3}));
    EXPECT_EQ(nets(*s, other, kNow), Nets{});
}

TEST(FqdnLearner, CnameInTheChainMatches) {
    const Patterns p = {{5, "*.cdn.example.net"}, {6, "shop.example.com"}, {7, "x.example.org"}};
    FqdnLearner l;
    const DnsAddress a = a4(198, 51, 100, 7, 300);
    const LearnResult r =
        learn1(l, "www.example.com", a, kNow, p, {"edge.cdn.example.net", "a1.other.example"});
    EXPECT_TRUE(r.matched);
    auto s = l.build(kNow);
    EXPECT_EQ(nets(*s, a, kNow), Nets{5});

    // Question name and the final name also count.
    const DnsAddress b = a4(198, 51, 100, 8, 300);
    learn1(l, "shop.example.com", b, kNow, p, {"x.example.org"});
    EXPECT_EQ(nets(*l.build(kNow), b, kNow), (Nets{6, 7}));
}

TEST(FqdnLearner, LearnsFromAParsedResponse) {
    using namespace segwire::dptest;
    DnsMsg m;
    m.an.push_back(rr_cname(ptr(kQnameOff), labels("edge.cdn.example.net"), 100));
    m.an.push_back(rr_a(labels("edge.cdn.example.net"), v4(198, 51, 100, 9), 60));
    m.an.push_back(rr_aaaa(labels("edge.cdn.example.net"), v6("2001:db8::9"), 600));
    auto resp = std::make_unique<DnsResponse>();
    ASSERT_EQ(parse_exact(m.bytes(), *resp), DnsStatus::Ok);

    const Patterns p = {{4, "*.cdn.example.net"}};
    FqdnLearner l;
    const LearnResult r = l.learn(*resp, kNow, p);
    EXPECT_EQ(r.added, 2u);
    auto s = l.build(kNow);
    EXPECT_EQ(s->addresses(), 2u);
    EXPECT_EQ(nets(*s, resp->addrs[0], kNow + 59), Nets{4});
    EXPECT_EQ(nets(*s, resp->addrs[0], kNow + 60), Nets{});  // each address keeps its own TTL
    EXPECT_EQ(nets(*s, resp->addrs[1], kNow + 599), Nets{4});
}

TEST(FqdnLearner, OneAddressForTwoNamesExpiresPerName) {
    const Patterns p = {{1, "a.example.com"}, {2, "b.example.com"}};
    FqdnLearner l;
    learn1(l, "a.example.com", a4(192, 0, 2, 1, 100), kNow, p);
    learn1(l, "b.example.com", a4(192, 0, 2, 1, 300), kNow, p);
    EXPECT_EQ(l.size(), 2u);
    auto s = l.build(kNow);
    EXPECT_EQ(s->addresses(), 1u);
    const DnsAddress x = a4(192, 0, 2, 1, 0);
    EXPECT_EQ(nets(*s, x, kNow), (Nets{1, 2}));
    EXPECT_EQ(nets(*s, x, kNow + 99), (Nets{1, 2}));
    EXPECT_EQ(nets(*s, x, kNow + 100), Nets{2});
    EXPECT_EQ(nets(*s, x, kNow + 299), Nets{2});
    EXPECT_EQ(nets(*s, x, kNow + 300), Nets{});
}

TEST(FqdnLearner, RefreshExtendsButNeverShortens) {
    const Patterns p = {{1, "a.example.com"}};
    FqdnLearner l;
    const DnsAddress x = a4(192, 0, 2, 1, 100);
    learn1(l, "a.example.com", x, kNow, p);

    const LearnResult same = learn1(l, "a.example.com", x, kNow, p);  // identical answer
    EXPECT_FALSE(same.changed());
    EXPECT_FALSE(same.publish_before_release());

    const LearnResult later = learn1(l, "a.example.com", x, kNow + 50, p);  // now expires +150
    EXPECT_EQ(later.refreshed, 1u);
    EXPECT_TRUE(later.changed());
    EXPECT_FALSE(later.publish_before_release());  // already published with a live expiry

    const LearnResult shorter = learn1(l, "a.example.com", a4(192, 0, 2, 1, 30), kNow + 60, p);
    EXPECT_FALSE(shorter.changed());
    auto s = l.build(kNow + 60);
    EXPECT_EQ(nets(*s, x, kNow + 149), Nets{1});
    EXPECT_EQ(nets(*s, x, kNow + 150), Nets{});
    EXPECT_EQ(l.size(), 1u);
}

TEST(FqdnLearner, LearningAgainAfterExpiryIsAnAddition) {
    const Patterns p = {{1, "a.example.com"}};
    FqdnLearner l;
    const DnsAddress x = a4(192, 0, 2, 1, 100);
    learn1(l, "a.example.com", x, kNow, p);
    const LearnResult again = learn1(l, "a.example.com", x, kNow + 100, p);
    EXPECT_EQ(again.added, 1u);
    EXPECT_TRUE(again.publish_before_release());
    EXPECT_EQ(nets(*l.build(kNow + 100), x, kNow + 199), Nets{1});
}

TEST(FqdnLearner, ChainChangeUpdatesNetworks) {
    const Patterns p = {{1, "*.cdn-one.net"}, {2, "*.cdn-two.net"}};
    FqdnLearner l;
    const DnsAddress x = a4(192, 0, 2, 1, 300);
    learn1(l, "www.example.com", x, kNow, p, {"e.cdn-one.net"});
    const LearnResult moved = learn1(l, "www.example.com", x, kNow + 10, p, {"e.cdn-two.net"});
    EXPECT_EQ(moved.updated, 1u);
    EXPECT_TRUE(moved.publish_before_release());
    EXPECT_EQ(nets(*l.build(kNow + 10), x, kNow + 10), Nets{2});

    const LearnResult gone = learn1(l, "www.example.com", x, kNow + 20, p, {"e.elsewhere.org"});
    EXPECT_EQ(gone.updated, 1u);
    EXPECT_FALSE(gone.matched);
    EXPECT_EQ(nets(*l.build(kNow + 20), x, kNow + 20), Nets{});
}

TEST(FqdnLearner, UnmatchedNamesAreKeptForALaterPolicy) {
    FqdnLearner l;
    const DnsAddress x = a4(192, 0, 2, 1, 300);
    const LearnResult r = learn1(l, "new.example.com", x, kNow, Patterns{{0, "old.example.com"}});
    EXPECT_FALSE(r.matched);
    EXPECT_FALSE(r.changed());  // nothing a published set would contain
    EXPECT_EQ(l.size(), 1u);
    EXPECT_EQ(l.build(kNow)->addresses(), 0u);

    EXPECT_EQ(l.rebuild(Patterns{{9, "new.example.com"}}, kNow + 10, 42), 1u);
    auto s = l.build(kNow + 10);
    EXPECT_EQ(s->snapshot_version(), 42u);
    EXPECT_EQ(nets(*s, x, kNow + 10), Nets{9});
}

TEST(FqdnLearner, RebuildRemapsIndicesAndDropsExpired) {
    const Patterns v1 = {{0, "a.example.com"}, {1, "b.example.com"}, {2, "*.example.com"}};
    FqdnLearner l;
    l.rebuild(v1, kNow, 1);
    const DnsAddress a = a4(192, 0, 2, 1, 300), b = a4(192, 0, 2, 2, 300), c = a4(192, 0, 2, 3, 40);
    learn1(l, "a.example.com", a, kNow, v1);
    learn1(l, "b.example.com", b, kNow, v1);
    learn1(l, "c.example.com", c, kNow, v1);
    auto s1 = l.build(kNow);
    EXPECT_EQ(s1->snapshot_version(), 1u);
    EXPECT_EQ(nets(*s1, a, kNow), (Nets{0, 2}));
    EXPECT_EQ(nets(*s1, b, kNow), (Nets{1, 2}));
    EXPECT_EQ(nets(*s1, c, kNow), Nets{2});

    // New snapshot: indices moved, b's entry removed, the wildcard gone. c has expired by then.
    const Patterns v2 = {{7, "b.example.org"}, {4, "a.example.com"}};
    EXPECT_EQ(l.rebuild(v2, kNow + 40, 2), 1u);  // only a still matches
    EXPECT_EQ(l.size(), 2u);                     // c dropped; b kept, unmatched
    EXPECT_EQ(l.counters().records_expired, 1u);
    EXPECT_EQ(l.counters().rebuilds, 2u);
    auto s2 = l.build(kNow + 40);
    EXPECT_EQ(s2->snapshot_version(), 2u);
    EXPECT_EQ(nets(*s2, a, kNow + 40), Nets{4});
    EXPECT_EQ(nets(*s2, b, kNow + 40), Nets{});
    EXPECT_EQ(nets(*s2, c, kNow + 40), Nets{});
    // The old set is untouched (workers may still hold it).
    EXPECT_EQ(nets(*s1, a, kNow), (Nets{0, 2}));
}

TEST(FqdnLearner, SeveralPatternsOfOneNetworkGiveItOnce) {
    const Patterns p = {{1, "x.a.com"}, {1, "*.a.com"}, {1, "X.A.COM."}};
    FqdnLearner l;
    const DnsAddress x = a4(192, 0, 2, 1, 300);
    learn1(l, "x.a.com", x, kNow, p);
    EXPECT_EQ(nets(*l.build(kNow), x, kNow), Nets{1});
}

LearnResult learn_for(FqdnLearner &l, uint32_t pu, std::string_view name, const DnsAddress &a,
                      const Patterns &p) {
    return l.learn(name, {}, std::span<const DnsAddress>(&a, 1), kNow, p, pu);
}

// Issue 17: one PU's answers never widen another PU's rules.
TEST(FqdnLearner, AnAddressIsLearnedForThePuThatAsked) {
    const Patterns p = {{0, "api.example.com"}};
    FqdnLearner l;
    const DnsAddress a = a4(192, 0, 2, 1, 300);
    EXPECT_TRUE(learn_for(l, 3, "api.example.com", a, p).publish_before_release());
    auto s = l.build(kNow);
    EXPECT_EQ(nets(*s, a, kNow, 3), Nets{0});
    EXPECT_EQ(nets(*s, a, kNow, 0), Nets{});
    EXPECT_EQ(nets(*s, a, kNow, 4), Nets{});
    // Another PU asks too: a record of its own, with its own expiry.
    const DnsAddress shorter = a4(192, 0, 2, 1, 100);
    EXPECT_EQ(learn_for(l, 0, "api.example.com", shorter, p).added, 1u);
    EXPECT_EQ(l.size(), 2u);
    s = l.build(kNow);
    EXPECT_EQ(s->addresses(), 2u);  // (address, PU) pairs
    EXPECT_EQ(nets(*s, a, kNow + 99, 0), Nets{0});
    EXPECT_EQ(nets(*s, a, kNow + 100, 0), Nets{});
    EXPECT_EQ(nets(*s, a, kNow + 299, 3), Nets{0});
    EXPECT_EQ(nets(*s, a, kNow + 299, 2), Nets{});
}

TEST(FqdnLearner, RebuildMovesRecordsToThePusNewIndices) {
    const Patterns p = {{0, "*.example.com"}};
    FqdnLearner l;
    const DnsAddress x = a4(192, 0, 2, 1, 300), y = a4(192, 0, 2, 2, 300),
                     z = a4(192, 0, 2, 3, 300);
    learn_for(l, 0, "x.example.com", x, p);
    learn_for(l, 1, "y.example.com", y, p);
    learn_for(l, 2, "z.example.com", z, p);
    learn_for(l, 1, "x.example.com", x, p);
    // The new policy swaps PUs 0 and 1 and no longer has PU 2.
    const std::vector<uint32_t> remap = {1, 0, segwire::policy::kNone};
    EXPECT_EQ(l.rebuild(p, kNow, 2, remap), 3u);
    EXPECT_EQ(l.size(), 3u);
    auto s = l.build(kNow);
    EXPECT_EQ(nets(*s, x, kNow, 1), Nets{0});
    EXPECT_EQ(nets(*s, x, kNow, 0), Nets{0});  // PU 1's record, now PU 0
    EXPECT_EQ(nets(*s, y, kNow, 0), Nets{0});
    EXPECT_EQ(nets(*s, y, kNow, 1), Nets{});
    EXPECT_EQ(nets(*s, z, kNow, 2), Nets{});
    EXPECT_EQ(s->addresses(), 3u);
}

TEST(FqdnLearner, EvictsTheSoonestToExpireAtTheBound) {
    FqdnLearnerConfig cfg;
    cfg.max_records = 4;
    FqdnLearner l(cfg);
    const Patterns p = {{0, "*.example.com"}};
    const uint32_t ttls[] = {400, 100, 300, 200};
    for (uint8_t i = 0; i < 4; ++i)
        EXPECT_EQ(learn1(l, "h.example.com", a4(10, 0, 0, i, ttls[i]), kNow, p).evicted, 0u);
    EXPECT_EQ(l.size(), 4u);
    const LearnResult r = learn1(l, "h.example.com", a4(10, 0, 0, 9, 250), kNow, p);
    EXPECT_EQ(r.evicted, 1u);
    EXPECT_TRUE(r.changed());
    EXPECT_EQ(l.size(), 4u);
    EXPECT_EQ(l.counters().records_evicted, 1u);
    auto s = l.build(kNow);
    EXPECT_EQ(nets(*s, a4(10, 0, 0, 1, 0), kNow), Nets{});  // ttl 100: evicted
    for (uint8_t i : {0, 2, 3, 9}) EXPECT_EQ(nets(*s, a4(10, 0, 0, i, 0), kNow), Nets{0}) << int(i);
}

TEST(FqdnLearner, EvictsRecordsMatchingNoNetworkFirst) {
    FqdnLearnerConfig cfg;
    cfg.max_records = 3;
    FqdnLearner l(cfg);
    const Patterns p = {{0, "*.example.com"}};
    learn1(l, "a.example.com", a4(10, 0, 0, 1, 100), kNow, p);
    learn1(l, "b.example.com", a4(10, 0, 0, 2, 200), kNow, p);
    learn1(l, "unrelated.org", a4(10, 0, 0, 3, 5000), kNow, p);
    const LearnResult r = learn1(l, "c.example.com", a4(10, 0, 0, 4, 300), kNow, p);
    EXPECT_EQ(r.evicted, 0u);  // the unmatched record went: no published change
    EXPECT_EQ(l.size(), 3u);
    EXPECT_EQ(l.counters().records_evicted, 1u);
    auto s = l.build(kNow);
    EXPECT_EQ(s->addresses(), 3u);
    EXPECT_EQ(l.rebuild(Patterns{{0, "unrelated.org"}}, kNow), 0u);  // it is gone
}

TEST(FqdnLearner, NameBytesAreBoundedAndReleased) {
    FqdnLearnerConfig cfg;
    FqdnLearner probe(cfg);
    const Patterns p = {{0, "*.example.com"}};
    learn1(probe, "n0.example.com", a4(10, 0, 0, 0, 100), kNow, p);
    const size_t one = probe.name_bytes();
    ASSERT_GT(one, 0u);

    cfg.max_name_bytes = 3 * one;  // room for three chains like that one
    FqdnLearner l(cfg);
    for (uint8_t i = 0; i < 5; ++i)
        learn1(l, "n" + std::to_string(i) + ".example.com", a4(10, 0, 0, i, 100u + i), kNow, p);
    EXPECT_EQ(l.size(), 3u);
    EXPECT_LE(l.name_bytes(), cfg.max_name_bytes);
    EXPECT_EQ(l.counters().records_evicted, 2u);
    auto s = l.build(kNow);
    EXPECT_EQ(nets(*s, a4(10, 0, 0, 0, 0), kNow), Nets{});  // the two soonest went
    EXPECT_EQ(nets(*s, a4(10, 0, 0, 4, 0), kNow), Nets{0});

    EXPECT_EQ(l.expire(kNow + 1000), 3u);
    EXPECT_EQ(l.size(), 0u);
    EXPECT_EQ(l.name_bytes(), 0u);
}

TEST(FqdnLearner, ExpireDropsOnlyExpiredRecords) {
    const Patterns p = {{0, "*.example.com"}};
    FqdnLearner l;
    learn1(l, "a.example.com", a4(10, 0, 0, 1, 100), kNow, p);
    learn1(l, "b.example.com", a4(10, 0, 0, 2, 200), kNow, p);
    EXPECT_EQ(l.expire(kNow + 99), 0u);
    EXPECT_EQ(l.expire(kNow + 100), 1u);
    EXPECT_EQ(l.size(), 1u);
    EXPECT_EQ(l.build(kNow + 100)->addresses(), 1u);
}

TEST(FqdnLearner, BuildLeavesOutExpiredRecords) {
    const Patterns p = {{0, "*.example.com"}};
    FqdnLearner l;
    learn1(l, "a.example.com", a4(10, 0, 0, 1, 100), kNow, p);
    learn1(l, "b.example.com", a4(10, 0, 0, 2, 200), kNow, p);
    auto s = l.build(kNow + 150);
    EXPECT_EQ(s->addresses(), 1u);
    EXPECT_EQ(s->built_at(), kNow + 150);
    EXPECT_EQ(l.size(), 2u);  // build does not modify the learner
}

// The learner's pattern index must give exactly what fqdn_match gives.
TEST(FqdnLearner, NetworksAgreeWithFqdnMatch) {
    const Patterns p = {{0, "example.com"},     {1, "*.example.com"}, {2, "a.example.com"},
                        {3, "*.a.example.com"}, {4, "*.com"},         {5, "EXAMPLE.COM."},
                        {6, "b.example.org"},   {7, "*.org."},        {8, "*"}};
    const std::vector<std::string> names = {"example.com",
                                            "a.example.com",
                                            "b.a.example.com",
                                            "x.y.a.example.com",
                                            "com",
                                            "example.org",
                                            "b.example.org",
                                            "a.b.example.org",
                                            "Example.Com.",
                                            "*",
                                            "xexample.com",
                                            "org"};
    FqdnLearner l;
    for (size_t i = 0; i < names.size(); ++i)
        learn1(l, names[i], a4(10, 1, 0, static_cast<uint8_t>(i), 300), kNow, p);
    auto s = l.build(kNow);
    for (size_t i = 0; i < names.size(); ++i) {
        std::set<uint32_t> want;
        for (const HostnameEntry &e : p)
            if (fqdn_match(e.pattern, names[i])) want.insert(e.network);
        EXPECT_EQ(nets(*s, a4(10, 1, 0, static_cast<uint8_t>(i), 0), kNow),
                  Nets(want.begin(), want.end()))
            << names[i];
    }
}

TEST(FqdnLearner, CountersCountAnswers) {
    const Patterns p = {{0, "a.example.com"}};
    FqdnLearner l;
    const DnsAddress two[] = {a4(10, 0, 0, 1, 300), a4(10, 0, 0, 2, 300)};
    l.learn("a.example.com", {}, two, kNow, p);
    l.learn("z.example.com", {}, two, kNow, p);
    EXPECT_EQ(l.counters().answers, 2u);
    EXPECT_EQ(l.counters().answers_matched, 1u);
    EXPECT_EQ(l.counters().records_added, 4u);
    EXPECT_EQ(l.size(), 4u);
}

}  // namespace
