"""The presence rules: heartbeats and sign-offs, expiry, who may see whom, typing.

Nothing here knows about gRPC: the servicer hands in plain values and the caller's Principal.
State lives behind the PresenceStore (store.py); who shares a conversation with whom comes
from messaging through `Peers` (peers.py); changes go out on the shared PubSub (wire.py) so
watch streams on every replica hear them.

Rules, in one place:
- A device is ONLINE for `online_ttl_s` after each heartbeat; a user is ONLINE while any of
  their devices is. Heartbeat(OFFLINE) and a revoked device (devices.changed) sign the device
  off at once. When the last device goes, the user's last_seen is recorded and a change is
  published; the sweeper publishes the changes that expiry causes.
- A user's presence is visible to the user and to users who share a conversation with them;
  to anyone else it is OFFLINE with no times (views.hidden). Typing is visible to members of
  the conversation only, and only members may set it.
- Typing is never stored: SetTyping publishes an indicator with its expire_time and each watch
  stream lapses it by itself when no refresh arrives, so nothing can leave one stuck.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence

from services.presence import names, wire
from services.presence.peers import Peers
from services.presence.store import PresenceStore, UserPresence
from services.presence.views import PresenceView, WatchEvent, hidden, public
from services.presence.watch import WatchStream
from services.runtime import logging as zlog
from services.runtime.bus import Event
from services.runtime.config import Settings
from services.runtime.context import Principal
from services.runtime.errors import PermissionDenied, ResourceExhausted, Unavailable
from services.runtime.pubsub import PubSub
from services.runtime.ratelimit import RateLimiter, enforce
from zynk.events.v1 import events_pb2

log = zlog.get("presence")

TOPIC_DEVICES_CHANGED = "devices.changed"
# Leases dropped per sweep; the rest wait for the next tick (one sweep_interval_s later).
SWEEP_BATCH = 10_000
ME = names.ME


class PresenceDomain:
    def __init__(self, store: PresenceStore, peers: Peers, pubsub: PubSub,
                 limiter: RateLimiter, settings: Settings,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.peers = peers
        self.pubsub = pubsub
        self.settings = settings.presence
        self._limits = settings.rate_limits
        self._limiter = limiter
        self.clock = clock
        # Open watch streams per user on this replica.
        self._watches: dict[str, int] = {}

    # -- heartbeats ------------------------------------------------------------------------

    async def heartbeat(self, who: Principal, online: bool) -> tuple[float, PresenceView]:
        """Returns the interval to heartbeat at and the caller's own presence afterwards."""
        await enforce(self._limiter, f"presence:heartbeat:{who.user_id}:{who.device_id}",
                      self._limits.presence_heartbeats_per_device, "presence heartbeats")
        now = self.clock()
        if online:
            t = await self.store.heartbeat(who.user_id, who.device_id, now,
                                           now + self.settings.online_ttl_s)
        else:
            t = await self.store.sign_off(who.user_id, who.device_id, now)
        if t.changed:
            await self.publish_presence(t.presence)
        return self.settings.heartbeat_interval_s, public(t.presence)

    async def sweep(self) -> int:
        """Turns users whose last lease expired OFFLINE and tells their watchers."""
        gone = await self.store.expire(self.clock(), SWEEP_BATCH)
        for p in gone:
            await self.publish_presence(p)
        return len(gone)

    async def run_sweeper(self) -> None:
        while True:
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Unavailable:
                # An outage of the store: expected, and said once per tick without a trace.
                log.warning("presence store unavailable; sweeping again next tick")
            except Exception:
                log.exception("presence sweep failed; retrying next tick")
            await asyncio.sleep(self.settings.sweep_interval_s)

    async def on_device_changed(self, event: Event) -> None:
        """A revoked device stops counting at once rather than when its lease lapses."""
        envelope = events_pb2.EventEnvelope.FromString(event.payload)
        if not envelope.HasField("device_changed"):
            return
        change = envelope.device_changed
        if change.change != events_pb2.DeviceChanged.CHANGE_REVOKED:
            return
        parts = change.device.split("/")
        if len(parts) != 4 or parts[0] != "users" or parts[2] != "devices":
            log.warning("devices.changed with a malformed device name", event_id=event.event_id)
            return
        t = await self.store.sign_off(parts[1], parts[3], self.clock())
        if t.changed:
            await self.publish_presence(t.presence)

    # -- reading ---------------------------------------------------------------------------

    async def batch_get(self, who: Principal, user_ids: Sequence[str]) -> list[PresenceView]:
        """`user_ids` may contain ME. Answers in request order."""
        await enforce(self._limiter, f"presence:read:{who.user_id}",
                      self._limits.presence_reads_per_user, "presence reads")
        ids = [who.user_id if u == ME else u for u in user_ids]
        shown = await self.visible(who.user_id, ids)
        known = dict(zip(shown, await self.store.get(shown, self.clock()), strict=True))
        return [public(known[u]) if u in known else hidden(u) for u in ids]

    async def visible(self, viewer_id: str, user_ids: Sequence[str]) -> list[str]:
        """The distinct users among `user_ids` whose presence the viewer may see."""
        distinct = list(dict.fromkeys(user_ids))
        others = [u for u in distinct if u != viewer_id]
        allowed = await self.peers.visible_to(viewer_id, others) if others else set()
        return [u for u in distinct if u == viewer_id or u in allowed]

    # -- typing ----------------------------------------------------------------------------

    async def set_typing(self, who: Principal, conversation_id: str,
                         typing: bool) -> float | None:
        """Returns when the indicator lapses (None when typing stopped)."""
        await enforce(self._limiter, f"presence:typing:{who.user_id}:{who.device_id}",
                      self._limits.typing_per_device, "typing updates")
        await self.require_member(who.user_id, conversation_id)
        expire_at = self.clock() + self.settings.typing_ttl_s if typing else None
        await self._publish(wire.typing_channel(conversation_id), wire.encode_typing(
            wire.Typing(conversation_id, who.user_id, typing, expire_at)))
        return expire_at

    async def require_member(self, user_id: str, conversation_id: str) -> None:
        # The same answer for a conversation that does not exist: no existence oracle.
        if not await self.peers.is_member(user_id, conversation_id):
            raise PermissionDenied(
                f"{names.conversation_name(conversation_id)} is not a conversation you take "
                "part in", reason="NOT_A_MEMBER",
                metadata={"conversation": names.conversation_name(conversation_id)})

    # -- watching --------------------------------------------------------------------------

    async def watch(self, who: Principal, user_ids: Sequence[str],
                    conversation_ids: Sequence[str]) -> AsyncIterator[WatchEvent]:
        """The current presence of `user_ids` (ME allowed), then changes, typing in
        `conversation_ids` (the caller must be a member of each) and keepalives."""
        await enforce(self._limiter, f"presence:read:{who.user_id}",
                      self._limits.presence_reads_per_user, "presence reads")
        if self._watches.get(who.user_id, 0) >= self.settings.max_watches_per_user:
            raise ResourceExhausted(
                f"at most {self.settings.max_watches_per_user} presence watches may be open "
                "at once; close one first", reason="TOO_MANY_WATCHES")
        self._watches[who.user_id] = self._watches.get(who.user_id, 0) + 1
        try:
            ids = list(dict.fromkeys(who.user_id if u == ME else u for u in user_ids))
            stream = WatchStream(self, who.user_id, ids, list(dict.fromkeys(conversation_ids)))
            # aclosing: when this generator is closed, the stream's own cleanup (closing its
            # subscription) runs now, not whenever the garbage collector gets to it.
            async with contextlib.aclosing(stream.run()) as events:
                async for event in events:
                    yield event
        finally:
            left = self._watches[who.user_id] - 1
            if left:
                self._watches[who.user_id] = left
            else:
                del self._watches[who.user_id]

    def open_watches(self, user_id: str) -> int:
        return self._watches.get(user_id, 0)

    # -- publishing ------------------------------------------------------------------------

    async def publish_presence(self, p: UserPresence) -> None:
        await self._publish(wire.user_channel(p.user_id), wire.encode_presence(p))

    async def _publish(self, channel: str, data: bytes) -> None:
        # PubSub is best-effort by contract: the state change already happened, and watchers
        # resynchronise from the store, so a failed publish must not fail the caller.
        try:
            await self.pubsub.publish(channel, data)
        except Exception:
            log.warning("presence publish failed", channel=channel.rsplit(":", 1)[0])
