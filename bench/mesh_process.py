"""A real `zynk up` in a child process for the benchmarks: free loopback ports, a throwaway
data directory, and the resident memory of the process (what the memory figures measure)."""

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

# Logins are not what we measure: cheap argon2 and no rate limits so that setting up thousands
# of devices takes seconds. Everything on the measured paths runs with production settings.
BENCH_ENV = {
    "ZYNK_AUTH__ARGON2_TIME_COST": "1",
    "ZYNK_AUTH__ARGON2_MEMORY_KIB": "8192",
    "ZYNK_AUTH__ARGON2_PARALLELISM": "1",
    "ZYNK_LOG_LEVEL": "WARNING",
}
for limit in ("login_per_account", "login_per_address", "register_per_address",
              "refresh_per_device", "prekey_claims_per_user", "sends_per_device"):
    BENCH_ENV[f"ZYNK_RATE_LIMITS__{limit.upper()}"] = '{"per_second": 1000000, "burst": 1000000}'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_bytes(pid: int) -> int:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


class ZynkUp:
    def __init__(self, extra_env: dict[str, str] | None = None) -> None:
        self.ports = {name: free_port() for name in (*SERVICES, "gateway")}
        self._tmp = tempfile.TemporaryDirectory(prefix="zynk-bench-")
        self.data_dir = pathlib.Path(self._tmp.name)
        self.env = {**os.environ, **BENCH_ENV, **(extra_env or {}),
                    "ZYNK_DATA_DIR": str(self.data_dir)}
        for name, port in self.ports.items():
            self.env[f"ZYNK_PORTS__{name.upper()}"] = str(port)
        self.proc: subprocess.Popen | None = None

    @property
    def gateway(self) -> str:
        return f"http://127.0.0.1:{self.ports['gateway']}"

    def address(self, service: str) -> str:
        return f"127.0.0.1:{self.ports[service]}"

    def start(self, timeout_s: float = 60) -> ZynkUp:
        self._log = open(self.data_dir / "zynk.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen([sys.executable, "-m", "mesh.cli", "up"], env=self.env,
                                     stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"zynk up exited: {(self.data_dir / 'zynk.log').read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.gateway}/readyz", timeout=1).status_code == 200:
                    return self
            time.sleep(0.2)
        self.stop()
        raise TimeoutError("zynk up did not become ready")

    def rss(self) -> int:
        assert self.proc is not None
        return rss_bytes(self.proc.pid)

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
