"""The test OIDC issuer's key set over HTTPS: GET /jwks.json -> the file given, on TLS with the
certificate and key given (the proxy verifies it against the test CA)."""
import ssl
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

host, port, cert, key, jwks_file = sys.argv[1:6]


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_GET(self):
        if self.path != "/jwks.json":
            self.send_error(404)
            return
        body = open(jwks_file, "rb").read()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


srv = ThreadingHTTPServer((host, int(port)), Handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print("ready", flush=True)
srv.serve_forever()
