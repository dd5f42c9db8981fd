// The SHA256_* block functions are deprecated in OpenSSL 3 but are the only allocation-free way to
// resume from a saved midstate; EVP_MD_CTX_copy allocates per copy.
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include "crypto/hmac.hpp"

// Without this the header #defines SHA1, SHA256, ... and breaks <openssl/sha.h>.
#define NO_COMPAT_IMB_API_053 1
#include <intel-ipsec-mb.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include <cpuid.h>

#include <cstring>

#include "crypto/bytes.hpp"
#include "crypto/result.hpp"

namespace segwire::crypto {

namespace {

// Midstate of SHA-256 after one 64-byte block.
std::array<uint32_t, 8> one_block_state(const uint8_t (&block)[kSha256BlockLen]) noexcept {
    SHA256_CTX c;
    SHA256_Init(&c);
    SHA256_Update(&c, block, kSha256BlockLen);
    std::array<uint32_t, 8> s{};
    static_assert(sizeof(c.h) == sizeof(s));
    std::memcpy(s.data(), c.h, sizeof(s));
    OPENSSL_cleanse(&c, sizeof(c));
    return s;
}

// A SHA256_CTX resumed at `state` with one block (64 bytes) already absorbed.
void resume(SHA256_CTX &c, const std::array<uint32_t, 8> &state) noexcept {
    SHA256_Init(&c);
    std::memcpy(c.h, state.data(), sizeof(c.h));
    c.Nl = kSha256BlockLen * 8;  // bit count so far
    c.Nh = 0;
    c.num = 0;
}

// CPUID.(EAX=7,ECX=0):EBX bit 29. Not the manager's feature bits: IMB_FLAG_SHANI_OFF clears them.
bool cpu_has_shani() noexcept {
    unsigned a = 0, b = 0, c = 0, d = 0;
    return __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & (1u << 29));
}

}  // namespace

void HmacKey::set(std::span<const uint8_t> key) noexcept {
    uint8_t k[kSha256BlockLen] = {};
    if (key.size() > kSha256BlockLen) {
        Digest d = sha256(key);
        std::memcpy(k, d.data(), d.size());
    } else if (!key.empty()) {
        std::memcpy(k, key.data(), key.size());
    }
    uint8_t ipad[kSha256BlockLen], opad[kSha256BlockLen];
    for (size_t i = 0; i < kSha256BlockLen; ++i) {
        ipad[i] = k[i] ^ 0x36;
        opad[i] = k[i] ^ 0x5c;
    }
    ipad_state = one_block_state(ipad);
    opad_state = one_block_state(opad);
    OPENSSL_cleanse(k, sizeof(k));
    OPENSSL_cleanse(ipad, sizeof(ipad));
    OPENSSL_cleanse(opad, sizeof(opad));
}

const char *to_string(HmacBackend b) noexcept {
    switch (b) {
        case HmacBackend::Auto:
            return "auto";
        case HmacBackend::IpsecMb:
            return "intel-ipsec-mb";
        case HmacBackend::OpenSsl:
            return "openssl";
        case HmacBackend::IpsecMbMultiBuffer:
            return "intel-ipsec-mb-multi-buffer";
    }
    return "?";
}

void HmacBatch::compute_one_portable(const HmacJob &job) noexcept {
    SHA256_CTX c;
    uint8_t inner[kHmacSha256Len], tag[kHmacSha256Len];
    resume(c, job.key->ipad_state);
    if (job.msg_len) SHA256_Update(&c, job.msg, job.msg_len);
    SHA256_Final(inner, &c);
    resume(c, job.key->opad_state);
    SHA256_Update(&c, inner, sizeof(inner));
    SHA256_Final(tag, &c);
    std::memcpy(job.out, tag, job.tag_len);
}

struct HmacBatch::Impl {
    IMB_MGR *mgr = nullptr;
    IMB_JOB jobs[kMaxBurst];
    // ipsec-mb emits only 16- or 32-byte HMAC-SHA256 tags; other lengths land here first.
    alignas(64) uint8_t scratch[kMaxBurst][kHmacSha256Len];

    ~Impl() {
        if (mgr) free_mb_mgr(mgr);
    }
};

namespace {

bool job_valid(const HmacJob &j) noexcept {
    return j.key && j.out && j.tag_len >= 1 && j.tag_len <= kHmacSha256Len &&
           (j.msg || j.msg_len == 0);
}

// RFC 4231 test case 2, checked once at start-up against the portable path so a broken or
// mis-detected multi-buffer build can never produce wrong tags silently.
bool self_test(HmacBatch &b) noexcept {
    static const char key[] = "Jefe";
    static const char msg[] = "what do ya want for nothing?";
    const HmacKey k(as_bytes(key, 4));
    uint8_t a[32], ref[32];
    HmacJob job{&k, reinterpret_cast<const uint8_t *>(msg), 28, a, 32};
    if (!b.compute({&job, 1})) return false;
    HmacJob rj = job;
    rj.out = ref;
    HmacBatch::compute_one_portable(rj);
    static const uint8_t expect[8] = {0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e};
    return std::memcmp(a, ref, 32) == 0 && std::memcmp(a, expect, 8) == 0;
}

}  // namespace

HmacBatch::HmacBatch(HmacBackend requested) : impl_(std::make_unique<Impl>()) {
    if (requested == HmacBackend::OpenSsl) {
        backend_ = HmacBackend::OpenSsl;
        return;
    }
    const bool multi_buffer = requested == HmacBackend::IpsecMbMultiBuffer;
    impl_->mgr = alloc_mb_mgr(multi_buffer ? IMB_FLAG_SHANI_OFF : 0);
    if (!impl_->mgr) {
        note_ = "alloc_mb_mgr failed; using openssl";
        backend_ = HmacBackend::OpenSsl;
        return;
    }
    IMB_ARCH arch = IMB_ARCH_NONE;
    init_mb_mgr_auto(impl_->mgr, &arch);
    int err = imb_get_errno(impl_->mgr);
    // IMB_ARCH_NOAESNI still works for SHA but is slower than OpenSSL's SHA-NI/AVX2 code.
    if (err != 0 || arch == IMB_ARCH_NONE || arch == IMB_ARCH_NOAESNI) {
        note_ = std::string("intel-ipsec-mb unusable on this CPU (") +
                (err ? imb_get_strerror(err) : "no SIMD architecture") + "); using openssl";
        free_mb_mgr(impl_->mgr);
        impl_->mgr = nullptr;
        backend_ = HmacBackend::OpenSsl;
        return;
    }
    bool shani = !multi_buffer && (impl_->mgr->features & IMB_FEATURE_SHANI);
    // The library's SSE, AVX and AVX2 managers hash SHA-256 with SHA-NI when the CPU has it; its
    // AVX-512 manager always uses 16 SIMD lanes. Where both exist, the AVX2 manager's SHA-NI code
    // is the faster one on the hosts measured (docs/performance.md "Handshakes").
    if (shani && arch == IMB_ARCH_AVX512) {
        init_mb_mgr_avx2(impl_->mgr);
        if (imb_get_errno(impl_->mgr) != 0) {
            init_mb_mgr_auto(impl_->mgr, &arch);  // back to the 16 lanes
            shani = false;
        } else {
            arch = IMB_ARCH_AVX2;
        }
    }
    engine_ = shani                     ? "sha-ni"
              : arch == IMB_ARCH_AVX512 ? "avx512 x16"
              : arch == IMB_ARCH_AVX2   ? "avx2 x8"
              : arch == IMB_ARCH_AVX    ? "avx x4"
                                        : "sse x4";
    backend_ = requested == HmacBackend::IpsecMbMultiBuffer ? requested : HmacBackend::IpsecMb;
    if (!self_test(*this)) {  // runs with min_burst_ == 1, i.e. through the library
        note_ = "intel-ipsec-mb failed the RFC 4231 self-test; using openssl";
        free_mb_mgr(impl_->mgr);
        impl_->mgr = nullptr;
        backend_ = HmacBackend::OpenSsl;
        engine_ = "openssl";
        return;
    }
    // Below min_burst the portable path (OpenSSL, itself on SHA-NI where the CPU has it) is faster.
    min_burst_ = shani ? 2 : cpu_has_shani() ? 16 : 4;
}

HmacBatch::~HmacBatch() = default;

bool HmacBatch::compute_chunk_ipsecmb(std::span<const HmacJob> jobs) noexcept {
    uint32_t n = 0;
    for (size_t i = 0; i < jobs.size(); ++i) {
        const HmacJob &j = jobs[i];
        if (j.msg_len == 0) {
            // The library rejects zero-length HMAC jobs; the portable path gives the same answer.
            compute_one_portable(j);
            continue;
        }
        IMB_JOB *ij = &impl_->jobs[n];
        const bool direct = j.tag_len == 16 || j.tag_len == 32;
        ij->src = j.msg;
        ij->hash_start_src_offset_in_bytes = 0;
        ij->msg_len_to_hash_in_bytes = j.msg_len;
        ij->auth_tag_output = direct ? j.out : impl_->scratch[n];
        ij->auth_tag_output_len_in_bytes = direct ? j.tag_len : kHmacSha256Len;
        ij->u.HMAC._hashed_auth_key_xor_ipad =
            reinterpret_cast<const uint8_t *>(j.key->ipad_state.data());
        ij->u.HMAC._hashed_auth_key_xor_opad =
            reinterpret_cast<const uint8_t *>(j.key->opad_state.data());
        ij->hash_alg = IMB_AUTH_HMAC_SHA_256;
        ij->cipher_mode = IMB_CIPHER_NULL;
        ij->chain_order = IMB_ORDER_HASH_CIPHER;
        ij->cipher_direction = IMB_DIR_ENCRYPT;
        ij->user_data = const_cast<HmacJob *>(&j);
        ++n;
    }
    if (n == 0) return true;
    uint32_t done = IMB_SUBMIT_HASH_BURST(impl_->mgr, impl_->jobs, n, IMB_AUTH_HMAC_SHA_256);
    if (done != n || imb_get_errno(impl_->mgr) != 0) return false;
    for (uint32_t i = 0; i < n; ++i) {
        const IMB_JOB *ij = &impl_->jobs[i];
        if (ij->status != IMB_STATUS_COMPLETED) return false;
        if (ij->auth_tag_output == impl_->scratch[i]) {
            const auto *j = static_cast<const HmacJob *>(ij->user_data);
            std::memcpy(j->out, impl_->scratch[i], j->tag_len);
        }
    }
    return true;
}

bool HmacBatch::compute(std::span<const HmacJob> jobs) noexcept {
    for (const HmacJob &j : jobs)
        if (!job_valid(j)) return false;
    if (!impl_->mgr) {
        for (const HmacJob &j : jobs) compute_one_portable(j);
        return true;
    }
    bool ok = true;
    for (size_t off = 0; off < jobs.size(); off += kMaxBurst) {
        size_t n = std::min(kMaxBurst, jobs.size() - off);
        if (n < min_burst_) {
            for (const HmacJob &j : jobs.subspan(off, n)) compute_one_portable(j);
        } else {
            ok &= compute_chunk_ipsecmb(jobs.subspan(off, n));
        }
    }
    return ok;
}

std::array<uint8_t, 32> hmac_sha256(std::span<const uint8_t> key, std::span<const uint8_t> msg) {
    std::array<uint8_t, 32> out{};
    EVP_MAC *mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : nullptr;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char *>("SHA256"), 0),
        OSSL_PARAM_construct_end()};
    size_t len = 0;
    static const uint8_t empty = 0;
    if (!ctx || !EVP_MAC_init(ctx, key.empty() ? &empty : key.data(), key.size(), params) ||
        !EVP_MAC_update(ctx, msg.data(), msg.size()) ||
        !EVP_MAC_final(ctx, out.data(), &len, out.size())) {
        out.fill(0);
        ERR_clear_error();
    }
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    return out;
}

bool tag_equal(const uint8_t *a, const uint8_t *b, size_t n) noexcept {
    return CRYPTO_memcmp(a, b, n) == 0;
}

// The low-level calls, not SHA256(): in OpenSSL 3 the one-shot goes through EVP and allocates,
// and this runs per SYN on the packet path.
Digest sha256(std::span<const uint8_t> data) noexcept {
    Digest d;
    SHA256_CTX c;
    SHA256_Init(&c);
    SHA256_Update(&c, data.data(), data.size());
    SHA256_Final(d.data(), &c);
    return d;
}

}  // namespace segwire::crypto
