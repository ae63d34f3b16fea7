"""One WatchPresence stream: a snapshot, then changes, typing and keepalives.

Hand-written because it is the service's own protocol. What it guarantees:
- It subscribes before it reads the snapshot, so no change falls between the two; a report
  older than what the stream already sent (update_time earlier) is dropped, and so is one that
  would look the same to the client, so reconnect races never show a stale state.
- Its buffer is the PubSub subscription's bounded queue. A stream that cannot keep up (slow
  client) overflows it; it then re-reads the watched presences from the store and sends what
  differs, so it converges instead of growing without bound. Typing it tracks is bounded too.
- Every `visibility_cache_s` it re-asks who it may show (and re-checks membership of the
  watched conversations), subscribes to users who became visible, shows users who stopped
  being visible as hidden, and re-reads the store (a best-effort publish that was lost costs
  at most that long). A conversation the caller left ends the stream with PERMISSION_DENIED.
- A typing indicator that is not refreshed by its expire_time is reported stopped.
- With nothing else to say for `keepalive_s` it sends a Keepalive; a stream that watches no
  users (so has no snapshot) starts with one, so the client knows it is subscribed.
- Cancelling the call ends it; the subscription is closed on every exit path.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from services.presence import wire
from services.presence.store import UserPresence
from services.presence.views import Keepalive, WatchEvent, hidden, public, to_minute
from services.runtime.pubsub import SubscriptionOverflow

if TYPE_CHECKING:
    from services.presence.domain import PresenceDomain

# Typing indicators a stream tracks for lapsing (50 conversations x active typers).
MAX_TYPING = 1024
_HIDDEN = (False, None, None)


class WatchStream:
    def __init__(self, domain: PresenceDomain, viewer_id: str, user_ids: list[str],
                 conversation_ids: list[str]) -> None:
        self._d = domain
        self._viewer = viewer_id
        self._users = user_ids
        self._conversations = conversation_ids
        self._visible: set[str] = set()
        # What the client was last told per user: (online, minute last_seen, precise since).
        self._sent: dict[str, tuple[bool, float | None, float | None]] = {}
        self._typing: dict[tuple[str, str], float] = {}  # (conversation, user) -> expire_at

    async def run(self) -> AsyncIterator[WatchEvent]:
        d, settings = self._d, self._d.settings
        await asyncio.gather(*(d.require_member(self._viewer, c) for c in self._conversations))
        self._visible = set(await d.visible(self._viewer, self._users))
        sub = await d.pubsub.subscribe(
            [wire.user_channel(u) for u in self._visible]
            + [wire.typing_channel(c) for c in self._conversations])
        try:
            known = await self._read(self._visible)
            for u in self._users:
                yield self._record(known[u]) if u in known else self._hide(u)
            if not self._users:
                # No snapshot to send: a keepalive tells the client the stream is live.
                yield Keepalive(d.clock())
            last_out = d.clock()
            next_refresh = last_out + settings.visibility_cache_s
            while True:
                now = d.clock()
                out: list[WatchEvent] = self._lapse(now)
                if now >= next_refresh:
                    out += await self._refresh(sub)
                    next_refresh = d.clock() + settings.visibility_cache_s
                if not out and now >= last_out + settings.keepalive_s:
                    out.append(Keepalive(now))
                for event in out:
                    yield event
                if out:
                    last_out = d.clock()
                wake = min(last_out + settings.keepalive_s, next_refresh,
                           min(self._typing.values(), default=next_refresh))
                try:
                    async with asyncio.timeout(max(wake - d.clock(), 0.001)):
                        channel, data = await sub.get()
                except TimeoutError:
                    continue
                except SubscriptionOverflow:
                    events = await self._resync()
                else:
                    event = self._on_message(channel, data)
                    events = [] if event is None else [event]
                for event in events:
                    yield event
                if events:
                    last_out = d.clock()
        finally:
            await sub.close()

    # -- events ----------------------------------------------------------------------------

    def _on_message(self, channel: str, data: bytes) -> WatchEvent | None:
        if channel.startswith(wire.USER_CHANNEL):
            p = wire.decode_presence(data)
            if p is None or p.user_id not in self._visible:
                return None
            return self._record(p) if self._is_news(p) else None
        if channel.startswith(wire.TYPING_CHANNEL):
            t = wire.decode_typing(data)
            if t is None or t.conversation_id not in self._conversations:
                return None
            key = (t.conversation_id, t.user_id)
            if t.typing:
                if key not in self._typing and len(self._typing) >= MAX_TYPING:
                    return None  # it could not be lapsed later, so it is not shown
                self._typing[key] = t.expire_at  # type: ignore[assignment]
            else:
                self._typing.pop(key, None)
            return t
        return None

    def _lapse(self, now: float) -> list[WatchEvent]:
        due = [k for k, exp in self._typing.items() if exp <= now]
        return [wire.Typing(c, u, False, self._typing.pop((c, u))) for c, u in due]

    async def _refresh(self, sub) -> list[WatchEvent]:
        d = self._d
        await asyncio.gather(*(d.require_member(self._viewer, c) for c in self._conversations))
        visible = set(await d.visible(self._viewer, self._users))
        gone, new = self._visible - visible, visible - self._visible
        if gone:
            await sub.remove(*(wire.user_channel(u) for u in gone))
        if new:
            await sub.add(*(wire.user_channel(u) for u in new))
        self._visible = visible
        out: list[WatchEvent] = [self._hide(u) for u in self._users
                                 if u in gone and self._sent.get(u) != _HIDDEN]
        return out + await self._resync()

    async def _resync(self) -> list[WatchEvent]:
        known = await self._read(self._visible)
        return [self._record(known[u]) for u in self._users
                if u in known and self._is_news(known[u])]

    # -- bookkeeping -----------------------------------------------------------------------

    async def _read(self, users: set[str]) -> dict[str, UserPresence]:
        ordered = [u for u in self._users if u in users]
        return dict(zip(ordered, await self._d.store.get(ordered, self._d.clock()),
                        strict=True))

    def _is_news(self, p: UserPresence) -> bool:
        sent = self._sent.get(p.user_id)
        if sent is None:
            return True
        online, last_seen, since = sent
        if since is not None and p.since is not None and p.since < since:
            return False  # older than what the client has
        return (p.online, None if p.online else to_minute(p.last_seen)) != (online, last_seen)

    def _record(self, p: UserPresence):
        view = public(p)
        self._sent[p.user_id] = (view.online, view.last_seen, p.since)
        return view

    def _hide(self, user_id: str):
        self._sent[user_id] = _HIDDEN
        return hidden(user_id)
