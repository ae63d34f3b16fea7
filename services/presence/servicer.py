"""PresenceService over gRPC: converts proto <-> domain calls, nothing else. The interceptor
has already authenticated the caller and checked the request's buf.validate rules."""

from __future__ import annotations

import contextlib

from services.presence import names
from services.presence.domain import PresenceDomain
from services.presence.views import Keepalive, PresenceView, WatchEvent
from services.presence.wire import Typing
from services.runtime.context import current_principal
from services.runtime.pbtime import duration, timestamp
from zynk.presence.v1 import presence_pb2, presence_pb2_grpc

pb = presence_pb2


def presence_pb(v: PresenceView) -> pb.Presence:
    return pb.Presence(
        name=names.presence_name(v.user_id),
        state=pb.PRESENCE_STATE_ONLINE if v.online else pb.PRESENCE_STATE_OFFLINE,
        last_seen_time=timestamp(v.last_seen), update_time=timestamp(v.update_time))


def typing_pb(t: Typing) -> pb.TypingIndicator:
    return pb.TypingIndicator(conversation=names.conversation_name(t.conversation_id),
                              user=names.user_name(t.user_id), typing=t.typing,
                              expire_time=timestamp(t.expire_at))


def watch_event_pb(e: WatchEvent) -> pb.WatchPresenceResponse:
    if isinstance(e, PresenceView):
        return pb.WatchPresenceResponse(presence=presence_pb(e))
    if isinstance(e, Typing):
        return pb.WatchPresenceResponse(typing=typing_pb(e))
    assert isinstance(e, Keepalive)
    return pb.WatchPresenceResponse(keepalive=pb.Keepalive(server_time=timestamp(e.server_time)))


class PresenceServicer(presence_pb2_grpc.PresenceServiceServicer):
    def __init__(self, domain: PresenceDomain) -> None:
        self._d = domain

    async def Heartbeat(self, request, context_):
        interval, own = await self._d.heartbeat(
            current_principal(), request.state != pb.PRESENCE_STATE_OFFLINE)
        return pb.HeartbeatResponse(heartbeat_interval=duration(interval),
                                    presence=presence_pb(own))

    async def BatchGetPresence(self, request, context_):
        ids = [names.parse_presence(n, f"names[{i}]") for i, n in enumerate(request.names)]
        views = await self._d.batch_get(current_principal(), ids)
        return pb.BatchGetPresenceResponse(presences=[presence_pb(v) for v in views])

    async def WatchPresence(self, request, context_):
        ids = [names.parse_presence(n, f"names[{i}]") for i, n in enumerate(request.names)]
        conversations = [names.parse_conversation(c, f"conversations[{i}]")
                         for i, c in enumerate(request.conversations)]
        async with contextlib.aclosing(
                self._d.watch(current_principal(), ids, conversations)) as events:
            async for event in events:
                yield watch_event_pb(event)

    async def SetTyping(self, request, context_):
        expire_at = await self._d.set_typing(
            current_principal(), names.parse_conversation(request.conversation, "conversation"),
            request.typing)
        return pb.SetTypingResponse(expire_time=timestamp(expire_at))
