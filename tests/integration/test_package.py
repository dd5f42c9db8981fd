"""Debian packages (docs/packaging.md).

tools/package makes segwire and segwire-console from the suite's build; Debian's own tools read
them (dpkg-deb, lintian, systemd-analyze, man); they are installed on this host, every binary runs,
the packaged example configuration passes `segwire --check`, and the packaged units run under a
real systemd: a container booted over an overlay of this host's root (machine.py), in which
segwire@example runs the shipped /etc/segwire/example.json on two veth interfaces and the Console
serves an app credential made by its command-line tool. The packages are purged at the end, and
also when a test fails.
"""
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from machine import Machine
from testbed import BUILD, ROOT, sh, wait_for

PACKAGES = ("segwire", "segwire-console")
BINARIES = {"segwire": ("segwire", "segwirectl", "segwire-proxy"), "segwire-console": ("segwire-console",)}
# CAP_NET_ADMIN (12), CAP_NET_RAW (13), CAP_IPC_LOCK (14): the enforcer's bounding set.
ENFORCER_CAPS = (1 << 12) | (1 << 13) | (1 << 14)
# Units that would hold a boot or a start in the machine for minutes (no network is configured
# there, so nothing would ever be "online"); the host may have either.
MASKED = ("systemd-networkd-wait-online.service", "NetworkManager-wait-online.service")


def project_version():
    return json.loads(sh(f"meson introspect {BUILD} --projectinfo").stdout)["version"]


def installed(pkg):
    p = sh(f"dpkg-query -W -f='${{Status}}' {pkg}", check=False)
    return p.returncode == 0 and "installed" in p.stdout and "not-installed" not in p.stdout


def purge():
    present = [p for p in PACKAGES
               if sh(f"dpkg-query -W -f='${{Status}}' {p}", check=False).returncode == 0]
    if present:
        sh("apt-get purge -y -q -o DPkg::Lock::Timeout=300 " + " ".join(present), timeout=600)


@pytest.fixture(scope="module")
def debs():
    out = Path(tempfile.mkdtemp(prefix="segwire-debs-"))
    try:
        p = subprocess.run([str(ROOT / "tools" / "package"), "--build", str(BUILD), "--out",
                            str(out)], capture_output=True, text=True, timeout=1800)
        assert p.returncode == 0, f"tools/package failed:\n{p.stdout}\n{p.stderr}"
        found = {pkg: list(out.glob(f"{pkg}_*_amd64.deb")) for pkg in PACKAGES}
        assert all(len(v) == 1 for v in found.values()), (found, p.stdout)
        yield {pkg: v[0] for pkg, v in found.items()}
    finally:
        shutil.rmtree(out, ignore_errors=True)


@pytest.fixture(scope="module")
def host(debs):
    """The packages installed on this host (purged afterwards, whatever happens)."""
    for pkg in PACKAGES:
        assert not installed(pkg), (f"{pkg} is already installed on this host: the test installs "
                                    f"and purges it, so it will not run over an installation")
    try:
        sh("apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=300 "
           + " ".join(str(d) for d in debs.values()), timeout=600)
        yield debs
    finally:
        purge()


def deb_field(deb, field):
    return sh(f"dpkg-deb --field {deb} {field}").stdout.strip()


def deb_files(deb):
    return {line.split()[-1].lstrip(".") for line in sh(f"dpkg-deb --contents {deb}").stdout.splitlines()
            if not line.startswith("d")}


def deb_control_file(deb, name):
    return sh(f"dpkg-deb --info {deb} {name}", check=False).stdout


def test_package_refuses_a_native_build(tmp_path):
    """A build tuned to this CPU is refused, naming the option (it would not run elsewhere)."""
    native = tmp_path / "build-native"
    sh(f"meson setup {native} {ROOT} -Dmarch=native -Dbenchmarks=disabled", timeout=600)
    p = subprocess.run([str(ROOT / "tools" / "package"), "--build", str(native), "--out",
                        str(tmp_path / "out")], capture_output=True, text=True, timeout=600)
    assert p.returncode == 1, p
    assert "-Dmarch=native" in p.stderr and "x86-64-v2" in p.stderr, p.stderr
    assert not list((tmp_path / "out").glob("*.deb"))


def test_packages_hold_the_binaries_units_configuration_and_man_pages(debs):
    version = project_version()
    files = {pkg: deb_files(deb) for pkg, deb in debs.items()}
    for pkg, deb in debs.items():
        assert deb_field(deb, "Architecture") == "amd64"
        assert deb_field(deb, "Version").startswith(version), deb_field(deb, "Version")
        # Exactly the packaged binaries: no benchmark tool or test program.
        assert {f for f in files[pkg] if f.startswith("/usr/bin/")} == \
            {f"/usr/bin/{b}" for b in BINARIES[pkg]}
        for b in BINARIES[pkg]:
            assert f"/usr/share/man/man8/{b}.8.gz" in files[pkg]
        assert f"/usr/share/doc/{pkg}/copyright" in files[pkg]
        assert f"/usr/share/doc/{pkg}/packaging.md" in files[pkg] or \
            f"/usr/share/doc/{pkg}/packaging.md.gz" in files[pkg]

    s, c = files["segwire"], files["segwire-console"]
    assert "/lib/systemd/system/segwire@.service" in s
    assert "/usr/share/segwire/systemd/af_xdp.conf" in s
    assert "/usr/lib/tmpfiles.d/segwire.conf" in s
    assert "/lib/systemd/system/segwire-console.service" in c
    assert deb_control_file(debs["segwire"], "conffiles").split() == ["/etc/segwire/example.json"]
    assert deb_control_file(debs["segwire-console"], "conffiles").split() == \
        ["/etc/default/segwire-console"]
    assert "/usr/share/doc/segwire-console/examples/policy/30-rulesets.json" in c

    # The units as written in tools/debian/, installed unchanged.
    for pkg, unit in (("segwire", "segwire@.service"), ("segwire-console", "segwire-console.service")):
        shipped = sh(f"dpkg-deb --fsys-tarfile {debs[pkg]} | tar -xOf - ./lib/systemd/system/{unit}").stdout
        assert shipped == (ROOT / "tools" / "debian" / unit).read_text()

    # Run-time libraries from dpkg-shlibdeps, and the DPDK drivers segwire loads as plugins.
    dep = deb_field(debs["segwire"], "Depends")
    for lib in (r"librte-eal\d+", r"librte-ethdev\d+", r"libssl3", r"libipsec-mb\d",
                r"libcurl4", r"librte-mempool-ring\d+", r"librte-bus-vdev\d+",
                r"librte-net-af-packet\d+"):
        assert re.search(rf"(^|, ){lib}\b", dep), (lib, dep)
    rec = deb_field(debs["segwire"], "Recommends")
    assert re.search(r"librte-net-tap\d+", rec) and re.search(r"librte-net-af-xdp\d+", rec), rec
    cdep = deb_field(debs["segwire-console"], "Depends")
    for lib in (r"libsqlite3-0", r"libcjose0", r"libssl3", r"libcpp-httplib[\d.]+"):
        assert re.search(rf"(^|, ){lib}\b", cdep), (lib, cdep)
    assert "librte" not in cdep


def test_lintian_finds_no_error_or_warning(debs):
    p = sh("lintian --no-tag-display-limit " + " ".join(str(d) for d in debs.values()),
           check=False, timeout=600)
    problems = [line for line in p.stdout.splitlines() if re.match(r"[EW]: ", line)]
    assert not problems, p.stdout
    assert p.returncode == 0, p.stdout + p.stderr


def test_installed_binaries_print_the_version_and_check_the_example(host):
    described = re.search(r'kBuild = "([^"]*)"',
                          (BUILD / "config" / "version.hpp").read_text()).group(1)
    version = project_version()
    for pkg, binaries in BINARIES.items():
        for b in binaries:
            out = sh(f"/usr/bin/{b} --version").stdout
            assert out == f"{b} {version} ({described})\n", out
            # The installed page renders without a warning.
            assert sh(f"man -w {b}").stdout.strip() == f"/usr/share/man/man8/{b}.8.gz"
            p = sh(f"MANWIDTH=80 man --warnings {b}")
            assert p.stderr == "" and b in p.stdout, p.stderr
    p = sh("/usr/bin/segwire --check --config /etc/segwire/example.json")
    assert p.stdout == "segwire: /etc/segwire/example.json is valid\n"
    assert "/etc/segwire/example.json" in sh("dpkg-query -W -f='${Conffiles}' segwire").stdout
    assert sh("stat -c %a /var/lib/segwire").stdout.strip() == "700"  # tmpfiles.d, at install
    # The Console is enabled on installation, no enforcer instance is.
    wants = Path("/etc/systemd/system/multi-user.target.wants")
    assert (wants / "segwire-console.service").is_symlink()
    assert not list(wants.glob("segwire@*"))


def test_units_pass_systemd_analyze_verify(host):
    """systemd reads both units without a complaint (an unknown or misspelled directive, a
    missing binary would be printed here)."""
    p = sh("systemd-analyze verify segwire@example.service segwire-console.service", check=False,
           cwd="/")
    assert p.returncode == 0 and p.stdout == "" and p.stderr == "", p


ISSUE = r"""
import base64, json, ssl, sys, tempfile, urllib.request
cred = json.load(open(sys.argv[1]))
d = tempfile.mkdtemp()
for k in ("certificate", "certificateKey", "certificateAuthority"):
    open(f"{d}/{k}", "wb").write(base64.b64decode(cred[k]))
ctx = ssl.create_default_context(cafile=f"{d}/certificateAuthority")
ctx.load_cert_chain(f"{d}/certificate", f"{d}/certificateKey")
req = urllib.request.Request(cred["APIURL"] + "/issue", method="POST",
                             data=json.dumps({"realm": "Certificate"}).encode(),
                             headers={"Content-Type": "application/json"})
token = json.load(urllib.request.urlopen(req, context=ctx, timeout=30))["token"]
req = urllib.request.Request(cred["APIURL"] + "/namespace",
                             headers={"Authorization": "Bearer " + token})
print(json.dumps(json.load(urllib.request.urlopen(req, context=ctx, timeout=30))))
"""


def proc_status(m, pid):
    text = m.run(f"cat /proc/{pid}/status").stdout
    return dict(re.findall(r"^(\w+):\s+(.*)$", text, re.M))


def test_units_run_under_systemd(host):
    with Machine(mask=MASKED) as m:
        # The shipped example as it is: af_packet on eth1 and eth2, which the machine gets here.
        m.run("ip link add eth1 type veth peer name eth1p && ip link add eth2 type veth peer "
              "name eth2p && for i in eth1 eth1p eth2 eth2p; do ip link set $i up; done")
        m.run("systemctl start segwire@example", timeout=120)
        ports = wait_for(lambda: json.loads(m.run("segwirectl --prefix example --json ports",
                                                  check=False).stdout or "null"),
                         timeout=120, what="segwire@example's telemetry")
        assert {p["driver"] for p in ports.values()} == {"net_af_packet"}, ports
        u = m.unit("segwire@example", "MainPID", "ActiveState")
        assert u["ActiveState"] == "active", u
        pid = u["MainPID"]
        st = proc_status(m, pid)
        assert int(st["CapBnd"], 16) == ENFORCER_CAPS and int(st["CapEff"], 16) == ENFORCER_CAPS, st
        assert st["NoNewPrivs"] == "1" and st["Seccomp"] == "2", st
        # What the service sees: a read-only system, its state directory writable, no /root.
        inside = f"nsenter -t {pid} -m -- sh -c"
        p = m.run(f"{inside} 'touch /etc/segwire/probe'", check=False)
        assert p.returncode != 0 and "Read-only file system" in p.stderr, p
        m.run(f"{inside} 'touch /var/lib/segwire/probe && rm /var/lib/segwire/probe'")
        assert m.run("ls -A /root").stdout != ""
        assert m.run(f"{inside} 'ls -A /root'").stdout == ""  # ProtectHome=: an empty /root
        assert m.run("stat -c %a /var/lib/segwire").stdout.strip() == "700"
        # SIGHUP (re-read identity.policy_file) leaves it running.
        m.run("systemctl reload segwire@example")
        m.run("segwirectl --prefix example stats")
        assert m.unit("segwire@example", "MainPID")["MainPID"] == pid
        # The daemon writes a capture where segwirectl says: /tmp is the machine's, not a private
        # one; elsewhere outside its directories it is refused, naming the file.
        m.run("segwirectl --prefix example capture -w /tmp/example.pcapng -d 0.5", timeout=120)
        m.run("tshark -r /tmp/example.pcapng")  # a pcapng file Wireshark reads
        p = m.run("segwirectl --prefix example capture -w /etc/segwire/x.pcapng -d 0.5",
                  check=False, timeout=120)
        assert p.returncode != 0 and "/etc/segwire/x.pcapng" in p.stderr + p.stdout, p
        m.run("systemctl stop segwire@example", timeout=120)
        u = m.unit("segwire@example", "Result", "ExecMainStatus", "ActiveState")
        assert u == {"Result": "success", "ExecMainStatus": "0", "ActiveState": "inactive"}, u

        # AF_XDP ports: refused under the unit alone, running with the packaged drop-in.
        m.run("ip link add eth3 type veth peer name eth3p && ip link add eth4 type veth peer "
              "name eth4p && for i in eth3 eth3p eth4 eth4p; do ip link set $i up; done")
        example = (m.root / "etc" / "segwire" / "example.json").read_text()
        xdp = example.replace('"example"', '"xdp"').replace("/var/lib/segwire/example",
                                                              "/var/lib/segwire/xdp")
        xdp = xdp.replace("net_af_packet_in,iface=eth1", "net_af_xdp_in,iface=eth3")
        xdp = xdp.replace("net_af_packet_out,iface=eth2", "net_af_xdp_out,iface=eth4")
        assert "net_af_xdp_in" in xdp and '"xdp"' in xdp
        (m.root / "etc" / "segwire" / "xdp.json").write_text(xdp)
        m.run("systemctl start segwire@xdp", timeout=120)
        wait_for(lambda: m.unit("segwire@xdp", "Result")["Result"] == "exit-code", timeout=120,
                 what="segwire@xdp to fail without the AF_XDP drop-in")
        m.run("systemctl stop segwire@xdp", timeout=120)
        log = m.run("journalctl --no-pager -u segwire@xdp").stdout
        assert "critical port inside (net_af_xdp_in)" in log, log
        m.run("mkdir -p /etc/systemd/system/segwire@xdp.service.d && ln -s "
              "/usr/share/segwire/systemd/af_xdp.conf /etc/systemd/system/segwire@xdp.service.d/ "
              "&& systemctl daemon-reload && systemctl start segwire@xdp", timeout=120)
        ports = wait_for(lambda: json.loads(m.run("segwirectl --prefix xdp --json ports",
                                                  check=False).stdout or "null"),
                         timeout=120, what="segwire@xdp's telemetry")
        assert {p["driver"] for p in ports.values()} == {"net_af_xdp"}, ports
        st = proc_status(m, m.unit("segwire@xdp", "MainPID")["MainPID"])
        assert int(st["CapBnd"], 16) == ENFORCER_CAPS | (1 << 21), st  # + CAP_SYS_ADMIN
        m.run("systemctl stop segwire@xdp", timeout=120)
        assert m.unit("segwire@xdp", "Result")["Result"] == "success"

        # A bad file is refused by ExecStartPre, naming the field, before DPDK starts.
        (m.root / "etc" / "segwire" / "bad.json").write_text('{"workers": 1}\n')
        assert m.run("systemctl start segwire@bad", check=False, timeout=120).returncode != 0
        log = m.run("journalctl --no-pager -u segwire@bad").stdout
        assert "invalid config /etc/segwire/bad.json: ports" in log, log
        assert "EAL" not in log, log

        # The Console, under its dynamic user.
        m.run("systemctl start segwire-console", timeout=120)

        def healthy():
            return m.run("curl -sk -o /dev/null -w '%{http_code}' https://127.0.0.1:8443/healthz",
                         check=False).stdout == "200"
        wait_for(healthy, timeout=120, what="segwire-console's /healthz")
        pid = m.unit("segwire-console", "MainPID")["MainPID"]
        st = proc_status(m, pid)
        uid = int(st["Uid"].split()[0])
        assert uid != 0, st
        assert int(st["CapEff"], 16) == 0 and int(st["CapBnd"], 16) == 0, st
        assert st["NoNewPrivs"] == "1" and st["Seccomp"] == "2", st
        # The data directory where systemd keeps a DynamicUser's state (segwire-console.postrm
        # removes both on purge).
        assert m.run("readlink /var/lib/segwire-console").stdout.strip() == "private/segwire-console"
        # The operator's tool, as root, on the data directory of the running server; the server
        # takes the new credential at once, and again after a restart.
        m.run("segwire-console appcred create --data /var/lib/segwire-console --name ops "
              "--role admin --out /root/ops.json")
        # Every file of the data directory is still the service's.
        assert m.run(f"find /var/lib/private/segwire-console ! -uid {uid}").stdout == ""
        (m.root / "root" / "issue.py").write_text(ISSUE)
        ns = json.loads(m.run("/usr/bin/python3 /root/issue.py /root/ops.json").stdout)
        assert "name" in ns, ns
        m.run("systemctl restart segwire-console", timeout=120)
        wait_for(healthy, timeout=120, what="segwire-console's /healthz after a restart")
        assert json.loads(m.run("/usr/bin/python3 /root/issue.py /root/ops.json").stdout) == ns
        m.run("systemctl stop segwire-console", timeout=120)
        u = m.unit("segwire-console", "Result", "ActiveState")
        assert u == {"Result": "success", "ActiveState": "inactive"}, u


def test_purge_leaves_nothing_behind(host):
    # A Console that ran here would have left its data where systemd keeps a DynamicUser's state
    # (the layout test_units_run_under_systemd saw); an enforcer its state and an instance link.
    # (On a host running systemd the installation started the Console, which made them already.)
    Path("/var/lib/private").mkdir(mode=0o700, exist_ok=True)
    Path("/var/lib/private/segwire-console").mkdir(mode=0o700, exist_ok=True)
    Path("/var/lib/private/segwire-console/console.db").touch()
    if not Path("/var/lib/segwire-console").is_symlink():
        Path("/var/lib/segwire-console").symlink_to("private/segwire-console")
    Path("/var/lib/segwire/edge1").mkdir()
    wants = Path("/etc/systemd/system/multi-user.target.wants")
    (wants / "segwire@edge1.service").symlink_to("/lib/systemd/system/segwire@.service")
    purge()
    for pkg in PACKAGES:
        assert sh(f"dpkg-query -W {pkg}", check=False).returncode != 0
    left = [p for p in ("/usr/bin/segwire", "/usr/bin/segwirectl", "/usr/bin/segwire-proxy",
                        "/usr/bin/segwire-console", "/lib/systemd/system/segwire-proxy@.service",
                        "/lib/systemd/system/segwire@.service",
                        "/lib/systemd/system/segwire-console.service",
                        "/usr/lib/tmpfiles.d/segwire.conf", "/etc/segwire",
                        "/etc/default/segwire-console", "/var/lib/segwire",
                        "/var/lib/segwire-console", "/var/lib/private/segwire-console",
                        "/usr/share/man/man8/segwire.8.gz", "/usr/share/doc/segwire",
                        str(wants / "segwire-console.service"), str(wants / "segwire@edge1.service"))
            if Path(p).exists() or Path(p).is_symlink()]
    assert not left, left
