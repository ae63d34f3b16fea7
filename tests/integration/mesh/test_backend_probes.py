"""Backend probes against real servers: the Redis and Kafka checks fail while their server is
down or frozen and pass again once it is back, and a distributed service process
(`zynk serve auth`'s composition root, in this test's process) reports NOT_SERVING on its
gRPC health meanwhile."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pydantic import SecretStr

from mesh.health import HealthProbe
from mesh.serve import ServiceProcess
from services.runtime.backends import build_backends
from services.runtime.config import MeshSettings, Ports
from tests.support.auth import auth_test_settings
from tests.support.backends import make_settings

pytestmark = pytest.mark.timeout(90)

TOKEN = "probe-test-internal-credential-0123456789"


async def passes(check) -> bool:
    probe = HealthProbe({"x": check}, interval_s=60, timeout_s=3)
    return not await probe.run_once()


async def eventually(predicate, timeout: float = 15) -> None:
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.1)


async def test_the_redis_check_follows_the_server(redis_process):
    b = await build_backends(make_settings(cache="redis", redis_url=redis_process.url))
    try:
        assert set(b.checks) == {"redis"}
        assert await passes(b.checks["redis"])
        redis_process.stop()
        assert not await passes(b.checks["redis"])
        redis_process.start()
        await eventually(lambda: passes(b.checks["redis"]))
    finally:
        await b.close()


async def test_the_kafka_check_follows_the_broker(kafka_process):
    b = await build_backends(make_settings(bus="kafka", kafka_bootstrap=kafka_process.bootstrap,
                                           kafka_request_timeout_s=1.5))
    try:
        await b.bus.start()
        assert set(b.checks) == {"kafka"}
        assert await passes(b.checks["kafka"])
        kafka_process.pause()  # frozen: connections stay open, nothing answers
        assert not await passes(b.checks["kafka"])
        kafka_process.resume()
        await eventually(lambda: passes(b.checks["kafka"]))
        kafka_process.stop()
        assert not await passes(b.checks["kafka"])
        kafka_process.start()
        await eventually(lambda: passes(b.checks["kafka"]))
    finally:
        await b.close()


async def test_a_service_process_is_not_serving_while_redis_is_down(
        redis_process, kafka_broker, tmp_path):
    base = make_settings(bus="kafka", kafka_bootstrap=kafka_broker.bootstrap, cache="redis",
                         redis_url=redis_process.url)
    settings = auth_test_settings(tmp_path)
    settings.backends = base.backends
    settings.ports = Ports(**{n: 0 for n in Ports.model_fields})
    settings.mesh = MeshSettings(internal_token=SecretStr(TOKEN), probe_interval_s=0.1,
                                 probe_timeout_s=2)
    settings.shutdown_grace_s = 0.5
    proc = ServiceProcess(settings, "auth", TOKEN)
    port = await proc.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            stub = health_pb2_grpc.HealthStub(ch)

            def status_is(want: str):
                async def check() -> bool:
                    reply = await stub.Check(health_pb2.HealthCheckRequest(
                        service="zynk.auth.v1.AuthService"), timeout=5)
                    return health_pb2.HealthCheckResponse.ServingStatus.Name(
                        reply.status) == want
                return check

            assert await status_is("SERVING")()
            redis_process.stop()
            await eventually(status_is("NOT_SERVING"))
            assert "redis" in proc.probe.failing
            redis_process.start()
            await eventually(status_is("SERVING"))
    finally:
        await proc.stop()
