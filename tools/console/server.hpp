// The HTTPS API of segwire-console (docs/console.md is the reference).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace segwire::console {

struct ServerOptions {
    std::string data_dir;
    std::string policy_dir;  // "" = no directory seed
    std::string listen_host = "127.0.0.1";
    int listen_port = 8443;  // 0 = an ephemeral port
    std::string ca_cert, ca_key;
    int64_t token_validity = 3600;  // seconds, when POST /issue gives none
    std::string aws_endpoint = "https://sts.amazonaws.com";
    std::string aws_region = "us-east-1";
    std::string gcp_jwks, gcp_audience = "segwire-console";
    std::string azure_jwks, azure_audience = "segwire-console";
    // Rules that map a cloud identity to the one enforcer ID its token is bound to
    // (realms.hpp); a realm without one issues no tokens.
    std::string aws_enforcer_id, gcp_enforcer_id, azure_enforcer_id;
    // Cloud identities may register their ID for the first time without an admin's approval.
    bool cloud_auto_register = false;
};

// The attributes each realm's enforcer ID rule may use.
extern const std::vector<std::string> kAwsAttributes, kGcpAttributes, kAzureAttributes;

// Runs until SIGTERM/SIGINT; SIGHUP reloads --policy. Prints "listening on https://HOST:PORT" on
// stdout once the socket is bound. Returns the process exit code.
int run_server(const ServerOptions &opt);

}  // namespace segwire::console
