"""Headless Debian Chromium driven over the DevTools protocol (python3-websocket): loads a page,
waits for a condition the page sets in its DOM, then reads the DOM and takes a screenshot.

Used by tests/integration/console/test_console_ui.py and tools/demo.py (docs/ui.md). As a script
(so that it can run inside a network namespace, next to a Console that listens there):

    browser.py URL [--trust-cert PEM] [--screenshot FILE] [--dump-dom FILE] [--timeout S]

prints the page's #graph-summary data attributes as JSON.
"""
import argparse
import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from html.parser import HTMLParser

import websocket  # Debian python3-websocket

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def spki_sha256(cert_pem_path):
    """base64 SHA-256 of a certificate's SubjectPublicKeyInfo: what Chromium's
    --ignore-certificate-errors-spki-list trusts (this one server key, not every certificate)."""
    pub = subprocess.run(["openssl", "x509", "-in", str(cert_pem_path), "-noout", "-pubkey"],
                         check=True, capture_output=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pub,
                         check=True, capture_output=True).stdout
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


class Chromium:
    """One headless Chromium with a fresh profile; `with Chromium() as c: c.open(url)`."""

    def __init__(self, trust_cert=None, size=(1400, 900)):
        self.profile = tempfile.mkdtemp(prefix="segwire-chromium-")
        args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={self.profile}",
                "--remote-debugging-port=0", f"--window-size={size[0]},{size[1]}",
                "--hide-scrollbars"]
        if trust_cert:
            args.append(f"--ignore-certificate-errors-spki-list={spki_sha256(trust_cert)}")
        self.log = open(os.path.join(self.profile, "chromium.log"), "w")
        self.proc = subprocess.Popen(args + ["about:blank"], stdout=self.log, stderr=self.log)
        self.ws = None
        self.seq = 0
        port_file = os.path.join(self.profile, "DevToolsActivePort")
        deadline = time.monotonic() + 60
        while not (os.path.exists(port_file) and open(port_file).read().count("\n") >= 1):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"chromium did not start: {self.log_text()}")
            time.sleep(0.05)
        port = int(open(port_file).read().split("\n")[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            pages = [t for t in json.load(r) if t["type"] == "page"]
        self.ws = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=60,
                                              suppress_origin=True)
        self.call("Page.enable")
        self.call("Runtime.enable")

    def log_text(self):
        self.log.flush()
        return open(self.log.name).read()[-4000:]

    def call(self, method, **params):
        self.seq += 1
        self.ws.send(json.dumps({"id": self.seq, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.seq:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]

    def evaluate(self, expression):
        r = self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                      awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expression}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def open(self, url):
        self.call("Page.navigate", url=url)

    def wait_for(self, expression, timeout=60.0):
        """Polls a JavaScript expression until it is truthy; returns its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value or time.monotonic() > deadline:
                return value
            time.sleep(0.1)

    def dom(self):
        return self.evaluate("document.documentElement.outerHTML")

    def screenshot(self, path):
        data = self.call("Page.captureScreenshot", format="png")["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def close(self):
        if self.ws:
            self.ws.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# The flow map page sets #graph-summary's data-state once cytoscape has laid the graph out (or
# once it knows why it cannot).
PAGE_SETTLED = ("(() => { const s = document.getElementById('graph-summary');"
                " return s && ['rendered', 'error', 'login'].includes(s.dataset.state)"
                " ? s.dataset.state : null; })()")


class FlowMapDom(HTMLParser):
    """#graph-summary's attributes and #graph-model's items, from a DOM dump."""

    def __init__(self, html):
        super().__init__()
        self.summary, self.nodes, self.edges = {}, [], []
        self._in_model = False
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id") == "graph-summary":
            self.summary = {k[5:]: v for k, v in a.items() if k.startswith("data-")}
        elif a.get("id") == "graph-model":
            self._in_model = True
        elif tag == "li" and self._in_model:
            item = {k[5:]: v for k, v in a.items() if k.startswith("data-")}
            (self.edges if "edge" in item else self.nodes).append(item)

    def handle_endtag(self, tag):
        if tag == "ul":
            self._in_model = False


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("url")
    ap.add_argument("--trust-cert", help="the server's certificate (PEM): trust its key")
    ap.add_argument("--screenshot")
    ap.add_argument("--dump-dom")
    ap.add_argument("--timeout", type=float, default=60)
    a = ap.parse_args()
    with Chromium(trust_cert=a.trust_cert) as c:
        c.open(a.url)
        state = c.wait_for(PAGE_SETTLED, a.timeout)
        html = c.dom()
        if a.dump_dom:
            with open(a.dump_dom, "w") as f:
                f.write(html)
        if a.screenshot:
            c.screenshot(a.screenshot)
    print(json.dumps(FlowMapDom(html).summary))
    return 0 if state == "rendered" else 1


if __name__ == "__main__":
    sys.exit(main())
