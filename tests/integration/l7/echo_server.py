"""The service behind the proxy in the L7 tests: a real HTTP/1.1 server (http.server) that echoes
what it received and streams big bodies both ways.

  GET  /echo..., /orders/..., /health  -> 200 JSON {"path", "headers", "peer"}
  POST /upload                          -> reads the body (Content-Length or chunked) in 64 KiB
                                           pieces, answers {"sha256", "length"}
  GET  /download?size=N                 -> N bytes of a fixed pattern, streamed, Content-Length
  GET  with "Upgrade: echo"             -> 101 Switching Protocols, then every byte echoed back
"""
import hashlib
import json
import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

PATTERN = bytes(range(256)) * 256  # 64 KiB


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def setup(self):
        super().setup()
        # Headers and body leave in separate writes: without this every answer waits for the
        # client's delayed ACK (~40 ms), which would hide everything else in the measurements.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send_json(self, obj, status=200):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.headers.get("Upgrade", "").lower() == "echo":
            self.send_response(101)
            self.send_header("Upgrade", "echo")
            self.send_header("Connection", "Upgrade")
            self.end_headers()
            self.wfile.flush()
            while True:  # the upgraded protocol: an echo of raw bytes until the peer closes
                b = self.connection.recv(65536)
                if not b:
                    break
                self.connection.sendall(b)
            self.close_connection = True
            return
        u = urlparse(self.path)
        if u.path == "/download":
            size = int(parse_qs(u.query)["size"][0])
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            left = size
            while left:
                n = min(left, len(PATTERN))
                self.wfile.write(PATTERN[:n])
                left -= n
            return
        self.send_json({"path": self.path, "headers": [[k, v] for k, v in self.headers.items()],
                        "peer": list(self.client_address)})

    do_HEAD = do_GET
    do_DELETE = do_GET

    def do_POST(self):
        h = hashlib.sha256()
        length = 0
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b""):
                        pass
                    break
                left = size
                while left:
                    b = self.rfile.read(min(left, 65536))
                    h.update(b)
                    left -= len(b)
                length += size
                self.rfile.readline()
        else:
            left = int(self.headers.get("Content-Length", "0"))
            while left:
                b = self.rfile.read(min(left, 65536))
                if not b:
                    break
                h.update(b)
                length += len(b)
                left -= len(b)
        self.send_json({"sha256": h.hexdigest(), "length": length,
                        "headers": [[k, v] for k, v in self.headers.items()]})


if __name__ == "__main__":
    srv = ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])), Handler)
    print("ready", flush=True)
    srv.serve_forever()
