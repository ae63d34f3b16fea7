"""The gRPC methods behind the socket, resolved once when the app is built.

Per frame nothing is looked up by name except the `call` allow-list (one dict access): the
multicallables carry their serializers. The allow-list is every unary method with a REST
binding, handed over by create_app with the very multicallables REST uses (ACCESS_INTERNAL
methods never have a binding), keyed `package.Service/Method`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
from zynk.messaging.v1 import messaging_pb2
from zynk.presence.v1 import presence_pb2

__all__ = ["MESSAGING", "PRESENCE", "CHANNEL_OPTIONS", "Method", "Upstream"]

MESSAGING = "zynk.messaging.v1.MessagingService"
PRESENCE = "zynk.presence.v1.PresenceService"

# Options for the realtime socket's own channels: the process's shared Relay stream, the
# per-socket WatchPresence streams (only while watching) and the hot unary calls (typing,
# heartbeats). Per-call weight is what counts: the minimal stack leaves out
# filters these calls do not use (retries, census, ...), about a third of gRPC's native memory
# per call; deadlines still apply. Built without client interceptors (each costs a task and
# ~15% CPU per call): the socket passes request id, deadline and credentials itself (the
# Relay stream carries none: each slot's attach carries its device's token). Streams are
# retried by the relay link or the socket; none of the unary methods here
# is one the runtime's Channels would retry.
CHANNEL_OPTIONS: tuple[tuple[str, Any], ...] = (
    ("grpc.minimal_stack", 1),
    ("grpc.enable_retries", 0),
)


@dataclass(frozen=True, slots=True)
class Method:
    """A callable unary method: its multicallable and request message class."""

    call: Any  # grpc.aio.UnaryUnaryMultiCallable
    request_class: type


class Upstream:
    def __init__(self, realtime_channel_for: Callable[[str], grpc.aio.Channel],
                 methods: Mapping[str, Method]) -> None:
        m, p = messaging_pb2, presence_pb2

        def unary(service: str, name: str, req: Any, resp: Any) -> Any:
            return realtime_channel_for(service).unary_unary(
                f"/{service}/{name}", request_serializer=req.SerializeToString,
                response_deserializer=resp.FromString)

        def stream(service: str, name: str, req: Any, resp: Any) -> Any:
            return realtime_channel_for(service).unary_stream(
                f"/{service}/{name}", request_serializer=req.SerializeToString,
                response_deserializer=resp.FromString)

        # The process's multiplexed link to messaging (gateway/realtime/relay.py): inboxes
        # and send/ack/read of every socket; no per-socket Subscribe stream.
        self.relay = realtime_channel_for(MESSAGING).stream_stream(
            f"/{MESSAGING}/Relay", request_serializer=m.RelayRequest.SerializeToString,
            response_deserializer=m.RelayResponse.FromString)
        self.watch_presence = stream(PRESENCE, "WatchPresence", p.WatchPresenceRequest,
                                     p.WatchPresenceResponse)
        self.set_typing = unary(PRESENCE, "SetTyping", p.SetTypingRequest, p.SetTypingResponse)
        self.heartbeat = unary(PRESENCE, "Heartbeat", p.HeartbeatRequest, p.HeartbeatResponse)

        self.methods = dict(methods)
