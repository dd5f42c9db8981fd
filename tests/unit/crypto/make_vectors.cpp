// Generates tests/unit/crypto/vectors/ (run by hand; the output is committed). ECDSA signatures
// are randomised, so the signed claims blobs are produced once here; everything else in the file
// is a deterministic function of them and of vectors_common.hpp, and vectors_test recomputes it.
#include <cstdio>
#include <fstream>
#include <iostream>

#include "crypto/keys.hpp"
#include "crypto/pki.hpp"
#include "crypto/wire.hpp"
#include "tests/unit/crypto/test_util.hpp"
#include "tests/unit/crypto/vectors_common.hpp"

using namespace segwire::crypto;
using namespace segwire::crypto::vectors;
using test::hex;
using test::unhex;

int main(int argc, char **argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s OUTDIR\n", argv[0]);
        return 2;
    }
    std::string dir = argv[1];
    // Valid 2026-01-01 .. 2036-01-01 so the vectors keep verifying.
    auto ca = create_ca("segwire vectors CA", std::chrono::hours(24 * 3653), 1'767'225'600);
    IssueOptions io;
    io.not_before_unix = 1'767'225'600;
    io.validity = std::chrono::hours(24 * 3650);
    auto mk = [&](const char *id, test::Enforcer &e) {
        e.id = id;
        e.key = std::move(generate_p256_key().value());
        auto csr = create_csr(e.key.get(), id);
        e.cert = std::move(sign_enforcer_csr(*ca, csr->get(), io).value());
        e.ref = *cert_ref(e.cert.get());
    };
    test::Enforcer ce, se;
    mk("enforcer-client", ce);
    mk("enforcer-server", se);

    auto ckp =
        X25519KeyPair::from_private(std::span<const uint8_t, 32>(unhex(kClientEphPriv).data(), 32));
    auto skp =
        X25519KeyPair::from_private(std::span<const uint8_t, 32>(unhex(kServerEphPriv).data(), 32));
    Claims cc, sc;
    cc.pu_id = "pu-client-0001";
    cc.enforcer_id = ce.id;
    cc.tags = {"app=frontend", "env=prod"};
    cc.cert_ref = ce.ref;
    cc.issued_at = kIssuedAt;
    cc.expires_at = kExpiresAt;
    cc.ephemeral_pub = ckp->pub;
    sc = cc;
    sc.pu_id = "pu-server-0002";
    sc.enforcer_id = se.id;
    sc.tags = {"app=payments", "env=prod"};
    sc.cert_ref = se.ref;
    sc.ephemeral_pub = skp->pub;
    auto cblob = sign_claims(cc, ce.key.get());
    auto sblob = sign_claims(sc, se.key.get());

    std::ofstream(dir + "/ca.pem") << *cert_to_pem(ca->cert.get());
    std::ofstream(dir + "/enforcer-client.pem") << *cert_to_pem(ce.cert.get());
    std::ofstream(dir + "/enforcer-server.pem") << *cert_to_pem(se.cert.get());
    std::ofstream f(dir + "/claims_v1.txt");
    f << "client_claims " << hex(*cblob) << "\n";
    f << "server_claims " << hex(*sblob) << "\n";
    std::cout << "wrote " << dir << "\n";
    return 0;
}
