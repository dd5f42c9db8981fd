// L4 mode's wire codec (crypto/l4_wire.hpp, docs/l4-mode.md): records round-trip and frame in a
// byte stream however it is cut; every malformed header is refused with its status; the MAC input
// is v1's with its own label and version plus the ISNs, and every MAC depends on both ISNs; the
// TFO cookie depends on the address, the family and the key, and the previous key still verifies.
// vectors/l4_v2.txt holds the values derived from the v1 vector inputs (SEGWIRE_WRITE_VECTORS=1
// rewrites it; only when the L4 format changes); docs/protocol.md §14.4 quotes them.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

#include "crypto/keys.hpp"
#include "crypto/l4_wire.hpp"
#include "tests/unit/crypto/test_util.hpp"
#include "tests/unit/crypto/vectors_common.hpp"

namespace segwire::crypto {
namespace {

using namespace vectors;
using test::fixed;
using test::hex;
using test::read_kv;
using test::unhex;
using wire::WireStatus;

const std::vector<uint8_t> kNonce = unhex(kClientNonce);
const std::vector<uint8_t> kNonce2 = unhex(kServerNonce);

TEST(L4Records, RoundTrip) {
    std::vector<uint8_t> claims(250, 0xab);
    std::vector<uint8_t> buf(l4::kMaxRecordLen);
    size_t n = l4::write_r1(buf, fixed<16>(kNonce), claims);
    ASSERT_EQ(n, l4::record_len(l4::RecordType::R1, 250));
    EXPECT_EQ(n, 274u);
    l4::RecordView r;
    ASSERT_EQ(l4::parse_record({buf.data(), n}, r), WireStatus::Ok);
    EXPECT_EQ(r.type, l4::RecordType::R1);
    EXPECT_EQ(r.len, n);
    EXPECT_TRUE(std::equal(r.nonce, r.nonce + 16, kNonce.begin()));
    EXPECT_EQ(r.claims.size(), 250u);
    EXPECT_EQ(r.mac, nullptr);

    uint8_t *slot = nullptr;
    n = l4::write_r2(buf, fixed<16>(kNonce2), claims, &slot);
    ASSERT_EQ(n, 290u);
    ASSERT_NE(slot, nullptr);
    std::memset(slot, 0x5a, wire::kMacLen);
    ASSERT_EQ(l4::parse_record({buf.data(), n}, r), WireStatus::Ok);
    EXPECT_EQ(r.type, l4::RecordType::R2);
    EXPECT_EQ(r.mac, slot);

    const uint8_t mac[16] = {1, 2, 3};
    n = l4::write_r3(buf, mac);
    ASSERT_EQ(n, l4::kR3Len);
    ASSERT_EQ(l4::parse_record({buf.data(), n}, r), WireStatus::Ok);
    EXPECT_EQ(r.type, l4::RecordType::R3);
    EXPECT_TRUE(std::equal(r.mac, r.mac + 16, mac));
}

TEST(L4Records, WritersRefuseWhatTheParserWould) {
    std::vector<uint8_t> buf(l4::kMaxRecordLen + 100);
    std::vector<uint8_t> none, big(wire::kMaxClaimsOnWire + 1, 1), ok(10, 1);
    EXPECT_EQ(l4::write_r1(buf, fixed<16>(kNonce), none), 0u);
    EXPECT_EQ(l4::write_r2(buf, fixed<16>(kNonce), big), 0u);
    std::vector<uint8_t> small(l4::record_len(l4::RecordType::R1, 10) - 1);
    EXPECT_EQ(l4::write_r1(small, fixed<16>(kNonce), ok), 0u);
    uint8_t tiny[l4::kR3Len - 1];
    EXPECT_EQ(l4::write_r3(tiny, kNonce.data()), 0u);
}

// A record arrives in pieces: every prefix is Truncated (with the full length once the header is
// in), the whole is Ok, and what follows it in the stream (host data) is not part of it.
TEST(L4Records, FramesInAStreamCutAnywhere) {
    std::vector<uint8_t> claims(100, 7), buf(l4::kMaxRecordLen);
    const size_t n = l4::write_r1(buf, fixed<16>(kNonce), claims);
    buf.resize(n);
    for (size_t cut = 0; cut < n; ++cut) {
        l4::RecordView r;
        size_t need = 0;
        ASSERT_EQ(l4::parse_record({buf.data(), cut}, r, &need), WireStatus::Truncated) << cut;
        EXPECT_EQ(need, cut < l4::kHeaderLen ? l4::kHeaderLen : n) << cut;
    }
    std::vector<uint8_t> stream = buf;
    stream.insert(stream.end(), {'G', 'E', 'T', ' '});
    l4::RecordView r;
    ASSERT_EQ(l4::parse_record(stream, r), WireStatus::Ok);
    EXPECT_EQ(r.len, n);
}

TEST(L4Records, MalformedHeadersAreRefusedWithTheirStatus) {
    std::vector<uint8_t> claims(40, 9), buf(l4::kMaxRecordLen);
    const size_t n = l4::write_r2(buf, fixed<16>(kNonce), claims);
    buf.resize(n);
    auto with = [&](size_t off, uint8_t v) {
        auto b = buf;
        b[off] = v;
        return b;
    };
    l4::RecordView r;
    // Host data, or a peer in another mode: not a record, from its first byte on.
    for (const auto &b : {with(0, 'G'), with(1, 0), with(2, 1), with(2, 3)})
        EXPECT_EQ(l4::parse_record(b, r), WireStatus::NotPresent);
    const std::vector<uint8_t> http = {'H'};
    EXPECT_EQ(l4::parse_record(http, r), WireStatus::NotPresent);
    EXPECT_EQ(l4::parse_record(with(3, 0x14), r), WireStatus::BadType);
    EXPECT_EQ(l4::parse_record(with(3, 0x01), r), WireStatus::BadType);
    // A length outside what the type allows; a claims length that disagrees with it.
    EXPECT_EQ(l4::parse_record(with(5, 3), r), WireStatus::BadLength);
    auto b = with(4, 0x40);
    EXPECT_EQ(l4::parse_record(b, r), WireStatus::BadLength);
    b = with(l4::kHeaderLen + 17, 41);  // claims length 41 in a record sized for 40
    EXPECT_EQ(l4::parse_record(b, r), WireStatus::BadLength);
    b = with(l4::kHeaderLen + 17, 0);
    EXPECT_EQ(l4::parse_record(b, r), WireStatus::BadClaimsLength);
    // R3 has one length.
    uint8_t r3[l4::kR3Len];
    l4::write_r3(r3, kNonce.data());
    r3[5] = l4::kR3Len + 1;
    std::vector<uint8_t> r3b(r3, r3 + l4::kR3Len);
    r3b.push_back(0);
    EXPECT_EQ(l4::parse_record(r3b, r), WireStatus::BadLength);
}

struct Fixture {
    std::vector<uint8_t> cblob, sblob;
    Digest hc{}, hs{};
    std::vector<uint8_t> nc = unhex(kClientNonce), ns = unhex(kServerNonce);
    HmacKey key{};
    Fixture() {
        auto claims = read_kv(std::string(SEGWIRE_VECTORS_DIR) + "/claims_v1.txt");
        cblob = unhex(claims["client_claims"]);
        sblob = unhex(claims["server_claims"]);
        hc = sha256(cblob), hs = sha256(sblob);
        auto cpriv = unhex(kClientEphPriv), spriv = unhex(kServerEphPriv);
        auto ckp = X25519KeyPair::from_private(fixed<32>(cpriv));
        auto skp = X25519KeyPair::from_private(fixed<32>(spriv));
        auto shared = x25519(fixed<32>(cpriv), skp->pub);
        key.set(*derive_session_key(*shared, ckp->pub, skp->pub));
    }
    wire::HandshakeInputs inputs() const { return {fixed<16>(nc), fixed<16>(ns), &hc, &hs}; }
};

TEST(L4Mac, IsV1sInputWithItsOwnLabelAndVersionAndBothIsns) {
    Fixture f;
    const auto flow = wire::FlowBinding::ipv4(6, kClientIp, 40000, kServerIp, 443);
    std::array<uint8_t, wire::kMacInputLen> v1;
    std::array<uint8_t, l4::kMacInputLen> v2;
    wire::build_mac_input(wire::MacDirection::ServerToClient, flow, f.inputs(), v1);
    l4::build_mac_input(wire::MacDirection::ServerToClient, flow, f.inputs(), 0x01020304,
                        0xa0b0c0d0, v2);
    EXPECT_EQ(std::string(v2.begin(), v2.begin() + 8), "segwire2");
    EXPECT_EQ(v2[8], 2);
    EXPECT_TRUE(std::equal(v1.begin() + 9, v1.end(), v2.begin() + 9));
    EXPECT_EQ(hex(std::span(v2.data() + wire::kMacInputLen, 8)), "01020304a0b0c0d0");
}

TEST(L4Mac, EveryMacDependsOnBothIsns) {
    Fixture f;
    const auto flow = wire::FlowBinding::ipv4(6, kClientIp, 40000, kServerIp, 443);
    HmacBatch batch(HmacBackend::OpenSsl);
    auto macs = [&](uint32_t ci, uint32_t si) {
        l4::Macs m;
        HmacJob jobs[2];
        m.prepare(f.key, flow, f.inputs(), ci, si, jobs);
        EXPECT_TRUE(batch.compute(jobs));
        return m;
    };
    const l4::Macs base = macs(1000, 2000);
    for (auto [ci, si] : {std::pair<uint32_t, uint32_t>{1001, 2000}, {1000, 2001}, {2000, 1000}}) {
        const l4::Macs o = macs(ci, si);
        EXPECT_NE(o.synack_mac, base.synack_mac) << ci << " " << si;
        EXPECT_NE(o.ack_hmac, base.ack_hmac) << ci << " " << si;
    }
}

TEST(L4Tfo, CookieDependsOnAddressFamilyAndKeyAndThePreviousKeyVerifies) {
    const std::vector<uint8_t> k1(32, 1), k2(32, 2);
    const HmacKey a(k1), b(k2);
    uint8_t addr[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1};
    const l4::TfoCookie c = l4::tfo_cookie(a, 4, addr);
    EXPECT_TRUE(l4::tfo_cookie_valid(a, nullptr, 4, addr, c));
    EXPECT_FALSE(l4::tfo_cookie_valid(b, nullptr, 4, addr, c));  // rotated out
    EXPECT_TRUE(l4::tfo_cookie_valid(b, &a, 4, addr, c));        // the previous key
    EXPECT_NE(l4::tfo_cookie(a, 6, addr), c);
    uint8_t other[16];
    std::memcpy(other, addr, 16);
    other[15] = 2;
    EXPECT_FALSE(l4::tfo_cookie_valid(a, nullptr, 4, other, c));
    EXPECT_FALSE(l4::tfo_cookie_valid(a, nullptr, 4, addr, std::span(c.data(), 4)));
    // Against the one-shot reference HMAC.
    uint8_t msg[17] = {4};
    std::memcpy(msg + 1, addr, 16);
    const auto ref = hmac_sha256(k1, msg);
    EXPECT_TRUE(std::equal(c.begin(), c.end(), ref.begin()));
}

// Everything of vectors/l4_v2.txt, from the v1 vector inputs.
std::vector<std::pair<std::string, std::string>> derive(HmacBackend backend) {
    Fixture f;
    std::vector<std::pair<std::string, std::string>> out;
    const auto flow = wire::FlowBinding::ipv4(6, kClientIp, 40000, kServerIp, 443);
    l4::Macs m;
    HmacJob jobs[2];
    m.prepare(f.key, flow, f.inputs(), 0x11223344, 0x55667788, jobs);
    HmacBatch batch(backend);
    EXPECT_TRUE(batch.compute(jobs));
    out.emplace_back("l4_client_isn", "11223344");
    out.emplace_back("l4_server_isn", "55667788");
    out.emplace_back("l4_synack_mac_input", hex(m.synack_input));
    out.emplace_back("l4_synack_mac", hex(m.synack_mac));
    out.emplace_back("l4_ack_mac", hex(std::span(m.ack_mac(), wire::kMacLen)));
    out.emplace_back("l4_confirm_mac", hex(std::span(m.confirm_mac(), wire::kMacLen)));
    std::vector<uint8_t> buf(l4::kMaxRecordLen);
    size_t n = l4::write_r1(buf, fixed<16>(f.nc), f.cblob);
    out.emplace_back("l4_r1", hex(std::span(buf.data(), n)));
    uint8_t *slot = nullptr;
    n = l4::write_r2(buf, fixed<16>(f.ns), f.sblob, &slot);
    std::memcpy(slot, m.synack_mac.data(), wire::kMacLen);
    out.emplace_back("l4_r2", hex(std::span(buf.data(), n)));
    n = l4::write_r3(buf, m.ack_mac());
    out.emplace_back("l4_r3", hex(std::span(buf.data(), n)));
    const std::vector<uint8_t> tfo_key(32, 0x42);
    uint8_t addr[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    std::memcpy(addr + 12, kClientIp, 4);
    out.emplace_back("l4_tfo_key", hex(tfo_key));
    const HmacKey tk(tfo_key);
    out.emplace_back("l4_tfo_cookie", hex(l4::tfo_cookie(tk, 4, addr)));
    return out;
}

TEST(L4Vectors, MatchTheFileUnderBothBackendsAndTheDocumentQuotesThem) {
    const std::string path = std::string(SEGWIRE_VECTORS_DIR) + "/l4_v2.txt";
    auto mine = derive(HmacBackend::OpenSsl);
    if (std::getenv("SEGWIRE_WRITE_VECTORS")) {
        std::ofstream f(path);
        for (auto &[k, v] : mine) f << k << " " << v << "\n";
    }
    auto expect = read_kv(path);
    ASSERT_EQ(expect.size(), mine.size()) << path;
    for (auto backend :
         {HmacBackend::OpenSsl, HmacBackend::IpsecMb, HmacBackend::IpsecMbMultiBuffer})
        for (auto &[k, v] : derive(backend))
            EXPECT_EQ(v, expect[k]) << k << " (" << to_string(backend) << ")";
    test::expect_document_quotes(std::string(SEGWIRE_DOCS_DIR) + "/protocol.md", expect);
}

}  // namespace
}  // namespace segwire::crypto
