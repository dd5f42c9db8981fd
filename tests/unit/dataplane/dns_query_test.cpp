// What a worker reads of a DNS message (dataplane/dns/question.hpp) and the table of the queries
// its PUs await answers to (dataplane/dns/query_table.hpp): an answer matches only its own query
// (flow, ID, type, name, class) before the deadline, once. Time is whatever `now` the test passes.
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "dataplane/dns/query_table.hpp"
#include "dataplane/dns/question.hpp"
#include "tests/unit/packet/eal_env.hpp"

namespace {

using namespace segwire::dp::dns;
using Bytes = std::vector<uint8_t>;

Bytes wire_name(const std::string &dotted) {
    Bytes out;
    size_t start = 0;
    while (start < dotted.size()) {
        size_t dot = dotted.find('.', start);
        if (dot == std::string::npos) dot = dotted.size();
        out.push_back(static_cast<uint8_t>(dot - start));
        out.insert(out.end(), dotted.begin() + start, dotted.begin() + dot);
        start = dot + 1;
    }
    out.push_back(0);
    return out;
}

// A message with one question (and nothing after it: the reader never looks further).
Bytes message(uint16_t id, uint16_t flags, const Bytes &name, uint16_t qtype = 1,
              uint16_t qclass = 1, uint16_t qdcount = 1) {
    Bytes m = {uint8_t(id >> 8),
               uint8_t(id),
               uint8_t(flags >> 8),
               uint8_t(flags),
               uint8_t(qdcount >> 8),
               uint8_t(qdcount),
               0,
               1,
               0,
               0,
               0,
               0};
    m.insert(m.end(), name.begin(), name.end());
    for (uint16_t v : {qtype, qclass}) {
        m.push_back(uint8_t(v >> 8));
        m.push_back(uint8_t(v));
    }
    return m;
}

Question read(const Bytes &m, QuestionStatus want = QuestionStatus::kOk) {
    Question q;
    EXPECT_EQ(read_question(m, q), want);
    return q;
}

TEST(DnsQuestion, ReadsHeaderAndQuestion) {
    // A Question's name points into its message: the messages must outlive them.
    const Bytes answer = message(0xbeef, 0x8183 | 0x0200, wire_name("Api.Example.com"), 28);
    const Question q = read(answer);
    EXPECT_EQ(q.id, 0xbeef);
    EXPECT_TRUE(q.response);
    EXPECT_TRUE(q.truncated);
    EXPECT_EQ(q.rcode, 3);
    EXPECT_EQ(q.qtype, 28);
    EXPECT_EQ(q.qclass, 1);
    EXPECT_EQ(q.name.len, wire_name("api.example.com").size());
    const Bytes asked = message(0xbeef, 0x0100, wire_name("api.example.com"));
    const Question query = read(asked);
    EXPECT_FALSE(query.response);
    EXPECT_TRUE(same_name(q.name, query.name));  // letters without case
}

TEST(DnsQuestion, RefusesWhatTheSlowPathWouldReadOtherwise) {
    Bytes dotted = wire_name("ab.example.com");
    dotted[2] = '.';  // "a.b" as one label
    read(message(1, 0, dotted), QuestionStatus::kBadName);
    Bytes pointer = {0xc0, 0x0c};  // a compression pointer in the question
    read(message(1, 0, pointer), QuestionStatus::kBadName);
    Bytes space = wire_name("a b.com");
    read(message(1, 0, space), QuestionStatus::kBadName);
    Bytes long_label = {64};
    long_label.insert(long_label.end(), 64, 'a');
    long_label.push_back(0);
    read(message(1, 0, long_label), QuestionStatus::kBadName);
    std::string big;
    for (int i = 0; i < 4; ++i) big += std::string(63, 'a') + ".";
    big.pop_back();  // 4 labels of 63: 257 bytes on the wire
    read(message(1, 0, wire_name(big)), QuestionStatus::kBadName);
    read(message(1, 0x2800, wire_name("a.com")), QuestionStatus::kNotQuery);  // opcode 5
    read(message(1, 0, wire_name("a.com"), 1, 1, 2), QuestionStatus::kQdcount);
    Bytes m = message(1, 0, wire_name("a.com"));
    for (size_t cut = 0; cut < m.size(); ++cut)  // every prefix ends inside the header or question
        read(Bytes(m.begin(), m.begin() + cut), QuestionStatus::kShort);
}

TEST(DnsQuestion, TcpMessageStartsAfterTheLength) {
    const Bytes m = message(7, 0x8180, wire_name("a.com"));
    Bytes seg = {uint8_t(m.size() >> 8), uint8_t(m.size())};
    seg.insert(seg.end(), m.begin(), m.end());
    std::span<const uint8_t> msg;
    ASSERT_TRUE(tcp_message(seg, msg));
    EXPECT_EQ(msg.size(), m.size());
    EXPECT_EQ(read(Bytes(msg.begin(), msg.end())).id, 7);
    seg.resize(10);  // the rest in a later segment: what is there
    ASSERT_TRUE(tcp_message(seg, msg));
    EXPECT_EQ(msg.size(), 8u);
    EXPECT_FALSE(tcp_message(Bytes{0}, msg));
}

// ---- the query table

constexpr uint64_t kTimeout = 1000;
constexpr uint64_t kFlowBorn = 77;

class QueryTableTest : public ::testing::Test {
  protected:
    void SetUp() override {
        static int n = 0;
        std::string err;
        ASSERT_TRUE(t.init("dnsq_test_" + std::to_string(n++), 64, kTimeout, SOCKET_ID_ANY, err))
            << err;
    }
    QueryTable t;
    const Bytes q_msg = message(0x1234, 0x0100, wire_name("api.example.com"));
    const Bytes a_msg = message(0x1234, 0x8180, wire_name("API.example.COM"));
    const Question query = read(q_msg), answer = read(a_msg);
    const QueryKey key{5, 0x1234, 1};
};

TEST_F(QueryTableTest, AnAnswerMatchesItsQueryOnce) {
    EXPECT_EQ(t.note(key, kFlowBorn, query, 100), QueryTable::Noted::kAdded);
    EXPECT_EQ(t.size(), 1u);
    EXPECT_EQ(t.take(key, kFlowBorn, answer, 100 + kTimeout - 1), QueryTable::Match::kMatched);
    EXPECT_EQ(t.size(), 0u);
    EXPECT_EQ(t.take(key, kFlowBorn, answer, 101), QueryTable::Match::kNoQuery);  // a replay
}

TEST_F(QueryTableTest, OtherIdTypeOrFlowIsNoQuery) {
    t.note(key, kFlowBorn, query, 100);
    EXPECT_EQ(t.take({5, 0x1235, 1}, kFlowBorn, answer, 101), QueryTable::Match::kNoQuery);
    EXPECT_EQ(t.take({5, 0x1234, 28}, kFlowBorn, answer, 101), QueryTable::Match::kNoQuery);
    EXPECT_EQ(t.take({6, 0x1234, 1}, kFlowBorn, answer, 101), QueryTable::Match::kNoQuery);
    // The same slot of the flow table, a later flow: the old query is dropped.
    EXPECT_EQ(t.take(key, kFlowBorn + 1, answer, 101), QueryTable::Match::kNoQuery);
    EXPECT_EQ(t.size(), 0u);
}

TEST_F(QueryTableTest, OtherNameOrClassKeepsTheQueryForTheRealAnswer) {
    t.note(key, kFlowBorn, query, 100);
    const Bytes other = message(0x1234, 0x8180, wire_name("api.example.org"));
    EXPECT_EQ(t.take(key, kFlowBorn, read(other), 101), QueryTable::Match::kOtherQuestion);
    const Bytes chaos = message(0x1234, 0x8180, wire_name("api.example.com"), 1, 3);
    EXPECT_EQ(t.take(key, kFlowBorn, read(chaos), 101), QueryTable::Match::kOtherQuestion);
    EXPECT_EQ(t.take(key, kFlowBorn, answer, 102), QueryTable::Match::kMatched);
}

TEST_F(QueryTableTest, TheDeadlineEndsAQuery) {
    t.note(key, kFlowBorn, query, 100);
    EXPECT_EQ(t.take(key, kFlowBorn, answer, 100 + kTimeout), QueryTable::Match::kLate);
    EXPECT_EQ(t.size(), 0u);
    // Expiry forgets unanswered queries in deadline order; a repeated query starts over.
    t.note({1, 1, 1}, kFlowBorn, query, 200);
    t.note({2, 2, 1}, kFlowBorn, query, 300);
    EXPECT_EQ(t.note({1, 1, 1}, kFlowBorn, query, 400), QueryTable::Noted::kRepeated);
    EXPECT_EQ(t.expire(200 + kTimeout, 10), 0u);
    EXPECT_EQ(t.expire(300 + kTimeout, 10), 1u);  // {2,2,1}; {1,1,1} was asked again at 400
    EXPECT_EQ(t.expire(400 + kTimeout, 10), 1u);
    EXPECT_EQ(t.size(), 0u);
}

TEST_F(QueryTableTest, BoundedRefusesNewQueriesUntilOneExpires) {
    for (uint16_t i = 0; i < t.capacity(); ++i)
        ASSERT_EQ(t.note({i, i, 1}, kFlowBorn, query, 100 + i), QueryTable::Noted::kAdded);
    EXPECT_EQ(t.note({999, 1, 1}, kFlowBorn, query, 500), QueryTable::Noted::kFull);
    EXPECT_EQ(t.size(), t.capacity());
    // Once the oldest is past its deadline, a new query takes its place.
    EXPECT_EQ(t.note({999, 1, 1}, kFlowBorn, query, 100 + kTimeout), QueryTable::Noted::kAdded);
    EXPECT_EQ(t.size(), t.capacity());
    EXPECT_EQ(t.take({0, 0, 1}, kFlowBorn, answer, 100 + kTimeout), QueryTable::Match::kNoQuery);
}

}  // namespace

int main(int argc, char **argv) {
    ::testing::InitGoogleTest(&argc, argv);
    ::testing::AddGlobalTestEnvironment(new EalEnvironment);
    return RUN_ALL_TESTS();
}
