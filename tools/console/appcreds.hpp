// App credentials: a key and a client certificate signed by the app-credential CA, recorded with
// a role (and, for the enforcer role, the one enforcer ID it is bound to). Only recorded,
// unrevoked credentials may use the Certificate realm; revoking one also stops the tokens it
// obtained (every request looks the credential up).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "tools/console/audit.hpp"
#include "tools/console/authz.hpp"

namespace segwire::console {

class Db;
class ConsolePki;

struct AppCredential {
    std::string id, name, ns;
    std::string role;         // admin | reader | enforcer; "" for credentials made before roles
    std::string enforcer_id;  // enforcer role only
    // Enforcer role only, optional: the enforcer group the Console CA binds into the certificates
    // of the enforcer registering with this credential (docs/scale-out.md).
    std::string enforcer_group;
    int64_t created = 0, revoked = 0;  // revoked: unix seconds, 0 = valid
};

// Makes and records a credential. Returns the credential JSON {ID, name, namespace, role,
// enforcerID?, APIURL, certificate, certificateAuthority, certificateKey} (PEM values base64;
// certificateAuthority is `tls_trust_pem`, what clients verify the Console's TLS certificate
// with: the Console CA, or the operator's CA given with serve --tls-ca).
// Throws ConsoleError 422 naming the field: empty name, enforcer role without a valid enforcer
// ID, or an enforcer ID given for another role.
std::string create_app_credential(Db &db, const ConsolePki &pki, const std::string &name, Role role,
                                  const std::string &enforcer_id, const std::string &api_url,
                                  const std::string &tls_trust_pem, const Actor &actor,
                                  const std::string &enforcer_group = "");

std::vector<AppCredential> list_app_credentials(Db &db);
// GET /appcreds: one page in ID order.
Page app_credentials_page(Db &db, const PageRequest &page);
std::optional<AppCredential> find_app_credential(Db &db, const std::string &id);
std::optional<AppCredential> find_app_credential_by_fingerprint(Db &db, const std::string &sha256);
// 404 when unknown. Revoking twice is fine (the first time stays recorded).
AppCredential revoke_app_credential(Db &db, const std::string &id, const Actor &actor);

std::string app_credential_json(const AppCredential &c);  // without key material

}  // namespace segwire::console
