"""The gateway's end of MessagingService.Relay: one stream per gateway process carries the
inboxes and the send/ack/read calls of every socket.

Each authenticated socket holds a slot (an integer) on the link. Attaching sends the
device's own access token and the socket's resume cursor (the gateway holds no credential:
messaging verifies the token and runs everything on the slot as that device). Items from all
sockets are coalesced into one RelayRequest per loop tick; results come back by request id
and inbox entries by slot. When the stream breaks (messaging restarted, unreachable), every
slot is re-attached on the next stream after the last cursor its socket forwarded: nothing is
skipped, nothing forwarded twice; calls in flight fail with UNAVAILABLE (clients retry sends
with the same message id). Reconnects back off with full jitter like the per-socket streams
did (docs/realtime.md)."""

from __future__ import annotations

import asyncio
import random
from typing import TYPE_CHECKING, Any

import grpc
import structlog
from google.rpc import status_pb2
from zynk.messaging.v1 import messaging_pb2 as pb

from gateway.errors import DETAILS_TRAILER

if TYPE_CHECKING:
    from gateway.realtime.connection import Connection

__all__ = ["RelayError", "RelayLink", "MAX_BATCH"]

log = structlog.get_logger("zynk.gateway.realtime")
MAX_BATCH = 512  # the contract's limit on RelayRequest.items
MAX_BATCH_BYTES = 1 << 20  # well under the server's 4 MiB message limit
_CODES = {c.value[0]: c for c in grpc.StatusCode}


class RelayError(grpc.RpcError):
    """A relayed call's error (or a slot's detachment), shaped like a gRPC call's error so
    that the gateway's error mapping treats both the same."""

    def __init__(self, status: status_pb2.Status) -> None:
        super().__init__(status.message)
        self.status = status

    def code(self) -> grpc.StatusCode:
        return _CODES.get(self.status.code, grpc.StatusCode.UNKNOWN)

    def details(self) -> str:
        return self.status.message

    def trailing_metadata(self) -> tuple[tuple[str, bytes], ...]:
        return ((DETAILS_TRAILER, self.status.SerializeToString()),)


def _unavailable(message: str) -> RelayError:
    return RelayError(status_pb2.Status(code=grpc.StatusCode.UNAVAILABLE.value[0],
                                        message=message))


_REQUEST_KIND = {"send": (pb.RelaySend, "send"),
                 "acknowledge": (pb.RelayAcknowledge, "acknowledge"),
                 "mark_read": (pb.RelayMarkRead, "mark_read")}


class RelayLink:
    def __init__(self, open_stream: Any, *, retry_initial_s: float, retry_max_s: float,
                 timeout_s: float) -> None:
        self._open = open_stream  # the Relay stream_stream multicallable
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._timeout_s = timeout_s
        self.slots: dict[int, Connection] = {}  # attached (or being re-attached) sockets
        self._next_slot = 0
        self._next_id = 0
        self._pending: dict[str, tuple[int, asyncio.Future[Any]]] = {}
        self._out: list[pb.RelayRequestItem] = []
        self._wake = asyncio.Event()
        self._live: set[int] = set()  # slots attached on the current stream
        self._call: Any = None  # the current stream, None while reconnecting
        self._task: asyncio.Task[None] | None = None
        self._stopped = False

    # -- what sockets do ----------------------------------------------------------------------

    def attach(self, conn: Connection) -> int:
        self._next_slot += 1
        slot = self._next_slot
        self.slots[slot] = conn
        if self._task is None and not self._stopped:
            self._task = asyncio.create_task(self._run(), name="realtime-relay")
        elif self._call is not None:
            self._live.add(slot)
            self._push(self._attach_item(slot, conn))
        return slot

    def reattach(self, slot: int) -> None:
        """Attach a socket again (after messaging detached it, or after we detached it because
        its client stopped reading), from its last forwarded cursor. Under a new slot number:
        inbox entries of the old attachment may still be on their way (messaging does not
        confirm a detach we asked for), and forwarding them after the cursor moved back would
        put entries out of order, and a cumulative ack of them would skip the replay."""
        conn = self.slots.get(slot)
        if conn is not None and self._call is not None and slot not in self._live:
            del self.slots[slot]
            self._next_slot += 1
            conn.slot = fresh = self._next_slot
            self.slots[fresh] = conn
            self._live.add(fresh)
            self._push(self._attach_item(fresh, conn))

    def detach(self, slot: int, *, forget: bool = True) -> None:
        if forget:
            if self.slots.pop(slot, None) is None:
                return
        if slot in self._live:
            self._live.discard(slot)
            self._push(pb.RelayRequestItem(slot=slot, detach=pb.RelayDetach()))

    def forget(self, slot: int) -> None:
        """Messaging already detached the slot: only drop it here."""
        self.slots.pop(slot, None)
        self._live.discard(slot)

    async def call(self, slot: int, kind: str, request: Any) -> Any:
        """send / acknowledge / mark_read as the slot's device; the response message, or
        RelayError."""
        wrapper, field = _REQUEST_KIND[kind]
        rid = self._rid()
        return await self._roundtrip(slot, rid, pb.RelayRequestItem(
            slot=slot, **{field: wrapper(request_id=rid, request=request)}), kind)

    async def renew(self, slot: int, token: str) -> None:
        rid = self._rid()
        await self._roundtrip(slot, rid, pb.RelayRequestItem(
            slot=slot, renew=pb.RelayRenew(request_id=rid, access_token=token)), "renewed")

    async def stop(self) -> None:
        self._stopped = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    # -- internals ----------------------------------------------------------------------------

    def _rid(self) -> str:
        self._next_id += 1
        return str(self._next_id)

    async def _roundtrip(self, slot: int, rid: str, item: pb.RelayRequestItem,
                         field: str) -> Any:
        if self._call is None or slot not in self.slots:
            raise _unavailable("the messaging service is reconnecting; try again")
        fut = asyncio.get_running_loop().create_future()
        self._pending[rid] = (slot, fut)
        self._push(item)
        try:
            async with asyncio.timeout(self._timeout_s):
                result: pb.RelayResult = await fut
        except TimeoutError:
            raise RelayError(status_pb2.Status(
                code=grpc.StatusCode.DEADLINE_EXCEEDED.value[0],
                message="Deadline Exceeded")) from None
        finally:
            self._pending.pop(rid, None)
        if result.HasField("error"):
            raise RelayError(result.error)
        return getattr(result, field)

    @staticmethod
    def _attach_item(slot: int, conn: Connection) -> pb.RelayRequestItem:
        return pb.RelayRequestItem(slot=slot, attach=pb.RelayAttach(
            access_token=conn.token,
            subscribe=pb.SubscribeRequest(device=conn.device, after_cursor=conn.cursor)))

    def _push(self, item: pb.RelayRequestItem) -> None:
        self._out.append(item)
        self._wake.set()

    async def _run(self) -> None:
        delay = self._retry_initial_s
        while not self._stopped:
            call = self._open()
            self._call = call
            # Every socket re-attaches after its last forwarded cursor (except one whose client
            # is not reading: it re-attaches once it reads again).
            self._live = {slot for slot, conn in self.slots.items() if not conn.resync}
            self._out = [self._attach_item(slot, self.slots[slot]) for slot in self._live]
            self._wake.set()
            writer = asyncio.create_task(self._write(call))
            try:
                while True:
                    response = await call.read()
                    if response is grpc.aio.EOF:
                        break
                    delay = self._retry_initial_s
                    self._dispatch(response)
            except grpc.RpcError as e:
                code = e.code() if callable(getattr(e, "code", None)) else None
                log.info("realtime.relay_broken", code=getattr(code, "name", "UNKNOWN"),
                         slots=len(self.slots))
            except asyncio.CancelledError:
                call.cancel()
                raise
            except Exception:
                log.exception("realtime.relay_failed")
            finally:
                self._call = None
                self._live = set()
                writer.cancel()
                call.cancel()
                self._out = []
                pending, self._pending = self._pending, {}
                for _, fut in pending.values():
                    if not fut.done():
                        fut.set_exception(_unavailable("the messaging service went away; "
                                                       "try again"))
            await asyncio.sleep(random.uniform(0, delay))
            delay = min(delay * 2, self._retry_max_s)

    async def _write(self, call: Any) -> None:
        try:
            while True:
                if not self._out:
                    self._wake.clear()
                    await self._wake.wait()
                    await asyncio.sleep(0)  # what the other sockets add this tick: one batch
                out = self._out
                n = size = 0
                while n < len(out) and n < MAX_BATCH:
                    size += out[n].ByteSize()
                    if n and size > MAX_BATCH_BYTES:  # one item alone may be bigger
                        break
                    n += 1
                batch, self._out = out[:n], out[n:]
                await call.write(pb.RelayRequest(items=batch))
        except (grpc.RpcError, asyncio.InvalidStateError) as e:
            log.debug("realtime.relay_write_failed", error=type(e).__name__)
            call.cancel()

    def _dispatch(self, response: pb.RelayResponse) -> None:
        for item in response.items:
            kind = item.WhichOneof("kind")
            if kind == "inbox":
                conn = self.slots.get(item.slot)
                if conn is not None:
                    conn.on_inbox(item.inbox)
            elif kind == "result":
                waiting = self._pending.pop(item.result.request_id, None)
                if waiting is not None and waiting[0] == item.slot and not waiting[1].done():
                    waiting[1].set_result(item.result)
            elif kind == "detached":
                self._live.discard(item.slot)
                conn = self.slots.get(item.slot)
                if conn is not None:
                    conn.on_detached(RelayError(item.detached.status))
