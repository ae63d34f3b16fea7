"""The backend probe drives what gRPC health answers (mesh/health.py), seen by a real health
client: NOT_SERVING while a check the server depends on fails, SERVING again after."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mesh.health import HealthProbe
from services.runtime.server import GrpcServer, ServiceSpec

pytestmark = pytest.mark.timeout(30)


class _NoAuth(grpc.aio.ServerInterceptor):
    async def intercept_service(self, continuation, details):
        return await continuation(details)


class Switch:
    """A check that passes or fails on command."""

    def __init__(self) -> None:
        self.up = True
        self.calls = 0

    async def __call__(self) -> None:
        self.calls += 1
        if not self.up:
            raise ConnectionError("refused")


async def serve(name: str) -> tuple[GrpcServer, grpc.aio.Channel]:
    server = GrpcServer(ServiceSpec(name, [f"t.{name}"], lambda s: None), _NoAuth(), 1 << 20)
    port = await server.start("127.0.0.1", 0)
    return server, grpc.aio.insecure_channel(f"127.0.0.1:{port}")


async def status(channel: grpc.aio.Channel, service: str) -> str:
    reply = await health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=service), timeout=5)
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


@pytest.fixture
async def two_servers():
    a, ch_a = await serve("a")
    b, ch_b = await serve("b")
    yield a, ch_a, b, ch_b
    for ch in (ch_a, ch_b):
        await ch.close()
    for srv in (a, b):
        await srv.stop(0)


async def test_a_shared_backend_down_takes_every_server_out(two_servers):
    a, ch_a, b, ch_b = two_servers
    redis = Switch()
    probe = HealthProbe({"redis": redis}, interval_s=60, timeout_s=1)
    probe.watch(a)
    probe.watch(b)
    assert await probe.run_once() == {}
    redis.up = False
    assert set(await probe.run_once()) == {"redis"}
    for ch, name in ((ch_a, "t.a"), (ch_b, "t.b")):
        assert await status(ch, name) == "NOT_SERVING"
        assert await status(ch, "") == "NOT_SERVING"
    redis.up = True
    assert await probe.run_once() == {}
    assert await status(ch_a, "t.a") == await status(ch_b, "t.b") == "SERVING"


async def test_a_service_database_down_takes_only_that_service_out(two_servers):
    a, ch_a, b, ch_b = two_servers
    database = Switch()
    probe = HealthProbe({}, interval_s=60, timeout_s=1)
    probe.watch(a, {"postgres": database})
    probe.watch(b)
    database.up = False
    assert set(await probe.run_once()) == {"a:postgres"}
    assert await status(ch_a, "t.a") == "NOT_SERVING"
    assert await status(ch_b, "t.b") == "SERVING"


async def test_a_check_that_hangs_counts_as_down(two_servers):
    a, ch_a, _, _ = two_servers

    async def frozen() -> None:
        await asyncio.sleep(30)

    probe = HealthProbe({"kafka": frozen}, interval_s=60, timeout_s=0.2)
    probe.watch(a)
    failing = await asyncio.wait_for(probe.run_once(), 2)
    assert "within" in failing["kafka"]
    assert await status(ch_a, "t.a") == "NOT_SERVING"


async def test_the_probe_runs_periodically_until_stopped(two_servers):
    a, ch_a, _, _ = two_servers
    redis = Switch()
    probe = HealthProbe({"redis": redis}, interval_s=0.05, timeout_s=1)
    probe.watch(a)
    probe.start()
    redis.up = False
    async with asyncio.timeout(5):
        while await status(ch_a, "t.a") != "NOT_SERVING":
            await asyncio.sleep(0.02)
    redis.up = True
    async with asyncio.timeout(5):
        while await status(ch_a, "t.a") != "SERVING":
            await asyncio.sleep(0.02)
    await probe.stop()
    calls = redis.calls
    await asyncio.sleep(0.2)
    assert redis.calls == calls


def test_no_checks_no_task():
    probe = HealthProbe({}, interval_s=1, timeout_s=1)
    probe.start()  # nothing to probe (embedded, in-process backends): no task at all
    assert probe._task is None
