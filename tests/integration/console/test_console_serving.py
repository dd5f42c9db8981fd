"""The Console's event-driven transport (docs/console-serving.md): long-polls parked, not served by
a thread each (issue 22 item 2); the connection cap; the idle timeout.

A Console with two handler threads holds 200 enforcers' long-polls at once, each enforcer with its
own app credential, token, key and registration; while all 200 wait, the API still answers (the
open long-polls gauge, an admin's write), and the write reaches every one of them. On a Console
whose long-polls pin a server thread each (cpp-httplib's pool, before this transport), the 200
waits take every thread and neither the gauge nor the write answers.
"""
import base64
import http.client
import re
import socket
import ssl
import threading

import pytest

from console_harness import Console, make_csr, wait_until

ENFORCERS = 200
THREADS = 2
TAGS = ["role=appliance", "site=dc1"]  # the example policy's profile mapping


def _enforcer(console, admin, n):
    """An enforcer credential (POST /appcreds), its token (POST /issue, mTLS) and registration."""
    eid = f"enf-park-{n:03d}"
    status, _, cred = console.request("POST", "/appcreds",
                                      {"name": eid, "role": "enforcer", "enforcerID": eid},
                                      token=admin)
    assert status == 201, cred
    files = {}
    for field, suffix in (("certificate", "crt"), ("certificateKey", "key")):
        p = console.workdir / f"{eid}.{suffix}.pem"
        p.write_bytes(base64.b64decode(cred[field]))
        files[field] = p
    token = console.issue_with({"files": files})
    _, csr = make_csr(console.workdir, eid)
    status, _, body = console.request("POST", "/enforcers",
                                      {"name": eid, "associatedTags": TAGS, "csr": csr},
                                      token=token)
    assert status == 201, body
    return eid, token


def _long_polls_open(console, admin):
    status, _, text = console.request("GET", "/metrics", token=admin, timeout=60)
    assert status == 200, text
    m = re.search(r"^segwire_console_long_polls_open (\d+)$", text, re.M)
    assert m, text
    return int(m.group(1))


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_200_parked_long_polls_on_two_threads_all_get_the_write(request, tmp_path, policy_dir,
                                                                 store):
    database = request.getfixturevalue("pg_cluster").new_database() if store == "postgresql" \
        else None
    console = Console(tmp_path, policy_dir=policy_dir, database=database,
                      extra_args=["--threads", str(THREADS)]).start()
    try:
        admin = console.token("admin")
        enforcers = [_enforcer(console, admin, n) for n in range(ENFORCERS)]
        etags = []  # each enforcer's bundle has its own ETag
        for eid, tok in enforcers:
            status, headers, _ = console.request("GET", f"/enforcers/{eid}/policy", token=tok)
            assert status == 200
            etags.append(headers["ETag"])

        results = [None] * ENFORCERS

        def poll(i, eid, token, etag):
            # Each long-poll on its own connection, as each enforcer has its own.
            try:
                conn = http.client.HTTPSConnection("127.0.0.1", console.port,
                                                   context=console.context(), timeout=180)
                conn.request("GET", f"/enforcers/{eid}/policy?wait=60",
                             headers={"Authorization": f"Bearer {token}",
                                      "If-None-Match": etag})
                resp = conn.getresponse()
                resp.read()
                results[i] = (resp.status, resp.getheader("ETag"))
                conn.close()
            except Exception as e:  # noqa: BLE001 - recorded and asserted below
                results[i] = ("error", repr(e))

        threads = [threading.Thread(target=poll, args=(i, eid, tok, etags[i]), daemon=True)
                   for i, (eid, tok) in enumerate(enforcers)]
        for t in threads:
            t.start()
        # All 200 wait at once; the gauge is read through the same API (a third request while
        # both handler threads are free: the waits hold none).
        assert wait_until(lambda: _long_polls_open(console, admin) == ENFORCERS, timeout=120), \
            f"open long-polls: {_long_polls_open(console, admin)} of {ENFORCERS}"
        assert all(r is None for r in results), [r for r in results if r is not None][:5]

        # A new PU: every enforcer's bundle carries every PU, so every one of them changes.
        status, _, pu = console.request("POST", "/processingunits",
                                        {"ID": "pu-parked-wake", "name": "parked-wake",
                                         "associatedTags": ["app=parked"],
                                         "addresses": ["198.51.100.7/32"]},
                                        token=admin, timeout=60)
        assert status == 201, pu

        for t in threads:
            t.join(timeout=180)
        answered = [r for r in results if r is not None]
        assert len(answered) == ENFORCERS
        wrong = [(enforcers[i][0], etags[i], r) for i, r in enumerate(results)
                 if r[0] != 200 or r[1] == etags[i]]
        assert not wrong, f"{len(wrong)} long-polls did not get the new bundle: {wrong[:5]}"
        assert wait_until(lambda: _long_polls_open(console, admin) == 0)
    finally:
        assert console.stop() == 0


def _closed_by_server(sock):
    """True once the server has closed `sock` (EOF or reset); False while it stays open."""
    sock.settimeout(0.2)
    try:
        return sock.recv(1) == b""
    except socket.timeout:
        return False
    except (ConnectionResetError, ssl.SSLError, OSError):
        return True


def test_connection_cap_refuses_with_a_log_line_and_frees_slots(tmp_path, policy_dir):
    console = Console(tmp_path, policy_dir=policy_dir,
                      extra_args=["--max-connections", "3"]).start()
    try:
        held = [socket.create_connection(("127.0.0.1", console.port)) for _ in range(3)]
        # A fourth connection is closed by the server, and the log says why.
        assert wait_until(lambda: _refused_one(console), timeout=60)
        assert wait_until(lambda: re.search(
            r"connection cap reached: 3 connections open \(--max-connections 3\); "
            r"refused \d+ new connection\(s\)", console.log_text()), timeout=30), \
            console.log_text()
        for s in held:
            s.close()
        # Slots free again once those connections are gone.
        assert wait_until(lambda: _healthz(console) == 200, timeout=60)
    finally:
        assert console.stop() == 0


def _refused_one(console):
    s = socket.create_connection(("127.0.0.1", console.port))
    try:
        return wait_until(lambda: _closed_by_server(s), timeout=10)
    finally:
        s.close()


def _healthz(console):
    try:
        return console.request("GET", "/healthz", timeout=10)[0]
    except OSError:
        return None


def test_idle_connection_is_closed_after_the_idle_timeout(tmp_path, policy_dir):
    console = Console(tmp_path, policy_dir=policy_dir, extra_args=["--idle-timeout", "1s"]).start()
    try:
        conn = http.client.HTTPSConnection("127.0.0.1", console.port, context=console.context(),
                                           timeout=30)
        conn.request("GET", "/healthz")
        resp = conn.getresponse()
        assert resp.status == 200 and resp.getheader("Connection", "keep-alive") != "close"
        resp.read()
        # Kept alive after the answer, closed by the server once idle.
        assert wait_until(lambda: _closed_by_server(conn.sock), timeout=60)
        conn.close()
    finally:
        assert console.stop() == 0
