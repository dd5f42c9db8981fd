// AWSSecurityToken realm, the way HashiCorp Vault's AWS IAM auth works: the enforcer signs an
// sts:GetCallerIdentity request with its instance role's credentials (SigV4, libcurl) and sends
// the signed request — never the secret key. The Console checks that it is exactly
// GetCallerIdentity, that the signature covers this deployment's audience header
// (X-Segwire-Audience) and the configured STS host, and replays it to the configured STS
// endpoint (https only); STS's answer names the caller.
#pragma once

#include <string>

#include <rapidjson/document.h>

namespace segwire::console {

struct AwsIdentity {
    std::string arn, account, user_id;
};

// `metadata` = {method, url, body (base64), headers {name: value}} from POST /issue. Throws
// ConsoleError: 422 naming the malformed field (a metadata.secretAccessKey is refused outright),
// 403 for a request this Console does not replay (another action, another audience or host, a
// signature that does not cover them), 401 when STS refuses the signature, 502 when STS cannot be
// reached, its certificate does not verify against `ca_file` (or the system CAs), or it answers
// nonsense.
AwsIdentity aws_verify_presigned_request(const std::string &endpoint, const std::string &ca_file,
                                         const std::string &audience,
                                         const rapidjson::Value &metadata);

}  // namespace segwire::console
