// HMAC-SHA256 over many messages per call. Keys are pre-expanded once (ipad/opad midstates), so a
// job costs only the message blocks plus two finalisation blocks. Back-ends with identical
// output: intel-ipsec-mb's synchronous hash burst API (SHA-NI, or multi-buffer SIMD lanes) and a
// portable path on OpenSSL's SHA-256 block function. Picked at construction, never per call.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace segwire::crypto {

inline constexpr size_t kHmacSha256Len = 32;
inline constexpr size_t kSha256BlockLen = 64;

// A key expanded into the SHA-256 states after absorbing (key ^ ipad) and (key ^ opad). The same
// 32-byte midstate words serve both back-ends (intel-ipsec-mb's *_ONE_BLOCK output has the same
// layout as OpenSSL's SHA256_CTX.h, checked by a unit test).
struct alignas(64) HmacKey {
    std::array<uint32_t, 8> ipad_state{};
    std::array<uint32_t, 8> opad_state{};

    HmacKey() = default;
    explicit HmacKey(std::span<const uint8_t> key) noexcept { set(key); }

    // Expands `key` into this object. Keys longer than a block are first hashed (RFC 2104). Not
    // for the packet path (but cheap: two block compressions). In place on purpose, no factory
    // returning by value: GCC 12 gives the temporary of `x = f()` a stack slot aligned to 16, not
    // to HmacKey's 64, and in a -march=native (AVX2/AVX-512) build the callee's aligned vector
    // stores into it faulted at start-up (a caller in a DPDK file is compiled -march=corei7).
    void set(std::span<const uint8_t> key) noexcept;
};

// One message to authenticate. `msg` may be empty. `tag_len` in 1..32: the first tag_len bytes of
// the HMAC are written to `out` (truncation per RFC 2104 §5 / RFC 4868).
struct HmacJob {
    const HmacKey *key = nullptr;
    const uint8_t *msg = nullptr;
    uint32_t msg_len = 0;
    uint8_t *out = nullptr;
    uint8_t tag_len = kHmacSha256Len;
};

enum class HmacBackend : uint8_t {
    Auto,     // intel-ipsec-mb when it initialises and passes its self-test, else OpenSSL
    IpsecMb,  // force; construction falls back to OpenSSL (and says why) if unavailable
    OpenSsl,
    // intel-ipsec-mb with SHA-NI off: its widest multi-buffer code (AVX-512 16 lanes, AVX2 8, ...).
    // Auto/IpsecMb use the library's SHA-NI code where the CPU has SHA-NI, because on the AMD
    // EPYC this was measured on it is 1.2-1.4x faster per HMAC than AVX-512 16 lanes even in full
    // bursts (docs/performance.md "Handshakes"); this one keeps the other choice measurable.
    IpsecMbMultiBuffer,
};
const char *to_string(HmacBackend b) noexcept;

// One per thread (owns an IMB_MGR and a job array; not thread-safe). compute() never allocates,
// throws, locks or logs.
class HmacBatch {
  public:
    static constexpr size_t kMaxBurst = 128;  // IMB_MAX_BURST_SIZE; larger inputs are chunked

    explicit HmacBatch(HmacBackend requested = HmacBackend::Auto);
    ~HmacBatch();
    HmacBatch(const HmacBatch &) = delete;
    HmacBatch &operator=(const HmacBatch &) = delete;

    // The back-end in use (never Auto) and, when it differs from the request, why.
    HmacBackend backend() const noexcept { return backend_; }
    const std::string &backend_note() const noexcept { return note_; }
    // The code path bursts take: "sha-ni", "avx512 x16", "avx2 x8", "avx x4", "sse x4" or
    // "openssl" (for benchmarks and the start-up log).
    const char *engine() const noexcept { return engine_; }

    // Computes every job. Returns false only if a job is malformed (null key/out, tag_len 0 or >32)
    // or the library reports an error; then no output of that chunk is to be trusted.
    bool compute(std::span<const HmacJob> jobs) noexcept;

    // Chunks with fewer jobs than this go to the portable path even when the library is active: a
    // multi-buffer burst pays for all SIMD lanes, and with SHA-NI one-at-a-time hashing is faster
    // below ~16 jobs (docs/protocol.md §10). Default: 2 on the library's SHA-NI code (two lanes
    // interleaved; one job alone costs what OpenSSL's does), 16 for multi-buffer lanes on a CPU
    // with SHA-NI, 4 without SHA-NI. 1 = always burst.
    void set_min_burst(size_t n) noexcept { min_burst_ = n ? n : 1; }
    size_t min_burst() const noexcept { return min_burst_; }

    // One job on the portable path; used for odd jobs and by tests as the reference.
    static void compute_one_portable(const HmacJob &job) noexcept;

  private:
    bool compute_chunk_ipsecmb(std::span<const HmacJob> jobs) noexcept;

    struct Impl;
    std::unique_ptr<Impl> impl_;
    HmacBackend backend_ = HmacBackend::OpenSsl;
    size_t min_burst_ = 1;
    const char *engine_ = "openssl";
    std::string note_;
};

// Plain one-shot HMAC-SHA256 through OpenSSL's EVP_MAC; the independent reference in tests and the
// PRF for key derivation on the slow path.
std::array<uint8_t, 32> hmac_sha256(std::span<const uint8_t> key, std::span<const uint8_t> msg);

}  // namespace segwire::crypto
