"""Who may see whom: the conversation graph, as the messaging service knows it.

Presence keeps no copy of memberships; it asks messaging (FilterConversationPeers,
CheckConversationMembership, both internal RPCs) and reuses each answer for a short while
through the shared cache, so a contact list polled every few seconds costs one messaging
call per `ttl_s`, and every replica shares the answers when the cache is Redis. The TTL
bounds how long a change of membership takes to show (no invalidation: presence is not told
about membership changes, and a stale answer only lasts `ttl_s`).

Failures close, never open: if messaging cannot answer, the caller gets UNAVAILABLE rather
than someone's presence."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Protocol

import grpc

from services.presence import names
from services.runtime import logging as zlog
from services.runtime.cache import Cache
from services.runtime.errors import Unavailable
from zynk.messaging.v1 import messaging_pb2, messaging_pb2_grpc

log = zlog.get("presence")

MESSAGING = "zynk.messaging.v1.MessagingService"


class Peers(Protocol):
    async def visible_to(self, viewer_id: str, user_ids: Sequence[str]) -> set[str]:
        """Those of `user_ids` (never containing the viewer) who share a conversation with
        the viewer."""

    async def is_member(self, user_id: str, conversation_id: str) -> bool: ...


class MessagingPeers:
    def __init__(self, channel: Callable[[], grpc.aio.Channel], cache: Cache,
                 ttl_s: float) -> None:
        # The channel is looked up on first use: a host may bind messaging's address only
        # after every service was built.
        self._channel = channel
        self._stub: messaging_pb2_grpc.MessagingServiceStub | None = None
        self._cache = cache
        self._ttl_s = ttl_s

    def _messaging(self) -> messaging_pb2_grpc.MessagingServiceStub:
        if self._stub is None:
            self._stub = messaging_pb2_grpc.MessagingServiceStub(self._channel())
        return self._stub

    async def visible_to(self, viewer_id: str, user_ids: Sequence[str]) -> set[str]:
        if not user_ids:
            return set()
        # One entry per (viewer, set of candidates): a client re-asks about the same list
        # (its contacts, a conversation page), and one GET is one round trip on Redis.
        candidates = sorted(set(user_ids))
        digest = hashlib.sha256("\n".join(candidates).encode()).hexdigest()[:32]
        key = f"presence:peers:{viewer_id}:{digest}"
        hit = await self._cache.get(key)
        if hit is not None:
            return set(hit.decode().split("\n")) - {""}
        try:
            resp = await self._messaging().FilterConversationPeers(
                messaging_pb2.FilterConversationPeersRequest(
                    user=names.user_name(viewer_id),
                    users=[names.user_name(u) for u in candidates]))
        except grpc.aio.AioRpcError as e:
            raise _unavailable("FilterConversationPeers", e) from None
        wanted = set(candidates)
        visible = {u for u in map(names.parse_user, resp.peers) if u in wanted}
        await self._cache.set(key, "\n".join(sorted(visible)).encode(), self._ttl_s)
        return visible

    async def is_member(self, user_id: str, conversation_id: str) -> bool:
        key = f"presence:member:{conversation_id}:{user_id}"
        hit = await self._cache.get(key)
        if hit is not None:
            return hit == b"1"
        try:
            resp = await self._messaging().CheckConversationMembership(
                messaging_pb2.CheckConversationMembershipRequest(
                    conversation=names.conversation_name(conversation_id),
                    user=names.user_name(user_id)))
        except grpc.aio.AioRpcError as e:
            # The contract answers member=false for a missing conversation; NOT_FOUND means
            # the same thing, should messaging ever say it that way.
            if e.code() != grpc.StatusCode.NOT_FOUND:
                raise _unavailable("CheckConversationMembership", e) from None
            resp = messaging_pb2.CheckConversationMembershipResponse(member=False)
        await self._cache.set(key, b"1" if resp.member else b"0", self._ttl_s)
        return resp.member


def _unavailable(method: str, e: grpc.aio.AioRpcError) -> Unavailable:
    log.warning("messaging call failed", method=method, code=e.code().name)
    return Unavailable("conversation membership cannot be checked right now; retry shortly",
                       reason="MEMBERSHIP_UNAVAILABLE")
