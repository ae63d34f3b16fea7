"""The realtime WebSocket: one socket per device multiplexing its inbox, presence and quick
calls over the same gRPC methods REST exposes (docs/realtime.md)."""

from gateway.realtime.app import PATH, SUBPROTOCOL, Realtime
from gateway.realtime.transport import WebSocketProtocol
from gateway.realtime.upstream import CHANNEL_OPTIONS, Method, Upstream

__all__ = [
    "PATH",
    "CHANNEL_OPTIONS",
    "SUBPROTOCOL",
    "Method",
    "Realtime",
    "Upstream",
    "WebSocketProtocol",
]
