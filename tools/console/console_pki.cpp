#include "tools/console/console_pki.hpp"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cctype>
#include <filesystem>

#include "tools/console/db.hpp"
#include "tools/console/error.hpp"
#include "tools/console/util.hpp"

namespace segwire::console {
namespace {

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

namespace fs = std::filesystem;

ConsolePki ConsolePki::load_or_create(const std::string &data_dir, const std::string &ca_cert,
                                      const std::string &ca_key) {
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

    // The app-credential CA always lives in the data directory, also when --ca-cert is given.
    const std::string ac_cert = data_dir + "/appcred-ca.pem", ac_key = data_dir + "/appcred-ca.key";
    if (!fs::exists(ac_cert)) {
        auto ca = unwrap(
            crypto::create_ca("segwire-console app-credential CA", std::chrono::hours(24 * 3650)),
            "create app-credential CA");
        write_file(ac_key, unwrap(crypto::private_key_to_pem(ca.key.get()), "CA key PEM"), 0600);
        write_file(ac_cert, unwrap(crypto::cert_to_pem(ca.cert.get()), "CA PEM"));
    }
    pki.appcred_ca_pem_ = read_file(ac_cert);
    pki.appcred_ca_.cert = unwrap(crypto::cert_from_pem(pki.appcred_ca_pem_), "CA " + ac_cert);
    pki.appcred_ca_.key =
        unwrap(crypto::private_key_from_pem(read_file(ac_key)), "CA key " + ac_key);
    if (X509_check_private_key(pki.appcred_ca_.cert.get(), pki.appcred_ca_.key.get()) != 1)
        throw ConsoleError(400, "CA key " + ac_key + " does not match " + ac_cert);
    if (X509_cmp(pki.appcred_ca_.cert.get(), pki.ca_.cert.get()) == 0)
        throw ConsoleError(400, "the app-credential CA must not be the Console CA");
    return pki;
}

std::string ConsolePki::verify_app_certificate(X509 *cert) const {
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    int rc = 0, err = X509_V_ERR_UNSPECIFIED;
    if (store && ctx && X509_STORE_add_cert(store, appcred_ca_.cert.get()) == 1 &&
        X509_STORE_CTX_init(ctx, store, cert, nullptr) == 1) {
        X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT);
        rc = X509_verify_cert(ctx);
        err = X509_STORE_CTX_get_error(ctx);
    }
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    ERR_clear_error();
    if (rc == 1) return "";
    return X509_verify_cert_error_string(err);
}

void ConsolePki::write_server_cert(const std::string &data_dir, const std::string &host,
                                   const std::vector<std::string> &extra_sans) const {
    auto key = unwrap(crypto::generate_p256_key(), "server key");
    crypto::X509Ptr cert(X509_new());
    std::string san = "DNS:localhost,IP:127.0.0.1,IP:::1";
    std::vector<std::string> names = extra_sans;
    names.insert(names.begin(), host);
    for (size_t i = 0; i < names.size(); ++i) {
        const std::string &n = names[i];
        if (n.empty() || n == "localhost" || n == "127.0.0.1" || n == "::1" || n == "0.0.0.0" ||
            n == "::" || std::find(names.begin(), names.begin() + i, n) != names.begin() + i)
            continue;
        san += std::string(is_ip(n) ? ",IP:" : ",DNS:") + n;
    }
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

CsrInfo ConsolePki::parse_csr(const std::string &csr_pem, const std::string &field) const {
    auto csr = crypto::csr_from_pem(csr_pem);
    if (!csr) throw ConsoleError(422, field + ": not a PEM certificate request", field);
    CsrInfo info;
    info.public_key.reset(X509_REQ_get_pubkey(csr->get()));
    if (!info.public_key) throw ConsoleError(422, field + ": has no public key", field);
    if (X509_REQ_verify(csr->get(), info.public_key.get()) != 1) {
        ERR_clear_error();
        throw ConsoleError(422, field + ": the CSR's self-signature does not verify", field);
    }
    X509_NAME *subj = X509_REQ_get_subject_name(csr->get());
    int idx = X509_NAME_get_index_by_NID(subj, NID_commonName, -1);
    if (idx >= 0) {
        ASN1_STRING *d = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, idx));
        info.subject_cn.assign(reinterpret_cast<const char *>(ASN1_STRING_get0_data(d)),
                               static_cast<size_t>(ASN1_STRING_length(d)));
    }
    info.csr = std::move(*csr);
    return info;
}

std::string ConsolePki::sign_csr(const CsrInfo &csr, const std::string &field,
                                 std::chrono::seconds validity, const std::string &group) const {
    crypto::IssueOptions opt;
    opt.validity = validity;
    opt.enforcer_group = group;
    auto cert = crypto::sign_enforcer_csr(ca_, csr.csr.get(), opt);
    if (!cert) throw ConsoleError(422, field + ": " + cert.error().message, field);
    return unwrap(crypto::cert_to_pem(cert->get()), "certificate PEM");
}

std::vector<std::string> ConsolePki::csr_sans(const CsrInfo &csr) {
    std::vector<std::string> out;
    STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(csr.csr.get());
    if (!exts) return out;
    auto *names =
        static_cast<GENERAL_NAMES *>(X509V3_get_d2i(exts, NID_subject_alt_name, nullptr, nullptr));
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    if (!names) return out;
    for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
        if (g->type == GEN_DNS) {
            const ASN1_STRING *d = g->d.dNSName;
            out.emplace_back(reinterpret_cast<const char *>(ASN1_STRING_get0_data(d)),
                             static_cast<size_t>(ASN1_STRING_length(d)));
        } else if (g->type == GEN_IPADD) {
            const ASN1_OCTET_STRING *ip = g->d.iPAddress;
            char buf[64] = "";
            const int len = ASN1_STRING_length(ip);
            if (len == 4 || len == 16)
                inet_ntop(len == 4 ? AF_INET : AF_INET6, ASN1_STRING_get0_data(ip), buf,
                          sizeof buf);
            out.emplace_back(buf);
        } else {
            out.emplace_back("(unsupported name type)");
        }
    }
    GENERAL_NAMES_free(names);
    return out;
}

std::string ConsolePki::sign_service_csr(const CsrInfo &csr, const std::vector<std::string> &names,
                                         std::chrono::seconds validity) const {
    crypto::X509Ptr cert(X509_new());
    std::string san;
    for (const std::string &n : names)
        san += (san.empty() ? "" : ",") + std::string(is_ip(n) ? "IP:" : "DNS:") + n;
    X509_NAME *name = X509_get_subject_name(cert.get());
    const std::string cn = names.empty() ? "service" : names[0];
    uint64_t serial = 0;
    while (serial == 0) serial = std::stoull(random_hex(7), nullptr, 16);
    bool ok =
        X509_set_version(cert.get(), 2) &&
        ASN1_INTEGER_set_uint64(X509_get_serialNumber(cert.get()), serial) &&
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                   reinterpret_cast<const unsigned char *>(cn.c_str()), -1, -1,
                                   0) &&
        X509_set_issuer_name(cert.get(), X509_get_subject_name(ca_.cert.get())) &&
        X509_gmtime_adj(X509_getm_notBefore(cert.get()), -300) &&
        X509_gmtime_adj(X509_getm_notAfter(cert.get()), static_cast<long>(validity.count())) &&
        X509_set_pubkey(cert.get(), csr.public_key.get()) &&
        add_ext(cert.get(), ca_.cert.get(), NID_basic_constraints, "critical,CA:FALSE") &&
        add_ext(cert.get(), ca_.cert.get(), NID_key_usage,
                "critical,digitalSignature,keyEncipherment") &&
        add_ext(cert.get(), ca_.cert.get(), NID_ext_key_usage, "serverAuth") &&
        add_ext(cert.get(), ca_.cert.get(), NID_subject_alt_name, san) &&
        add_ext(cert.get(), ca_.cert.get(), NID_authority_key_identifier, "keyid:always") &&
        X509_sign(cert.get(), ca_.key.get(), EVP_sha256()) > 0;
    if (!ok) throw ConsoleError(500, "service certificate: " + crypto::openssl_error_string());
    return unwrap(crypto::cert_to_pem(cert.get()), "service certificate PEM") + ca_pem_;
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

std::string check_san(const std::string &name) {
    if (is_ip(name)) return "";
    std::string_view n = name;
    if (n.rfind("*.", 0) == 0) n.remove_prefix(2);
    bool ok = !n.empty() && n.size() <= 253 && n.front() != '.' && n.back() != '.' &&
              n.front() != '-' && std::all_of(n.begin(), n.end(), [](unsigned char c) {
                  return std::isalnum(c) || c == '-' || c == '.';
              });
    return ok ? "" : "\"" + name + "\" is neither an IP address nor a DNS name";
}

std::string check_tls_files(const std::string &cert_file, const std::string &key_file) {
    std::string cert_pem, key_pem;
    try {
        cert_pem = read_file(cert_file);
    } catch (const ConsoleError &) {
        return "--tls-cert: cannot read " + cert_file;
    }
    try {
        key_pem = read_file(key_file);
    } catch (const ConsoleError &) {
        return "--tls-key: cannot read " + key_file;
    }
    auto certs = crypto::certs_from_pem(cert_pem);
    if (!certs || certs->empty()) return "--tls-cert: " + cert_file + " holds no PEM certificate";
    auto key = crypto::private_key_from_pem(key_pem);
    if (!key) return "--tls-key: " + key_file + " holds no PEM private key";
    if (X509_check_private_key((*certs)[0].get(), key->get()) != 1) {
        ERR_clear_error();
        return "--tls-key: " + key_file + " is not the key of the first certificate in " +
               cert_file;
    }
    return "";
}

std::string cert_fingerprint(X509 *cert) {
    auto der = crypto::cert_to_der(cert);
    if (!der) return "";
    return hex(sha256(std::string_view(reinterpret_cast<const char *>(der->data()), der->size())));
}

}  // namespace segwire::console
