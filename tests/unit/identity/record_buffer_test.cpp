// L4 record reassembly (dataplane/identity/record_buffer.hpp): a record cut into segments that
// arrive in any order, duplicated and overlapping, comes out whole and parses; a retransmission
// that changes a byte is a conflict and changes nothing; segments outside the window are ignored;
// sequence numbers wrap.
#include <algorithm>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "crypto/l4_wire.hpp"
#include "dataplane/identity/record_buffer.hpp"

namespace {

using segwire::dp::identity::RecordBuffer;
namespace l4 = segwire::crypto::l4;

std::vector<uint8_t> record(size_t claims_len) {
    std::vector<uint8_t> claims(claims_len), buf(l4::kMaxRecordLen);
    for (size_t i = 0; i < claims_len; ++i) claims[i] = uint8_t(i * 7 + 1);
    const uint8_t nonce[16] = {9, 8, 7};
    buf.resize(l4::write_r1(buf, std::span<const uint8_t, 16>(nonce, 16), claims));
    return buf;
}

TEST(RecordBuffer, SegmentsInAnyOrderWithDuplicatesAndOverlapsGiveTheRecord) {
    std::mt19937 rng(42);
    for (int round = 0; round < 500; ++round) {
        const std::vector<uint8_t> rec = record(1 + rng() % 512);
        // Host data follows the record in the stream.
        std::vector<uint8_t> stream = rec;
        for (int i = 0; i < 100; ++i) stream.push_back(uint8_t(rng()));
        const uint32_t first = uint32_t(rng());  // any ISN, wrap-around included
        struct Seg {
            uint32_t off, len;
        };
        std::vector<Seg> segs;
        for (uint32_t off = 0; off < stream.size();) {
            const uint32_t len = std::min<uint32_t>(1 + rng() % 120, uint32_t(stream.size()) - off);
            segs.push_back({off, len});
            // An overlapping retransmission of part of it, sometimes.
            if (rng() % 3 == 0 && off) segs.push_back({off - std::min(off, 10u), len});
            off += len;
        }
        std::shuffle(segs.begin(), segs.end(), rng);
        RecordBuffer b;
        b.reset(first);
        for (const Seg &s : segs)
            ASSERT_NE(b.add(first + s.off, {stream.data() + s.off, s.len}),
                      RecordBuffer::Add::kConflict);
        l4::RecordView v;
        ASSERT_EQ(l4::parse_record(b.bytes(), v), segwire::crypto::wire::WireStatus::Ok);
        ASSERT_EQ(v.len, rec.size());
        ASSERT_TRUE(std::equal(rec.begin(), rec.end(), b.bytes().begin()));
    }
}

TEST(RecordBuffer, AChangedRetransmissionIsAConflictAndChangesNothing) {
    const std::vector<uint8_t> rec = record(100);
    RecordBuffer b;
    b.reset(1000);
    ASSERT_EQ(b.add(1000, {rec.data(), 50}), RecordBuffer::Add::kOk);
    std::vector<uint8_t> forged(rec.begin() + 40, rec.begin() + 80);
    forged[5] ^= 1;  // byte 45, already held
    EXPECT_EQ(b.add(1040, forged), RecordBuffer::Add::kConflict);
    EXPECT_EQ(b.contiguous(), 50u);  // bytes 50..79 of the forged segment were not taken
    EXPECT_EQ(b.add(1050, {rec.data() + 50, rec.size() - 50}), RecordBuffer::Add::kOk);
    EXPECT_TRUE(std::equal(rec.begin(), rec.end(), b.bytes().begin()));
}

TEST(RecordBuffer, SegmentsOutsideTheWindowAreIgnoredAndPartsInsideTaken) {
    const std::vector<uint8_t> rec = record(20);
    RecordBuffer b;
    b.reset(0xfffffff0u);  // the stream's first byte just before the wrap
    EXPECT_EQ(b.add(0xffffffe0u, {rec.data(), 16}), RecordBuffer::Add::kOutside);  // before it
    EXPECT_EQ(b.add(uint32_t(0xfffffff0u + RecordBuffer::kCap), {rec.data(), 4}),
              RecordBuffer::Add::kOutside);  // past the largest record
    // A segment that starts 6 bytes early: its tail is the record's start.
    std::vector<uint8_t> early(6, 0xee);
    early.insert(early.end(), rec.begin(), rec.end());
    EXPECT_EQ(b.add(0xfffffff0u - 6, early), RecordBuffer::Add::kOk);
    EXPECT_EQ(b.contiguous(), rec.size());
    EXPECT_TRUE(std::equal(rec.begin(), rec.end(), b.bytes().begin()));
    // A gap stops the contiguous prefix.
    RecordBuffer g;
    g.reset(5);
    EXPECT_EQ(g.add(10, {rec.data() + 5, 10}), RecordBuffer::Add::kOk);
    EXPECT_EQ(g.contiguous(), 0u);
    EXPECT_EQ(g.add(5, {rec.data(), 5}), RecordBuffer::Add::kOk);
    EXPECT_EQ(g.contiguous(), 15u);
}

}  // namespace
