#!/usr/bin/env python3
"""A local stand-in for a cloud instance metadata service (GCP identity endpoint, Azure IMDS
token endpoint, AWS IMDSv2 role credentials). Serves the identity token in --token-file and the
AWS credentials in --aws-creds (JSON {role, AccessKeyId, SecretAccessKey, Token}); prints
{"port": N} when listening."""
import argparse
import http.server
import json
import sys


IMDS_TOKEN = "imds-session-token-1"


class Handler(http.server.BaseHTTPRequestHandler):
    token = ""
    hits = 0
    token_file = None
    aws = None

    def do_PUT(self):
        if self.path == "/latest/api/token" and Handler.aws:
            if not self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
                return self.answer(400, "missing X-aws-ec2-metadata-token-ttl-seconds")
            return self.answer(200, IMDS_TOKEN)
        self.answer(404, "not found")

    def do_GET(self):
        Handler.hits += 1
        if self.path.startswith("/computeMetadata/v1/instance/service-accounts/default/identity"):
            if self.headers.get("Metadata-Flavor") != "Google":
                return self.answer(403, "missing Metadata-Flavor: Google")
            return self.answer(200, open(Handler.token_file).read().strip())
        if self.path.startswith("/latest/meta-data/iam/security-credentials/") and Handler.aws:
            if self.headers.get("X-aws-ec2-metadata-token") != IMDS_TOKEN:
                return self.answer(401, "IMDSv2 session token required")
            role = self.path.rsplit("/", 1)[-1]
            if not role:
                return self.answer(200, Handler.aws["role"] + "\n")
            if role != Handler.aws["role"]:
                return self.answer(404, "no such role")
            creds = {k: Handler.aws[k] for k in ("AccessKeyId", "SecretAccessKey", "Token")}
            return self.answer(200, json.dumps(dict(creds, Code="Success")))
        if self.path.startswith("/metadata/identity/oauth2/token"):
            if self.headers.get("Metadata") != "true":
                return self.answer(400, "missing Metadata: true")
            return self.answer(200, json.dumps({"access_token": open(Handler.token_file).read().strip()}))
        self.answer(404, "not found")

    def answer(self, code, text):
        body = text.encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--token-file")
    p.add_argument("--aws-creds")
    a = p.parse_args()
    Handler.token_file = a.token_file
    if a.aws_creds:
        Handler.aws = json.loads(open(a.aws_creds).read())
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(json.dumps({"port": srv.server_address[1]}), flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
