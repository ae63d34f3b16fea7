"""MessagingService.Relay: many devices' inboxes and calls over one stream (the realtime
gateway's link), on top of the servicer's own methods.

Access is ACCESS_PER_ITEM: the call has no token; each `attach` carries the device's own
access token, verified with the interceptor's TokenVerifier (context.item_verifier), and
every operation on the slot re-verifies that token exactly as the interceptor verifies a
unary call's bearer token (cached signature check, expiry, revocation list) before running
the servicer's method (SendMessage, AcknowledgeDeliveries, MarkRead) with the slot's
principal. A slot can therefore only ever act as the device its token names. Each item is
validated against its buf.validate rules; a bad item fails alone (its result or a
`detached`), never the stream.

Per attached slot the stream keeps a small registration and one task iterating the servicer's
own Subscribe (the same ordering, resume-from-cursor and at-least-once-until-acked rules;
no gRPC call per slot). What slots produce is coalesced into batches by one writer. The
outgoing queue is bounded (entries and bytes): a slot whose inbox entry cannot be queued
within `stall_s` (the caller is not reading) is detached with UNAVAILABLE (reason
RELAY_OVERLOADED); the caller re-attaches after the last cursor it received and the inbox
replays the rest.

Generic over the servicer (the service's, or a test double with the same methods)."""

from __future__ import annotations

import asyncio
import collections
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from google.rpc import status_pb2

from services.runtime import context as ctx
from services.runtime import logging as zlog
from services.runtime.errors import (
    FailedPrecondition,
    InvalidArgument,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
    ZynkError,
    internal_status,
)
from services.runtime.interceptors import REQUEST_ID_RE, validate
from services.runtime.tokens import LEEWAY_S, b64url_decode
from zynk.messaging.v1 import messaging_pb2 as pb

log = zlog.get("messaging.relay")

MAX_ITEMS_IN = 512  # also the contract's buf.validate rule on RelayRequest.items
MAX_ITEMS_OUT = 512
# Batches stay well under gRPC's default 4 MiB message limit whatever the items weigh.
MAX_BATCH_BYTES = 1 << 20
MAX_SLOTS = 65536
MAX_OPS = 4096  # operations in flight per stream
MAX_QUEUED = 8192  # inbox entries queued for the writer per stream
MAX_QUEUED_BYTES = 32 << 20  # and their size
# Everything queued for the writer (results, detaches, inbox entries): past this the stream's
# requests are not read until the caller reads responses, so a caller that only writes (it
# needs no credential to open the stream) cannot grow the queue without bound.
MAX_OUT = MAX_QUEUED + 2 * MAX_OPS
STALL_S = 10.0
SWEEP_S = 1.0


class _Slot:
    __slots__ = ("token", "principal", "expires", "ready", "pump", "last")

    def __init__(self, token: str) -> None:
        self.token = token
        self.principal: ctx.Principal | None = None
        self.expires = 0.0
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pump: asyncio.Task[None] | None = None
        self.last: asyncio.Task[None] | None = None  # the slot's latest operation


def _not_attached() -> Unavailable:
    # Retryable, not FAILED_PRECONDITION: a slot is missing because messaging detached it (its
    # inbox failed while a database was down, the stream was overloaded, ...) and the gateway
    # re-attaches it on its own; an operation racing with that must look like the outage it
    # is. (The fault tests saw acks answered FAILED_PRECONDITION during a PostgreSQL restart.)
    return Unavailable("this device's relay slot is not attached (it is being re-attached); "
                       "retry", reason="SLOT_NOT_ATTACHED")


def _same_device(a: ctx.Principal, b: ctx.Principal | None) -> bool:
    return b is not None and a.user_id == b.user_id and a.device_id == b.device_id


def _expiry(token: str) -> float:
    """`exp` of a token the verifier has just accepted."""
    return float(json.loads(b64url_decode(token.split(".")[1]))["exp"])


class RelaySession:
    """One Relay stream."""

    def __init__(self, servicer: Any, verifier: Any, *, max_slots: int = MAX_SLOTS,
                 max_ops: int = MAX_OPS, max_queued: int = MAX_QUEUED,
                 max_queued_bytes: int = MAX_QUEUED_BYTES, max_out: int = MAX_OUT,
                 stall_s: float = STALL_S,
                 clock=time.time) -> None:
        self._s = servicer
        self._verifier = verifier
        self._max_slots = max_slots
        self._max_ops = max_ops
        self._max_queued = max_queued
        self._max_queued_bytes = max_queued_bytes
        self._queued_bytes = 0
        self._stall_s = stall_s
        self._clock = clock
        self.slots: dict[int, _Slot] = {}
        self._out: collections.deque[pb.RelayResponseItem] = collections.deque()
        self._queued_inbox = 0
        self._wake = asyncio.Event()
        self._space = asyncio.Event()
        self._space.set()
        self._ops = 0
        self._max_out = max_out
        self._drained = asyncio.Event()  # set when _out is below max_out
        self._drained.set()
        self._finished: BaseException | bool = False

    # -- the stream ---------------------------------------------------------------------------

    async def run(self, requests: AsyncIterator[pb.RelayRequest]
                  ) -> AsyncIterator[pb.RelayResponse]:
        reader = asyncio.create_task(self._read(requests))
        sweeper = asyncio.create_task(self._sweep())
        try:
            while True:
                while self._out:
                    yield self._batch()
                if self._finished is not False:
                    if isinstance(self._finished, BaseException):
                        raise self._finished
                    return
                self._wake.clear()
                await self._wake.wait()
                await asyncio.sleep(0)  # let the other ready slots add theirs: one batch
        finally:
            reader.cancel()
            sweeper.cancel()
            pending = [reader, sweeper]
            for slot in self.slots.values():
                if slot.pump is not None:
                    slot.pump.cancel()
                    pending.append(slot.pump)
            self.slots.clear()
            await asyncio.gather(*pending, return_exceptions=True)

    def _batch(self) -> pb.RelayResponse:
        out = self._out
        items: list[pb.RelayResponseItem] = []
        size = inbox = inbox_bytes = 0
        while out and len(items) < MAX_ITEMS_OUT:
            item_size = out[0].ByteSize()
            size += item_size
            if items and size > MAX_BATCH_BYTES:  # one item alone may be bigger
                break
            item = out.popleft()
            items.append(item)
            if item.HasField("inbox"):
                inbox += 1
                inbox_bytes += item_size
        if len(out) < self._max_out:
            self._drained.set()
        if inbox:
            self._queued_inbox -= inbox
            self._queued_bytes -= inbox_bytes
            if not self._full():
                self._space.set()
        return pb.RelayResponse(items=items)

    def _emit(self, item: pb.RelayResponseItem) -> None:
        self._out.append(item)
        self._wake.set()

    async def _read(self, requests: AsyncIterator[pb.RelayRequest]) -> None:
        try:
            async for request in requests:
                if len(request.items) > MAX_ITEMS_IN:
                    raise InvalidArgument(
                        f"at most {MAX_ITEMS_IN} items per batch",
                        field_violations=[("items", f"at most {MAX_ITEMS_IN} items")],
                        reason="VALIDATION_FAILED")
                for item in request.items:
                    self._on_item(item)
                while len(self._out) >= self._max_out:  # back-pressure: stop reading
                    self._drained.clear()
                    await self._drained.wait()
            self._finished = True
        except asyncio.CancelledError:
            raise
        except BaseException as e:  # noqa: BLE001 -- ends the stream with its status
            self._finished = e
        self._wake.set()

    async def _sweep(self) -> None:
        """Detach slots whose token expired (the verifier's leeway included)."""
        while True:
            await asyncio.sleep(SWEEP_S)
            now = self._clock()
            for slot_id, slot in list(self.slots.items()):
                if slot.expires and slot.expires + LEEWAY_S < now:
                    self._detach(slot_id, Unauthenticated(
                        "access token expired", reason="TOKEN_EXPIRED").to_status())

    # -- items --------------------------------------------------------------------------------

    def _on_item(self, item: pb.RelayRequestItem) -> None:
        kind = item.WhichOneof("kind")
        slot_id = item.slot
        try:
            validate(item)
        except ZynkError as e:
            if kind == "attach" and slot_id not in self.slots:
                self._emit(pb.RelayResponseItem(slot=slot_id, detached=pb.RelayDetached(
                    status=e.to_status())))
            elif kind in ("send", "acknowledge", "mark_read", "renew"):
                self._result(slot_id, getattr(item, kind).request_id, error=e.to_status())
            return
        if kind == "attach":
            self._attach(slot_id, item.attach)
        elif kind == "detach":
            self._detach(slot_id, None)
        else:
            op = getattr(item, kind)
            slot = self.slots.get(slot_id)
            if slot is None:
                self._result(slot_id, op.request_id,
                             error=_not_attached().to_status())
                return
            if self._ops >= self._max_ops:
                self._result(slot_id, op.request_id, error=ResourceExhausted(
                    f"at most {self._max_ops} operations in flight per stream",
                    reason="TOO_MANY_CALLS").to_status())
                return
            self._ops += 1
            slot.last = asyncio.create_task(self._op(slot_id, slot, kind, op, slot.last))

    def _attach(self, slot_id: int, attach: pb.RelayAttach) -> None:
        if slot_id in self.slots:
            self._detach(slot_id, FailedPrecondition(
                "slot attached twice", reason="SLOT_IN_USE").to_status())
            return
        if len(self.slots) >= self._max_slots:
            self._emit(pb.RelayResponseItem(slot=slot_id, detached=pb.RelayDetached(
                status=ResourceExhausted(f"at most {self._max_slots} slots per stream",
                                         reason="TOO_MANY_SLOTS").to_status())))
            return
        slot = self.slots[slot_id] = _Slot(attach.access_token)
        slot.pump = asyncio.create_task(self._pump(slot_id, slot, attach.subscribe))

    def _detach(self, slot_id: int, status: status_pb2.Status | None) -> None:
        """Forget a slot; with a status, tell the caller why."""
        slot = self.slots.pop(slot_id, None)
        if slot is None:
            return
        if slot.pump is not None and slot.pump is not asyncio.current_task():
            slot.pump.cancel()
        if not slot.ready.done():
            slot.ready.set_exception(Unauthenticated("slot detached", reason="SLOT_DETACHED"))
            slot.ready.exception()  # retrieved: nobody may be waiting
        if status is not None:
            self._emit(pb.RelayResponseItem(slot=slot_id,
                                            detached=pb.RelayDetached(status=status)))

    async def _authenticate(self, slot: _Slot) -> ctx.Principal:
        """The slot's device, verified now (signature, claims, expiry, revocation)."""
        who = await self._verifier.verify(slot.token)
        if slot.principal is not None and not _same_device(who, slot.principal):
            raise PermissionDenied("not this slot's device", reason="DEVICE_MISMATCH")
        return who

    async def _pump(self, slot_id: int, slot: _Slot, request: pb.SubscribeRequest) -> None:
        try:
            who = await self._authenticate(slot)
            slot.principal, slot.expires = who, _expiry(slot.token)
            slot.ready.set_result(None)
            ctx.principal.set(who)  # this task's own context: the slot's device only
            ctx.request_id.set(f"relay-{slot_id}")
            async for response in self._s.Subscribe(request, None):
                if self._full():
                    await self._wait_space()
                if self.slots.get(slot_id) is not slot:
                    return
                item = pb.RelayResponseItem(slot=slot_id, inbox=response)
                self._queued_inbox += 1
                self._queued_bytes += item.ByteSize()
                if self._full():
                    self._space.clear()
                self._emit(item)
            status = Unavailable("inbox stream ended", reason="STREAM_ENDED").to_status()
        except asyncio.CancelledError:
            raise
        except ZynkError as e:
            status = e.to_status()
        except Exception:
            log.exception("relay slot failed", slot=slot_id)
            status = internal_status()
        if self.slots.get(slot_id) is slot:
            self._detach(slot_id, status)

    def _full(self) -> bool:
        return (self._queued_inbox >= self._max_queued
                or self._queued_bytes >= self._max_queued_bytes)

    async def _wait_space(self) -> None:
        deadline = time.monotonic() + self._stall_s
        while self._full():
            try:
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    await self._space.wait()
            except TimeoutError:
                raise Unavailable("the relay stream is not being read fast enough; re-attach "
                                  "after the last cursor received",
                                  reason="RELAY_OVERLOADED") from None
            if self._full():
                self._space.clear()

    async def _op(self, slot_id: int, slot: _Slot, kind: str, op: Any,
                  prev: asyncio.Task[None] | None) -> None:
        """One operation, after the slot's previous one (a slot's operations run in order)."""
        try:
            if prev is not None and not prev.done():
                await asyncio.wait((prev,))
            try:
                await slot.ready
                if self.slots.get(slot_id) is not slot:
                    raise _not_attached()
                if kind == "renew":
                    who = await self._verifier.verify(op.access_token)
                    if not _same_device(who, slot.principal):
                        raise PermissionDenied("a slot serves one device: renew it with a "
                                               "token of the same device",
                                               reason="DEVICE_MISMATCH")
                    slot.token, slot.principal = op.access_token, who
                    slot.expires = _expiry(op.access_token)
                    self._result(slot_id, op.request_id, renewed=pb.RelayRenewed())
                    return
                who = await self._authenticate(slot)  # as the interceptor, per call
                ctx.principal.set(who)
                # The caller's request id goes into logs and onward metadata only when it is
                # a plain token (as for unary calls' x-request-id).
                ctx.request_id.set(f"relay-{slot_id}-{op.request_id}"
                                   if REQUEST_ID_RE.match(op.request_id) else f"relay-{slot_id}")
                if kind == "send":
                    reply = await self._s.SendMessage(op.request, None)
                elif kind == "acknowledge":
                    reply = await self._s.AcknowledgeDeliveries(op.request, None)
                else:
                    reply = await self._s.MarkRead(op.request, None)
                self._result(slot_id, op.request_id, **{kind: reply})
            except asyncio.CancelledError:
                raise
            except ZynkError as e:
                self._result(slot_id, op.request_id, error=e.to_status())
            except Exception:
                log.exception("relay operation failed", slot=slot_id, kind=kind)
                self._result(slot_id, op.request_id, error=internal_status())
        finally:
            self._ops -= 1
            if slot.last is asyncio.current_task():
                slot.last = None

    def _result(self, slot_id: int, request_id: str, **outcome: Any) -> None:
        self._emit(pb.RelayResponseItem(slot=slot_id, result=pb.RelayResult(
            request_id=request_id, **outcome)))


async def serve_relay(servicer: Any, requests: AsyncIterator[pb.RelayRequest], **options: Any
                      ) -> AsyncIterator[pb.RelayResponse]:
    """The Relay method of `servicer` (called by its `Relay`)."""
    verifier = ctx.item_verifier.get()
    if verifier is None:  # served without the runtime's interceptor: refuse, never bypass
        raise Unauthenticated("token verification unavailable", reason="NO_VERIFIER")
    async for response in RelaySession(servicer, verifier, **options).run(requests):
        yield response


__all__ = ["RelaySession", "serve_relay", "MAX_ITEMS_IN", "MAX_SLOTS"]
