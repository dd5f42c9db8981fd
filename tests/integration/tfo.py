#!/usr/bin/env python3
"""TCP Fast Open server and client for the namespace tests (stdlib only).

server: listens with TCP_FASTOPEN; for every accepted connection reads the request (with TFO it
        is already there: accept() returns on the data-carrying SYN, before the client's third
        ACK) and at once writes a --size byte response, then closes. One thread per connection,
        so a stuck connection never holds up the others.
client: --count sequential connections, each sending its request in the SYN (MSG_FASTOPEN; the
        first one only asks for a cookie), then reading the response to EOF; checks length and
        content. Prints one JSON line with the counts and the failures.
"""
import argparse
import json
import socket
import struct
import sys
import threading
import time

PATTERN = b"0123456789"  # no byte of it can form segwire's token fields or IDs


def response(size):
    return (PATTERN * (size // len(PATTERN) + 1))[:size]


def family(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def cmd_server(a):
    s = socket.socket(family(a.bind), socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)  # inherited: the answer fits at once
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_FASTOPEN, 256)
    s.bind((a.bind, a.port))
    s.listen(256)
    body = response(a.size)
    print(json.dumps({"listening": True}), flush=True)

    def finish(c, req, sent):
        try:
            c.setblocking(True)
            c.settimeout(a.timeout)
            while not req.endswith(b"\n"):
                d = c.recv(256)
                if not d:
                    return
                req += d
            c.sendall(body[sent:])
            c.shutdown(socket.SHUT_WR)
            c.recv(1)  # the client's close
        except OSError:
            pass
        finally:
            c.close()

    while True:
        c, _ = s.accept()
        # The fast path, in the accept loop itself: a data-carrying SYN's request is already
        # queued when accept() returns, and the answer goes out at once, before the client's
        # third ACK can arrive. Everything else (and the rest of the answer) in a thread.
        req, sent = b"", 0
        try:
            req = c.recv(256, socket.MSG_DONTWAIT)
            if req.endswith(b"\n"):
                c.setblocking(False)
                sent = c.send(body)
        except OSError:
            pass
        threading.Thread(target=finish, args=(c, req, sent), daemon=True).start()


def one(host, port, i, size, timeout):
    """One TFO connection; returns (bytes received, error or None)."""
    s = socket.socket(family(host), socket.SOCK_STREAM)
    # Blocking socket with kernel timeouts: Python's settimeout() would make the socket
    # non-blocking, and a non-blocking MSG_FASTOPEN send without a cookie fails with EINPROGRESS.
    tv = struct.pack("ll", int(timeout), 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
    got = bytearray()
    deadline = time.monotonic() + timeout
    try:
        s.sendto(b"GET %d\n" % i, socket.MSG_FASTOPEN, (host, port))
        while len(got) < size + 1 and time.monotonic() < deadline:
            d = s.recv(65536)
            if not d:
                break
            got += d
        if len(got) != size:
            return len(got), f"received {len(got)} of {size} bytes"
        if got != response(size):
            return len(got), "response content differs"
        return len(got), None
    except BlockingIOError:  # SO_RCVTIMEO / SO_SNDTIMEO ran out
        return len(got), f"timed out ({timeout:g} s) after {len(got)} of {size} bytes"
    except OSError as e:
        return len(got), f"{type(e).__name__}: {e} after {len(got)} of {size} bytes"
    finally:
        s.close()


def cmd_client(a):
    ok, failures = 0, []
    t0 = time.monotonic()
    for i in range(a.count):
        n, err = one(a.host, a.port, i, a.size, a.timeout)
        if err:
            failures.append({"connection": i, "bytes": n, "error": err})
            if len(failures) >= a.max_failures:
                break
        else:
            ok += 1
    print(json.dumps({"ok": ok, "attempted": i + 1, "failures": failures,
                      "seconds": round(time.monotonic() - t0, 2)}), flush=True)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("server")
    q.add_argument("--bind", default="::")
    q.add_argument("--port", type=int, required=True)
    q.add_argument("--size", type=int, default=50 * 1024)
    q.add_argument("--timeout", type=float, default=60)
    q = sub.add_parser("client")
    q.add_argument("--host", required=True)
    q.add_argument("--port", type=int, required=True)
    q.add_argument("--count", type=int, default=200)
    q.add_argument("--size", type=int, default=50 * 1024)
    q.add_argument("--timeout", type=float, default=10)
    q.add_argument("--max-failures", type=int, default=5)
    a = p.parse_args()
    return {"server": cmd_server, "client": cmd_client}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
