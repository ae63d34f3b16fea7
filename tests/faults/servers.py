"""Servers the fault tests own: a private PostgreSQL cluster (initdb + pg_ctl in a temporary
directory, on a free loopback port), next to tests/support's private Redis (RedisProcess) and
Tansu broker (TansuBroker). The fault tests stop and restart these; the machine's own
PostgreSQL (5432) and Redis (6379), which other suites share, are never touched."""

from __future__ import annotations

import os
import pathlib
import pwd
import shutil
import subprocess
import tempfile
import time

from tests.support.backends import free_port, port_open

# The Debian layout puts the server binaries outside PATH; /usr/local/bin has links to them.
PG_BIN_DIRS = ("/usr/local/bin", *sorted((str(p) for p in
                                          pathlib.Path("/usr/lib/postgresql").glob("*/bin")),
                                         reverse=True))


def pg_binary(name: str) -> str | None:
    for d in PG_BIN_DIRS:
        path = pathlib.Path(d) / name
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    return shutil.which(name)


class PrivatePostgres:
    """A throwaway PostgreSQL cluster on 127.0.0.1:<free port> (trust auth, user postgres,
    database `zynk`). PostgreSQL refuses to run as root, so under root the server runs as the
    `postgres` system user (which owns the cluster directory)."""

    def __init__(self) -> None:
        self.initdb = pg_binary("initdb")
        self.pg_ctl = pg_binary("pg_ctl")
        if self.initdb is None or self.pg_ctl is None:
            raise RuntimeError("initdb/pg_ctl not found")
        self.port = free_port()
        self.root = pathlib.Path(tempfile.mkdtemp(prefix="zynk-faults-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self._user: str | None = None
        if os.geteuid() == 0:
            self._user = "postgres"
            pw = pwd.getpwnam(self._user)
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        self.root.chmod(0o700)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/zynk"

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        # Not Popen(user=...): changing the user makes CPython fork() instead of vfork(), and
        # a fork() of this process, whose gRPC threads are busy, runs gRPC's atfork handlers
        # in the child, which then sometimes dies before exec (seen: initdb "SIGBUS", pg_ctl
        # "SIGSEGV", with "skipping fork() handlers" from gRPC). runuser does the switch
        # after exec.
        argv = ["runuser", "-u", self._user, "--", *args] if self._user else list(args)
        return subprocess.run(argv, cwd=self.root, check=True, capture_output=True,
                              text=True, timeout=timeout,
                              env={**os.environ, "LC_ALL": "C.UTF-8"})

    def create(self) -> None:
        self._run(self.initdb, "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "-E", "UTF8", "--no-sync", "--no-instructions")
        conf = self.data / "postgresql.conf"
        with conf.open("a") as f:
            f.write(f"\nlisten_addresses = '127.0.0.1'\nport = {self.port}\n"
                    f"unix_socket_directories = '{self.root}'\n"
                    # A test cluster on a shared disk: no fsync (a *clean* stop or restart,
                    # which is what the tests do, still writes everything out).
                    "fsync = off\nfull_page_writes = off\nmax_connections = 200\n"
                    "shared_buffers = 32MB\n")
        self.start()
        self._run(pg_binary("createdb") or "createdb", "-h", "127.0.0.1", "-p",
                  str(self.port), "-U", "postgres", "zynk")

    def start(self, timeout_s: float = 30) -> None:
        self._run(self.pg_ctl, "-D", str(self.data), "-l", str(self.log), "-w", "-t",
                  str(int(timeout_s)), "start", timeout=timeout_s + 10)
        self._wait(True, timeout_s)

    def stop(self, mode: str = "fast", timeout_s: float = 30) -> None:
        self._run(self.pg_ctl, "-D", str(self.data), "-m", mode, "-w", "-t",
                  str(int(timeout_s)), "stop", timeout=timeout_s + 10)
        self._wait(False, timeout_s)

    def restart(self, mode: str = "fast", timeout_s: float = 30) -> None:
        """`pg_ctl restart -m fast`: every session is disconnected, the server stops cleanly
        and starts again on the same port."""
        self._run(self.pg_ctl, "-D", str(self.data), "-l", str(self.log), "-m", mode, "-w",
                  "-t", str(int(timeout_s)), "restart", timeout=timeout_s + 10)
        self._wait(True, timeout_s)

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def _wait(self, up: bool, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while port_open("127.0.0.1", self.port) != up:
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL on port {self.port} did not "
                                   f"{'start' if up else 'stop'}; see {self.log}")
            time.sleep(0.05)

    def destroy(self) -> None:
        if self.running():
            try:
                self._run(self.pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop",
                          timeout=30)
            except (subprocess.SubprocessError, OSError):
                pid = (self.data / "postmaster.pid").read_text().split()[0]
                try:
                    os.kill(int(pid), 9)
                except (OSError, ValueError):
                    pass
        shutil.rmtree(self.root, ignore_errors=True)
