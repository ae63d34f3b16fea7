"""GrpcServer.stop ends long-lived streams through on_drain instead of waiting out the grace
period, and still runs on_stop afterwards."""

from __future__ import annotations

import asyncio
import time

import grpc

from services.runtime.server import GrpcServer, ServiceSpec


class _NoAuth(grpc.aio.ServerInterceptor):
    async def intercept_service(self, continuation, details):
        return await continuation(details)


async def test_on_drain_ends_streams_before_the_grace_period():
    draining = asyncio.Event()
    order: list[str] = []

    async def forever(request, context):
        yield b"hello"
        await draining.wait()  # a subscription that only the service itself can end

    def register(server):
        handler = grpc.unary_stream_rpc_method_handler(forever)
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("t.T", {"Forever": handler}),))

    spec = ServiceSpec("t", [], register, on_stop=[lambda: order.append("stop")],
                       on_drain=[lambda: (order.append("drain"), draining.set())])
    server = GrpcServer(spec, _NoAuth(), 1 << 20)
    port = await server.start("127.0.0.1", 0)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        stream = ch.unary_stream("/t.T/Forever")(b"")
        assert await stream.read() == b"hello"
        t0 = time.monotonic()
        await server.stop(grace_s=10)
        assert time.monotonic() - t0 < 2, "stop waited for the grace period"
        assert order == ["drain", "stop"]
        assert await stream.code() == grpc.StatusCode.OK
