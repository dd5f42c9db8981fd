// End-to-end TCP identity handshake between two enforcers, driven only through the library API the
// dataplane uses (no packets: the byte strings the enforcers would put on the wire). Proves the
// properties docs/protocol.md §7 claims: a completed handshake authorizes, and a replayed SYN, a
// modified nonce, a proof from another connection or a stripped proof never does.
#include <gtest/gtest.h>

#include "crypto/keys.hpp"
#include "crypto/nonce.hpp"
#include "crypto/verifier.hpp"
#include "crypto/wire.hpp"
#include "tests/unit/crypto/test_util.hpp"

namespace segwire::crypto {
namespace {

using namespace wire;

constexpr uint32_t kNow = 1'800'000'000;

// One enforcer: its signer, the certificates it trusts, caches and per-worker crypto state.
struct Side {
    test::Enforcer id;
    std::unique_ptr<IdentitySigner> signer;
    std::unique_ptr<PeerCertStore> certs;
    std::unique_ptr<ClaimsVerifier> verifier;
    ClaimsCache claims_cache{256};
    SessionKeyCache session_cache{256};
    HmacBatch hmac;
    NonceSource nonces;
    int slow_path_calls = 0;

    Side(const CertAuthority &ca, const std::string &name) {
        IssueOptions io;
        io.not_before_unix = kNow - 3600;
        id = test::make_enforcer(ca, name, io);
        PKeyPtr k(id.key.get());
        EVP_PKEY_up_ref(id.key.get());
        signer = std::make_unique<IdentitySigner>(std::move(k), id.ref, id.id);
        TrustStore ts;
        EXPECT_TRUE(ts.add_ca(ca.cert.get()).ok());
        certs = std::make_unique<PeerCertStore>(std::move(ts));
        verifier = std::make_unique<ClaimsVerifier>(*certs);
    }

    // Cache, else slow path (what the dataplane's slow-path thread does on a miss).
    const VerifiedClaims *peer_claims(std::span<const uint8_t> blob) {
        Digest h = sha256(blob);
        if (VerifiedClaims *c = claims_cache.find(h, kNow)) return c;
        ++slow_path_calls;
        VerifiedClaims vc;
        std::string detail;
        if (verifier->verify(blob, kNow, vc, &detail) != ClaimsReason::Ok) {
            ADD_FAILURE() << detail;
            return nullptr;
        }
        VerifiedClaims &slot = claims_cache.insert(h, vc.expires_at(), kNow);
        slot = vc;
        return &slot;
    }

    const HmacKey *session(const X25519Public &local, const X25519Public &peer, Role role) {
        const X25519Public &ec = role == Role::Client ? local : peer;
        const X25519Public &es = role == Role::Client ? peer : local;
        SessionKey key = session_cache_key(ec, es);
        if (SessionKeyEntry *e = session_cache.find(key, kNow)) return &e->key;
        ++slow_path_calls;
        auto k = signer->session_key(local, peer, role);
        EXPECT_TRUE(k.ok());
        SessionKeyEntry &e = session_cache.insert(key, kNow + 600, kNow);
        e.key.set(*k);
        return &e.key;
    }
};

struct Wire {  // what one handshake put on the wire
    std::vector<uint8_t> syn_token, synack_token;
    std::array<uint8_t, kAckOptLen> ack_option{};
};

class Handshake : public ::testing::Test {
  protected:
    Handshake() : ca_(test::make_ca()), a_(ca_, "enforcer-a"), b_(ca_, "enforcer-b") {
        EXPECT_TRUE(a_.certs->add(b_.id.cert.get(), kNow).ok());
        EXPECT_TRUE(b_.certs->add(a_.id.cert.get(), kNow).ok());
    }

    const uint8_t cip_[4] = {10, 0, 0, 1}, sip_[4] = {10, 0, 1, 2};
    FlowBinding flow(uint16_t cport = 40000) const {
        return FlowBinding::ipv4(6, cip_, cport, sip_, 443);
    }

    // A: SYN from the client PU.
    struct ClientState {
        std::array<uint8_t, 16> nc;
        std::shared_ptr<const SignedClaims> mine;
        std::array<uint8_t, kMacLen> ack_mac;
    };
    std::vector<uint8_t> client_syn(ClientState &st) {
        st.mine = *a_.signer->claims_for("pu-client", {"app=web"}, kNow);
        EXPECT_TRUE(a_.nonces.next(st.nc));
        std::vector<uint8_t> tok(token_len(MsgType::Syn, st.mine->blob.size()));
        EXPECT_EQ(write_token(tok, MsgType::Syn, st.nc, st.mine->blob), tok.size());
        return tok;
    }

    // B: SYN in -> SYN-ACK token out; returns the expected ACK proof.
    struct ServerState {
        std::array<uint8_t, 16> nc, ns;
        std::array<uint8_t, kMacLen> expected_ack;
    };
    bool server_syn(std::span<const uint8_t> syn, const FlowBinding &f, ServerState &st,
                    std::vector<uint8_t> &synack_out) {
        TokenView t;
        if (parse_token(syn, t) != WireStatus::Ok || t.type != MsgType::Syn) return false;
        const VerifiedClaims *peer = b_.peer_claims(t.claims);
        if (!peer) return false;
        std::memcpy(st.nc.data(), t.nonce, 16);
        Digest hc = sha256(t.claims);
        auto mine = *b_.signer->claims_for("pu-server", {"app=db"}, kNow);
        const HmacKey *key =
            b_.session(mine->claims.ephemeral_pub, peer->ephemeral_pub(), Role::Server);
        EXPECT_TRUE(b_.nonces.next(st.ns));
        HandshakeMacs m;
        HmacJob jobs[2];
        m.prepare(*key, f, {st.nc, st.ns, &hc, &mine->hash}, jobs);
        EXPECT_TRUE(b_.hmac.compute(jobs));
        synack_out.assign(token_len(MsgType::SynAck, mine->blob.size()), 0);
        uint8_t *slot = nullptr;
        write_token(synack_out, MsgType::SynAck, st.ns, mine->blob, &slot);
        std::memcpy(slot, m.synack_mac.data(), kMacLen);
        std::copy_n(m.ack_mac(), kMacLen, st.expected_ack.begin());
        return true;
    }

    // A: SYN-ACK in -> ACK option out (empty on failure).
    bool client_synack(std::span<const uint8_t> synack, const FlowBinding &f, ClientState &st,
                       std::array<uint8_t, kAckOptLen> &ack_option) {
        TokenView t;
        if (parse_token(synack, t) != WireStatus::Ok || t.type != MsgType::SynAck) return false;
        const VerifiedClaims *peer = a_.peer_claims(t.claims);
        if (!peer) return false;
        const HmacKey *key =
            a_.session(st.mine->claims.ephemeral_pub, peer->ephemeral_pub(), Role::Client);
        Digest hs = sha256(t.claims);
        std::array<uint8_t, 16> ns;
        std::memcpy(ns.data(), t.nonce, 16);
        HandshakeMacs m;
        HmacJob jobs[2];
        // Nc from A's own state, never from the packet.
        m.prepare(*key, f, {st.nc, ns, &st.mine->hash, &hs}, jobs);
        EXPECT_TRUE(a_.hmac.compute(jobs));
        if (!tag_equal(m.synack_mac.data(), t.mac, kMacLen)) return false;
        std::copy_n(m.ack_mac(), kMacLen, st.ack_mac.begin());
        return write_tcp_option(ack_option, MsgType::Ack, m.ack_mac()) == kAckOptLen;
    }

    // B: ACK in -> authorized?
    bool server_ack(std::span<const uint8_t> options, const ServerState &st) {
        TcpOptionView v;
        if (find_tcp_option(options, v) != WireStatus::Ok || v.type != MsgType::Ack) return false;
        return tag_equal(v.mac, st.expected_ack.data(), kMacLen);
    }

    bool full(Wire &w, const FlowBinding &f = FlowBinding{}) {
        FlowBinding fl = f.client_port ? f : flow();
        ClientState cs;
        ServerState ss;
        w.syn_token = client_syn(cs);
        return server_syn(w.syn_token, fl, ss, w.synack_token) &&
               client_synack(w.synack_token, fl, cs, w.ack_option) && server_ack(w.ack_option, ss);
    }

    CertAuthority ca_;
    Side a_, b_;
};

TEST_F(Handshake, CompletesAndSteadyStateNeedsNoPublicKeyOperation) {
    ASSERT_TRUE(a_.signer->tick(kNow).ok());
    ASSERT_TRUE(b_.signer->tick(kNow).ok());
    Wire w;
    ASSERT_TRUE(full(w));
    EXPECT_EQ(a_.slow_path_calls, 2);  // B's claims + session key
    EXPECT_EQ(b_.slow_path_calls, 2);
    const uint64_t sigs_a = a_.signer->signatures(), sigs_b = b_.signer->signatures();
    for (uint16_t port = 40001; port < 40021; ++port) {
        Wire w2;
        ASSERT_TRUE(full(w2, flow(port))) << port;
    }
    EXPECT_EQ(a_.slow_path_calls, 2) << "cached claims and session key";
    EXPECT_EQ(b_.slow_path_calls, 2);
    EXPECT_EQ(a_.signer->signatures(), sigs_a) << "no signing per connection";
    EXPECT_EQ(b_.signer->signatures(), sigs_b);
}

TEST_F(Handshake, ReplayedSynNeverAuthorizes) {
    Wire original;
    ASSERT_TRUE(full(original));
    // The attacker replays the captured SYN (same tuple) and then the captured ACK proof.
    ServerState ss;
    std::vector<uint8_t> synack;
    ASSERT_TRUE(server_syn(original.syn_token, flow(), ss, synack))
        << "B answers: the claims are valid";
    EXPECT_FALSE(server_ack(original.ack_option, ss)) << "fresh Ns: the old proof is useless";
    // Nor can a proof be made from the replayed SYN-ACK without A's ephemeral private key: any
    // 16 bytes the attacker tries fail.
    std::array<uint8_t, kAckOptLen> guess{};
    uint8_t zero[kMacLen] = {};
    write_tcp_option(guess, MsgType::Ack, zero);
    EXPECT_FALSE(server_ack(guess, ss));
}

TEST_F(Handshake, ReplayedSynAckAndForeignProofsFail) {
    Wire w1;
    ASSERT_TRUE(full(w1));
    // A's next connection gets the SYN-ACK of the previous one: MAC covers the old Nc.
    ClientState cs;
    client_syn(cs);
    std::array<uint8_t, kAckOptLen> ack;
    EXPECT_FALSE(client_synack(w1.synack_token, flow(), cs, ack));

    // A proof from connection (port 40000) presented on connection (port 40001).
    ClientState c2;
    ServerState s2;
    std::vector<uint8_t> synack2;
    auto syn2 = client_syn(c2);
    ASSERT_TRUE(server_syn(syn2, flow(40001), s2, synack2));
    EXPECT_FALSE(server_ack(w1.ack_option, s2));
}

TEST_F(Handshake, ModifiedNonceOrTupleInTransitFailsAtTheClient) {
    ClientState cs;
    ServerState ss;
    auto syn = client_syn(cs);
    syn[2] ^= 1;  // Nc, first byte
    std::vector<uint8_t> synack;
    ASSERT_TRUE(server_syn(syn, flow(), ss, synack));
    std::array<uint8_t, kAckOptLen> ack;
    EXPECT_FALSE(client_synack(synack, flow(), cs, ack)) << "the SYN nonce is bound by MAC_sa";

    ClientState c2;
    ServerState s2;
    auto syn2 = client_syn(c2);
    ASSERT_TRUE(server_syn(syn2, flow(40000), s2, synack));
    EXPECT_FALSE(client_synack(synack, flow(40002), c2, ack)) << "the tuple is bound";
}

TEST_F(Handshake, StrippedOrTamperedProofNeverAuthorizes) {
    ClientState cs;
    ServerState ss;
    std::vector<uint8_t> synack;
    auto syn = client_syn(cs);
    ASSERT_TRUE(server_syn(syn, flow(), ss, synack));
    std::array<uint8_t, kAckOptLen> ack;
    ASSERT_TRUE(client_synack(synack, flow(), cs, ack));
    auto linux_ack = test::unhex("0101080a1122334455667788");
    EXPECT_FALSE(server_ack(linux_ack, ss)) << "proof stripped";
    for (size_t i = 5; i < kAckOptLen; ++i) {
        auto t = ack;
        t[i] ^= 0x40;
        EXPECT_FALSE(server_ack(t, ss)) << i;
    }
    EXPECT_TRUE(server_ack(ack, ss));
}

TEST_F(Handshake, SessionKeySurvivesOneRotationMidHandshake) {
    ClientState cs;
    ServerState ss;
    std::vector<uint8_t> synack;
    auto syn = client_syn(cs);
    ASSERT_TRUE(server_syn(syn, flow(), ss, synack));
    ASSERT_TRUE(a_.signer->tick(kNow + 300).ok());  // A rotates between SYN and SYN-ACK
    a_.session_cache.clear();
    std::array<uint8_t, kAckOptLen> ack;
    EXPECT_TRUE(client_synack(synack, flow(), cs, ack));
    EXPECT_TRUE(server_ack(ack, ss));
}

}  // namespace
}  // namespace segwire::crypto
