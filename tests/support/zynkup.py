"""A real `zynk up` in a child process, as an operator runs it: free loopback ports, a data
directory that outlives a crash (kill -9, then start again on the same data), its log, and
the resident memory of the process. Used by the restart tests and by bench/."""

from __future__ import annotations

import contextlib
import os
import pathlib
import signal
import socket
import subprocess
import sys
import tempfile
import time

import httpx

SERVICES = ("auth", "messaging", "call", "file", "group", "presence", "proximity",
            "notification", "search", "analytics", "identity", "audit")

# Cheap argon2 and no rate limits: logins are not what tests and benchmarks measure (setting up
# thousands of devices takes seconds), and a load generator sends faster than one device may.
# Everything else runs with production settings.
FAST_LOGIN_ENV = {
    "ZYNK_AUTH__ARGON2_TIME_COST": "1",
    "ZYNK_AUTH__ARGON2_MEMORY_KIB": "8192",
    "ZYNK_AUTH__ARGON2_PARALLELISM": "1",
    "ZYNK_LOG_LEVEL": "WARNING",
}
for limit in ("login_per_account", "login_per_address", "register_per_address",
              "refresh_per_device", "prekey_claims_per_user", "sends_per_device"):
    FAST_LOGIN_ENV[f"ZYNK_RATE_LIMITS__{limit.upper()}"] = (
        '{"per_second": 1000000, "burst": 1000000}')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_bytes(pid: int) -> int:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def processes() -> list[tuple[int, int, str, str]]:
    """(pid, parent pid, state, command line) of every process, from /proc."""
    out = []
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        out.append((int(entry.name), int(fields[1]), fields[0], cmdline))
    return out


def children_of(pid: int, what: str = "") -> dict[int, str]:
    """pid's live children whose command line contains `what` (pid -> command line)."""
    return {p: cmd for p, ppid, state, cmd in processes()
            if ppid == pid and state != "Z" and what in cmd}


def process_tree(pid: int) -> list[int]:
    """pid and every descendant (the distributed supervisor's children and theirs)."""
    children: dict[int, list[int]] = {}
    for p, ppid, _, _ in processes():
        children.setdefault(ppid, []).append(p)
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


class ZynkUp:
    """`zynk up` (embedded) or, with args=("--distributed", ...), the supervisor and its
    process per service; extra_env then names the servers (bench/distributed.py)."""

    def __init__(self, extra_env: dict[str, str] | None = None,
                 args: tuple[str, ...] = ()) -> None:
        self.args = args
        self.ports = {name: free_port() for name in (*SERVICES, "gateway")}
        self._tmp = tempfile.TemporaryDirectory(prefix="zynk-up-")
        self.data_dir = pathlib.Path(self._tmp.name)
        self.env = {**os.environ, **FAST_LOGIN_ENV, **(extra_env or {}),
                    "ZYNK_DATA_DIR": str(self.data_dir)}
        for name, port in self.ports.items():
            self.env[f"ZYNK_PORTS__{name.upper()}"] = str(port)
        self.proc: subprocess.Popen | None = None

    @property
    def gateway(self) -> str:
        return f"http://127.0.0.1:{self.ports['gateway']}"

    def address(self, service: str) -> str:
        return f"127.0.0.1:{self.ports[service]}"

    @property
    def log_path(self) -> pathlib.Path:
        return self.data_dir / "zynk.log"

    def start(self, timeout_s: float = 60) -> ZynkUp:
        """Start (or start again after kill(): same ports, same data)."""
        self._log = open(self.log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen([sys.executable, "-m", "mesh.cli", "up", *self.args],
                                     env=self.env, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"zynk up exited: {self.log_path.read_text()[-4000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.gateway}/readyz", timeout=1).status_code == 200:
                    return self
            time.sleep(0.2)
        self.kill()
        raise TimeoutError("zynk up did not become ready")

    def rss(self) -> int:
        """Resident memory of the whole process tree (one process when embedded)."""
        assert self.proc is not None
        total = 0
        for pid in process_tree(self.proc.pid):
            with contextlib.suppress(OSError, RuntimeError):
                total += rss_bytes(pid)
        return total

    def cpu_seconds(self) -> float:
        """User + system CPU time of the whole process tree so far."""
        assert self.proc is not None
        total = 0
        for pid in process_tree(self.proc.pid):
            with contextlib.suppress(OSError):
                stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
                fields = stat.rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")

    def kill(self) -> None:
        """kill -9: no drain, no clean shutdown; the data directory stays."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        with contextlib.suppress(Exception):
            self._log.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        with contextlib.suppress(Exception):
            self._log.close()
        self._tmp.cleanup()

    def __enter__(self) -> ZynkUp:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
