#include <gtest/gtest.h>

#include "crypto/pki.hpp"
#include "tests/unit/crypto/test_util.hpp"

namespace segwire::crypto {
namespace {

using test::make_ca;
using test::make_enforcer;

int64_t now() {
    return static_cast<int64_t>(std::time(nullptr));
}

TEST(Pki, IssuedEnforcerCertVerifiesAgainstItsCa) {
    CertAuthority ca = make_ca();
    auto e = make_enforcer(ca, "enforcer-a");
    TrustStore ts;
    ASSERT_TRUE(ts.add_ca(ca.cert.get()).ok());
    auto info = ts.verify_enforcer_cert(e.cert.get(), now());
    ASSERT_TRUE(info.ok()) << info.error().what();
    EXPECT_EQ(info->enforcer_id, "enforcer-a");
    EXPECT_EQ(info->ref, e.ref);
    EXPECT_GT(info->not_after, now());
    EXPECT_NE(info->public_key, nullptr);
}

TEST(Pki, PemRoundTripsAndBundleLoading) {
    CertAuthority ca = make_ca();
    CertAuthority ca2 = make_ca("second CA");
    auto pem = cert_to_pem(ca.cert.get());
    ASSERT_TRUE(pem.ok());
    auto back = cert_from_pem(*pem);
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*cert_ref(back->get()), *cert_ref(ca.cert.get()));
    auto kpem = private_key_to_pem(ca.key.get());
    ASSERT_TRUE(kpem.ok());
    auto kback = private_key_from_pem(*kpem);
    ASSERT_TRUE(kback.ok());
    EXPECT_EQ(EVP_PKEY_eq(kback->get(), ca.key.get()), 1);

    TrustStore ts;
    ASSERT_TRUE(ts.add_ca_pem(*pem + *cert_to_pem(ca2.cert.get())).ok());
    EXPECT_EQ(ts.size(), 2u);
    auto e = make_enforcer(ca2, "enforcer-b");
    EXPECT_TRUE(ts.verify_enforcer_cert(e.cert.get(), now()).ok());

    EXPECT_FALSE(cert_from_pem("not a pem").ok());
    EXPECT_FALSE(
        private_key_from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
            .ok());
    EXPECT_EQ(ts.add_ca_pem("garbage").error().code, Errc::BadPem);
}

TEST(Pki, CsrPemRoundTripAndSubjectFromCsr) {
    CertAuthority ca = make_ca();
    auto key = generate_p256_key();
    auto csr = create_csr(key->get(), "gw-7");
    ASSERT_TRUE(csr.ok());
    auto pem = csr_to_pem(csr->get());
    ASSERT_TRUE(pem.ok());
    auto back = csr_from_pem(*pem);
    ASSERT_TRUE(back.ok());
    auto cert = sign_enforcer_csr(ca, back->get());
    ASSERT_TRUE(cert.ok());
    EXPECT_EQ(cert_subject_cn(cert->get()), "gw-7");
    EXPECT_FALSE(create_csr(key->get(), "").ok());
    EXPECT_FALSE(create_csr(key->get(), std::string(65, 'x')).ok());
}

TEST(Pki, RejectsCertificateFromUnknownCa) {
    CertAuthority ca = make_ca(), other = make_ca("rogue CA");
    auto e = make_enforcer(other, "enforcer-x");
    TrustStore ts;
    ASSERT_TRUE(ts.add_ca(ca.cert.get()).ok());
    auto r = ts.verify_enforcer_cert(e.cert.get(), now());
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::CertVerify);
    EXPECT_NE(r.error().message.find("enforcer-x"), std::string::npos) << r.error().message;
}

TEST(Pki, RejectsExpiredAndNotYetValid) {
    auto made = create_ca("old CA", std::chrono::hours(24 * 365), now() - 86400);
    ASSERT_TRUE(made.ok());
    CertAuthority ca = std::move(made.value());
    IssueOptions old;
    old.not_before_unix = now() - 7200;
    old.validity = std::chrono::hours(1);
    auto e = make_enforcer(ca, "old", old);
    TrustStore ts;
    ASSERT_TRUE(ts.add_ca(ca.cert.get()).ok());
    auto r = ts.verify_enforcer_cert(e.cert.get(), now());
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("expired"), std::string::npos) << r.error().message;
    // The same certificate is fine at a time inside its validity.
    EXPECT_TRUE(ts.verify_enforcer_cert(e.cert.get(), now() - 5400).ok());
    IssueOptions future;
    future.not_before_unix = now() + 3600;
    auto f = make_enforcer(ca, "future", future);
    EXPECT_FALSE(ts.verify_enforcer_cert(f.cert.get(), now()).ok());
}

TEST(Pki, RejectsWrongKeyUsageAndCaLeaf) {
    CertAuthority ca = make_ca();
    TrustStore ts;
    ASSERT_TRUE(ts.add_ca(ca.cert.get()).ok());
    IssueOptions no_ds;
    no_ds.omit_digital_signature = true;
    auto e = make_enforcer(ca, "no-ds", no_ds);
    auto r = ts.verify_enforcer_cert(e.cert.get(), now());
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("digitalSignature"), std::string::npos) << r.error().message;

    IssueOptions as_ca;
    as_ca.make_ca = true;
    auto c = make_enforcer(ca, "sub-ca", as_ca);
    EXPECT_FALSE(ts.verify_enforcer_cert(c.cert.get(), now()).ok());
    // A CA certificate itself is not an enforcer certificate.
    EXPECT_FALSE(ts.verify_enforcer_cert(ca.cert.get(), now()).ok());
}

TEST(Pki, EmptyTrustStoreTrustsNothing) {
    CertAuthority ca = make_ca();
    auto e = make_enforcer(ca, "e");
    TrustStore ts;
    EXPECT_FALSE(ts.verify_enforcer_cert(e.cert.get(), now()).ok());
    EXPECT_FALSE(ts.add_ca(e.cert.get()).ok()) << "a leaf must not be accepted as CA";
}

TEST(Pki, SignCsrRefusesTamperedCsr) {
    CertAuthority ca = make_ca();
    auto k1 = generate_p256_key(), k2 = generate_p256_key();
    auto csr = create_csr(k1->get(), "e1");
    // Swap the public key after signing: proof of possession breaks.
    ASSERT_EQ(X509_REQ_set_pubkey(csr->get(), k2->get()), 1);
    auto r = sign_enforcer_csr(ca, csr->get());
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::InvalidArgument);
}

// Enforcer groups (docs/scale-out.md): bound by the CA as a subjectAltName URI, read back when
// verifying; a CSR may ask for one, which grants nothing (the signer decides).
TEST(Pki, EnforcerGroupIsBoundByTheCaAndReadWhenVerifying) {
    CertAuthority ca = make_ca();
    IssueOptions opt;
    opt.enforcer_group = "edge";
    auto member = make_enforcer(ca, "gw-1", opt);
    auto other = make_enforcer(ca, "gw-9");
    TrustStore ts;
    ASSERT_TRUE(ts.add_ca(ca.cert.get()).ok());
    auto info = ts.verify_enforcer_cert(member.cert.get(), now());
    ASSERT_TRUE(info.ok()) << info.error().what();
    EXPECT_EQ(info->enforcer_group, "edge");
    EXPECT_EQ(*cert_enforcer_group(member.cert.get()), "edge");
    info = ts.verify_enforcer_cert(other.cert.get(), now());
    ASSERT_TRUE(info.ok());
    EXPECT_EQ(info->enforcer_group, "");
    // An unusable group name is refused at issue.
    opt.enforcer_group = "edge/1";
    auto key = generate_p256_key();
    auto csr = create_csr(key->get(), "gw-2");
    EXPECT_FALSE(sign_enforcer_csr(ca, csr->get(), opt).ok());
}

TEST(Pki, CsrMayAskForAGroupButTheCertificateCarriesOnlyTheSignersChoice) {
    CertAuthority ca = make_ca();
    auto key = generate_p256_key();
    ASSERT_TRUE(key.ok());
    auto csr = create_csr(key->get(), "gw-1", "core");
    ASSERT_TRUE(csr.ok()) << csr.error().what();
    // Survives PEM, as the Console receives it.
    auto back = csr_from_pem(*csr_to_pem(csr->get()));
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*csr_enforcer_group(back->get()), "core");
    auto plain = create_csr(key->get(), "gw-1");
    EXPECT_EQ(*csr_enforcer_group(plain->get()), "");
    // Signed without a group: the request is not copied.
    auto cert = sign_enforcer_csr(ca, back->get());
    ASSERT_TRUE(cert.ok());
    EXPECT_EQ(*cert_enforcer_group(cert->get()), "");
    IssueOptions opt;
    opt.enforcer_group = "edge";
    cert = sign_enforcer_csr(ca, back->get(), opt);
    ASSERT_TRUE(cert.ok());
    EXPECT_EQ(*cert_enforcer_group(cert->get()), "edge");
    EXPECT_FALSE(create_csr(key->get(), "gw-1", "bad group").ok());
}

TEST(Pki, HostsPuNamesTheEnforcerOrItsGroup) {
    EXPECT_TRUE(hosts_pu("gw-1", "gw-1", ""));
    EXPECT_TRUE(hosts_pu("gw-1", "gw-1", "edge"));
    EXPECT_TRUE(hosts_pu("group:edge", "gw-1", "edge"));
    EXPECT_TRUE(hosts_pu("group:edge", "gw-2", "edge"));
    EXPECT_FALSE(hosts_pu("group:edge", "gw-9", ""));      // outside every group
    EXPECT_FALSE(hosts_pu("group:edge", "gw-9", "core"));  // another group
    EXPECT_FALSE(hosts_pu("group:edge", "gw-9", "edge2"));
    EXPECT_FALSE(hosts_pu("group:edge", "gw-9", "edg"));
    EXPECT_FALSE(hosts_pu("gw-1", "gw-2", "edge"));
    EXPECT_FALSE(hosts_pu("group:", "gw-1", ""));
    // An enforcer whose ID is spelled like a group host is still only itself.
    EXPECT_FALSE(hosts_pu("edge", "gw-1", "edge"));
}

}  // namespace
}  // namespace segwire::crypto
