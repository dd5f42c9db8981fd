#include "tools/console/console_pki.hpp"

#include <arpa/inet.h>
#include <openssl/x509v3.h>

#include <filesystem>

#include "tools/console/db.hpp"
#include "tools/console/error.hpp"
#include "tools/console/util.hpp"

namespace segwire::console {
namespace {

template <typename T>
T unwrap(crypto::Result<T> r, const std::string &what) {
    if (!r) throw ConsoleError(500, what + ": " + r.error().what());
    return std::move(r).value();
}

bool add_ext(X509 *cert, X509 *issuer, int nid, const std::string &value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
    if (!ext) return false;
    bool ok = X509_add_ext(cert, ext, -1) == 1;
    X509_EXTENSION_free(ext);
    return ok;
}

bool is_ip(const std::string &host) {
    unsigned char buf[16];
    return inet_pton(AF_INET, host.c_str(), buf) == 1 ||
           inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

}  // namespace

ConsolePki ConsolePki::load_or_create(const std::string &data_dir, const std::string &ca_cert,
                                      const std::string &ca_key) {
    namespace fs = std::filesystem;
    ConsolePki pki;
    std::string cert_path = ca_cert.empty() ? data_dir + "/ca.pem" : ca_cert;
    std::string key_path = ca_key.empty() ? data_dir + "/ca.key" : ca_key;
    if (ca_cert.empty() != ca_key.empty())
        throw ConsoleError(400, "--ca-cert and --ca-key go together");
    if (!fs::exists(cert_path) && ca_cert.empty()) {
        auto ca = unwrap(crypto::create_ca("segwire-console CA", std::chrono::hours(24 * 3650)),
                         "create CA");
        write_file(key_path, unwrap(crypto::private_key_to_pem(ca.key.get()), "CA key PEM"), 0600);
        write_file(cert_path, unwrap(crypto::cert_to_pem(ca.cert.get()), "CA PEM"));
    }
    pki.ca_pem_ = read_file(cert_path);
    pki.ca_.cert = unwrap(crypto::cert_from_pem(pki.ca_pem_), "CA certificate " + cert_path);
    pki.ca_.key = unwrap(crypto::private_key_from_pem(read_file(key_path)), "CA key " + key_path);
    if (X509_check_private_key(pki.ca_.cert.get(), pki.ca_.key.get()) != 1)
        throw ConsoleError(400, "CA key " + key_path + " does not match " + cert_path);
    return pki;
}

void ConsolePki::write_server_cert(const std::string &data_dir, const std::string &host) const {
    auto key = unwrap(crypto::generate_p256_key(), "server key");
    crypto::X509Ptr cert(X509_new());
    std::string san = "DNS:localhost,IP:127.0.0.1,IP:::1";
    if (host != "localhost" && host != "127.0.0.1" && host != "::1" && !host.empty())
        san += std::string(is_ip(host) ? ",IP:" : ",DNS:") + host;
    X509_NAME *name = X509_get_subject_name(cert.get());
    std::string cn = host.empty() ? "localhost" : host;
    uint64_t serial = 0;
    while (serial == 0) serial = std::stoull(random_hex(7), nullptr, 16);
    bool ok = X509_set_version(cert.get(), 2) &&
              ASN1_INTEGER_set_uint64(X509_get_serialNumber(cert.get()), serial) &&
              X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                         reinterpret_cast<const unsigned char *>(cn.c_str()), -1,
                                         -1, 0) &&
              X509_set_issuer_name(cert.get(), X509_get_subject_name(ca_.cert.get())) &&
              X509_gmtime_adj(X509_getm_notBefore(cert.get()), -300) &&
              X509_gmtime_adj(X509_getm_notAfter(cert.get()), 365L * 24 * 3600) &&
              X509_set_pubkey(cert.get(), key.get()) &&
              add_ext(cert.get(), ca_.cert.get(), NID_basic_constraints, "critical,CA:FALSE") &&
              add_ext(cert.get(), ca_.cert.get(), NID_key_usage, "critical,digitalSignature") &&
              add_ext(cert.get(), ca_.cert.get(), NID_ext_key_usage, "serverAuth") &&
              add_ext(cert.get(), ca_.cert.get(), NID_subject_alt_name, san) &&
              add_ext(cert.get(), ca_.cert.get(), NID_authority_key_identifier, "keyid:always") &&
              X509_sign(cert.get(), ca_.key.get(), EVP_sha256()) > 0;
    if (!ok) throw ConsoleError(500, "server certificate: " + crypto::openssl_error_string());
    write_file(data_dir + "/server.key", unwrap(crypto::private_key_to_pem(key.get()), "key"),
               0600);
    // The chain (leaf + CA) so that clients that only know the CA can build the path.
    write_file(data_dir + "/server.pem",
               unwrap(crypto::cert_to_pem(cert.get()), "server PEM") + ca_pem_);
}

std::string ConsolePki::sign_csr(const std::string &csr_pem, const std::string &field,
                                 std::string *subject_cn) const {
    auto csr = crypto::csr_from_pem(csr_pem);
    if (!csr) throw ConsoleError(422, field + ": not a PEM certificate request", field);
    auto cert = crypto::sign_enforcer_csr(ca_, csr->get());
    if (!cert) throw ConsoleError(422, field + ": " + cert.error().message, field);
    *subject_cn = crypto::cert_subject_cn(cert->get());
    return unwrap(crypto::cert_to_pem(cert->get()), "certificate PEM");
}

crypto::PKeyPtr load_or_create_token_key(const std::string &data_dir, std::string *kid) {
    std::string path = data_dir + "/token.key";
    if (!std::filesystem::exists(path)) {
        auto k = unwrap(crypto::generate_p256_key(), "token key");
        write_file(path, unwrap(crypto::private_key_to_pem(k.get()), "token key PEM"), 0600);
    }
    auto key = unwrap(crypto::private_key_from_pem(read_file(path)), "token key " + path);
    *kid =
        hex(sha256(unwrap(crypto::public_key_to_pem(key.get()), "token public key"))).substr(0, 16);
    return key;
}

std::string cert_fingerprint(X509 *cert) {
    auto der = crypto::cert_to_der(cert);
    if (!der) return "";
    return hex(sha256(std::string_view(reinterpret_cast<const char *>(der->data()), der->size())));
}

std::string create_app_credential(Db &db, const ConsolePki &pki, const std::string &name,
                                  const std::string &api_url) {
    if (name.empty()) throw ConsoleError(422, "name: must not be empty", "name");
    std::string id = "app-" + random_hex(8);
    auto key = unwrap(crypto::generate_p256_key(), "app credential key");
    auto csr = unwrap(crypto::create_csr(key.get(), id), "app credential CSR");
    crypto::IssueOptions opt;
    opt.validity = std::chrono::hours(24 * 365);
    auto cert = unwrap(crypto::sign_enforcer_csr(pki.ca(), csr.get(), opt), "app credential");
    std::string cert_pem = unwrap(crypto::cert_to_pem(cert.get()), "certificate PEM");
    std::string key_pem = unwrap(crypto::private_key_to_pem(key.get()), "key PEM");

    std::lock_guard lock(db.mutex());
    std::string ns = "/";
    {
        Stmt s(db, "SELECT json_extract(json, '$.name') FROM objects WHERE kind = 'namespace'");
        if (s.step() && !s.text(0).empty()) ns = s.text(0);
    }
    {
        Stmt s(db,
               "INSERT INTO appcreds(id, name, namespace, cert_sha256, created) "
               "VALUES(?, ?, ?, ?, ?)");
        s.bind(1, id).bind(2, name).bind(3, ns).bind(4, cert_fingerprint(cert.get()));
        s.bind(5, now_unix());
        s.step();
    }
    rapidjson::StringBuffer buf;
    JsonWriter w(buf);
    w.StartObject();
    write_string(w, "ID", id);
    write_string(w, "name", name);
    write_string(w, "namespace", ns);
    write_string(w, "APIURL", api_url);
    write_string(w, "certificate", base64_encode(cert_pem));
    write_string(w, "certificateAuthority", base64_encode(pki.ca_pem()));
    write_string(w, "certificateKey", base64_encode(key_pem));
    w.EndObject();
    return std::string(buf.GetString(), buf.GetSize());
}

}  // namespace segwire::console
