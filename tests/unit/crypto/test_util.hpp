// Shared helpers for the crypto unit tests: hex, and a small PKI (Console CA + enforcers).
#pragma once

#include <gtest/gtest.h>

#include <ctime>
#include <fstream>
#include <map>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include "crypto/claims.hpp"
#include "crypto/keys.hpp"
#include "crypto/pki.hpp"
#include "crypto/verifier.hpp"

namespace segwire::crypto::test {

inline std::vector<uint8_t> unhex(std::string_view h) {
    std::vector<uint8_t> out;
    auto nib = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    int hi = -1;
    for (char c : h) {
        int v = nib(c);
        if (v < 0) continue;  // allow spaces/newlines in vectors
        if (hi < 0) {
            hi = v;
        } else {
            out.push_back(static_cast<uint8_t>(hi << 4 | v));
            hi = -1;
        }
    }
    return out;
}

template <class C>
std::string hex(const C &bytes) {
    static const char *d = "0123456789abcdef";
    std::string s;
    for (uint8_t b : bytes) {
        s += d[b >> 4];
        s += d[b & 15];
    }
    return s;
}

// A vectors file: one "key hexvalue" pair per line.
inline std::map<std::string, std::string> read_kv(const std::string &path) {
    std::map<std::string, std::string> kv;
    std::ifstream in(path);
    std::string k, v;
    while (in >> k >> v) kv[k] = v;
    return kv;
}

// A fixed-size view of a vector that must hold exactly N bytes.
template <size_t N>
std::span<const uint8_t, N> fixed(const std::vector<uint8_t> &v) {
    EXPECT_EQ(v.size(), N);
    return std::span<const uint8_t, N>(v.data(), N);
}

// A document that prints vectors as "key (N bytes)" followed by the hex value (wrapped over lines
// as it likes) must quote every pair of `kv` exactly; one failure per missing or different key.
inline void expect_document_quotes(const std::string &doc_path,
                                   const std::map<std::string, std::string> &kv) {
    std::ifstream in(doc_path);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string flat;
    for (char c : ss.str())
        if (c != '\n') flat += c;
    ASSERT_FALSE(flat.empty()) << "cannot read " << doc_path;
    for (const auto &[k, v] : kv)
        EXPECT_NE(flat.find(k + " (" + std::to_string(v.size() / 2) + " bytes)" + v),
                  std::string::npos)
            << k << " missing or different in " << doc_path;
}

inline uint32_t now32() {
    return static_cast<uint32_t>(std::time(nullptr));
}

struct Enforcer {
    std::string id;
    PKeyPtr key;
    X509Ptr cert;
    Digest ref{};
};

inline CertAuthority make_ca(const char *name = "segwire test CA") {
    auto ca = create_ca(name, std::chrono::hours(24 * 365));
    EXPECT_TRUE(ca.ok()) << (ca.ok() ? "" : ca.error().what());
    return std::move(ca.value());
}

inline Enforcer make_enforcer(const CertAuthority &ca, const std::string &id,
                              IssueOptions opt = {}) {
    Enforcer e;
    e.id = id;
    auto key = generate_p256_key();
    EXPECT_TRUE(key.ok());
    e.key = std::move(key.value());
    auto csr = create_csr(e.key.get(), id);
    EXPECT_TRUE(csr.ok());
    auto cert = sign_enforcer_csr(ca, csr->get(), opt);
    EXPECT_TRUE(cert.ok()) << (cert.ok() ? "" : cert.error().what());
    e.cert = std::move(cert.value());
    e.ref = *cert_ref(e.cert.get());
    return e;
}

inline Claims sample_claims(const Enforcer &e, uint32_t now) {
    Claims c;
    c.pu_id = "5f3a9c0e1b2d4a6f8e7c9b0a";
    c.enforcer_id = e.id;
    c.tags = {"app=web", "env=prod", "$namespace=/acme/prod", "team=payments"};
    c.cert_ref = e.ref;
    c.issued_at = now - 10;
    c.expires_at = now + 600;
    for (size_t i = 0; i < 32; ++i) c.ephemeral_pub[i] = static_cast<uint8_t>(i + 1);
    return c;
}

}  // namespace segwire::crypto::test
