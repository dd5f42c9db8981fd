// Micro-benchmarks for the identity crypto (docs/protocol.md §10 has the figures and the command).
// Run: ./build/tests/bench/crypto/bench_crypto --benchmark_min_time=0.2
#include <benchmark/benchmark.h>

#include <ctime>
#include <vector>

#include "crypto/claims.hpp"
#include "crypto/hmac.hpp"
#include "crypto/keys.hpp"
#include "crypto/nonce.hpp"
#include "crypto/pki.hpp"
#include "crypto/verifier.hpp"
#include "crypto/wire.hpp"

using namespace segwire::crypto;

namespace {

struct Pki {
    CertAuthority ca;
    PKeyPtr key;
    X509Ptr cert;
    Digest ref{};
    std::unique_ptr<PeerCertStore> certs;
    Claims claims;
    std::vector<uint8_t> blob;

    Pki() {
        ca = std::move(create_ca("bench CA", std::chrono::hours(24)).value());
        key = std::move(generate_p256_key().value());
        auto csr = create_csr(key.get(), "enforcer-bench");
        cert = std::move(sign_enforcer_csr(ca, csr->get()).value());
        ref = *cert_ref(cert.get());
        TrustStore ts;
        (void)ts.add_ca(ca.cert.get());
        certs = std::make_unique<PeerCertStore>(std::move(ts));
        (void)certs->add(cert.get(), std::time(nullptr));
        uint32_t now = static_cast<uint32_t>(std::time(nullptr));
        claims.pu_id = "5f3a9c0e1b2d4a6f8e7c9b0a";
        claims.enforcer_id = "enforcer-bench";
        claims.tags = {"app=web", "env=prod", "$namespace=/acme/prod", "team=payments"};
        claims.cert_ref = ref;
        claims.issued_at = now;
        claims.expires_at = now + 900;
        blob = *sign_claims(claims, key.get());
    }
};

Pki &pki() {
    static Pki p;
    return p;
}

void BM_ClaimsSign(benchmark::State &st) {
    auto &p = pki();
    for (auto _ : st) benchmark::DoNotOptimize(sign_claims(p.claims, p.key.get()));
    st.SetItemsProcessed(st.iterations());
}
BENCHMARK(BM_ClaimsSign);

void BM_ClaimsVerifyFull(benchmark::State &st) {
    auto &p = pki();
    ClaimsVerifier ver(*p.certs);
    VerifiedClaims vc;
    uint32_t now = static_cast<uint32_t>(std::time(nullptr));
    for (auto _ : st) {
        if (ver.verify(p.blob, now, vc) != ClaimsReason::Ok) st.SkipWithError("verify failed");
    }
    st.SetItemsProcessed(st.iterations());
}
BENCHMARK(BM_ClaimsVerifyFull);

// Steady state for a known blob: SHA-256 of the blob + cache lookup, no public-key operation.
void BM_ClaimsCacheHit(benchmark::State &st) {
    auto &p = pki();
    ClaimsCache cache(4096);
    uint32_t now = static_cast<uint32_t>(std::time(nullptr));
    ClaimsVerifier ver(*p.certs);
    VerifiedClaims vc;
    (void)ver.verify(p.blob, now, vc);
    cache.insert(vc.hash(), vc.expires_at(), now) = vc;
    for (auto _ : st) {
        Digest h = sha256(p.blob);
        benchmark::DoNotOptimize(cache.find(h, now));
    }
    st.SetItemsProcessed(st.iterations());
}
BENCHMARK(BM_ClaimsCacheHit);

void BM_ClaimsDecode(benchmark::State &st) {
    auto &p = pki();
    ClaimsView v;
    for (auto _ : st) {
        benchmark::DoNotOptimize(decode_claims(p.blob, v));
        benchmark::ClobberMemory();
    }
    st.SetItemsProcessed(st.iterations());
    st.counters["blob_bytes"] = static_cast<double>(p.blob.size());
}
BENCHMARK(BM_ClaimsDecode);

void BM_X25519DeriveRawKey(benchmark::State &st) {
    auto a = X25519KeyPair::generate(), b = X25519KeyPair::generate();
    for (auto _ : st) benchmark::DoNotOptimize(x25519(a->priv, b->pub));
    st.SetItemsProcessed(st.iterations());
}
BENCHMARK(BM_X25519DeriveRawKey);

void BM_X25519Derive(benchmark::State &st) {
    auto a = X25519KeyPair::generate(), b = X25519KeyPair::generate();
    for (auto _ : st) benchmark::DoNotOptimize(x25519(a->pkey.get(), b->pub));
    st.SetItemsProcessed(st.iterations());
}
BENCHMARK(BM_X25519Derive);

void BM_X25519Keygen(benchmark::State &st) {
    for (auto _ : st) benchmark::DoNotOptimize(X25519KeyPair::generate());
    st.SetItemsProcessed(st.iterations());
}
BENCHMARK(BM_X25519Keygen);

// New peer pair: X25519 + HKDF + HMAC key expansion (the slow-path cost of a session-key miss).
void BM_SessionKeyMiss(benchmark::State &st) {
    auto a = X25519KeyPair::generate(), b = X25519KeyPair::generate();
    for (auto _ : st) {
        auto s = x25519(a->pkey.get(), b->pub);
        auto k = derive_session_key(*s, a->pub, b->pub);
        HmacKey hk(*k);
        benchmark::DoNotOptimize(hk);
    }
    st.SetItemsProcessed(st.iterations());
}
BENCHMARK(BM_SessionKeyMiss);

// HMAC-SHA256 over `range(0)`-byte messages, 128-byte tags truncated to 16, `range(1)` messages
// per call. items/s = messages/s.
void hmac_bench(benchmark::State &st, HmacBackend backend) {
    const size_t len = static_cast<size_t>(st.range(0));
    const size_t burst = static_cast<size_t>(st.range(1));
    HmacBatch batch(backend);
    if (batch.backend() != backend) {
        st.SkipWithError(batch.backend_note().c_str());
        return;
    }
    batch.set_min_burst(1);  // measure the library itself, also for tiny bursts
    std::vector<HmacKey> keys(burst);
    std::vector<std::vector<uint8_t>> msgs(burst, std::vector<uint8_t>(len));
    std::vector<std::array<uint8_t, 16>> out(burst);
    std::vector<HmacJob> jobs(burst);
    for (size_t i = 0; i < burst; ++i) {
        std::array<uint8_t, 32> k{};
        k[0] = static_cast<uint8_t>(i);
        keys[i].set(k);
        for (size_t j = 0; j < len; ++j) msgs[i][j] = static_cast<uint8_t>(i + j);
        jobs[i] = HmacJob{&keys[i], msgs[i].data(), static_cast<uint32_t>(len), out[i].data(), 16};
    }
    for (auto _ : st) {
        if (burst == 1) {
            // "One at a time": a separate call per message, as a per-packet implementation would.
            for (size_t i = 0; i < 32; ++i) batch.compute({&jobs[0], 1});
        } else {
            batch.compute(jobs);
        }
        benchmark::ClobberMemory();
    }
    st.SetItemsProcessed(st.iterations() * (burst == 1 ? 32 : burst));
}

void BM_HmacIpsecMb(benchmark::State &st) {
    hmac_bench(st, HmacBackend::IpsecMb);
}
void BM_HmacOpenSsl(benchmark::State &st) {
    hmac_bench(st, HmacBackend::OpenSsl);
}
// What the dataplane gets by default: library for bursts >= min_burst, portable below.
void BM_HmacAuto(benchmark::State &st) {
    const size_t len = static_cast<size_t>(st.range(0)), burst = static_cast<size_t>(st.range(1));
    HmacBatch batch;
    const HmacKey zero_key(std::array<uint8_t, 32>{});
    std::vector<HmacKey> keys(burst, zero_key);
    std::vector<uint8_t> msg(len, 1);
    std::vector<std::array<uint8_t, 16>> out(burst);
    std::vector<HmacJob> jobs(burst);
    for (size_t i = 0; i < burst; ++i)
        jobs[i] = HmacJob{&keys[i], msg.data(), static_cast<uint32_t>(len), out[i].data(), 16};
    for (auto _ : st) {
        batch.compute(jobs);
        benchmark::ClobberMemory();
    }
    st.SetItemsProcessed(st.iterations() * burst);
    st.SetLabel(to_string(batch.backend()));
}
BENCHMARK(BM_HmacAuto)->ArgsProduct({{144}, {2, 8, 32}});
BENCHMARK(BM_HmacIpsecMb)->ArgsProduct({{64, 144, 256}, {1, 2, 4, 8, 16, 32, 128}});
BENCHMARK(BM_HmacOpenSsl)->ArgsProduct({{64, 144, 256}, {1, 32}});

// OpenSSL's high-level one-shot HMAC (what a naive implementation would call per packet).
void BM_HmacOpenSslEvpOneShot(benchmark::State &st) {
    std::vector<uint8_t> key(32, 1), msg(static_cast<size_t>(st.range(0)), 2);
    for (auto _ : st) benchmark::DoNotOptimize(hmac_sha256(key, msg));
    st.SetItemsProcessed(st.iterations());
}
BENCHMARK(BM_HmacOpenSslEvpOneShot)->Arg(64)->Arg(256);

void BM_NonceNext(benchmark::State &st) {
    NonceSource ns;
    std::array<uint8_t, 16> n;
    for (auto _ : st) {
        ns.next(n);
        benchmark::DoNotOptimize(n);
    }
    st.SetItemsProcessed(st.iterations());
}
BENCHMARK(BM_NonceNext);

void BM_TokenEncodeSyn(benchmark::State &st) {
    auto &p = pki();
    std::array<uint8_t, 16> nonce{};
    std::vector<uint8_t> out(wire::kMaxTokenLen);
    for (auto _ : st) {
        benchmark::DoNotOptimize(wire::write_token(out, wire::MsgType::Syn, nonce, p.blob));
        benchmark::ClobberMemory();
    }
    st.SetItemsProcessed(st.iterations());
}
BENCHMARK(BM_TokenEncodeSyn);

void BM_TokenDecodeSyn(benchmark::State &st) {
    auto &p = pki();
    std::array<uint8_t, 16> nonce{};
    std::vector<uint8_t> tok(wire::token_len(wire::MsgType::Syn, p.blob.size()));
    wire::write_token(tok, wire::MsgType::Syn, nonce, p.blob);
    wire::TokenView t;
    for (auto _ : st) {
        benchmark::DoNotOptimize(wire::parse_token(tok, t));
        benchmark::ClobberMemory();
    }
    st.SetItemsProcessed(st.iterations());
}
BENCHMARK(BM_TokenDecodeSyn);

void BM_TcpOptionAddFindStrip(benchmark::State &st) {
    const uint8_t syn[20] = {2, 4, 5, 0xb4, 4, 2, 8, 10, 1, 2, 3, 4, 0, 0, 0, 0, 1, 3, 3, 7};
    uint8_t marker[wire::kMarkerOptLen], out[40], back[40];
    wire::write_tcp_option(marker, wire::MsgType::Syn);
    wire::TcpOptionView v;
    for (auto _ : st) {
        auto e = wire::add_tcp_option(syn, marker, out, true);
        benchmark::DoNotOptimize(wire::find_tcp_option(std::span(out, e.length), v));
        benchmark::DoNotOptimize(wire::strip_tcp_option(std::span(out, e.length), back));
    }
    st.SetItemsProcessed(st.iterations());
}
BENCHMARK(BM_TcpOptionAddFindStrip);

void BM_UdpSurplusWriteParse(benchmark::State &st) {
    auto &p = pki();
    std::array<uint8_t, 16> nonce{};
    std::vector<uint8_t> tok(wire::token_len(wire::MsgType::Syn, p.blob.size()));
    wire::write_token(tok, wire::MsgType::Syn, nonce, p.blob);
    std::vector<uint8_t> s(wire::udp_surplus_len(tok.size(), false));
    std::span<const uint8_t> body;
    for (auto _ : st) {
        wire::write_udp_surplus(s, false, tok);
        benchmark::DoNotOptimize(wire::parse_udp_surplus(s, false, false, body));
    }
    st.SetItemsProcessed(st.iterations());
}
BENCHMARK(BM_UdpSurplusWriteParse);

// Server side of one steady-state handshake: MAC inputs + both MACs for 32 handshakes per call.
void BM_HandshakeMacs32(benchmark::State &st) {
    HmacBatch batch;
    const HmacKey key(std::array<uint8_t, 32>{});
    const uint8_t c[4] = {10, 0, 0, 1}, s[4] = {10, 0, 1, 2};
    std::array<uint8_t, 16> nc{}, ns{};
    Digest hc{}, hs{};
    std::vector<wire::HandshakeMacs> m(32);
    std::vector<HmacJob> jobs(64);
    for (auto _ : st) {
        for (size_t i = 0; i < 32; ++i) {
            auto f = wire::FlowBinding::ipv4(6, c, static_cast<uint16_t>(40000 + i), s, 443);
            m[i].prepare(key, f, {nc, ns, &hc, &hs}, &jobs[2 * i]);
        }
        batch.compute(jobs);
        benchmark::ClobberMemory();
    }
    st.SetItemsProcessed(st.iterations() * 32);
    st.SetLabel(to_string(batch.backend()));
}
BENCHMARK(BM_HandshakeMacs32);

}  // namespace

BENCHMARK_MAIN();
