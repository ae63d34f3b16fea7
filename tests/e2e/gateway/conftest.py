"""Fixtures: the test-only gwtest.v1 service (in-test grpc.aio server), the real gateway on
uvicorn in front of it, and httpx clients over real HTTP. All on 127.0.0.1."""

import importlib.util
import pathlib
import socket

import grpc
import httpx
import pytest
from google.protobuf import timestamp_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from gateway.app import create_app
from gateway.server import serve

_HELPER = pathlib.Path(__file__).resolve().parents[2] / "protos" / "gwtest_build.py"


def _helper():
    spec = importlib.util.spec_from_file_location("_gwtest_build_loader", _HELPER)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.load()


@pytest.fixture(scope="session")
def gwtest(tmp_path_factory):
    """The test-only gwtest.v1 protos, generated with tools/gen.py and imported."""
    return _helper().build(tmp_path_factory.mktemp("gwtest_gen"))


SERVICE = "gwtest.v1.GwTestService"
CODES = {c.value[0]: c for c in grpc.StatusCode}


def make_servicer(pb2, pb2_grpc):
    class GwTest(pb2_grpc.GwTestServiceServicer):
        async def GetThing(self, request, context):
            if request.name.endswith("/missing"):
                await context.abort(grpc.StatusCode.NOT_FOUND, f"{request.name} not found")
            return pb2.Thing(
                name=request.name, title="A thing", size=2**40, color=pb2.COLOR_RED,
                labels=["a", "b"], create_time=timestamp_pb2.Timestamp(seconds=1700000000),
                attributes={"k": "v"}, payload=b"\x00\x01", views=2**63,
            )

        async def CreateThing(self, request, context):
            thing = pb2.Thing()
            thing.CopyFrom(request.thing)
            thing.name = f"{request.parent}/things/{request.thing_id or 'new'}"
            if request.validate_only:
                thing.title += " (validated)"
            return thing

        async def UpdateThing(self, request, context):
            thing = pb2.Thing()
            thing.CopyFrom(request.thing)
            thing.labels.extend(request.update_mask.paths)
            return thing

        async def ArchiveThing(self, request, context):
            return pb2.Thing(name=request.name, title=request.reason, archived=True,
                             size=request.ttl.seconds)

        async def GetBlob(self, request, context):
            return pb2.Blob(name=request.name)

        async def GetKey(self, request, context):
            return pb2.Blob(name=request.key)

        async def Search(self, request, context):
            return pb2.SearchResponse(echo=request)

        async def ListLabels(self, request, context):
            if request.name.endswith("/empty"):
                return pb2.Thing()
            return pb2.Thing(labels=["x", "y"])

        async def WatchThings(self, request, context):
            for i in range(request.count):
                yield pb2.Thing(name=f"{request.parent}/things/{i}", size=i)
            if request.fail_code:
                await context.abort(CODES[request.fail_code], "the stream broke")

        async def Fail(self, request, context):
            if request.crash:
                raise ValueError("boom: secret internals at /srv/zynk/db.py")
            code = CODES[request.code]
            if request.rich:
                st = status_pb2.Status(code=request.code, message=request.message)
                st.details.add().Pack(error_details_pb2.ErrorInfo(
                    reason="THING_INVALID", domain="zynk.dev", metadata={"thing": "t1"}))
                bad = error_details_pb2.BadRequest()
                bad.field_violations.add(field="thing.title", description="must not be empty")
                st.details.add().Pack(bad)
                st.details.add().Pack(error_details_pb2.RetryInfo(
                    retry_delay={"seconds": 7}))
                await context.abort(code, request.message, trailing_metadata=(
                    ("grpc-status-details-bin", st.SerializeToString()),))
            await context.abort(code, request.message)

        async def Ping(self, request, context):
            return pb2.PingResponse(pong="pong")

        async def InternalOnly(self, request, context):
            return pb2.PingResponse(pong="internal")

        async def EchoMetadata(self, request, context):
            md = {k: v for k, v in context.invocation_metadata() if not k.endswith("-bin")}
            return pb2.EchoMetadataResponse(metadata=md)

    return GwTest()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
async def upstream(gwtest):
    server = grpc.aio.server()
    gwtest.pb2_grpc.add_GwTestServiceServicer_to_server(
        make_servicer(gwtest.pb2, gwtest.pb2_grpc), server
    )
    checker = health.aio.HealthServicer()
    await checker.set(SERVICE, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}"
    await server.stop(0)


@pytest.fixture(scope="module")
async def client(gwtest, upstream):
    """httpx client for the real gateway (uvicorn on 127.0.0.1) in front of the service."""
    channel = grpc.aio.insecure_channel(upstream)
    requested = []

    def channel_for(name):
        requested.append(name)
        return channel

    app = create_app(channel_for=channel_for, modules=[gwtest.module], max_body_bytes=64 * 1024,
                     default_timeout_s=5, openapi=gwtest.image,
                     readiness=lambda: {"extra-check": True})
    assert requested == [SERVICE]  # one channel lookup per service, at startup
    server = await serve(app, host="127.0.0.1", port=0)
    async with httpx.AsyncClient(base_url=server.url, timeout=5.0) as c:
        yield c
    await server.stop()
    await channel.close()


@pytest.fixture(scope="module")
async def dead_client(gwtest):
    """A gateway whose upstream is not listening."""
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{free_port()}")
    app = create_app(channel_for=lambda name: channel, modules=[gwtest.module],
                     default_timeout_s=2, health_timeout_s=1)
    server = await serve(app, host="127.0.0.1", port=0)
    async with httpx.AsyncClient(base_url=server.url, timeout=5.0) as c:
        yield c
    await server.stop()
    await channel.close()
