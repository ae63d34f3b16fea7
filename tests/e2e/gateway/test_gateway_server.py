"""gateway.server: uvicorn inside the running loop, startup failures, graceful stop; and the
real zynk contracts loading into one conflict-free route table."""

import asyncio
import socket

import grpc
import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from gateway.app import create_app
from gateway.server import GatewayServer, serve


def tiny_app():
    async def slow(request):
        await asyncio.sleep(0.3)
        return PlainTextResponse("done")

    return Starlette(routes=[Route("/slow", slow)])


async def test_serve_and_graceful_stop_lets_in_flight_requests_finish():
    server = await serve(tiny_app(), host="127.0.0.1", port=0, grace_s=3)
    assert server.url.startswith("http://127.0.0.1:")
    async with httpx.AsyncClient(base_url=server.url, timeout=5) as client:
        pending = asyncio.create_task(client.get("/slow"))
        await asyncio.sleep(0.1)
        await server.stop()
        assert (await pending).text == "done"
    with pytest.raises(httpx.ConnectError):  # the port is closed after stop()
        async with httpx.AsyncClient(base_url=server.url, timeout=1) as client:
            await client.get("/slow")


async def test_port_in_use_is_a_runtime_error_not_system_exit():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = GatewayServer(tiny_app(), host="127.0.0.1", port=taken.getsockname()[1])
        with pytest.raises(RuntimeError):
            await server.start(timeout_s=5)
        await server.stop()


async def test_every_zynk_contract_routes_without_conflicts():
    channel = grpc.aio.insecure_channel("127.0.0.1:1")
    try:
        app = create_app(channel_for=lambda name: channel)  # default: every zynk *_pb2 module
        routes = app.state.router.routes
        assert any(r.grpc_path == "/zynk.auth.v1.AuthService/Login" for r in routes)
        assert all(r.template.template.startswith(("/api/v1/", "/.well-known/")) for r in routes)
        assert app.state.openapi["paths"]
    finally:
        await channel.close()
