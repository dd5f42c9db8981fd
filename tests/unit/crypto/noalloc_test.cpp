// Proves the packet-path claim "no allocation": counts every operator new and every OpenSSL
// allocation (CRYPTO_set_mem_functions must be installed before OpenSSL allocates anything, hence
// a separate binary with its own main) around the hot-path calls, after a warm-up.
#include <gtest/gtest.h>
#include <openssl/crypto.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include "crypto/claims.hpp"
#include "crypto/hmac.hpp"
#include "crypto/nonce.hpp"
#include "crypto/verifier.hpp"
#include "crypto/wire.hpp"

namespace {
std::atomic<long> g_allocs{0};

void *count_malloc(size_t n, const char *, int) {
    ++g_allocs;
    return std::malloc(n);
}
void *count_realloc(void *p, size_t n, const char *, int) {
    ++g_allocs;
    return std::realloc(p, n);
}
void plain_free(void *p, const char *, int) {
    std::free(p);
}
}  // namespace

void *operator new(size_t n) {
    ++g_allocs;
    if (void *p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
void *operator new[](size_t n) {
    return operator new(n);
}
void *operator new(size_t n, std::align_val_t a) {
    ++g_allocs;
    size_t al = static_cast<size_t>(a);
    if (void *p = std::aligned_alloc(al, (n + al - 1) / al * al)) return p;
    throw std::bad_alloc();
}
void *operator new[](size_t n, std::align_val_t a) {
    return operator new(n, a);
}
void operator delete(void *p) noexcept {
    std::free(p);
}
void operator delete[](void *p) noexcept {
    std::free(p);
}
void operator delete(void *p, size_t) noexcept {
    std::free(p);
}
void operator delete[](void *p, size_t) noexcept {
    std::free(p);
}
void operator delete(void *p, std::align_val_t) noexcept {
    std::free(p);
}
void operator delete[](void *p, std::align_val_t) noexcept {
    std::free(p);
}
void operator delete(void *p, size_t, std::align_val_t) noexcept {
    std::free(p);
}
void operator delete[](void *p, size_t, std::align_val_t) noexcept {
    std::free(p);
}

namespace segwire::crypto {
namespace {

using namespace wire;

template <class F>
long allocations(F &&f) {
    long before = g_allocs.load();
    f();
    return g_allocs.load() - before;
}

TEST(NoAlloc, HotPathCallsNeverAllocate) {
    // Set-up (may allocate): keys, batches, caches, buffers.
    HmacBatch mb(HmacBackend::Auto), ssl(HmacBackend::OpenSsl);
    mb.set_min_burst(1);
    NonceSource nonces(256);
    ClaimsCache cache(64);
    std::array<uint8_t, 32> raw{};
    const HmacKey key(raw);
    std::vector<uint8_t> msg(144, 1), claims(200, 7), pkt(600), surplus(700);
    std::array<std::array<uint8_t, 16>, 64> out{};
    std::vector<HmacJob> jobs(64);
    for (size_t i = 0; i < jobs.size(); ++i)
        jobs[i] = HmacJob{&key, msg.data(), 144, out[i].data(), 16};
    std::array<uint8_t, 16> nonce{};
    const uint8_t c4[4] = {10, 0, 0, 1}, s4[4] = {10, 0, 1, 2};
    Digest hc{}, hs{};
    HandshakeMacs hm;
    HmacJob hj[2];
    uint8_t opts[kTcpOptionSpace], marker[kMarkerOptLen];
    const uint8_t syn_opts[20] = {2, 4, 5, 0xb4, 4, 2, 8, 10, 1, 2, 3, 4, 0, 0, 0, 0, 1, 3, 3, 7};
    ClaimsView cv;
    // Warm-up: first calls may initialise OpenSSL's per-thread DRBG etc.
    ASSERT_TRUE(mb.compute(jobs));
    ASSERT_TRUE(ssl.compute(jobs));
    ASSERT_TRUE(nonces.next(nonce));
    (void)sha256(msg);

    EXPECT_EQ(allocations([&] { ASSERT_TRUE(mb.compute(jobs)); }), 0) << to_string(mb.backend());
    EXPECT_EQ(allocations([&] { ASSERT_TRUE(ssl.compute(jobs)); }), 0);
    EXPECT_EQ(allocations([&] {
                  for (int i = 0; i < 100; ++i) ASSERT_TRUE(nonces.next(nonce));  // incl. refills
              }),
              0);
    EXPECT_EQ(allocations([&] { hc = sha256(claims); }), 0);
    EXPECT_EQ(allocations([&] { (void)tag_equal(out[0].data(), out[1].data(), 16); }), 0);
    EXPECT_EQ(allocations([&] {
                  FlowBinding f = FlowBinding::ipv4(6, c4, 40000, s4, 443);
                  hm.prepare(key, f, {nonce, nonce, &hc, &hs}, hj);
                  ASSERT_TRUE(mb.compute(hj));
              }),
              0);
    EXPECT_EQ(allocations([&] {
                  write_tcp_option(marker, MsgType::Syn);
                  auto e = add_tcp_option(syn_opts, marker, opts, true);
                  TcpOptionView v;
                  ASSERT_EQ(find_tcp_option(std::span(opts, e.length), v), WireStatus::Ok);
                  (void)strip_tcp_option(std::span(opts, e.length), opts);
              }),
              0);
    EXPECT_EQ(allocations([&] {
                  size_t n = write_token(pkt, MsgType::Syn, nonce, claims);
                  TokenView t;
                  ASSERT_EQ(parse_token(std::span(pkt).first(n), t), WireStatus::Ok);
                  size_t s = write_udp_surplus(surplus, false, std::span(pkt).first(n));
                  std::span<const uint8_t> body;
                  ASSERT_EQ(parse_udp_surplus(std::span(surplus).first(s), false, false, body),
                            WireStatus::Ok);
                  UdpMessageView m;
                  ASSERT_EQ(parse_udp_message(body, m), WireStatus::Ok);
              }),
              0);
    EXPECT_EQ(allocations([&] { (void)decode_claims(claims, cv); }), 0);
    EXPECT_EQ(allocations([&] {
                  for (uint8_t i = 0; i < 200; ++i) {
                      hc[0] = i;
                      cache.insert(hc, 100, 1);
                      (void)cache.find(hc, 2);
                  }
              }),
              0);
    // The counters work: C++ and OpenSSL allocations are both seen (EVP_MAC allocates per call,
    // which is why the packet path does not use it).
    EXPECT_GT(allocations([&] { std::vector<int> v(10); }), 0);
    EXPECT_GT(allocations([&] { (void)hmac_sha256(raw, msg); }), 0);
}

}  // namespace
}  // namespace segwire::crypto

int main(int argc, char **argv) {
    // Before anything touches OpenSSL.
    if (!CRYPTO_set_mem_functions(count_malloc, count_realloc, plain_free)) return 2;
    ::testing::InitGoogleTest(&argc, argv);
    return RUN_ALL_TESTS();
}
