"""A real PostgreSQL server for the Console's tests: Debian's postgresql-15 binaries, an unprivileged
cluster (initdb + pg_ctl as the `postgres` system user, or `segwire-pg` made for the purpose) in a
temporary directory, listening only on a Unix socket in that directory (no TCP port to collide on).
stop() removes everything; the pytest fixtures call it however the test ends.
"""
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

PG_BIN = Path(os.environ.get("SEGWIRE_PG_BIN", "/usr/lib/postgresql/15/bin"))


def _system_user():
    for name in ("postgres", "segwire-pg"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            pass
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                    "segwire-pg"], check=True)
    return pwd.getpwnam("segwire-pg")


class PgCluster:
    def __init__(self):
        self.dir = None
        self.proc_user = None
        self.started = False

    def start(self):
        assert (PG_BIN / "initdb").exists(), f"{PG_BIN}/initdb missing: run tools/setup (postgresql)"
        self.proc_user = _system_user()
        # Not under pytest's tmp_path: that is root's, mode 0700, and the server runs unprivileged.
        self.dir = Path(tempfile.mkdtemp(prefix="segwire-pg-"))
        os.chown(self.dir, self.proc_user.pw_uid, self.proc_user.pw_gid)
        os.chmod(self.dir, 0o755)
        self._as_user([str(PG_BIN / "initdb"), "-D", str(self.dir / "data"), "-A", "trust",
                       "-U", "segwire", "--no-sync", "-E", "UTF8"])
        self._as_user([str(PG_BIN / "pg_ctl"), "-D", str(self.dir / "data"), "-l",
                       str(self.dir / "server.log"), "-w", "-t", "60", "-o",
                       f"-c listen_addresses='' -k {self.dir} -c fsync=off "
                       "-c max_connections=200", "start"])
        self.started = True
        return self

    def _as_user(self, cmd):
        subprocess.run(["runuser", "-u", self.proc_user.pw_name, "--"] + cmd, check=True,
                       capture_output=True, text=True, cwd="/")

    def uri(self, db="postgres"):
        return f"postgresql://segwire@/{db}?host={self.dir}"

    def psql(self, sql, uri=None):
        """Runs `sql` with Debian's psql on `uri` (a database of this cluster; default postgres)."""
        out = subprocess.run(["psql", uri or self.uri(), "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql],
                             check=True, capture_output=True, text=True)
        return out.stdout

    def new_database(self):
        """A fresh, empty database: each Console under test gets its own."""
        name = "t_" + uuid.uuid4().hex[:12]
        self.psql(f"CREATE DATABASE {name}")
        return self.uri(name)

    def log_text(self):
        p = self.dir / "server.log" if self.dir else None
        return p.read_text() if p and p.exists() else ""

    def stop(self):
        if self.started:
            subprocess.run(["runuser", "-u", self.proc_user.pw_name, "--", str(PG_BIN / "pg_ctl"),
                            "-D", str(self.dir / "data"), "-m", "immediate", "-w", "stop"],
                           capture_output=True, cwd="/")
            self.started = False
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
