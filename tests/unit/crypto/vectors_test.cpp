// Checks the v1 test vectors of docs/protocol.md §9: the signed claims in vectors/claims_v1.txt
// verify against vectors/*.pem, and every derived value (hashes, X25519, session key, MAC inputs,
// MACs under both HMAC back-ends, TCP options, tokens, UDP surplus with OCS) equals the value in
// vectors/handshake_v1.txt. Regenerate handshake_v1.txt with SEGWIRE_WRITE_VECTORS=1 only when
// the protocol version changes.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

#include "crypto/keys.hpp"
#include "crypto/verifier.hpp"
#include "crypto/wire.hpp"
#include "tests/unit/crypto/test_util.hpp"
#include "tests/unit/crypto/vectors_common.hpp"

namespace segwire::crypto {
namespace {

using namespace vectors;
using namespace wire;
using test::fixed;
using test::hex;
using test::read_kv;
using test::unhex;

std::string slurp(const std::string &path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// Everything the document lists, computed from the fixed inputs and the two signed blobs.
std::vector<std::pair<std::string, std::string>> derive(const std::vector<uint8_t> &cblob,
                                                        const std::vector<uint8_t> &sblob,
                                                        HmacBackend backend) {
    std::vector<std::pair<std::string, std::string>> out;
    auto put = [&](const char *k, const std::string &v) { out.emplace_back(k, v); };
    auto cpriv = unhex(kClientEphPriv), spriv = unhex(kServerEphPriv);
    auto ckp = X25519KeyPair::from_private(fixed<32>(cpriv));
    auto skp = X25519KeyPair::from_private(fixed<32>(spriv));
    put("client_eph_pub", hex(ckp->pub));
    put("server_eph_pub", hex(skp->pub));
    auto shared = x25519(fixed<32>(cpriv), skp->pub);
    auto shared2 = x25519(fixed<32>(spriv), ckp->pub);
    EXPECT_EQ(*shared, *shared2);
    put("x25519_shared", hex(*shared));
    Digest hc = sha256(cblob), hs = sha256(sblob);
    put("client_claims_hash", hex(hc));
    put("server_claims_hash", hex(hs));
    auto k = derive_session_key(*shared, ckp->pub, skp->pub);
    put("session_key", hex(*k));

    auto nc = unhex(kClientNonce), ns = unhex(kServerNonce);
    FlowBinding flow = FlowBinding::ipv4(6, kClientIp, 40000, kServerIp, 443);
    HandshakeInputs in{fixed<16>(nc), fixed<16>(ns), &hc, &hs};
    const HmacKey key(*k);
    HandshakeMacs m;
    HmacJob jobs[2];
    m.prepare(key, flow, in, jobs);
    HmacBatch batch(backend);
    EXPECT_TRUE(batch.compute(jobs));
    put("tcp_synack_mac_input", hex(m.synack_input));
    put("tcp_ack_mac_input", hex(m.ack_input));
    put("tcp_synack_mac", hex(m.synack_mac));
    put("tcp_ack_mac", hex(std::span(m.ack_mac(), kMacLen)));
    put("tcp_confirm_mac", hex(std::span(m.confirm_mac(), kMacLen)));

    // The same handshake over IPv6 [fd00::1]:40000 -> [fd00::2]:443.
    const uint8_t c6[16] = {0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    const uint8_t s6[16] = {0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
    HandshakeMacs m6;
    m6.prepare(key, FlowBinding::ipv6(6, c6, 40000, s6, 443), in, jobs);
    EXPECT_TRUE(batch.compute(jobs));
    put("tcp6_synack_mac_input", hex(m6.synack_input));
    put("tcp6_synack_mac", hex(m6.synack_mac));
    put("tcp6_ack_mac", hex(std::span(m6.ack_mac(), kMacLen)));

    uint8_t opt[kAckOptLen];
    write_tcp_option(opt, MsgType::Syn);
    put("tcp_syn_option", hex(std::span(opt, kMarkerOptLen)));
    write_tcp_option(opt, MsgType::SynAck);
    put("tcp_synack_option", hex(std::span(opt, kMarkerOptLen)));
    write_tcp_option(opt, MsgType::Ack, m.ack_mac());
    put("tcp_ack_option", hex(std::span(opt, kAckOptLen)));
    write_tcp_option(opt, MsgType::Confirm, m.confirm_mac());
    put("tcp_confirm_option", hex(std::span(opt, kAckOptLen)));

    std::vector<uint8_t> syn(token_len(MsgType::Syn, cblob.size()));
    write_token(syn, MsgType::Syn, fixed<16>(nc), cblob);
    put("tcp_syn_token", hex(syn));
    std::vector<uint8_t> synack(token_len(MsgType::SynAck, sblob.size()));
    uint8_t *slot = nullptr;
    write_token(synack, MsgType::SynAck, fixed<16>(ns), sblob, &slot);
    std::memcpy(slot, m.synack_mac.data(), kMacLen);
    put("tcp_synack_token", hex(synack));

    // UDP: same claims and nonces, flow UDP 10.0.0.1:5353 -> 10.0.1.2:53; control datagrams have
    // UDP Length 8, so the surplus starts even.
    FlowBinding uflow = FlowBinding::ipv4(17, kClientIp, 5353, kServerIp, 53);
    HandshakeMacs um;
    um.prepare(key, uflow, in, jobs);
    EXPECT_TRUE(batch.compute(jobs));
    put("udp_synack_mac", hex(um.synack_mac));
    put("udp_ack_mac", hex(std::span(um.ack_mac(), kMacLen)));
    std::vector<uint8_t> s(udp_surplus_len(syn.size(), false));
    write_udp_surplus(s, false, syn);
    put("udp_syn_surplus", hex(s));
    std::memcpy(slot, um.synack_mac.data(), kMacLen);
    s.resize(udp_surplus_len(synack.size(), false));
    write_udp_surplus(s, false, synack);
    put("udp_synack_surplus", hex(s));
    uint8_t ack[kUdpAckLen];
    write_udp_ack(ack, um.ack_mac());
    s.resize(udp_surplus_len(kUdpAckLen, false));
    write_udp_surplus(s, false, ack);
    put("udp_ack_surplus", hex(s));
    uint8_t rej[kUdpRejectLen];
    write_udp_reject(rej, 1, fixed<16>(nc));
    s.resize(udp_surplus_len(kUdpRejectLen, false));
    write_udp_surplus(s, false, rej);
    put("udp_reject_surplus", hex(s));
    uint8_t rst[kUdpResetLen];
    write_udp_reset(rst, 1);
    s.resize(udp_surplus_len(kUdpResetLen, false));
    write_udp_surplus(s, false, rst);
    put("udp_reset_surplus", hex(s));
    return out;
}

class Vectors : public ::testing::Test {
  protected:
    void SetUp() override {
        auto claims = read_kv(dir_ + "/claims_v1.txt");
        cblob_ = unhex(claims["client_claims"]);
        sblob_ = unhex(claims["server_claims"]);
        ASSERT_FALSE(cblob_.empty()) << "missing " << dir_ << "/claims_v1.txt";
        ASSERT_FALSE(sblob_.empty());
    }
    std::string dir_ = SEGWIRE_VECTORS_DIR;
    std::vector<uint8_t> cblob_, sblob_;
};

TEST_F(Vectors, SignedClaimsVerifyAgainstTheVectorPki) {
    TrustStore ts;
    ASSERT_TRUE(ts.add_ca_pem(slurp(dir_ + "/ca.pem")).ok());
    PeerCertStore certs(std::move(ts));
    const uint32_t now = kIssuedAt + 1;
    ASSERT_TRUE(certs.add_pem(slurp(dir_ + "/enforcer-client.pem"), now).ok());
    ASSERT_TRUE(certs.add_pem(slurp(dir_ + "/enforcer-server.pem"), now).ok());
    ClaimsVerifier ver(certs);
    VerifiedClaims vc;
    std::string detail;
    ASSERT_EQ(ver.verify(cblob_, now, vc, &detail), ClaimsReason::Ok) << detail;
    EXPECT_EQ(vc.pu_id(), "pu-client-0001");
    ASSERT_EQ(ver.verify(sblob_, now, vc, &detail), ClaimsReason::Ok) << detail;
    EXPECT_EQ(vc.enforcer_id(), "enforcer-server");
    EXPECT_EQ(ver.verify(sblob_, kExpiresAt, vc), ClaimsReason::Expired);
}

TEST_F(Vectors, DerivedValuesMatchTheDocumentUnderBothBackends) {
    const std::string path = dir_ + "/handshake_v1.txt";
    auto mine = derive(cblob_, sblob_, HmacBackend::OpenSsl);
    if (std::getenv("SEGWIRE_WRITE_VECTORS")) {
        std::ofstream f(path);
        for (auto &[k, v] : mine) f << k << " " << v << "\n";
    }
    auto expect = read_kv(path);
    ASSERT_EQ(expect.size(), mine.size()) << path;
    for (auto backend :
         {HmacBackend::OpenSsl, HmacBackend::IpsecMb, HmacBackend::IpsecMbMultiBuffer}) {
        for (auto &[k, v] : derive(cblob_, sblob_, backend))
            EXPECT_EQ(v, expect[k]) << k << " (" << to_string(backend) << ")";
    }
}

TEST_F(Vectors, VectorPacketsParseBack) {
    auto kv = read_kv(dir_ + "/handshake_v1.txt");
    auto syn = unhex(kv["tcp_syn_token"]);
    TokenView t;
    ASSERT_EQ(parse_token(syn, t), WireStatus::Ok);
    EXPECT_TRUE(std::equal(t.claims.begin(), t.claims.end(), cblob_.begin(), cblob_.end()));
    auto synack = unhex(kv["tcp_synack_token"]);
    ASSERT_EQ(parse_token(synack, t), WireStatus::Ok);
    EXPECT_EQ(hex(std::span(t.mac, kMacLen)), kv["tcp_synack_mac"]);
    TcpOptionView o;
    auto ack = unhex(kv["tcp_ack_option"]);
    ASSERT_EQ(find_tcp_option(ack, o), WireStatus::Ok);
    EXPECT_EQ(hex(std::span(o.mac, kMacLen)), kv["tcp_ack_mac"]);
    auto confirm = unhex(kv["tcp_confirm_option"]);
    ASSERT_EQ(find_tcp_option(confirm, o), WireStatus::Ok);
    EXPECT_EQ(o.type, MsgType::Confirm);
    EXPECT_EQ(hex(std::span(o.mac, kMacLen)), kv["tcp_confirm_mac"]);
    for (const char *k : {"udp_syn_surplus", "udp_synack_surplus", "udp_ack_surplus",
                          "udp_reject_surplus", "udp_reset_surplus"}) {
        auto s = unhex(kv[k]);
        std::span<const uint8_t> body;
        ASSERT_EQ(parse_udp_surplus(s, false, false, body), WireStatus::Ok) << k;
        UdpMessageView m;
        EXPECT_EQ(parse_udp_message(body, m), WireStatus::Ok) << k;
    }
}

// docs/protocol.md §10 prints the vectors; the document must not drift from the files.
TEST_F(Vectors, ProtocolDocumentQuotesTheseVectors) {
    auto kv = read_kv(dir_ + "/handshake_v1.txt");
    auto claims = read_kv(dir_ + "/claims_v1.txt");
    kv.insert(claims.begin(), claims.end());
    test::expect_document_quotes(std::string(SEGWIRE_DOCS_DIR) + "/protocol.md", kv);
}

}  // namespace
}  // namespace segwire::crypto
