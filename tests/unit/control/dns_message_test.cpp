// DNS response parser tests. Responses are written byte by byte with dns_builder.hpp and parsed
// from heap buffers of exactly their size (the ASan build catches any overread). Besides the
// field checks: every prefix of a valid response, single-byte mutations, and the seed corpus of
// the fuzz target.
#include "control/dns/dns_message.hpp"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/fuzz/control/dns_check.hpp"
#include "tests/unit/control/dns_builder.hpp"

namespace segwire::control::dns {
void PrintTo(DnsStatus s, std::ostream *os) {
    *os << to_string(s);
}
}  // namespace segwire::control::dns

namespace {

using namespace segwire::control::dns;
using namespace segwire::dptest;

// 2.5 KB: kept off the test's stack frame.
struct Parsed {
    std::unique_ptr<DnsResponse> r = std::make_unique<DnsResponse>();
    DnsStatus st;
    explicit Parsed(const Bytes &msg) : st(parse_exact(msg, *r)) {}
    const DnsResponse *operator->() const { return r.get(); }
};

std::vector<std::string> cnames_of(const DnsResponse &r) {
    std::vector<std::string> v;
    for (size_t i = 0; i < r.cname_count; ++i) v.emplace_back(r.cnames[i].view());
    return v;
}
std::vector<std::string> addrs_of(const DnsResponse &r) {
    std::vector<std::string> v;
    for (size_t i = 0; i < r.addr_count; ++i) v.push_back(addr_text(r.addrs[i]));
    return v;
}

// www.example.com -> CNAME edge.cdn.example.net -> CNAME a1.cdn.example.net -> A 198.51.100.7,
// every name after the question compressed, answer records in reverse chain order, and an
// authority and an additional record after them.
DnsMsg chain_msg() {
    DnsMsg m;
    m.an.push_back(rr_a(labels("a1.cdn.example.net"), v4(198, 51, 100, 7), 60));
    const size_t a1 = m.answer_off(0);
    m.an.push_back(rr_cname(labels_then_ptr("edge", a1 + 3), ptr(a1), 120));
    m.an.push_back(rr_cname(ptr(kQnameOff), ptr(m.answer_off(1)), 300));
    m.ns.push_back({ptr(kQnameOff + 4), 2, 900, labels("ns1.example.com")});
    m.ar.push_back(rr_a(labels("ns1.example.com"), v4(192, 0, 2, 53), 900));
    return m;
}

// ---- well-formed responses ----------------------------------------------------------------------

TEST(DnsParse, PlainA) {
    DnsMsg m;
    m.id = 0xbeef;
    m.an.push_back(rr_a(ptr(kQnameOff), v4(192, 0, 2, 1), 300));
    Parsed p(m.bytes());
    ASSERT_EQ(p.st, DnsStatus::Ok);
    EXPECT_EQ(p->id, 0xbeef);
    EXPECT_EQ(p->rcode, kRcodeNoError);
    EXPECT_FALSE(p->tc);
    EXPECT_EQ(p->qtype, kTypeA);
    EXPECT_EQ(p->qclass, kClassIn);
    EXPECT_EQ(p->resolved_name.view(), "www.example.com");
    EXPECT_EQ(p->cname_count, 0);
    ASSERT_EQ(p->addr_count, 1);
    const uint8_t mapped[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1};
    EXPECT_EQ(std::memcmp(p->addrs[0].addr, mapped, 16), 0);
    EXPECT_TRUE(p->addrs[0].v4);
    EXPECT_EQ(p->addrs[0].ttl, 300u);
    EXPECT_EQ(p->min_ttl, 300u);
    EXPECT_FALSE(p->truncated_list);
    EXPECT_EQ(p->final_name(), "www.example.com");
    EXPECT_EQ(dns_action(*p.r), DnsAction::Resolve);
    EXPECT_STREQ(to_string(dns_action(*p.r)), "Resolve");
    EXPECT_EQ(check_dns_response(*p.r), nullptr);
}

TEST(DnsParse, Aaaa) {
    DnsMsg m;
    m.qtype = kTypeAaaa;
    m.an.push_back(rr_aaaa(ptr(kQnameOff), v6("2001:db8::1"), 120));
    Parsed p(m.bytes());
    ASSERT_EQ(p.st, DnsStatus::Ok);
    EXPECT_EQ(p->qtype, kTypeAaaa);
    ASSERT_EQ(p->addr_count, 1);
    EXPECT_FALSE(p->addrs[0].v4);
    EXPECT_EQ(addr_text(p->addrs[0]), "2001:db8::1");
    EXPECT_EQ(std::memcmp(p->addrs[0].addr, v6("2001:db8::1").data(), 16), 0);
    EXPECT_EQ(p->min_ttl, 120u);
}

TEST(DnsParse, MultipleAddressesInOrderDuplicatesOnceMinTtl) {
    DnsMsg m;
    m.an.push_back(rr_a(ptr(kQnameOff), v4(192, 0, 2, 1), 300));
    m.an.push_back(rr_aaaa(ptr(kQnameOff), v6("2001:db8::2"), 50));
    m.an.push_back(rr_a(ptr(kQnameOff), v4(192, 0, 2, 3), 200));
    m.an.push_back(rr_a(ptr(kQnameOff), v4(192, 0, 2, 1), 10));  // duplicate: first kept
    Parsed p(m.bytes());
    ASSERT_EQ(p.st, DnsStatus::Ok);
    EXPECT_EQ(addrs_of(*p.r), (std::vector<std::string>{"192.0.2.1", "2001:db8::2", "192.0.2.3"}));
    EXPECT_EQ(p->addrs[0].ttl, 300u);
    EXPECT_EQ(p->min_ttl, 50u);
    EXPECT_FALSE(p->truncated_list);
}

TEST(DnsParse, CnameChainTwoHopsOutOfOrderAndCompressed) {
    const DnsMsg m = chain_msg();
    Parsed p(m.bytes());
    ASSERT_EQ(p.st, DnsStatus::Ok);
    EXPECT_EQ(p->resolved_name.view(), "www.example.com");
    EXPECT_EQ(cnames_of(*p.r),
              (std::vector<std::string>{"edge.cdn.example.net", "a1.cdn.example.net"}));
    EXPECT_EQ(p->final_name(), "a1.cdn.example.net");
    EXPECT_EQ(addrs_of(*p.r), std::vector<std::string>{"198.51.100.7"});
    EXPECT_EQ(p->min_ttl, 60u);
    EXPECT_EQ(check_dns_response(*p.r), nullptr);
}

TEST(DnsParse, MinTtlComesFromTheChainWhenLower) {
    DnsMsg m;
    m.an.push_back(rr_cname(ptr(kQnameOff), labels("b.example.net"), 20));
    m.an.push_back(rr_a(ptr(m.rdata_off(0)), v4(192, 0, 2, 9), 600));
    Parsed p(m.bytes());
    ASSERT_EQ(p.st, DnsStatus::Ok);
    EXPECT_EQ(addrs_of(*p.r), std::vector<std::string>{"192.0.2.9"});
    EXPECT_EQ(p->min_ttl, 20u);
}

TEST(DnsParse, RecordsOffTheChainAreIgnored) {
    DnsMsg m;
    // Chain: www.example.com -> b.example.net.
    m.an.push_back(rr_a(labels("evil.example.org"), v4(203, 0, 113, 66), 300));      // unrelated
    m.an.push_back(rr_cname(labels("other.example.org"), labels("x.example.org")));  // unrelated
    m.an.push_back(rr_a(ptr(kQnameOff), v4(203, 0, 113, 1)));  // the question, but it is an alias
    m.an.push_back(rr_cname(ptr(kQnameOff), labels("b.example.net"), 300));
    m.an.push_back(rr_a(labels("b.example.net"), v4(192, 0, 2, 20), 300));
    m.an.push_back(rr_a(labels("x.example.org"), v4(203, 0, 113, 2)));  // the unrelated target
    m.an.push_back({labels("b.example.net"), kTypeA, 300, v4(203, 0, 113, 3), 3});  // class CH
    m.an.push_back({labels("b.example.net"), 16, 300, labels("txt")});              // TXT
    // An address for the final name outside the answer section.
    m.ar.push_back(rr_a(labels("b.example.net"), v4(203, 0, 113, 4)));
    Parsed p(m.bytes());
    ASSERT_EQ(p.st, DnsStatus::Ok);
    EXPECT_EQ(cnames_of(*p.r), std::vector<std::string>{"b.example.net"});
    EXPECT_EQ(addrs_of(*p.r), std::vector<std::string>{"192.0.2.20"});
}

TEST(DnsParse, NamesAreLowerCasedAndComparedCaseInsensitively) {
    DnsMsg m;
    m.qname = labels("WwW.ExAmPlE.CoM");
    m.an.push_back(rr_cname(labels("www.EXAMPLE.com"), labels("CDN.Example.NET")));
    m.an.push_back(rr_a(labels("cdn.example.net"), v4(192, 0, 2, 5)));
    Parsed p(m.bytes());
    ASSERT_EQ(p.st, DnsStatus::Ok);
    EXPECT_EQ(p->resolved_name.view(), "www.example.com");
    EXPECT_EQ(cnames_of(*p.r), std::vector<std::string>{"cdn.example.net"});
    EXPECT_EQ(addrs_of(*p.r), std::vector<std::string>{"192.0.2.5"});
}

TEST(DnsParse, RootQuestionIsTheEmptyName) {
    DnsMsg m;
    m.qname = labels("");
    m.qtype = 2;  // NS
    Parsed p(m.bytes());
    ASSERT_EQ(p.st, DnsStatus::Ok);
    EXPECT_EQ(p->resolved_name.view(), "");
    EXPECT_EQ(p->resolved_name.text[0], '\0');
}

TEST(DnsParse, TtlWithTopBitSetReadsAsZero) {
    DnsMsg m;
    m.an.push_back(rr_a(ptr(kQnameOff), v4(192, 0, 2, 1), 0x80000001u));
    Parsed p(m.bytes());
    ASSERT_EQ(p.st, DnsStatus::Ok);
    ASSERT_EQ(p->addr_count, 1);
    EXPECT_EQ(p->addrs[0].ttl, 0u);
}

TEST(DnsParse, TcBitIsReported) {
    DnsMsg m;
    m.flags = 0x8380;
    Parsed p(m.bytes());
    ASSERT_EQ(p.st, DnsStatus::Ok);
    EXPECT_TRUE(p->tc);
    EXPECT_EQ(dns_action(*p.r), DnsAction::Fail);
}

// ---- rcode / action
// ------------------------------------------------------------------------------

TEST(DnsParse, NxdomainIsOkWithRcodeAndFails) {
    DnsMsg m;
    m.flags = 0x8183;
    m.ns.push_back({ptr(kQnameOff + 4), 6, 900, labels("ns1.example.com") + Bytes(22, 0)});
    Parsed p(m.bytes());
    ASSERT_EQ(p.st, DnsStatus::Ok);
    EXPECT_EQ(p->rcode, kRcodeNxDomain);
    EXPECT_STREQ(rcode_name(p->rcode), "NXDOMAIN");
    EXPECT_EQ(p->addr_count, 0);
    EXPECT_EQ(dns_action(*p.r), DnsAction::Fail);
    EXPECT_STREQ(to_string(dns_action(*p.r)), "Fail");
}

TEST(DnsParse, ServfailWithAnAddressStillFails) {
    DnsMsg m;
    m.flags = 0x8182;
    m.an.push_back(rr_a(ptr(kQnameOff), v4(192, 0, 2, 1)));
    Parsed p(m.bytes());
    ASSERT_EQ(p.st, DnsStatus::Ok);
    EXPECT_EQ(p->rcode, kRcodeServFail);
    EXPECT_STREQ(rcode_name(p->rcode), "SERVFAIL");
    EXPECT_EQ(dns_action(*p.r), DnsAction::Fail);
}

TEST(DnsParse, NoErrorWithoutAddressesFails) {
    DnsMsg nodata;
    Parsed a(nodata.bytes());
    ASSERT_EQ(a.st, DnsStatus::Ok);
    EXPECT_EQ(dns_action(*a.r), DnsAction::Fail);

    DnsMsg cname_only;
    cname_only.an.push_back(rr_cname(ptr(kQnameOff), labels("b.example.net")));
    Parsed b(cname_only.bytes());
    ASSERT_EQ(b.st, DnsStatus::Ok);
    EXPECT_EQ(b->cname_count, 1);
    EXPECT_EQ(b->min_ttl, 300u);
    EXPECT_EQ(dns_action(*b.r), DnsAction::Fail);
}

TEST(DnsParse, RcodeNames) {
    EXPECT_STREQ(rcode_name(0), "NOERROR");
    EXPECT_STREQ(rcode_name(1), "FORMERR");
    EXPECT_STREQ(rcode_name(4), "NOTIMP");
    EXPECT_STREQ(rcode_name(5), "REFUSED");
    EXPECT_STREQ(rcode_name(9), "RCODE");
}

// ---- header checks
// -------------------------------------------------------------------------------

TEST(DnsParse, QueryIsNotAResponse) {
    DnsMsg m;
    m.flags = 0x0100;  // QR clear
    Parsed p(m.bytes());
    EXPECT_EQ(p.st, DnsStatus::NotResponse);
}

TEST(DnsParse, OtherOpcodesAreRefused) {
    DnsMsg m;
    m.flags = 0x8000 | (4 << 11);  // NOTIFY response
    EXPECT_EQ(Parsed(m.bytes()).st, DnsStatus::NotQuery);
}

TEST(DnsParse, QdcountMustBeOne) {
    DnsMsg two;
    two.qdcount = 2;
    EXPECT_EQ(Parsed(two.bytes()).st, DnsStatus::BadQdcount);
    DnsMsg zero;
    zero.qdcount = 0;
    EXPECT_EQ(Parsed(zero.bytes()).st, DnsStatus::BadQdcount);
}

TEST(DnsParse, ShortHeaderIsTruncatedAndHugeIsTooLong) {
    DnsMsg m;
    Bytes b = m.bytes();
    b.resize(11);
    EXPECT_EQ(Parsed(b).st, DnsStatus::Truncated);
    EXPECT_EQ(Parsed(Bytes{}).st, DnsStatus::Truncated);
    Bytes big = m.bytes();
    big.resize(kMaxMessage + 1, 0);
    EXPECT_EQ(Parsed(big).st, DnsStatus::TooLong);
    big.resize(kMaxMessage);  // trailing zeros after the question are fine
    EXPECT_EQ(Parsed(big).st, DnsStatus::Ok);
}

TEST(DnsParse, AncountAboveLimitIsTooManyRecords) {
    DnsMsg m;
    m.ancount = kMaxAnswers + 1;
    EXPECT_EQ(Parsed(m.bytes()).st, DnsStatus::TooManyRecords);
}

TEST(DnsParse, AncountAtLimitKeepsFirstSixteenAddresses) {
    DnsMsg m;
    for (uint32_t i = 0; i < kMaxAnswers; ++i)
        m.an.push_back(rr_a(ptr(kQnameOff), v4(10, 0, uint8_t(i >> 8), uint8_t(i)), 1000 - i));
    Parsed p(m.bytes());
    ASSERT_EQ(p.st, DnsStatus::Ok);
    ASSERT_EQ(p->addr_count, kMaxAddrs);
    EXPECT_TRUE(p->truncated_list);
    EXPECT_EQ(addr_text(p->addrs[0]), "10.0.0.0");
    EXPECT_EQ(addr_text(p->addrs[15]), "10.0.0.15");
    EXPECT_EQ(p->min_ttl, 1000u - 15);  // over the kept addresses
}

TEST(DnsParse, SixteenAddressesFitExactly) {
    DnsMsg m;
    for (uint8_t i = 0; i < kMaxAddrs; ++i) m.an.push_back(rr_a(ptr(kQnameOff), v4(10, 0, 0, i)));
    Parsed p(m.bytes());
    ASSERT_EQ(p.st, DnsStatus::Ok);
    EXPECT_EQ(p->addr_count, kMaxAddrs);
    EXPECT_FALSE(p->truncated_list);
}

// ---- CNAME chains
// --------------------------------------------------------------------------------

// A chain of `hops` CNAMEs: www.example.com -> h1.example.net -> ... -> h<hops>.example.net, then
// an A record for the last name.
DnsMsg long_chain(size_t hops) {
    DnsMsg m;
    std::string prev = "www.example.com";
    for (size_t i = 1; i <= hops; ++i) {
        const std::string next = "h" + std::to_string(i) + ".example.net";
        m.an.push_back(rr_cname(labels(prev), labels(next)));
        prev = next;
    }
    m.an.push_back(rr_a(labels(prev), v4(192, 0, 2, 99)));
    return m;
}

TEST(DnsParse, ChainOfEightHopsIsFollowed) {
    Parsed p(long_chain(kMaxCnames).bytes());
    ASSERT_EQ(p.st, DnsStatus::Ok);
    EXPECT_EQ(p->cname_count, kMaxCnames);
    EXPECT_EQ(p->final_name(), "h8.example.net");
    EXPECT_EQ(addrs_of(*p.r), std::vector<std::string>{"192.0.2.99"});
    EXPECT_FALSE(p->truncated_list);
}

TEST(DnsParse, ChainLongerThanCapacityKeepsFirstEightWithoutAddresses) {
    Parsed p(long_chain(kMaxCnames + 1).bytes());
    ASSERT_EQ(p.st, DnsStatus::Ok);
    EXPECT_EQ(p->cname_count, kMaxCnames);
    EXPECT_EQ(p->cnames[0].view(), "h1.example.net");
    EXPECT_EQ(p->final_name(), "h8.example.net");
    EXPECT_TRUE(p->truncated_list);
    EXPECT_EQ(p->addr_count, 0);  // the addresses belong to h9, past the kept chain
    EXPECT_EQ(dns_action(*p.r), DnsAction::Fail);
}

TEST(DnsParse, CnameLoopsAreRejected) {
    DnsMsg self;
    self.an.push_back(rr_cname(ptr(kQnameOff), ptr(kQnameOff)));
    EXPECT_EQ(Parsed(self.bytes()).st, DnsStatus::CnameLoop);

    DnsMsg two;
    two.an.push_back(rr_cname(labels("b.example.net"), labels("www.example.com")));
    two.an.push_back(rr_cname(ptr(kQnameOff), labels("b.example.net")));
    EXPECT_EQ(Parsed(two.bytes()).st, DnsStatus::CnameLoop);

    DnsMsg inner;  // www -> b -> c -> b
    inner.an.push_back(rr_cname(ptr(kQnameOff), labels("b.example.net")));
    inner.an.push_back(rr_cname(labels("b.example.net"), labels("c.example.net")));
    inner.an.push_back(rr_cname(labels("c.example.net"), labels("b.example.net")));
    EXPECT_EQ(Parsed(inner.bytes()).st, DnsStatus::CnameLoop);
}

TEST(DnsParse, SecondCnameForTheSameOwnerIsIgnored) {
    DnsMsg m;
    m.an.push_back(rr_cname(ptr(kQnameOff), labels("first.example.net")));
    m.an.push_back(rr_cname(ptr(kQnameOff), labels("second.example.net")));
    m.an.push_back(rr_a(labels("second.example.net"), v4(203, 0, 113, 9)));
    m.an.push_back(rr_a(labels("first.example.net"), v4(192, 0, 2, 9)));
    Parsed p(m.bytes());
    ASSERT_EQ(p.st, DnsStatus::Ok);
    EXPECT_EQ(cnames_of(*p.r), std::vector<std::string>{"first.example.net"});
    EXPECT_EQ(addrs_of(*p.r), std::vector<std::string>{"192.0.2.9"});
}

// ---- compression pointers
// ------------------------------------------------------------------------

TEST(DnsParse, PointerToTheMiddleOfAnEarlierName) {
    DnsMsg m;
    // Owner "api" + pointer to "example.com" inside the question name.
    m.qname = labels("api.example.com");
    m.an.push_back(rr_a(labels_then_ptr("api", kQnameOff + 4), v4(192, 0, 2, 7)));
    Parsed p(m.bytes());
    ASSERT_EQ(p.st, DnsStatus::Ok);
    EXPECT_EQ(addrs_of(*p.r), std::vector<std::string>{"192.0.2.7"});
}

TEST(DnsParse, SelfPointerIsRejected) {
    DnsMsg m;
    m.an.push_back(rr_a(ptr(m.answer_off(0)), v4(192, 0, 2, 1)));
    EXPECT_EQ(Parsed(m.bytes()).st, DnsStatus::BadPointer);
}

TEST(DnsParse, TwoPointerLoopIsRejected) {
    // Answer 0's RDATA (an unknown type) holds a name "x" + pointer to answer 1's owner; answer
    // 1's owner points back at that RDATA.
    DnsMsg m;
    m.an.push_back({ptr(kQnameOff), 99, 300, Bytes{1, 'x', 0, 0}});
    const size_t rdata0 = m.rdata_off(0);
    m.an.push_back(rr_a(ptr(rdata0), v4(192, 0, 2, 1)));
    const size_t owner1 = m.answer_off(1);
    m.an[0].rdata = Bytes{1, 'x'} + ptr(owner1);
    EXPECT_EQ(Parsed(m.bytes()).st, DnsStatus::BadPointer);
}

TEST(DnsParse, ForwardPointerIsRejected) {
    DnsMsg m;
    // The owner points at answer 1's owner (a valid name, but later in the message).
    m.an.push_back(rr_a(ptr(0), v4(192, 0, 2, 1)));
    m.an.push_back(rr_a(labels("www.example.com"), v4(192, 0, 2, 2)));
    m.an[0].owner = ptr(m.answer_off(1));
    EXPECT_EQ(Parsed(m.bytes()).st, DnsStatus::BadPointer);
}

TEST(DnsParse, PointerBeyondTheMessageIsRejected) {
    DnsMsg m;
    m.an.push_back(rr_a(ptr(0x3fff), v4(192, 0, 2, 1)));
    EXPECT_EQ(Parsed(m.bytes()).st, DnsStatus::BadPointer);
}

TEST(DnsParse, PointerIntoTheHeaderIsRejected) {
    DnsMsg m;
    m.an.push_back(rr_a(ptr(4), v4(192, 0, 2, 1)));
    EXPECT_EQ(Parsed(m.bytes()).st, DnsStatus::BadPointer);
}

TEST(DnsParse, PointerInTheQuestionIsRejected) {
    DnsMsg m;
    m.qname = ptr(kQnameOff);
    EXPECT_EQ(Parsed(m.bytes()).st, DnsStatus::BadPointer);
}

// A name reached through `hops` pointers: an unknown-type record holds a ladder of pointers,
// each to the one before it, the first to the question name; answer 1's owner points at the
// last rung.
DnsMsg pointer_ladder(size_t hops) {
    DnsMsg m;
    m.an.push_back({ptr(kQnameOff), 99, 300, {}});
    const size_t base = m.rdata_off(0);
    Bytes ladder = ptr(kQnameOff);
    for (size_t i = 1; i + 1 < hops; ++i) ladder = ladder + ptr(base + 2 * (i - 1));
    m.an[0].rdata = ladder;
    m.an.push_back(rr_a(ptr(base + ladder.size() - 2), v4(192, 0, 2, 42)));
    return m;
}

TEST(DnsParse, PointerHopLimit) {
    Parsed ok(pointer_ladder(kMaxPointerHops).bytes());
    ASSERT_EQ(ok.st, DnsStatus::Ok);
    EXPECT_EQ(addrs_of(*ok.r), std::vector<std::string>{"192.0.2.42"});
    EXPECT_EQ(Parsed(pointer_ladder(kMaxPointerHops + 1).bytes()).st, DnsStatus::BadPointer);
}

// ---- names
// ---------------------------------------------------------------------------------------

TEST(DnsParse, LabelOver63IsRejected) {
    DnsMsg m;
    m.qname = Bytes{64} + Bytes(64, 'a') + Bytes{0};
    EXPECT_EQ(Parsed(m.bytes()).st, DnsStatus::LabelTooLong);
    DnsMsg ext;  // 0x80: the reserved label type
    ext.qname = Bytes{0x80, 0};
    EXPECT_EQ(Parsed(ext.bytes()).st, DnsStatus::LabelTooLong);
    DnsMsg ok;
    ok.qname = labels(std::string(63, 'a') + ".example.com");
    Parsed p(ok.bytes());
    ASSERT_EQ(p.st, DnsStatus::Ok);
    EXPECT_EQ(p->resolved_name.len, 63 + 12);
}

// Labels of the given lengths ("aaa...", "bbb...").
Bytes name_of(std::vector<size_t> lens) {
    Bytes b;
    char c = 'a';
    for (size_t n : lens) {
        b.push_back(static_cast<uint8_t>(n));
        b.insert(b.end(), n, static_cast<uint8_t>(c++));
    }
    b.push_back(0);
    return b;
}

TEST(DnsParse, NameLengthLimitIs255OnTheWire) {
    DnsMsg at;  // 64 + 64 + 64 + 62 + 1 = 255 bytes: 253 characters of text
    at.qname = name_of({63, 63, 63, 61});
    Parsed p(at.bytes());
    ASSERT_EQ(p.st, DnsStatus::Ok);
    EXPECT_EQ(p->resolved_name.len, kMaxNameText);
    EXPECT_EQ(check_dns_name(p->resolved_name), nullptr);

    DnsMsg over;  // 256 bytes
    over.qname = name_of({63, 63, 63, 62});
    EXPECT_EQ(Parsed(over.bytes()).st, DnsStatus::NameTooLong);
}

TEST(DnsParse, NameTooLongThroughCompression) {
    // Question: 3 labels of 63 (193 bytes on the wire). An owner of one more 63-byte label and a
    // pointer to the question is 257 bytes, although each piece is within the limit.
    DnsMsg m;
    m.qname = name_of({63, 63, 63});
    m.an.push_back(rr_a(Bytes{63} + Bytes(63, 'z') + ptr(kQnameOff), v4(192, 0, 2, 1)));
    EXPECT_EQ(Parsed(m.bytes()).st, DnsStatus::NameTooLong);
}

TEST(DnsParse, UnprintableOrDotInALabelIsABadName) {
    for (uint8_t bad : {uint8_t('.'), uint8_t(' '), uint8_t(0), uint8_t(0x7f), uint8_t(0xc3)}) {
        DnsMsg m;
        m.qname = Bytes{3, 'a', bad, 'b', 3, 'c', 'o', 'm', 0};
        EXPECT_EQ(Parsed(m.bytes()).st, DnsStatus::BadName) << int(bad);
    }
}

TEST(DnsParse, BadNameOnTheChainFailsOffTheChainIsIgnored) {
    DnsMsg on;
    on.an.push_back(rr_cname(ptr(kQnameOff), Bytes{3, 'a', '.', 'b', 0}));
    EXPECT_EQ(Parsed(on.bytes()).st, DnsStatus::BadName);

    DnsMsg off;
    off.an.push_back(rr_a(Bytes{3, 'a', ' ', 'b', 0}, v4(203, 0, 113, 1)));
    off.an.push_back(rr_a(ptr(kQnameOff), v4(192, 0, 2, 1)));
    Parsed p(off.bytes());
    ASSERT_EQ(p.st, DnsStatus::Ok);
    EXPECT_EQ(addrs_of(*p.r), std::vector<std::string>{"192.0.2.1"});
}

TEST(DnsParse, LabelWithADotNeverEqualsTwoLabels) {
    // The CNAME target is the single label "b.example" + "net": it must not be taken as the
    // owner "b.example.net" of the A record below (nor the other way round).
    DnsMsg m;
    m.an.push_back(rr_cname(ptr(kQnameOff), labels("b.example.net")));
    m.an.push_back(rr_a(Bytes{9, 'b', '.', 'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'n', 'e', 't', 0},
                        v4(203, 0, 113, 1)));
    m.an.push_back(rr_a(labels("b.example.net"), v4(192, 0, 2, 1)));
    Parsed p(m.bytes());
    ASSERT_EQ(p.st, DnsStatus::Ok);
    EXPECT_EQ(addrs_of(*p.r), std::vector<std::string>{"192.0.2.1"});
}

// ---- records
// -------------------------------------------------------------------------------------

TEST(DnsParse, WrongRdlengthForTheTypeIsABadRecord) {
    DnsMsg a;
    a.an.push_back(rr_a(ptr(kQnameOff), Bytes{192, 0, 2, 1, 0}));
    EXPECT_EQ(Parsed(a.bytes()).st, DnsStatus::BadRecord);
    DnsMsg aaaa;
    aaaa.an.push_back(rr_aaaa(ptr(kQnameOff), v4(192, 0, 2, 1)));
    EXPECT_EQ(Parsed(aaaa.bytes()).st, DnsStatus::BadRecord);
    DnsMsg cname;  // a byte after the target name inside RDATA
    cname.an.push_back(rr_cname(ptr(kQnameOff), labels("b.example.net") + Bytes{0}));
    EXPECT_EQ(Parsed(cname.bytes()).st, DnsStatus::BadRecord);
    DnsMsg cname_short;  // the name runs past RDLENGTH
    cname_short.an.push_back(rr_cname(ptr(kQnameOff), labels("b.example.net")));
    cname_short.an[0].rdlength = 3;
    cname_short.an.push_back(rr_a(ptr(kQnameOff), v4(192, 0, 2, 1)));
    EXPECT_NE(Parsed(cname_short.bytes()).st, DnsStatus::Ok);
    DnsMsg other_class;  // class CH: not checked, not used
    other_class.an.push_back({ptr(kQnameOff), kTypeA, 300, Bytes{1, 2, 3}, 3});
    EXPECT_EQ(Parsed(other_class.bytes()).st, DnsStatus::Ok);
}

TEST(DnsParse, RdlengthPastTheEndIsTruncated) {
    DnsMsg m;
    m.an.push_back(rr_a(ptr(kQnameOff), v4(192, 0, 2, 1)));
    m.an[0].rdlength = 40;
    EXPECT_EQ(Parsed(m.bytes()).st, DnsStatus::Truncated);
}

// ---- robustness
// ----------------------------------------------------------------------------------

TEST(DnsParse, EveryPrefixOfAValidResponse) {
    const DnsMsg m = chain_msg();
    const Bytes full = m.bytes();
    Parsed whole(full);
    ASSERT_EQ(whole.st, DnsStatus::Ok);
    ASSERT_EQ(whole->addr_count, 1);
    const size_t answers_end = m.answers_end();
    ASSERT_LT(answers_end, full.size());
    for (size_t n = 0; n < full.size(); ++n) {
        Parsed p(Bytes(full.begin(), full.begin() + n));
        if (n < answers_end) {
            EXPECT_NE(p.st, DnsStatus::Ok) << "prefix " << n;
            EXPECT_TRUE(p.st == DnsStatus::Truncated) << "prefix " << n << ": " << to_string(p.st);
        } else {
            // The authority and additional sections are never read: same answer as the whole.
            ASSERT_EQ(p.st, DnsStatus::Ok) << "prefix " << n;
            EXPECT_EQ(cnames_of(*p.r), cnames_of(*whole.r));
            EXPECT_EQ(addrs_of(*p.r), addrs_of(*whole.r));
            EXPECT_EQ(p->min_ttl, whole->min_ttl);
        }
    }
}

TEST(DnsParse, SingleByteMutationsNeverBreakTheInvariants) {
    const Bytes full = chain_msg().bytes();
    std::set<DnsStatus> seen;
    for (size_t i = 0; i < full.size(); ++i) {
        for (uint8_t v : {uint8_t(0x00), uint8_t(0xff), uint8_t(0xc0), uint8_t(0x3f), uint8_t(0x41),
                          uint8_t(full[i] ^ 0x20), uint8_t(full[i] + 1)}) {
            Bytes b = full;
            b[i] = v;
            Parsed p(b);
            seen.insert(p.st);
            if (p.st == DnsStatus::Ok) {
                EXPECT_EQ(check_dns_response(*p.r), nullptr) << i;
            }
        }
    }
    // The mutations reach the parser's checks, not only its happy path.
    EXPECT_TRUE(seen.count(DnsStatus::Ok));
    EXPECT_TRUE(seen.count(DnsStatus::BadPointer));
    EXPECT_TRUE(seen.count(DnsStatus::Truncated));
    EXPECT_TRUE(seen.count(DnsStatus::LabelTooLong));
}

TEST(DnsParse, ResultDoesNotDependOnTheOutputsPreviousContents) {
    const Bytes b = chain_msg().bytes();
    Parsed clean(b);
    auto dirty = std::make_unique<DnsResponse>();
    std::memset(static_cast<void *>(dirty.get()), 0x5a, sizeof *dirty);
    ASSERT_EQ(parse_exact(b, *dirty), DnsStatus::Ok);
    EXPECT_EQ(cnames_of(*dirty), cnames_of(*clean.r));
    EXPECT_EQ(addrs_of(*dirty), addrs_of(*clean.r));
    EXPECT_EQ(dirty->truncated_list, false);
    EXPECT_EQ(check_dns_response(*dirty), nullptr);
}

// ---- TCP
// -----------------------------------------------------------------------------------------

TEST(DnsTcp, LengthPrefix) {
    DnsMsg m;
    m.an.push_back(rr_a(ptr(kQnameOff), v4(192, 0, 2, 1)));
    const Bytes msg = m.bytes();
    Bytes seg;
    push16(seg, static_cast<uint16_t>(msg.size()));
    seg = seg + msg;

    std::span<const uint8_t> out;
    ASSERT_EQ(dns_from_tcp_payload(seg, out), DnsStatus::Ok);
    EXPECT_EQ(out.data(), seg.data() + 2);
    EXPECT_EQ(out.size(), msg.size());
    Parsed p(Bytes(out.begin(), out.end()));
    ASSERT_EQ(p.st, DnsStatus::Ok);
    EXPECT_EQ(addrs_of(*p.r), std::vector<std::string>{"192.0.2.1"});

    // Every shorter payload is incomplete, including an empty one and a lone length byte.
    for (size_t n = 0; n < seg.size(); ++n) {
        std::span<const uint8_t> part;
        EXPECT_EQ(dns_from_tcp_payload(std::span<const uint8_t>(seg.data(), n), part),
                  DnsStatus::Incomplete)
            << n;
    }

    // Two messages in one segment: the first is returned, the rest reported.
    Bytes two = seg + seg;
    std::span<const uint8_t> first;
    EXPECT_EQ(dns_from_tcp_payload(two, first), DnsStatus::TrailingData);
    EXPECT_EQ(first.data(), two.data() + 2);
    EXPECT_EQ(first.size(), msg.size());

    // A zero length prefix is a complete (empty, hence truncated) message.
    const Bytes empty = {0, 0};
    std::span<const uint8_t> none;
    ASSERT_EQ(dns_from_tcp_payload(empty, none), DnsStatus::Ok);
    EXPECT_EQ(none.size(), 0u);
    EXPECT_EQ(Parsed(Bytes{}).st, DnsStatus::Truncated);
}

// ---- names of statuses, the seed corpus
// ----------------------------------------------------------

TEST(DnsStatusName, NamesEveryStatusDistinctly) {
    std::set<std::string> names;
    for (size_t i = 0; i < static_cast<size_t>(DnsStatus::Count); ++i) {
        const std::string n = to_string(static_cast<DnsStatus>(i));
        EXPECT_NE(n, "unknown") << i;
        names.insert(n);
    }
    EXPECT_EQ(names.size(), static_cast<size_t>(DnsStatus::Count));
    EXPECT_STREQ(to_string(DnsStatus::Ok), "ok");
    EXPECT_STREQ(to_string(DnsStatus::BadPointer), "bad-pointer");
}

// The fuzz target's seeds are what their names say: "bad_*" rejected, the others accepted (as a
// UDP payload, or as TCP when named "tcp_*"). The corpus also holds what fuzzing campaigns kept,
// named by their SHA-1 (docs/fuzzing.md): arbitrary inputs, not seeds, skipped here.
TEST(DnsCorpus, SeedsParseAsNamed) {
    size_t seeds = 0;
    for (const auto &e : std::filesystem::directory_iterator(SEGWIRE_DNS_CORPUS_DIR)) {
        const std::string name = e.path().filename().string();
        if (name.size() == 40 && name.find_first_not_of("0123456789abcdef") == std::string::npos)
            continue;
        std::ifstream in(e.path(), std::ios::binary);
        Bytes b((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        if (name.starts_with("tcp_")) {
            std::span<const uint8_t> msg;
            ASSERT_EQ(dns_from_tcp_payload(b, msg), DnsStatus::Ok) << name;
            b.assign(msg.begin(), msg.end());
        }
        Parsed p(b);
        if (name.starts_with("bad_")) {
            EXPECT_NE(p.st, DnsStatus::Ok) << name;
        } else {
            EXPECT_EQ(p.st, DnsStatus::Ok) << name;
        }
        ++seeds;
    }
    EXPECT_GE(seeds, 18u);
}

}  // namespace
