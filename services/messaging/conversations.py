"""In-process cache of conversation state (members, roles, settings), read on every send.

Safe to cache because every write that depends on it names the state's `version` and the
store refuses it (Stale) if the conversation changed since; the domain then reloads and
decides again. Reads (authorisation of history reads) may see a change late: a change made
by this process updates the cache at once, other replicas hear about it on the pub/sub
channel `msg:conv` (payload: the conversation id), and entries expire after a short TTL in
case that best-effort message was missed."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
import uuid

from services.messaging.store import ConversationState, MessageStore
from services.runtime import logging as zlog
from services.runtime.pubsub import PubSub, SubscriptionOverflow

log = zlog.get("messaging.conversations")

CHANGED_CHANNEL = "msg:conv"


class ConversationCache:
    def __init__(self, store: MessageStore, pubsub: PubSub, ttl_s: float,
                 max_entries: int = 50_000, clock=time.monotonic) -> None:
        self._store = store
        self._pubsub = pubsub
        self._ttl_s = ttl_s
        self._max = max_entries
        self._clock = clock
        self._entries: collections.OrderedDict[str, tuple[float, ConversationState]] = (
            collections.OrderedDict())
        self._origin = uuid.uuid4().hex.encode()
        self._task: asyncio.Task | None = None

    async def get(self, conversation_id: str, *, fresh: bool = False) -> ConversationState | None:
        if not fresh:
            hit = self._entries.get(conversation_id)
            if hit is not None and hit[0] > self._clock():
                return hit[1]
        state = await self._store.load_conversation(conversation_id)
        if state is not None:
            self._put(state)
        return state

    def _put(self, state: ConversationState) -> None:
        current = self._entries.get(state.row.id)
        if current is not None and current[1].row.version > state.row.version:
            return  # a newer copy arrived while this one was loading
        self._entries[state.row.id] = (self._clock() + self._ttl_s, state)
        self._entries.move_to_end(state.row.id)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def forget(self, conversation_id: str) -> None:
        self._entries.pop(conversation_id, None)

    async def changed(self, state: ConversationState) -> None:
        """This process changed the conversation: cache the new state, tell the others."""
        self.forget(state.row.id)
        self._put(state)
        await self._pubsub.publish(CHANGED_CHANNEL, self._origin + b" " + state.row.id.encode())

    async def start(self) -> None:
        sub = await self._pubsub.subscribe([CHANGED_CHANNEL])
        self._task = asyncio.create_task(self._listen(sub))

    async def _listen(self, sub) -> None:
        try:
            while True:
                try:
                    _channel, data = await sub.get()
                except SubscriptionOverflow:
                    self._entries.clear()  # missed some: start over
                    continue
                origin, _, conversation_id = data.partition(b" ")
                if origin != self._origin:
                    self.forget(conversation_id.decode())
        finally:
            await sub.close()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
