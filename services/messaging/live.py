"""The device inbox as a live stream (Subscribe), and the wake-ups that feed it.

Pub/sub channels (services/runtime/pubsub.py, best-effort by design):

* `msg:inbox:<device id>` - after a commit, one message per new inbox entry of the device:
  8-byte big-endian inbox seq followed by the serialized zynk.messaging.v1.SubscribeResponse
  (cursor included). A subscriber forwards it without reading the store when it directly
  follows what it sent; on a gap, an overflow or a quiet keepalive tick it re-reads the
  store, which is the truth.
* `msg:ctl:<device id>` - stream control: `open:<token>` when a stream opens (an older stream
  of the device, on any replica, ends with ABORTED; tokens order by opening time) and
  `revoked` when the device is revoked (its stream ends with UNAUTHENTICATED)."""

from __future__ import annotations

import asyncio
import struct
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable

from services.messaging import views
from services.messaging.store import MessageStore
from services.runtime import logging as zlog
from services.runtime.errors import Aborted, InvalidArgument, Unauthenticated
from services.runtime.pbtime import timestamp
from services.runtime.pubsub import PubSub, SubscriptionOverflow
from services.runtime.revocations import RevocationList
from zynk.messaging.v1 import messaging_pb2 as pb

log = zlog.get("messaging.live")

INBOX_PREFIX = "msg:inbox:"
CONTROL_PREFIX = "msg:ctl:"
REVOKED = b"revoked"
OPEN = b"open:"
_SEQ = struct.Struct(">Q")
# On a busy stream (no keepalive ticks) the revocation list is still consulted this often.
REVOCATION_CHECK_S = 1.0


def inbox_channel(device_id: str) -> str:
    return INBOX_PREFIX + device_id


def control_channel(device_id: str) -> str:
    return CONTROL_PREFIX + device_id


def pack(seq: int, response: bytes) -> bytes:
    return _SEQ.pack(seq) + response


def unpack(data: bytes) -> tuple[int, bytes]:
    return _SEQ.unpack_from(data)[0], data[_SEQ.size:]


class InboxPublisher:
    def __init__(self, pubsub: PubSub) -> None:
        self._pubsub = pubsub

    async def publish(self, entries: Iterable[tuple[str, int, pb.SubscribeResponse]]) -> None:
        """(device id, seq, response) of entries that committed, in seq order per device."""
        for device_id, seq, response in entries:
            await self._pubsub.publish(inbox_channel(device_id),
                                       pack(seq, response.SerializeToString()))

    async def revoked(self, device_id: str) -> None:
        await self._pubsub.publish(control_channel(device_id), REVOKED)


class InboxStreams:
    def __init__(self, store: MessageStore, pubsub: PubSub, revocations: RevocationList, *,
                 keepalive_s: float, page_size: int,
                 clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._pubsub = pubsub
        self._revocations = revocations
        self._keepalive_s = keepalive_s
        self._page = page_size
        self._clock = clock

    async def stream(self, user_id: str, device_id: str,
                     after_seq: int) -> AsyncIterator[pb.SubscribeResponse]:
        """Replay what is queued after `after_seq`, then `caught_up`, then live entries."""
        state = await self._store.open_inbox(user_id, device_id)
        if state.revoked or await self._revocations.is_revoked(device_id):
            raise Unauthenticated("this device has been revoked", reason="DEVICE_REVOKED")
        if after_seq > state.last_seq:
            raise InvalidArgument("after_cursor is ahead of this inbox",
                                  field_violations=[("after_cursor", "not a cursor this "
                                                     "device received")],
                                  reason="INVALID_CURSOR")
        token = f"{time.time_ns():020d}:{uuid.uuid4().hex}".encode()
        control = control_channel(device_id)
        # Listen before reading the backlog, so nothing committed in between is missed.
        sub = await self._pubsub.subscribe([inbox_channel(device_id), control])
        try:
            await self._pubsub.publish(control, OPEN + token)
            last = max(after_seq, state.acked_seq)
            async for response, seq in self._backlog(device_id, last):
                last = seq
                yield response
            yield pb.SubscribeResponse(caught_up=pb.CaughtUp())
            next_check = time.monotonic() + REVOCATION_CHECK_S
            while True:
                try:
                    async with asyncio.timeout(self._keepalive_s):
                        channel, data = await sub.get()
                except TimeoutError:
                    await self._check_revoked(device_id)
                    next_check = time.monotonic() + REVOCATION_CHECK_S
                    sent = False
                    async for response, seq in self._backlog(device_id, last):
                        last, sent = seq, True
                        yield response
                    if not sent:
                        yield pb.SubscribeResponse(
                            keepalive=pb.Keepalive(server_time=timestamp(self._clock())))
                    continue
                except SubscriptionOverflow:
                    async for response, seq in self._backlog(device_id, last):
                        last = seq
                        yield response
                    continue
                if time.monotonic() >= next_check:
                    await self._check_revoked(device_id)
                    next_check = time.monotonic() + REVOCATION_CHECK_S
                if channel == control:
                    if data == REVOKED:
                        raise Unauthenticated("this device has been revoked",
                                              reason="DEVICE_REVOKED")
                    if data.startswith(OPEN) and data[len(OPEN):] > token:
                        raise Aborted("a newer inbox stream was opened for this device",
                                      reason="STREAM_REPLACED")
                    continue
                seq, payload = unpack(data)
                if seq <= last:
                    continue  # already sent (replayed from the store first)
                if seq == last + 1:
                    last = seq
                    yield pb.SubscribeResponse.FromString(payload)
                    continue
                async for response, seq in self._backlog(device_id, last):  # a gap
                    last = seq
                    yield response
        finally:
            await sub.close()

    async def _backlog(self, device_id: str, after_seq: int):
        while True:
            items = await self._store.read_inbox(device_id, after_seq, self._page)
            now = self._clock()
            for item in items:
                after_seq = item.seq
                yield views.inbox_entry(device_id, item, now), item.seq
            if len(items) < self._page:
                return

    async def _check_revoked(self, device_id: str) -> None:
        if await self._revocations.is_revoked(device_id):
            raise Unauthenticated("this device has been revoked", reason="DEVICE_REVOKED")
