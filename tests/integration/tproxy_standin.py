"""A transparent TCP relay standing in for segwire-proxy on the real kernel TPROXY path
(docs/l7-path.md): it accepts on an IP_TRANSPARENT listener (nft `tproxy to :PORT` hands it the
clients' connections to any address), asks segwire's identity.sock who the peer is, and opens
the upstream connection to the original destination from the client's own address
(IP_TRANSPARENT + bind), relaying bytes both ways.

Prints one JSON line when listening, then one per connection:
{"peer": [ip, port], "dst": [ip, port], "identity": {...}, "upstream": [ip, port]}
"""
import argparse
import json
import socket
import sys
import threading
import time

IP_TRANSPARENT = 19


def ask(path, peer, dst, deadline_s=3.0):
    q = json.dumps({"src": peer[0], "sport": peer[1], "dst": dst[0], "dport": dst[1]}) + "\n"
    end = time.monotonic() + deadline_s
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    f = s.makefile("r")
    try:
        while True:
            s.sendall(q.encode())
            a = json.loads(f.readline())
            if a.get("found") or time.monotonic() > end:
                return a
            time.sleep(0.02)  # the decision record reaches the control thread within ~50 ms
    finally:
        s.close()


def pump(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            b.sendall(d)
    except OSError:
        pass
    finally:
        try:
            b.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def handle(c, peer, args, lock):
    dst = c.getsockname()
    ident = ask(args.identity, peer, dst)
    up = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    up.setsockopt(socket.SOL_IP, IP_TRANSPARENT, 1)
    up.bind((peer[0], 0))  # the client's address, preserved; the kernel picks the port
    up.connect(dst)
    with lock:
        print(json.dumps({"peer": list(peer), "dst": list(dst), "identity": ident,
                          "upstream": list(up.getsockname())}), flush=True)
    t = threading.Thread(target=pump, args=(up, c), daemon=True)
    t.start()
    pump(c, up)
    t.join(timeout=60)
    c.close()
    up.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--identity", required=True)
    args = ap.parse_args()
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.setsockopt(socket.SOL_IP, IP_TRANSPARENT, 1)
    ls.bind(("0.0.0.0", args.port))
    ls.listen(64)
    print(json.dumps({"listening": args.port}), flush=True)
    lock = threading.Lock()
    while True:
        c, peer = ls.accept()
        threading.Thread(target=handle, args=(c, peer, args, lock), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
