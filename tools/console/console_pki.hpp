// The Console's keys and certificates in its data directory:
//   ca.pem / ca.key        Console CA (P-256, crypto::create_ca), unless --ca-cert/--ca-key given
//   server.pem / server.key TLS server certificate, reissued at every start for the listen host
//   token.key              P-256 key that signs the Console's JWTs
// Enforcer and app-credential certificates are issued with crypto::sign_enforcer_csr, so they share
// the enforcer certificate profile (CN = ID, clientAuth).
#pragma once

#include <string>

#include "crypto/pki.hpp"

namespace segwire::console {

class Db;

class ConsolePki {
  public:
    // Loads the CA from ca_cert/ca_key when given, else from DIR (creating it on first start).
    static ConsolePki load_or_create(const std::string &data_dir, const std::string &ca_cert = "",
                                     const std::string &ca_key = "");

    const crypto::CertAuthority &ca() const { return ca_; }
    const std::string &ca_pem() const { return ca_pem_; }

    // Writes DIR/server.pem and DIR/server.key for `host` (SAN: host, 127.0.0.1, ::1, localhost).
    void write_server_cert(const std::string &data_dir, const std::string &host) const;

    // Signs a CSR PEM into a certificate PEM (crypto::sign_enforcer_csr). Throws ConsoleError 422
    // naming `field` when the CSR is unusable.
    std::string sign_csr(const std::string &csr_pem, const std::string &field,
                         std::string *subject_cn) const;

  private:
    crypto::CertAuthority ca_;
    std::string ca_pem_;
};

// DIR/token.key, created on first start. `kid` receives a short fingerprint of the public key.
crypto::PKeyPtr load_or_create_token_key(const std::string &data_dir, std::string *kid);

// An app credential: a fresh key and a client certificate signed by the CA, recorded in the
// appcreds table (only recorded credentials may use the Certificate realm). Returns the credential
// JSON {ID, name, namespace, APIURL, certificate, certificateAuthority, certificateKey} with the
// PEM values base64-encoded.
std::string create_app_credential(Db &db, const ConsolePki &pki, const std::string &name,
                                  const std::string &api_url);

// Hex SHA-256 of a certificate's DER (how appcreds are recognised on /issue).
std::string cert_fingerprint(X509 *cert);

}  // namespace segwire::console
