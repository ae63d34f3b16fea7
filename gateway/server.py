"""Run the gateway app with uvicorn inside an already running asyncio loop.

    server = await serve(app, host="127.0.0.1", port=8080)   # returns once it accepts
    ...
    await server.stop()                                      # graceful, bounded

`sock=` serves on a socket the caller bound itself (the distributed runner binds it with
SO_REUSEPORT so that several gateway processes share one port); host/port are then unused.

Uvicorn runs as a task (`uvicorn.Server.serve()`), with `lifespan="on"`, `log_config=None` (the
process configures logging) and no signal handlers of its own: the hosting process (the mesh)
owns SIGINT/SIGTERM and calls `stop()`. A startup failure (e.g. port in use) raises
RuntimeError from `serve()` instead of uvicorn's SystemExit.

WebSocket upgrades are served by gateway.realtime.transport.WebSocketProtocol (lean per
socket, with the heartbeat and back-pressure hooks the realtime socket needs) with messages
capped at 256 KiB (`ws_max_size`) and no compression; on stop, open sockets get close 1001.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

import uvicorn

from gateway.realtime.transport import WebSocketProtocol

__all__ = ["GatewayServer", "serve"]


class _EmbeddedServer(uvicorn.Server):
    def capture_signals(self):  # the host process owns the signals
        return contextlib.nullcontext()


class GatewayServer:
    """A uvicorn server bound to an ASGI app, started and stopped from async code."""

    def __init__(
        self,
        app: Any,
        *,
        host: str = "127.0.0.1",
        port: int = 8080,
        grace_s: float = 5.0,
        sock: socket.socket | None = None,
        **uvicorn_options: Any,
    ) -> None:
        options = {
            "lifespan": "on",
            "log_config": None,
            "server_header": False,
            "proxy_headers": True,
            "timeout_graceful_shutdown": grace_s,
            # Longer than clients' own idle expiry (httpx: 5 s, browsers more): the client
            # closes an idle connection first. With both at 5 s (uvicorn's default) a
            # request sent on a connection the server is just closing fails with a bare
            # transport error instead of an answer (seen in the fault tests).
            "timeout_keep_alive": 20,
            "ws": WebSocketProtocol,
            "ws_max_size": 256 * 1024,
            "ws_per_message_deflate": False,
            **uvicorn_options,
        }
        self.config = uvicorn.Config(app, host=host, port=port, **options)
        self.grace_s = grace_s
        self._sock = sock
        self._server = _EmbeddedServer(self.config)
        self._task: asyncio.Task[None] | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        """The bound port (useful with port=0)."""
        if self._port is None:
            raise RuntimeError("gateway server is not started")
        return self._port

    @property
    def url(self) -> str:
        host = self._sock.getsockname()[0] if self._sock is not None else self.config.host
        return f"http://{'[' + host + ']' if ':' in host else host}:{self.port}"

    async def start(self, timeout_s: float = 10.0) -> None:
        if self._task is not None:
            raise RuntimeError("gateway server already started")
        self._task = asyncio.create_task(self._run(), name="zynk-gateway-uvicorn")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises the startup error
                raise RuntimeError("gateway server exited during startup")
            if loop.time() > deadline:
                await self.stop()
                raise RuntimeError(f"gateway server did not start within {timeout_s}s")
            await asyncio.sleep(0.01)
        self._port = next(
            sock.getsockname()[1] for server in self._server.servers for sock in server.sockets
        )

    async def _run(self) -> None:
        try:
            await self._server.serve(sockets=[self._sock] if self._sock is not None else None)
        except SystemExit as e:  # uvicorn exits the process on bind/lifespan failures
            raise RuntimeError(f"gateway server failed to start (exit code {e.code})") from None

    async def stop(self) -> None:
        """Stop accepting, let in-flight requests finish (up to grace_s), then close."""
        task, self._task = self._task, None
        if task is None:
            return
        self._server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(task), self.grace_s + 1.0)
        except TimeoutError:
            self._server.force_exit = True
            try:
                await asyncio.wait_for(asyncio.shield(task), 1.0)
            except TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        except RuntimeError:
            pass  # it failed to start; start() already reported that

    async def __aenter__(self) -> GatewayServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def serve(
    app: Any, *, host: str = "127.0.0.1", port: int = 8080, grace_s: float = 5.0,
    **uvicorn_options: Any,
) -> GatewayServer:
    """Start serving `app` in the running loop; return the started server (call `.stop()`)."""
    server = GatewayServer(app, host=host, port=port, grace_s=grace_s, **uvicorn_options)
    await server.start()
    return server
