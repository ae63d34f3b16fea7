"""The realtime endpoint, `GET /api/v1/realtime` (subprotocol `zynk.v1`), as an ASGI app.

    realtime = Realtime(settings=RealtimeSettings(), verifier=verifier, upstream=upstream)
    Starlette(routes=[WebSocketRoute(PATH, realtime), ...])   # create_app does this
    ...
    await realtime.stop()                                      # at shutdown (lifespan)

It needs the `zynk.websocket` ASGI extension of gateway.realtime.transport (gateway.server
serves the app with it): ASGI alone cannot ping, see pongs, or see a client that stopped
reading. Served without it, the upgrade is refused (HTTP 403) and an error is logged.
"""

from __future__ import annotations

from typing import Any

from gateway.realtime.connection import SUBPROTOCOL, Connection
from gateway.realtime.hub import Hub
from gateway.realtime.relay import RelayLink
from gateway.realtime.upstream import Upstream
from services.runtime.config import RealtimeSettings
from services.runtime.tokens import TokenVerifier

__all__ = ["PATH", "SUBPROTOCOL", "Realtime"]

PATH = "/api/v1/realtime"


class Realtime:
    def __init__(self, *, settings: RealtimeSettings, verifier: TokenVerifier,
                 upstream: Upstream, timeout_s: float = 30.0) -> None:
        self.settings = settings
        self.verifier = verifier
        self.up = upstream
        self.timeout_s = timeout_s  # deadline of the unary calls a socket makes
        self.hub = Hub(self)
        self.link = RelayLink(upstream.relay, retry_initial_s=settings.retry_initial_s,
                              retry_max_s=settings.retry_max_s, timeout_s=timeout_s)

    @property
    def connections(self) -> int:
        return len(self.hub.connections)

    async def stop(self) -> None:
        await self.hub.stop()
        await self.link.stop()

    def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        # A plain function returning the socket's coroutine: one suspended frame less per
        # socket for its whole life.
        return Connection(self).serve(scope, receive, send)
