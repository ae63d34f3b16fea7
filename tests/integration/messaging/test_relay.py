"""MessagingService.Relay over real gRPC with the real runtime (interceptor, verifier,
revocations): per-slot authentication, slot isolation, batches and their limits, resume."""

from __future__ import annotations

import asyncio
import collections

import grpc
from google.rpc import error_details_pb2

from tests.integration.messaging.conftest import direct, new_user, send_request
from zynk.auth.v1 import auth_pb2
from zynk.messaging.v1 import messaging_pb2 as pb

C = grpc.StatusCode


def reason_of(status) -> str:
    for d in status.details:
        if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            d.Unpack(info)
            return info.reason
    return ""


class Relay:
    """A Relay stream: no credential on the call, items per slot collected."""

    def __init__(self, mesh) -> None:
        from zynk.messaging.v1 import messaging_pb2_grpc
        self.call = messaging_pb2_grpc.MessagingServiceStub(mesh.channel("messaging")).Relay()
        self.items: dict[int, list[pb.RelayResponseItem]] = collections.defaultdict(list)
        self.batches = 0
        self.error: grpc.aio.AioRpcError | None = None
        self.changed = asyncio.Event()
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for resp in self.call:
                self.batches += 1
                for item in resp.items:
                    self.items[item.slot].append(item)
                self.changed.set()
        except grpc.aio.AioRpcError as e:
            self.error = e
        self.changed.set()

    async def write(self, *items: pb.RelayRequestItem) -> None:
        await self.call.write(pb.RelayRequest(items=items))

    async def attach(self, slot: int, device, after_cursor: str = "", token: str | None = None,
                     subscribe_device: str | None = None) -> None:
        await self.write(pb.RelayRequestItem(slot=slot, attach=pb.RelayAttach(
            access_token=token or device.token, subscribe=pb.SubscribeRequest(
                device=subscribe_device or device.name, after_cursor=after_cursor))))

    async def wait(self, predicate, timeout: float = 5.0):
        async def loop():
            while True:
                got = predicate()
                if got:
                    return got
                self.changed.clear()
                if self.task.done():
                    raise AssertionError(f"relay ended: {self.error}")
                await self.changed.wait()
        return await asyncio.wait_for(loop(), timeout)

    def inbox(self, slot: int) -> list[pb.SubscribeResponse]:
        return [i.inbox for i in self.items[slot] if i.HasField("inbox") and i.inbox.cursor]

    async def entries(self, slot: int, n: int) -> list[pb.SubscribeResponse]:
        return await self.wait(lambda: len(self.inbox(slot)) >= n and self.inbox(slot))

    async def caught_up(self, slot: int, times: int = 1) -> None:
        await self.wait(lambda: sum(i.inbox.HasField("caught_up") for i in self.items[slot]
                                    if i.HasField("inbox")) >= times)

    async def result(self, slot: int, request_id: str) -> pb.RelayResult:
        def find():
            for i in self.items[slot]:
                if i.HasField("result") and i.result.request_id == request_id:
                    return i.result
            return None
        return await self.wait(find)

    async def detached(self, slot: int, timeout: float = 5.0):
        def find():
            for i in self.items[slot]:
                if i.HasField("detached"):
                    return i.detached.status
            return None
        return await self.wait(find, timeout)

    async def close(self) -> None:
        self.call.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def test_slots_send_receive_ack_and_read_as_their_own_device(mesh):
    a, = await new_user(mesh)
    b, = await new_user(mesh)
    conv = await direct(a, b)
    r = Relay(mesh)
    await r.attach(1, a)
    await r.attach(2, b)
    await r.caught_up(1)
    await r.caught_up(2)
    await r.write(pb.RelayRequestItem(slot=1, send=pb.RelaySend(
        request_id="s1", request=send_request(conv, [b.name], body=b"hello"))))
    res = await r.result(1, "s1")
    assert res.WhichOneof("outcome") == "send"
    assert res.send.message.sender_device == a.name  # acted as slot 1's device
    [*_, got] = await r.entries(2, 2)  # 1 is the CONVERSATION_CREATED event
    assert got.message.name == res.send.message.name
    assert got.message.envelope.ciphertext == b"hello|" + b.name.encode()
    await r.write(
        pb.RelayRequestItem(slot=2, acknowledge=pb.RelayAcknowledge(
            request_id="k1", request=pb.AcknowledgeDeliveriesRequest(device=b.name,
                                                                     cursor=got.cursor))),
        pb.RelayRequestItem(slot=2, mark_read=pb.RelayMarkRead(
            request_id="m1", request=pb.MarkReadRequest(conversation=conv,
                                                        read_sequence=got.message.sequence))))
    assert (await r.result(2, "k1")).acknowledge.pending_count == 0
    assert (await r.result(2, "m1")).mark_read.read_sequence == got.message.sequence
    # the DELIVERED and READ receipts reach the sender's slot
    receipts = await r.wait(lambda: [e for e in r.inbox(1) if e.HasField("receipt")][1:] and
                            [e for e in r.inbox(1) if e.HasField("receipt")])
    assert {e.receipt.type for e in receipts} == {pb.RECEIPT_TYPE_DELIVERED,
                                                  pb.RECEIPT_TYPE_READ}
    await r.close()


async def test_attach_refused_for_bad_and_foreign_tokens(mesh):
    a, = await new_user(mesh)
    b, = await new_user(mesh)
    r = Relay(mesh)
    await r.attach(1, a, token="not-a-token")
    status = await r.detached(1)
    assert status.code == C.UNAUTHENTICATED.value[0] and reason_of(status) == "TOKEN_MALFORMED"
    # a's token cannot open b's inbox
    await r.attach(2, a, subscribe_device=b.name)
    status = await r.detached(2)
    assert status.code == C.PERMISSION_DENIED.value[0]
    # a tampered signature
    head, body, sig = a.token.split(".")
    await r.attach(3, a, token=f"{head}.{body}.{sig[:-4]}AAAA")
    status = await r.detached(3)
    assert status.code == C.UNAUTHENTICATED.value[0]
    # the stream itself carries on
    await r.attach(4, a)
    await r.caught_up(4)
    await r.close()


async def test_a_slot_cannot_act_for_another_device(mesh):
    a, = await new_user(mesh)
    b, = await new_user(mesh)
    conv = await direct(a, b)
    r = Relay(mesh)
    await r.attach(1, a)
    await r.attach(2, b)
    await r.caught_up(2)
    [created] = await r.entries(2, 1)
    # slot 1 (a) acknowledging b's inbox
    await r.write(pb.RelayRequestItem(slot=1, acknowledge=pb.RelayAcknowledge(
        request_id="x", request=pb.AcknowledgeDeliveriesRequest(device=b.name,
                                                                cursor=created.cursor))))
    res = await r.result(1, "x")
    assert res.error.code == C.PERMISSION_DENIED.value[0]
    # a send on slot 1 is a's, whatever it claims; a renewal with b's token is refused
    await r.write(pb.RelayRequestItem(slot=1, renew=pb.RelayRenew(
        request_id="n", access_token=b.token)))
    res = await r.result(1, "n")
    assert res.error.code == C.PERMISSION_DENIED.value[0] and reason_of(res.error) == \
        "DEVICE_MISMATCH"
    await r.write(pb.RelayRequestItem(slot=1, renew=pb.RelayRenew(
        request_id="n2", access_token=a.token)))
    assert (await r.result(1, "n2")).HasField("renewed")
    await r.write(pb.RelayRequestItem(slot=1, send=pb.RelaySend(
        request_id="s", request=send_request(conv, [b.name]))))
    assert (await r.result(1, "s")).send.message.sender_device == a.name
    # an operation on a slot that is not attached
    await r.write(pb.RelayRequestItem(slot=9, send=pb.RelaySend(
        request_id="z", request=send_request(conv, [b.name]))))
    res = await r.result(9, "z")
    # retryable: the gateway re-attaches a detached slot by itself
    assert res.error.code == C.UNAVAILABLE.value[0] and reason_of(res.error) == \
        "SLOT_NOT_ATTACHED"
    await r.close()


async def test_revoked_device_is_detached_and_stops_acting(mesh):
    b1, b2 = await new_user(mesh, 2)
    r = Relay(mesh)
    await r.attach(1, b2)
    await r.caught_up(1)
    await b1.auth.RevokeDevice(auth_pb2.RevokeDeviceRequest(name=b2.name), metadata=b1.md)
    status = await r.detached(1)
    assert status.code == C.UNAUTHENTICATED.value[0]
    await r.attach(2, b2)  # and cannot come back
    status = await r.detached(2)
    assert status.code == C.UNAUTHENTICATED.value[0]
    await r.close()


async def test_item_validation_and_batch_limits(mesh):
    a, = await new_user(mesh)
    r = Relay(mesh)
    await r.attach(1, a)
    await r.caught_up(1)
    # one bad item fails alone, with the violated field
    await r.write(pb.RelayRequestItem(slot=1, send=pb.RelaySend(
        request_id="bad", request=pb.SendMessageRequest(parent="nope"))))
    res = await r.result(1, "bad")
    assert res.error.code == C.INVALID_ARGUMENT.value[0]
    assert reason_of(res.error) == "VALIDATION_FAILED"
    await r.attach(2, a, token="x" * 9000)  # over the token length limit
    assert (await r.detached(2)).code == C.INVALID_ARGUMENT.value[0]
    # a batch over the limit ends the stream (a broken caller)
    await r.write(*[pb.RelayRequestItem(slot=5, detach=pb.RelayDetach())] * 513)
    await asyncio.wait_for(r.task, 5)
    assert r.error is not None and r.error.code() == C.INVALID_ARGUMENT


async def test_resume_after_the_stream_breaks(mesh):
    a, = await new_user(mesh)
    b, = await new_user(mesh)
    conv = await direct(a, b)
    sent = [await a.send(conv, [b.name]) for _ in range(3)]
    r = Relay(mesh)
    await r.attach(7, b)
    entries = await r.entries(7, 4)  # created + 3 messages
    await r.caught_up(7)
    # acknowledge the first two, process (not ack) the third, then the stream breaks
    await r.write(pb.RelayRequestItem(slot=7, acknowledge=pb.RelayAcknowledge(
        request_id="k", request=pb.AcknowledgeDeliveriesRequest(device=b.name,
                                                                cursor=entries[1].cursor))))
    await r.result(7, "k")
    await r.close()
    late = await a.send(conv, [b.name])
    r2 = Relay(mesh)
    await r2.attach(1, b, after_cursor=entries[2].cursor)
    await r2.caught_up(1)
    got = await r2.entries(1, 2)
    assert [e.message.name for e in got] == [sent[2].name, late.name]
    # without a cursor, the unacknowledged entries are replayed (at-least-once)
    r3 = Relay(mesh)
    await r3.attach(1, b)
    await r3.caught_up(1)
    assert [e.message.name for e in r3.inbox(1)] == [sent[1].name, sent[2].name, late.name]
    await r2.close()
    await r3.close()


async def test_inbox_items_are_batched(mesh):
    a, = await new_user(mesh)
    users = [(await new_user(mesh))[0] for _ in range(4)]
    convs = [await direct(a, u) for u in users]
    r = Relay(mesh)
    for i, u in enumerate(users, start=1):
        await r.attach(i, u)
    for i in range(1, 5):
        await r.caught_up(i)
    before = r.batches
    await asyncio.gather(*[a.send(c, [u.name]) for c, u in zip(convs, users, strict=True)])
    for i in range(1, 5):
        await r.entries(i, 2)
    assert r.batches - before <= 4
    await r.close()
