#!/usr/bin/env python3
"""A local stand-in for a cloud instance metadata service (GCP identity endpoint and Azure IMDS
token endpoint). Serves the identity token in --token-file; prints {"port": N} when listening."""
import argparse
import http.server
import json
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    token = ""
    hits = 0

    def do_GET(self):
        Handler.hits += 1
        if self.path.startswith("/computeMetadata/v1/instance/service-accounts/default/identity"):
            if self.headers.get("Metadata-Flavor") != "Google":
                return self.answer(403, "missing Metadata-Flavor: Google")
            return self.answer(200, open(Handler.token_file).read().strip())
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
    p.add_argument("--token-file", required=True)
    a = p.parse_args()
    Handler.token_file = a.token_file
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(json.dumps({"port": srv.server_address[1]}), flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
