"""A booted systemd to run packaged units in: systemd-nspawn over an overlay of this host's root.

The container sees this host's files as they are (installed packages included) through an
overlayfs whose upper layer is a tmpfs: whatever the container writes, its boot included, is gone
when it stops, and the host's files are never touched. It has a network namespace of its own
(--private-network: loopback only, the caller adds interfaces) and boots to basic.target, so no
service of the host starts in it unless a test starts it. Commands run inside with nsenter.

Everything is named after the test bed's tag (pid + counter); a machine left behind by a killed run
is swept by the next one.
"""
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from testbed import sh, unique_tag, wait_for

MOUNT_RE = re.compile(r"^\S+ (/tmp/(swt(\d+)x\d+)-machine-\w+)(/root)? ")


def sweep_stale_machines():
    """Unmounts the overlays of earlier runs whose pytest process is gone."""
    mounts = Path("/proc/mounts").read_text().splitlines()
    for line in reversed(mounts):  # the overlay before the tmpfs under it
        m = MOUNT_RE.match(line)
        if m and not Path(f"/proc/{m.group(3)}").exists():
            sh(f"umount -l {line.split()[1]}", check=False)
    for d in Path("/tmp").glob("swt*x*-machine-*"):
        m = re.match(r"swt(\d+)x", d.name)
        if m and not Path(f"/proc/{m.group(1)}").exists() and not os.path.ismount(d):
            shutil.rmtree(d, ignore_errors=True)


class Machine:
    def __init__(self, mask=()):
        sweep_stale_machines()
        self.name = unique_tag()
        self.mask = mask
        self.dir = None
        self.proc = None
        self.init_pid = None
        self.created_nspawn_dir = not Path("/run/systemd/nspawn").exists()

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def root(self):
        return self.dir / "root"

    def start(self):
        self.dir = Path(tempfile.mkdtemp(prefix=f"{self.name}-machine-"))
        sh(f"mount -t tmpfs -o mode=0755 tmpfs {self.dir}")
        for d in ("upper", "work", "root"):
            (self.dir / d).mkdir()
        sh(f"mount -t overlay overlay -o lowerdir=/,upperdir={self.dir}/upper,"
           f"workdir={self.dir}/work {self.root}")
        # A machine ID of its own (systemd makes a transient one), and the units this test keeps
        # from starting.
        (self.root / "etc" / "machine-id").unlink(missing_ok=True)
        for unit in self.mask:
            link = self.root / "etc" / "systemd" / "system" / unit
            link.unlink(missing_ok=True)
            link.symlink_to("/dev/null")
        self.log_path = self.dir.parent / f"{self.dir.name}.log"
        self.logf = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            ["systemd-nspawn", "--quiet", "-D", str(self.root), "-M", self.name,
             "--private-network", "--register=no", "--keep-unit", "--console=pipe",
             # What a DPDK service needs of the host and nspawn leaves out by default: EAL looks
             # for the vfio module in /sys/module, pins memory (CAP_IPC_LOCK), and AF_XDP loads
             # an XDP program (nspawn's own seccomp filter lets bpf(2) through with CAP_BPF only).
             "--bind-ro=/sys/module", "--capability=CAP_IPC_LOCK,CAP_BPF",
             "--system-call-filter=bpf",
             "--boot", "--", "--unit=basic.target"],
            stdin=subprocess.DEVNULL, stdout=self.logf, stderr=subprocess.STDOUT)
        self.init_pid = wait_for(self._find_init, timeout=60, what="the machine's systemd")
        if self.init_pid < 0:
            raise RuntimeError(f"systemd-nspawn exited with {self.proc.returncode}:\n{self.log()}")
        wait_for(self._booted, timeout=120, what="the machine to finish booting")
        return self

    def _booted(self):
        state = self.run("systemctl is-system-running", check=False, timeout=30).stdout.strip()
        return state in ("running", "degraded")

    def _find_init(self):
        """The machine's systemd (a child of systemd-nspawn, or a grandchild); -1 once nspawn has
        exited."""
        if self.proc.poll() is not None:
            return -1
        level = [str(self.proc.pid)]
        for _ in range(2):
            level = [c for p in level for c in sh(f"pgrep -P {p}", check=False).stdout.split()]
            for pid in level:
                try:
                    if Path(f"/proc/{pid}/comm").read_text().strip() == "systemd":
                        return int(pid)
                except OSError:
                    pass
        return None

    def log(self):
        try:
            return self.log_path.read_text()[-4000:]
        except OSError:
            return ""

    def run(self, cmd, check=True, timeout=60, **kw):
        """Runs a shell command inside the machine (all its namespaces)."""
        return sh(f"nsenter -a -t {self.init_pid} -- sh -c {shlex.quote(cmd)}", check=check,
                  timeout=timeout, **kw)

    def unit(self, unit, *props):
        """systemctl show: the properties asked for, as a dict."""
        out = self.run(f"systemctl show {unit} " + " ".join(f"-p {p}" for p in props)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def close(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # nspawn powers the machine off
            try:
                self.proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "logf", None):
            self.logf.close()
        if self.dir:
            sh(f"umount {self.root}", check=False)
            sh(f"umount {self.dir}", check=False)
            if not os.path.ismount(self.dir):
                shutil.rmtree(self.dir, ignore_errors=True)
            if not os.environ.get("SEGWIRE_KEEP"):
                Path(self.log_path).unlink(missing_ok=True)
        if self.created_nspawn_dir:
            shutil.rmtree("/run/systemd/nspawn", ignore_errors=True)
