// Console CA and enforcer certificates (X.509, P-256). Used by segwire-console to issue
// certificates, by the enforcer to make its key + CSR, and by tests. All slow path.
//
// Profile of an enforcer certificate (what verify_enforcer_cert() insists on):
//   subject CN = enforcer ID (the claims' enforcer ID must equal it), P-256 key,
//   basicConstraints CA:FALSE (critical), keyUsage digitalSignature (critical),
//   extendedKeyUsage clientAuth (mTLS to the Console), chain to a trusted Console CA, in validity.
//   Optionally one subjectAltName URI urn:segwire:enforcer-group:NAME: the enforcer group the
//   Console CA bound (docs/scale-out.md). Every enforcer whose certificate carries group NAME
//   may sign claims for the PUs whose enforcerID is "group:NAME"; the enforcer never chooses it.
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "crypto/bytes.hpp"
#include "crypto/result.hpp"

namespace segwire::crypto {

struct EvpPkeyFree {
    void operator()(EVP_PKEY *p) const noexcept { EVP_PKEY_free(p); }
};
struct X509Free {
    void operator()(X509 *p) const noexcept { X509_free(p); }
};
struct X509ReqFree {
    void operator()(X509_REQ *p) const noexcept { X509_REQ_free(p); }
};
struct X509StoreFree {
    void operator()(X509_STORE *p) const noexcept { X509_STORE_free(p); }
};
using PKeyPtr = std::unique_ptr<EVP_PKEY, EvpPkeyFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using X509ReqPtr = std::unique_ptr<X509_REQ, X509ReqFree>;

// --- keys -------------------------------------------------------------------------------------
Result<PKeyPtr> generate_p256_key();
Result<std::string> private_key_to_pem(EVP_PKEY *key);
Result<PKeyPtr> private_key_from_pem(std::string_view pem);
Result<std::string> public_key_to_pem(EVP_PKEY *key);

// --- certificates -------------------------------------------------------------------------------
Result<std::string> cert_to_pem(X509 *cert);
Result<X509Ptr> cert_from_pem(std::string_view pem);
Result<std::vector<X509Ptr>> certs_from_pem(std::string_view pem_bundle);  // one or more
Result<std::vector<uint8_t>> cert_to_der(X509 *cert);
Result<X509Ptr> cert_from_der(std::span<const uint8_t> der);
// SHA-256 of the DER encoding: the "certificate reference" carried in claims.
Result<Digest> cert_ref(X509 *cert);
std::string cert_subject_cn(X509 *cert);

struct CertAuthority {
    PKeyPtr key;
    X509Ptr cert;
};

// A self-signed P-256 CA (CA:TRUE critical, keyCertSign|cRLSign). `not_before` defaults to now;
// tests pass explicit times to make expired or not-yet-valid chains.
Result<CertAuthority> create_ca(std::string_view common_name, std::chrono::seconds validity,
                                int64_t not_before_unix = -1);

// --- enforcer groups ---------------------------------------------------------------------------
inline constexpr std::string_view kEnforcerGroupUri = "urn:segwire:enforcer-group:";
// The prefix of a PU's enforcerID that names a group instead of one enforcer ("group:edge").
inline constexpr std::string_view kGroupHostPrefix = "group:";
// Group names: 1..64 of A-Z a-z 0-9 - _ . (like enforcer IDs).
bool valid_enforcer_group(std::string_view group);
// The group a certificate carries ("" when none). An error when it carries more than one, or a
// malformed one: the verifier refuses such certificates.
Result<std::string> cert_enforcer_group(X509 *cert);
// True when a PU whose enforcerID is `host` is hosted by the enforcer `id` of group `group`:
// host == id, or host == "group:" + group (group not empty).
inline bool hosts_pu(std::string_view host, std::string_view id, std::string_view group) noexcept {
    if (host == id) return true;
    return !group.empty() && host.size() == kGroupHostPrefix.size() + group.size() &&
           host.substr(0, kGroupHostPrefix.size()) == kGroupHostPrefix &&
           host.substr(kGroupHostPrefix.size()) == group;
}

// --- CSR ---------------------------------------------------------------------------------------
// `group` non-empty: the CSR asks for that enforcer group (a subjectAltName URI in its extension
// request). Asking grants nothing: the signer decides, and the Console refuses a CSR that asks for
// a group its credential does not bind.
Result<X509ReqPtr> create_csr(EVP_PKEY *key, std::string_view enforcer_id,
                              std::string_view group = {});
// The group a CSR asks for ("" none); an error when malformed or several.
Result<std::string> csr_enforcer_group(X509_REQ *csr);
Result<std::string> csr_to_pem(X509_REQ *csr);
// A CSR for an L7 service's TLS certificate (docs/l7-path.md): CN = the service's name, DNS SANs
// = its hosts (the Console checks them against the service's `hosts`).
Result<X509ReqPtr> create_service_csr(EVP_PKEY *key, std::string_view name,
                                      const std::vector<std::string> &hosts);
Result<X509ReqPtr> csr_from_pem(std::string_view pem);

struct IssueOptions {
    std::chrono::seconds validity{std::chrono::hours(24 * 30)};
    // -1 = now minus 5 minutes of clock-skew allowance, and notAfter = now + validity; else
    // notAfter = not_before_unix + validity.
    int64_t not_before_unix = -1;
    uint64_t serial = 0;  // 0 = random 63-bit serial
    // Tests only: issue certificates that violate the profile, to prove the verifier rejects them.
    bool omit_digital_signature = false;
    bool make_ca = false;
    // The enforcer group to bind (subjectAltName URI), "" none. Never taken from the CSR.
    std::string enforcer_group;
};

// Signs a CSR into an enforcer certificate. The CSR's own signature is checked (proof of key
// possession) and only its subject CN and public key are used; every extension comes from here.
Result<X509Ptr> sign_enforcer_csr(const CertAuthority &ca, X509_REQ *csr,
                                  const IssueOptions &opt = {});

// --- verification ------------------------------------------------------------------------------

struct EnforcerCertInfo {
    std::string enforcer_id;  // subject CN
    std::string enforcer_group;  // the group the CA bound, "" none
    Digest ref{};             // SHA-256 of DER
    int64_t not_after = 0;    // unix seconds
    PKeyPtr public_key;
};

// The Console CA bundle an enforcer trusts (profile `trustedCAs`). Immutable after loading;
// verification is const and may run on several threads (X509_STORE is read-only here).
class TrustStore {
  public:
    TrustStore();
    ~TrustStore();
    TrustStore(TrustStore &&) noexcept;
    TrustStore &operator=(TrustStore &&) noexcept;

    Status add_ca(X509 *ca);
    Status add_ca_pem(std::string_view pem_bundle);
    size_t size() const noexcept { return count_; }

    // Chain to a trusted CA at time `now_unix` (and checks the profile above). `intermediates`
    // may be empty.
    Result<EnforcerCertInfo> verify_enforcer_cert(X509 *leaf, int64_t now_unix,
                                                  std::span<X509 *const> intermediates = {}) const;

  private:
    X509_STORE *store_;
    size_t count_ = 0;
};

}  // namespace segwire::crypto
