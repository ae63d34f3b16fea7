"""`zynk up --distributed` as an operator runs it: a real tree of OS processes (a supervisor,
one process per service, two gateway processes sharing one port) on real Redis (a private
server this module stops and restarts) and Kafka (Tansu), each service on SQLite in the
shared data directory, driven over HTTP and gRPC from outside.

Presence is hosted only once it can run on Redis: until its Redis store lands it refuses
backends.cache=redis at build time (services/presence/app.py), which `refusal()` asks it —
the tests then expect exactly that service to be unreachable and everything else ready."""

from __future__ import annotations

import asyncio
import os
import pathlib
import signal
import sys
import time
import uuid

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from mesh.process import build_shared, build_spec
from services.runtime.backends import build_backends
from services.runtime.catalog import CATALOG
from services.runtime.channels import Channels
from tests.support.backends import (
    KAFKA_TEST_BACKENDS,
    KEY_PREFIX,
    TOPIC_PREFIX,
    RedisProcess,
    backend_missing,
    free_port,
    make_settings,
)
from tests.support.zynkup import children_of

pytestmark = pytest.mark.timeout(300)

ROOT = pathlib.Path(__file__).resolve().parents[3]
PASSWORD = "a long enough password"
# The machine may be busy (2 cores, 15 Python processes starting at once): generous bounds
# on waits that normally take a second or two.
START_S = 180
SETTLE_S = 45


async def refusal(name: str, settings) -> str | None:
    """Why `name` refuses these backends at build time, or None if it builds."""
    backends = await build_backends(settings)
    try:
        shared = build_shared(settings, backends, Channels({}, "", 1.0), "x" * 40)
        try:
            spec, _ = await build_spec(name, shared)
        except RuntimeError as e:
            return str(e)
        for hook in spec.on_stop:
            res = hook()
            if hasattr(res, "__await__"):
                await res
        return None
    finally:
        await backends.close()


class Cluster:
    def __init__(self, proc: asyncio.subprocess.Process, ports: dict[str, int],
                 hosted: list[str], redis: RedisProcess) -> None:
        self.proc = proc
        self.ports = ports
        self.hosted = hosted
        self.unhosted = sorted(CATALOG[n].full_name for n in CATALOG if n not in hosted)
        self.redis = redis
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._readers = [asyncio.ensure_future(self._drain(proc.stdout, self.stdout)),
                         asyncio.ensure_future(self._drain(proc.stderr, self.stderr))]

    @staticmethod
    async def _drain(stream, into: list[str]) -> None:
        async for raw in stream:
            into.append(raw.decode(errors="replace").rstrip("\n"))

    @property
    def gateway(self) -> str:
        return f"http://127.0.0.1:{self.ports['gateway']}"

    def said(self, text: str) -> bool:
        return any(text in line for line in self.stderr + self.stdout)

    def output(self) -> str:
        tail = [line for line in self.stderr if line.startswith("zynk:")]
        return "\n".join(self.stdout + tail)

    async def wait_for_output(self, text: str, timeout: float) -> None:
        try:
            async with asyncio.timeout(timeout):
                while not self.said(text):
                    if self.proc.returncode is not None:
                        break
                    await asyncio.sleep(0.05)
        except TimeoutError:
            pass
        assert self.said(text), f"never said {text!r}:\n{self.output()}"

    def children(self, what: str = "") -> dict[int, str]:
        """The supervisor's live children (pid -> command line)."""
        return children_of(self.proc.pid, what)

    async def stop(self) -> int:
        if self.proc.returncode is None:
            os.killpg(self.proc.pid, signal.SIGINT)  # what Ctrl-C in its terminal does
            try:
                await asyncio.wait_for(self.proc.wait(), 60)
            except TimeoutError:
                os.killpg(self.proc.pid, signal.SIGKILL)
                await self.proc.wait()
        await asyncio.gather(*self._readers, return_exceptions=True)
        return self.proc.returncode


@pytest.fixture(scope="module")
async def cluster(kafka_broker, tmp_path_factory):
    redis = RedisProcess()
    try:
        redis.start()
    except RuntimeError as err:
        backend_missing(f"a private redis-server for the distributed mesh: {err}")
    data_dir = tmp_path_factory.mktemp("distributed")
    topic_prefix = f"{TOPIC_PREFIX}dist."
    settings = make_settings(bus="kafka", cache="redis", kafka_bootstrap=kafka_broker.bootstrap,
                             redis_url=redis.url, topic_prefix=topic_prefix,
                             data_dir=data_dir)
    hosted = [n for n in CATALOG if n != "presence" or await refusal(n, settings) is None]
    ports = {name: free_port() for name in [*CATALOG, "gateway"]}
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZYNK_")}
    env.update({f"ZYNK_PORTS__{n.upper()}": str(p) for n, p in ports.items()})
    env.update({f"ZYNK_BACKENDS__{k.upper()}": str(v) for k, v in KAFKA_TEST_BACKENDS.items()})
    env.update({
        "ZYNK_DATA_DIR": str(data_dir),
        "ZYNK_BACKENDS__BUS": "kafka",
        "ZYNK_BACKENDS__KAFKA_BOOTSTRAP": kafka_broker.bootstrap,
        "ZYNK_BACKENDS__TOPIC_PREFIX": topic_prefix,
        "ZYNK_BACKENDS__CACHE": "redis",
        "ZYNK_BACKENDS__REDIS_URL": redis.url,
        "ZYNK_BACKENDS__KEY_PREFIX": KEY_PREFIX,
        "ZYNK_AUTH__ARGON2_TIME_COST": "1",
        "ZYNK_AUTH__ARGON2_MEMORY_KIB": "8192",
        "ZYNK_AUTH__ARGON2_PARALLELISM": "1",
        "ZYNK_MESH__PROBE_INTERVAL_S": "0.3",
        "ZYNK_MESH__RESTART_BACKOFF_S": "0.2",
        "ZYNK_MESH__START_TIMEOUT_S": str(START_S),
        "ZYNK_SHUTDOWN_GRACE_S": "1",
        "ZYNK_LOG_LEVEL": "WARNING",
    })
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mesh.cli", "up", "--distributed", "--replicas", "gateway=2",
        "--services", ",".join(hosted), cwd=ROOT, env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        start_new_session=True)
    c = Cluster(proc, ports, hosted, redis)
    try:
        await c.wait_for_output("Press Ctrl-C to stop.", START_S + 30)
        yield c
    finally:
        await c.stop()
        redis.stop()


async def readyz(c: Cluster) -> dict:
    async with httpx.AsyncClient(base_url=c.gateway, timeout=10) as http:
        r = await http.get("/readyz")
        body = r.json()
        assert r.status_code == (200 if body["status"] == "ready" else 503)
        return body


async def eventually(c: Cluster, predicate, what: str, timeout: float = SETTLE_S) -> dict:
    body: dict = {}
    try:
        async with asyncio.timeout(timeout):
            while True:
                body = await readyz(c)
                if predicate(body):
                    return body
                await asyncio.sleep(0.2)
    except TimeoutError:
        raise AssertionError(f"{what} never happened; last /readyz: {body}\n"
                             f"{c.output()}") from None


def all_ready(c: Cluster):
    return lambda body: body["notReady"] == c.unhosted


async def reflected(port: int) -> set[str]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = reflection_pb2_grpc.ServerReflectionStub(ch)

        async def requests():
            yield reflection_pb2.ServerReflectionRequest(list_services="")

        async for resp in stub.ServerReflectionInfo(requests(), timeout=10):
            return {s.name for s in resp.list_services_response.service}
    return set()


async def token(c: Cluster, settle_s: float = 0.0) -> str:
    """Register and log in a new user; `settle_s`: keep answering 503s with a retry that long
    (after a service restart, a gateway process whose channel is between two reconnect
    attempts still says UNAVAILABLE, for at most the 2 s reconnect backoff plus jitter; the
    /readyz that said ready may have come from the other gateway process)."""
    name = "u" + uuid.uuid4().hex[:12]
    async with httpx.AsyncClient(base_url=c.gateway, timeout=20) as http:
        deadline = time.monotonic() + settle_s
        while True:
            r = await http.post("/api/v1/auth/register", json={"username": name,
                                                               "password": PASSWORD})
            if r.status_code != 503 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        assert r.status_code == 200, r.text
        r = await http.post("/api/v1/auth/login", json={"username": name, "password": PASSWORD})
        assert r.status_code == 200, r.text
        return r.json()["tokens"]["accessToken"]


# -- the tests, in the order an operator would look ---------------------------------------


async def test_the_banner_names_every_process_and_the_real_backends(cluster):
    banner = "\n".join(cluster.stdout)
    assert "distributed mode" in banner
    assert "Kafka 127.0.0.1:" in banner and "Redis redis://127.0.0.1:" in banner
    assert "in-process" not in banner
    assert "2 processes, pids" in banner  # the gateway replicas
    assert len(cluster.children("mesh.cli serve")) == len(cluster.hosted) + 2


async def test_each_service_is_its_own_process_on_its_own_port(cluster):
    for name in cluster.hosted:
        full = CATALOG[name].full_name
        port = cluster.ports[name]
        # Only this service (plus health and reflection) answers on this port.
        assert {s for s in await reflected(port) if s.startswith("zynk.")} == {full}, name
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            reply = await health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(service=full), timeout=10)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING, name
    assert len(cluster.children(" serve auth")) == 1
    await eventually(cluster, all_ready(cluster), "readiness")


async def test_register_and_login_through_the_gateway(cluster):
    access = await token(cluster)
    async with httpx.AsyncClient(base_url=cluster.gateway, timeout=20) as http:
        r = await http.get("/api/v1/users/me", headers={"authorization": f"Bearer {access}"})
        assert r.status_code == 200, r.text
        # Another process (call) verifies the same token with keys it fetched from auth over
        # gRPC, and tells a forged one apart.
        good = await http.get("/api/v1/turnCredentials",
                              headers={"authorization": f"Bearer {access}"})
        assert good.status_code not in (401, 500), good.text
        bad = await http.get("/api/v1/turnCredentials",
                             headers={"authorization": f"Bearer {access[:-4]}AAAA"})
        assert bad.status_code == 401, bad.text


def _established_by_pid(port: int, pids: set[int]) -> dict[int, int]:
    """How many ESTABLISHED TCP connections on local `port` each of `pids` holds."""
    inodes: dict[str, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            next(f)
            for line in f:
                cols = line.split()
                local, state, inode = cols[1], cols[3], cols[9]
                if state == "01" and int(local.rsplit(":", 1)[1], 16) == port:
                    inodes[inode] = 0
    counts = dict.fromkeys(pids, 0)
    for pid in pids:
        fd_dir = pathlib.Path(f"/proc/{pid}/fd")
        for fd in fd_dir.iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                counts[pid] += 1
    return counts


async def test_two_gateway_processes_share_the_port_and_both_serve(cluster):
    gateways = set(cluster.children(" serve gateway"))
    assert len(gateways) == 2
    clients = [httpx.AsyncClient(base_url=cluster.gateway, timeout=10,
                                 limits=httpx.Limits(max_connections=1)) for _ in range(24)]
    try:
        for client in clients:  # one connection each, kept open
            assert (await client.get("/healthz")).status_code == 200
        counts = _established_by_pid(cluster.ports["gateway"], gateways)
        assert sum(counts.values()) == len(clients), counts
        assert all(n > 0 for n in counts.values()), counts  # 2 * 2^-24 to fail by chance
    finally:
        for client in clients:
            await client.aclose()


async def test_a_killed_service_process_is_reported_restarted_and_ready_again(cluster):
    await eventually(cluster, all_ready(cluster), "readiness")
    (pid,) = cluster.children(" serve auth")
    auth = CATALOG["auth"].full_name
    os.kill(pid, signal.SIGKILL)
    body = await eventually(cluster, lambda b: b["services"][auth] != "SERVING",
                            "auth going unready", timeout=10)
    assert body["status"] == "unready" and auth in body["notReady"]
    await cluster.wait_for_output(f"zynk: auth (pid {pid}, port {cluster.ports['auth']}) "
                                  "was killed by SIGKILL", 10)
    await cluster.wait_for_output("zynk: auth is serving again", SETTLE_S)
    await eventually(cluster, all_ready(cluster), "readiness after the restart")
    assert set(cluster.children(" serve auth")) != {pid}
    await token(cluster, settle_s=5)  # and it works: same signing key, same database


async def test_readiness_follows_redis(cluster):
    await eventually(cluster, all_ready(cluster), "readiness")
    hosted = [CATALOG[n].full_name for n in cluster.hosted]
    cluster.redis.stop()
    try:
        t0 = time.monotonic()
        await eventually(cluster, lambda b: all(b["services"][s] == "NOT_SERVING"
                                                for s in hosted), "NOT_SERVING without Redis")
        assert time.monotonic() - t0 < SETTLE_S
    finally:
        cluster.redis.start()
    await eventually(cluster, all_ready(cluster), "readiness once Redis is back")
    assert cluster.said("backend unreachable")
    await token(cluster)


async def test_ctrl_c_stops_every_process(cluster):
    children = cluster.children()
    assert len(children) == len(cluster.hosted) + 2
    code = await cluster.stop()
    assert code == 0, cluster.output()
    assert cluster.stdout[-1] == "zynk: stopped"
    for pid in children:
        assert not pathlib.Path(f"/proc/{pid}").exists(), children[pid]
    assert not cluster.said("did not stop in time")
