#include "crypto/pki.hpp"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <cctype>
#include <ctime>

namespace segwire::crypto {

namespace {

struct BioFree {
    void operator()(BIO *b) const noexcept { BIO_free(b); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;

BioPtr mem_bio(std::string_view s) {
    return BioPtr(BIO_new_mem_buf(s.data(), static_cast<int>(s.size())));
}

std::string bio_string(BIO *b) {
    char *data = nullptr;
    long n = BIO_get_mem_data(b, &data);
    return std::string(data, static_cast<size_t>(n));
}

int64_t now_unix() {
    return static_cast<int64_t>(std::time(nullptr));
}

// Adds an X.509v3 extension given in OpenSSL config syntax ("critical,CA:FALSE").
bool add_ext(X509 *cert, X509 *issuer, int nid, const char *value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
    if (!ext) return false;
    bool ok = X509_add_ext(cert, ext, -1) == 1;
    X509_EXTENSION_free(ext);
    return ok;
}

bool set_serial(X509 *cert, uint64_t serial) {
    if (serial == 0) {
        if (RAND_bytes(reinterpret_cast<unsigned char *>(&serial), sizeof(serial)) != 1)
            return false;
        serial = (serial >> 1) | 1;  // positive, non-zero, 63 bits
    }
    BIGNUM *bn = BN_new();
    if (!bn) return false;
    bool ok = BN_set_word(bn, serial) == 1 &&
              BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) != nullptr;
    BN_free(bn);
    return ok;
}

bool set_validity(X509 *cert, int64_t not_before, std::chrono::seconds validity) {
    return ASN1_TIME_set(X509_getm_notBefore(cert), static_cast<time_t>(not_before)) &&
           ASN1_TIME_set(X509_getm_notAfter(cert),
                         static_cast<time_t>(not_before + validity.count()));
}

bool set_cn(X509_NAME *name, std::string_view cn) {
    return X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                      reinterpret_cast<const unsigned char *>(cn.data()),
                                      static_cast<int>(cn.size()), -1, 0) == 1;
}

bool is_p256(EVP_PKEY *key) {
    if (EVP_PKEY_get_base_id(key) != EVP_PKEY_EC) return false;
    char group[64] = {};
    size_t len = 0;
    if (!EVP_PKEY_get_group_name(key, group, sizeof(group), &len)) return false;
    return std::string_view(group, len) == "prime256v1" || std::string_view(group, len) == "P-256";
}

int64_t asn1_to_unix(const ASN1_TIME *t) {
    struct tm tm {};
    if (ASN1_TIME_to_tm(t, &tm) != 1) return 0;
    return static_cast<int64_t>(timegm(&tm));
}

}  // namespace

std::string openssl_error_string() {
    unsigned long e = ERR_get_error();
    std::string s;
    if (e == 0) {
        s = "(no OpenSSL error)";
    } else {
        char buf[256];
        ERR_error_string_n(e, buf, sizeof(buf));
        s = buf;
    }
    ERR_clear_error();
    return s;
}

const char *to_string(Errc e) noexcept {
    switch (e) {
        case Errc::Ok:
            return "ok";
        case Errc::InvalidArgument:
            return "invalid argument";
        case Errc::OpenSsl:
            return "openssl";
        case Errc::BadPem:
            return "bad PEM/DER";
        case Errc::CertVerify:
            return "certificate verification";
        case Errc::NotFound:
            return "not found";
        case Errc::Unsupported:
            return "unsupported";
    }
    return "?";
}

// --- keys ----------------------------------------------------------------------------------------

Result<PKeyPtr> generate_p256_key() {
    PKeyPtr key(EVP_EC_gen("P-256"));
    if (!key) return openssl_error("EVP_EC_gen(P-256)");
    return key;
}

Result<std::string> private_key_to_pem(EVP_PKEY *key) {
    BioPtr b(BIO_new(BIO_s_mem()));
    if (!b || !PEM_write_bio_PrivateKey(b.get(), key, nullptr, nullptr, 0, nullptr, nullptr))
        return openssl_error("PEM_write_bio_PrivateKey");
    return bio_string(b.get());
}

Result<PKeyPtr> private_key_from_pem(std::string_view pem) {
    BioPtr b = mem_bio(pem);
    PKeyPtr key(b ? PEM_read_bio_PrivateKey(b.get(), nullptr, nullptr, nullptr) : nullptr);
    if (!key) return Error{Errc::BadPem, "private key: " + openssl_error_string()};
    return key;
}

Result<std::string> public_key_to_pem(EVP_PKEY *key) {
    BioPtr b(BIO_new(BIO_s_mem()));
    if (!b || !PEM_write_bio_PUBKEY(b.get(), key)) return openssl_error("PEM_write_bio_PUBKEY");
    return bio_string(b.get());
}

// --- certificates --------------------------------------------------------------------------------

Result<std::string> cert_to_pem(X509 *cert) {
    BioPtr b(BIO_new(BIO_s_mem()));
    if (!b || !PEM_write_bio_X509(b.get(), cert)) return openssl_error("PEM_write_bio_X509");
    return bio_string(b.get());
}

Result<X509Ptr> cert_from_pem(std::string_view pem) {
    BioPtr b = mem_bio(pem);
    X509Ptr c(b ? PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr) : nullptr);
    if (!c) return Error{Errc::BadPem, "certificate: " + openssl_error_string()};
    return c;
}

Result<std::vector<X509Ptr>> certs_from_pem(std::string_view pem_bundle) {
    BioPtr b = mem_bio(pem_bundle);
    std::vector<X509Ptr> out;
    while (b) {
        X509 *c = PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr);
        if (!c) break;
        out.emplace_back(c);
    }
    ERR_clear_error();  // the loop always ends on a "no start line" error
    if (out.empty()) return Error{Errc::BadPem, "certificate bundle holds no PEM certificate"};
    return out;
}

Result<std::vector<uint8_t>> cert_to_der(X509 *cert) {
    int n = i2d_X509(cert, nullptr);
    if (n <= 0) return openssl_error("i2d_X509");
    std::vector<uint8_t> der(static_cast<size_t>(n));
    unsigned char *p = der.data();
    if (i2d_X509(cert, &p) != n) return openssl_error("i2d_X509");
    return der;
}

Result<X509Ptr> cert_from_der(std::span<const uint8_t> der) {
    const unsigned char *p = der.data();
    X509Ptr c(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
    if (!c || p != der.data() + der.size())
        return Error{Errc::BadPem, "certificate DER: " + openssl_error_string()};
    return c;
}

Result<Digest> cert_ref(X509 *cert) {
    auto der = cert_to_der(cert);
    if (!der) return der.error();
    return sha256(*der);
}

std::string cert_subject_cn(X509 *cert) {
    X509_NAME *name = X509_get_subject_name(cert);
    int idx = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
    if (idx < 0) return {};
    ASN1_STRING *s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
    unsigned char *utf8 = nullptr;
    int n = ASN1_STRING_to_UTF8(&utf8, s);
    if (n < 0) return {};
    std::string cn(reinterpret_cast<char *>(utf8), static_cast<size_t>(n));
    OPENSSL_free(utf8);
    return cn;
}

Result<CertAuthority> create_ca(std::string_view common_name, std::chrono::seconds validity,
                                int64_t not_before_unix) {
    if (common_name.empty()) return Error{Errc::InvalidArgument, "CA common name is empty"};
    auto key = generate_p256_key();
    if (!key) return key.error();
    X509Ptr cert(X509_new());
    if (!cert) return openssl_error("X509_new");
    int64_t nb = not_before_unix >= 0 ? not_before_unix : now_unix() - 300;
    if (!X509_set_version(cert.get(), 2) || !set_serial(cert.get(), 0) ||
        !set_validity(cert.get(), nb, validity) ||
        !set_cn(X509_get_subject_name(cert.get()), common_name) ||
        !X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get())) ||
        !X509_set_pubkey(cert.get(), key->get()) ||
        !add_ext(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:TRUE,pathlen:0") ||
        !add_ext(cert.get(), cert.get(), NID_key_usage, "critical,keyCertSign,cRLSign") ||
        !add_ext(cert.get(), cert.get(), NID_subject_key_identifier, "hash") ||
        !X509_sign(cert.get(), key->get(), EVP_sha256()))
        return openssl_error("create_ca(" + std::string(common_name) + ")");
    return CertAuthority{std::move(key.value()), std::move(cert)};
}

bool valid_enforcer_group(std::string_view group) {
    if (group.empty() || group.size() > 64) return false;
    for (unsigned char ch : group)
        if (!std::isalnum(ch) && ch != '-' && ch != '_' && ch != '.') return false;
    return true;
}

namespace {

// The group among subjectAltNames (a GENERAL_NAMES stack, freed by the caller): "" none.
Result<std::string> group_of_names(GENERAL_NAMES *names, const char *what) {
    std::string found;
    const int n = names ? sk_GENERAL_NAME_num(names) : 0;
    for (int i = 0; i < n; ++i) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
        if (g->type != GEN_URI) continue;
        const ASN1_IA5STRING *u = g->d.uniformResourceIdentifier;
        std::string_view uri(reinterpret_cast<const char *>(ASN1_STRING_get0_data(u)),
                             static_cast<size_t>(ASN1_STRING_length(u)));
        if (uri.substr(0, kEnforcerGroupUri.size()) != kEnforcerGroupUri) continue;
        std::string_view g_name = uri.substr(kEnforcerGroupUri.size());
        if (!valid_enforcer_group(g_name))
            return Error{Errc::InvalidArgument, std::string(what) + ": enforcer group \"" +
                                                    std::string(g_name) +
                                                    "\" is not 1..64 of A-Z a-z 0-9 - _ ."};
        if (!found.empty())
            return Error{Errc::InvalidArgument,
                         std::string(what) + ": more than one enforcer group"};
        found = g_name;
    }
    return found;
}

X509_EXTENSION *group_san(std::string_view group) {
    GENERAL_NAMES *names = GENERAL_NAMES_new();
    GENERAL_NAME *g = GENERAL_NAME_new();
    ASN1_IA5STRING *s = ASN1_IA5STRING_new();
    const std::string uri = std::string(kEnforcerGroupUri) + std::string(group);
    X509_EXTENSION *ext = nullptr;
    if (names && g && s && ASN1_STRING_set(s, uri.data(), static_cast<int>(uri.size())) == 1) {
        GENERAL_NAME_set0_value(g, GEN_URI, s);
        s = nullptr;
        if (sk_GENERAL_NAME_push(names, g) > 0) {
            g = nullptr;
            ext = X509V3_EXT_i2d(NID_subject_alt_name, 0, names);
        }
    }
    ASN1_IA5STRING_free(s);
    GENERAL_NAME_free(g);
    GENERAL_NAMES_free(names);
    return ext;
}

}  // namespace

Result<std::string> cert_enforcer_group(X509 *cert) {
    auto *names = static_cast<GENERAL_NAMES *>(
        X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
    auto r = group_of_names(names, "certificate");
    GENERAL_NAMES_free(names);
    return r;
}

Result<std::string> csr_enforcer_group(X509_REQ *csr) {
    STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(csr);
    GENERAL_NAMES *names = exts ? static_cast<GENERAL_NAMES *>(
                                      X509V3_get_d2i(exts, NID_subject_alt_name, nullptr, nullptr))
                                : nullptr;
    auto r = group_of_names(names, "CSR");
    GENERAL_NAMES_free(names);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    return r;
}

Result<X509ReqPtr> create_csr(EVP_PKEY *key, std::string_view enforcer_id, std::string_view group) {
    if (enforcer_id.empty() || enforcer_id.size() > 64)
        return Error{Errc::InvalidArgument, "enforcer ID must be 1..64 bytes"};
    if (!group.empty() && !valid_enforcer_group(group))
        return Error{Errc::InvalidArgument, "enforcer group must be 1..64 of A-Z a-z 0-9 - _ ."};
    X509ReqPtr req(X509_REQ_new());
    if (!req || !X509_REQ_set_version(req.get(), 0) ||
        !set_cn(X509_REQ_get_subject_name(req.get()), enforcer_id) ||
        !X509_REQ_set_pubkey(req.get(), key))
        return openssl_error("create_csr(" + std::string(enforcer_id) + ")");
    if (!group.empty()) {
        STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
        X509_EXTENSION *ext = group_san(group);
        bool ok = exts && ext && sk_X509_EXTENSION_push(exts, ext) > 0;
        if (ok) ext = nullptr;
        ok = ok && X509_REQ_add_extensions(req.get(), exts) == 1;
        X509_EXTENSION_free(ext);
        sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
        if (!ok) return openssl_error("create_csr(" + std::string(enforcer_id) + "): group");
    }
    if (!X509_REQ_sign(req.get(), key, EVP_sha256()))
        return openssl_error("create_csr(" + std::string(enforcer_id) + ")");
    return req;
}

Result<X509ReqPtr> create_service_csr(EVP_PKEY *key, std::string_view name,
                                      const std::vector<std::string> &hosts) {
    if (name.empty() || name.size() > 64 || hosts.empty())
        return Error{Errc::InvalidArgument, "a service CSR needs a name (1..64 bytes) and hosts"};
    X509ReqPtr req(X509_REQ_new());
    if (!req || !X509_REQ_set_version(req.get(), 0) ||
        !set_cn(X509_REQ_get_subject_name(req.get()), name) || !X509_REQ_set_pubkey(req.get(), key))
        return openssl_error("create_service_csr(" + std::string(name) + ")");
    std::string san;
    for (const std::string &h : hosts) san += (san.empty() ? "DNS:" : ",DNS:") + h;
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(nullptr, nullptr, NID_subject_alt_name, san.c_str());
    STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
    const bool ok = ext && exts && sk_X509_EXTENSION_push(exts, ext) &&
                    X509_REQ_add_extensions(req.get(), exts) &&
                    X509_REQ_sign(req.get(), key, EVP_sha256());
    if (exts)
        sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    else if (ext)
        X509_EXTENSION_free(ext);
    if (!ok) return openssl_error("create_service_csr(" + std::string(name) + "): " + san);
    return req;
}

Result<std::string> csr_to_pem(X509_REQ *csr) {
    BioPtr b(BIO_new(BIO_s_mem()));
    if (!b || !PEM_write_bio_X509_REQ(b.get(), csr)) return openssl_error("PEM_write_bio_X509_REQ");
    return bio_string(b.get());
}

Result<X509ReqPtr> csr_from_pem(std::string_view pem) {
    BioPtr b = mem_bio(pem);
    X509ReqPtr r(b ? PEM_read_bio_X509_REQ(b.get(), nullptr, nullptr, nullptr) : nullptr);
    if (!r) return Error{Errc::BadPem, "CSR: " + openssl_error_string()};
    return r;
}

Result<X509Ptr> sign_enforcer_csr(const CertAuthority &ca, X509_REQ *csr, const IssueOptions &opt) {
    PKeyPtr pub(X509_REQ_get_pubkey(csr));
    if (!pub) return Error{Errc::InvalidArgument, "CSR has no public key"};
    if (X509_REQ_verify(csr, pub.get()) != 1)
        return Error{Errc::InvalidArgument,
                     "CSR signature does not verify: " + openssl_error_string()};
    if (!is_p256(pub.get())) return Error{Errc::Unsupported, "CSR key is not P-256"};
    X509_NAME *subj = X509_REQ_get_subject_name(csr);
    int idx = X509_NAME_get_index_by_NID(subj, NID_commonName, -1);
    if (idx < 0) return Error{Errc::InvalidArgument, "CSR subject has no CN (the enforcer ID)"};

    X509Ptr cert(X509_new());
    if (!cert) return openssl_error("X509_new");
    X509_NAME *name = X509_NAME_new();
    bool ok = name && X509_NAME_add_entry(name, X509_NAME_get_entry(subj, idx), -1, 0) == 1 &&
              X509_set_subject_name(cert.get(), name) == 1;
    X509_NAME_free(name);
    // Without an explicit start the certificate is valid from 5 minutes ago (clock skew) until
    // `validity` from now: a one-minute certificate (tests) really lives a minute.
    int64_t nb = opt.not_before_unix >= 0 ? opt.not_before_unix : now_unix() - 300;
    const std::chrono::seconds life =
        opt.not_before_unix >= 0 ? opt.validity : opt.validity + std::chrono::seconds(300);
    const char *ku =
        opt.omit_digital_signature ? "critical,keyAgreement" : "critical,digitalSignature";
    ok = ok && X509_set_version(cert.get(), 2) && set_serial(cert.get(), opt.serial) &&
         set_validity(cert.get(), nb, life) &&
         X509_set_issuer_name(cert.get(), X509_get_subject_name(ca.cert.get())) &&
         X509_set_pubkey(cert.get(), pub.get()) &&
         add_ext(cert.get(), ca.cert.get(), NID_basic_constraints,
                 opt.make_ca ? "critical,CA:TRUE" : "critical,CA:FALSE") &&
         add_ext(cert.get(), ca.cert.get(), NID_key_usage,
                 opt.make_ca ? "critical,digitalSignature,keyCertSign" : ku) &&
         add_ext(cert.get(), ca.cert.get(), NID_ext_key_usage, "clientAuth") &&
         add_ext(cert.get(), ca.cert.get(), NID_authority_key_identifier, "keyid:always");
    if (ok && !opt.enforcer_group.empty()) {
        if (!valid_enforcer_group(opt.enforcer_group))
            return Error{Errc::InvalidArgument,
                         "enforcer group must be 1..64 of A-Z a-z 0-9 - _ ."};
        X509_EXTENSION *ext = group_san(opt.enforcer_group);
        ok = ext && X509_add_ext(cert.get(), ext, -1) == 1;
        X509_EXTENSION_free(ext);
    }
    ok = ok && X509_sign(cert.get(), ca.key.get(), EVP_sha256());
    if (!ok) return openssl_error("sign_enforcer_csr");
    return cert;
}

// --- TrustStore ----------------------------------------------------------------------------------

TrustStore::TrustStore() : store_(X509_STORE_new()) {}
TrustStore::~TrustStore() {
    X509_STORE_free(store_);
}
TrustStore::TrustStore(TrustStore &&o) noexcept : store_(o.store_), count_(o.count_) {
    o.store_ = nullptr;
    o.count_ = 0;
}
TrustStore &TrustStore::operator=(TrustStore &&o) noexcept {
    if (this != &o) {
        X509_STORE_free(store_);
        store_ = o.store_;
        count_ = o.count_;
        o.store_ = nullptr;
        o.count_ = 0;
    }
    return *this;
}

Status TrustStore::add_ca(X509 *ca) {
    if (!store_) return Error{Errc::OpenSsl, "X509_STORE_new failed"};
    if (X509_check_ca(ca) == 0)
        return Error{Errc::CertVerify, "'" + cert_subject_cn(ca) + "' is not a CA certificate"};
    if (X509_STORE_add_cert(store_, ca) != 1) return openssl_error("X509_STORE_add_cert");
    ++count_;
    return {};
}

Status TrustStore::add_ca_pem(std::string_view pem_bundle) {
    auto certs = certs_from_pem(pem_bundle);
    if (!certs) return certs.error();
    for (auto &c : *certs) {
        Status s = add_ca(c.get());
        if (!s) return s;
    }
    return {};
}

Result<EnforcerCertInfo> TrustStore::verify_enforcer_cert(
    X509 *leaf, int64_t now, std::span<X509 *const> intermediates) const {
    const std::string cn = cert_subject_cn(leaf);
    auto fail = [&](const std::string &why) {
        return Error{Errc::CertVerify, "enforcer certificate '" + cn + "': " + why};
    };
    if (!store_ || count_ == 0) return fail("no trusted CA configured");
    if (cn.empty() || cn.size() > 64) return fail("subject CN (enforcer ID) missing or too long");

    STACK_OF(X509) *chain = sk_X509_new_null();
    for (X509 *c : intermediates) sk_X509_push(chain, c);
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    bool inited = ctx && X509_STORE_CTX_init(ctx, store_, leaf, chain) == 1;
    int rc = 0, err = 0;
    if (inited) {
        X509_VERIFY_PARAM *param = X509_STORE_CTX_get0_param(ctx);
        X509_VERIFY_PARAM_set_time(param, static_cast<time_t>(now));
        X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_X509_STRICT);
        X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT);
        rc = X509_verify_cert(ctx);
        err = X509_STORE_CTX_get_error(ctx);
    }
    X509_STORE_CTX_free(ctx);
    sk_X509_free(chain);
    ERR_clear_error();
    if (!inited) return fail("cannot set up verification context");
    if (rc != 1) return fail(X509_verify_cert_error_string(err));

    // X509_verify_cert does not look at keyUsage for an SSL-client purpose the way we need: claims
    // signing requires digitalSignature explicitly, and the leaf must not be a CA.
    uint32_t ku = X509_get_key_usage(leaf);
    if (ku == UINT32_MAX || !(ku & KU_DIGITAL_SIGNATURE))
        return fail("keyUsage lacks digitalSignature");
    if (X509_check_ca(leaf) != 0) return fail("is a CA certificate, not an enforcer certificate");
    uint32_t xku = X509_get_extended_key_usage(leaf);
    if (xku == UINT32_MAX || !(xku & XKU_SSL_CLIENT))
        return fail("extendedKeyUsage lacks clientAuth");

    PKeyPtr pub(X509_get_pubkey(leaf));
    if (!pub || !is_p256(pub.get())) return fail("public key is not P-256");
    auto ref = cert_ref(leaf);
    if (!ref) return ref.error();
    auto group = cert_enforcer_group(leaf);
    if (!group) return fail(group.error().what());
    EnforcerCertInfo info;
    info.enforcer_id = cn;
    info.enforcer_group = std::move(*group);
    info.ref = *ref;
    info.not_after = asn1_to_unix(X509_get0_notAfter(leaf));
    info.public_key = std::move(pub);
    return info;
}

}  // namespace segwire::crypto
