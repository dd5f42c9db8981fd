// AWSSecurityToken realm: the enforcer sends the instance role's temporary credentials (from IMDS
// /latest/meta-data/iam/security-credentials/<role>); the Console proves them by calling STS
// GetCallerIdentity with a SigV4-signed request. The endpoint is configurable so that tests run a
// local fake that checks the signature with the secret it issued.
#pragma once

#include <map>
#include <string>

namespace segwire::console {

struct AwsCredentials {
    std::string access_key_id, secret_access_key, session_token;
};

struct AwsIdentity {
    std::string arn, account, user_id;
};

// SigV4 (AWS4-HMAC-SHA256) Authorization header value. `headers` are the headers to sign (names
// any case; values trimmed); `amz_date` is "YYYYMMDDTHHMMSSZ". `query` is the canonical query
// string (already sorted and encoded).
std::string sigv4_authorization(const std::string &method, const std::string &path,
                                const std::string &query,
                                const std::map<std::string, std::string> &headers,
                                const std::string &payload, const AwsCredentials &creds,
                                const std::string &region, const std::string &service,
                                const std::string &amz_date);

// Calls GetCallerIdentity at `endpoint` (http(s)://host[:port][/path]). Throws ConsoleError:
// 401 when STS refuses the credentials, 502 when it cannot be reached or answers nonsense.
AwsIdentity aws_get_caller_identity(const std::string &endpoint, const std::string &region,
                                    const AwsCredentials &creds);

}  // namespace segwire::console
