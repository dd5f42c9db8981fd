// The Console's keys and certificates in its data directory:
//   ca.pem / ca.key        Console CA (P-256, crypto::create_ca), unless --ca-cert/--ca-key given
//   server.pem / server.key TLS server certificate, reissued at every start for the listen host
//   token.key              P-256 key that signs the Console's JWTs
//   appcred-ca.pem/.key    the app-credential CA: a second CA that signs only app credentials
// Enforcer (datapath) certificates are signed by the Console CA, which is what enforcers trust
// (bundle trustedCAs). App credentials are signed by the app-credential CA, which no enforcer
// trusts, so an app credential can never pass as a datapath certificate; /issue in turn accepts
// only certificates that chain to the app-credential CA.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "crypto/pki.hpp"

namespace segwire::console {

class Db;

// A parsed certificate request whose self-signature verified (proof of possession of its key).
struct CsrInfo {
    crypto::X509ReqPtr csr;
    std::string subject_cn;  // "" when the subject has no CN
    crypto::PKeyPtr public_key;
};

class ConsolePki {
  public:
    // Loads the CA from ca_cert/ca_key when given, else from DIR (creating it on first start).
    static ConsolePki load_or_create(const std::string &data_dir, const std::string &ca_cert = "",
                                     const std::string &ca_key = "");

    const crypto::CertAuthority &ca() const { return ca_; }
    const std::string &ca_pem() const { return ca_pem_; }
    const crypto::CertAuthority &appcred_ca() const { return appcred_ca_; }
    const std::string &appcred_ca_pem() const { return appcred_ca_pem_; }

    // "" when `cert` chains to the app-credential CA (and only to it) with clientAuth, in its
    // validity; else the X.509 reason.
    std::string verify_app_certificate(X509 *cert) const;

    // Writes DIR/server.pem and DIR/server.key for `host` (SAN: host, 127.0.0.1, ::1, localhost,
    // and `extra_sans`: host names or IP addresses).
    void write_server_cert(const std::string &data_dir, const std::string &host,
                           const std::vector<std::string> &extra_sans = {}) const;

    // Parses a CSR PEM and checks its self-signature. Throws ConsoleError 422 naming `field`.
    CsrInfo parse_csr(const std::string &csr_pem, const std::string &field) const;
    // Signs a parsed CSR into a datapath certificate PEM with the Console CA
    // (crypto::sign_enforcer_csr: CN = ID, clientAuth, valid for `validity` from now; serve's
    // --cert-validity, 24 h by default). 422 naming `field` when unusable.
    // `group`: the enforcer group to bind (the credential's), "" none.
    std::string sign_csr(const CsrInfo &csr, const std::string &field,
                         std::chrono::seconds validity = std::chrono::hours(24),
                         const std::string &group = "") const;

    // The subjectAltNames a CSR requests (DNS names and IP addresses as text, in order).
    static std::vector<std::string> csr_sans(const CsrInfo &csr);
    // A TLS server certificate for an L7 service (TLSType "Aporeto", docs/l7.md): the CSR's key,
    // SANs = `names`, serverAuth, CN = the first name, signed by the Console CA; the PEM chain
    // (leaf + CA).
    std::string sign_service_csr(const CsrInfo &csr, const std::vector<std::string> &names,
                                 std::chrono::seconds validity) const;

  private:
    crypto::CertAuthority ca_, appcred_ca_;
    std::string ca_pem_, appcred_ca_pem_;
};

// DIR/token.key, created on first start. `kid` receives a short fingerprint of the public key.
crypto::PKeyPtr load_or_create_token_key(const std::string &data_dir, std::string *kid);

// "" when `name` can be a subjectAltName of the generated TLS certificate (an IP address, or a
// DNS name of letters, digits, '-', '.', and a leading "*." wildcard); else the problem.
std::string check_san(const std::string &name);

// An operator's TLS certificate: "" when `cert_file` (leaf first, then its chain) and `key_file`
// load and belong together; else the problem, naming the file.
std::string check_tls_files(const std::string &cert_file, const std::string &key_file);

// Hex SHA-256 of a certificate's DER (how appcreds are recognised on /issue).
std::string cert_fingerprint(X509 *cert);

}  // namespace segwire::console
