"""Messaging + auth over real gRPC (tests/support/mesh.py), and a client-side view of users
and their devices: each Device logs in for real and calls with its own bearer token."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import uuid

import grpc
import pytest

from services.runtime.config import MessagingSettings
from tests.support.auth import auth_test_settings
from tests.support.mesh import ServiceMesh, start_mesh
from zynk.auth.v1 import auth_pb2, auth_pb2_grpc
from zynk.messaging.v1 import messaging_pb2 as pb
from zynk.messaging.v1 import messaging_pb2_grpc

PASSWORD = "a long enough password"
TOPICS = ("messages.sent", "messages.delivered", "messages.read")


def messaging_test_settings(data_dir, **messaging):
    settings = auth_test_settings(data_dir)
    settings.messaging = MessagingSettings(**{
        "keepalive_s": 0.5, "expiry_sweep_interval_s": 0.2, "max_send_bytes": 200_000,
        **messaging})
    return settings


@dataclasses.dataclass
class Device:
    user: str  # users/{id}
    name: str  # users/{id}/devices/{id}
    token: str
    mesh: ServiceMesh

    @property
    def user_id(self) -> str:
        return self.user.split("/")[1]

    @property
    def device_id(self) -> str:
        return self.name.split("/")[3]

    @property
    def md(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),)

    @property
    def stub(self) -> messaging_pb2_grpc.MessagingServiceStub:
        return messaging_pb2_grpc.MessagingServiceStub(self.mesh.channel("messaging"))

    @property
    def auth(self) -> auth_pb2_grpc.AuthServiceStub:
        return auth_pb2_grpc.AuthServiceStub(self.mesh.channel("auth"))

    async def call(self, method: str, request, **kw):
        return await getattr(self.stub, method)(request, metadata=self.md, timeout=10, **kw)

    async def send(self, conversation: str, recipients, message_id: str | None = None,
                   body: bytes | None = None) -> pb.Message:
        resp = await self.call("SendMessage", send_request(conversation, recipients,
                                                            message_id, body))
        return resp.message

    def subscribe(self, after_cursor: str = "", device: str | None = None):
        return self.stub.Subscribe(pb.SubscribeRequest(device=device or self.name,
                                                       after_cursor=after_cursor),
                                   metadata=self.md)

    async def ack(self, cursor: str) -> int:
        resp = await self.call("AcknowledgeDeliveries",
                               pb.AcknowledgeDeliveriesRequest(device=self.name, cursor=cursor))
        return resp.pending_count


def send_request(conversation: str, recipients, message_id: str | None = None,
                 body: bytes | None = None) -> pb.SendMessageRequest:
    """Pairwise: one envelope per recipient device name, ciphertext tagged with the device."""
    mid = message_id or str(uuid.uuid4())
    envs = [pb.Envelope(recipient_device=r, type=pb.ENVELOPE_TYPE_RATCHET,
                        ciphertext=(body or b"ct") + b"|" + r.encode()) for r in recipients]
    return pb.SendMessageRequest(parent=conversation, message_id=mid,
                                 pairwise=pb.PairwiseContent(envelopes=envs))


async def new_user(mesh: ServiceMesh, devices: int = 1) -> list[Device]:
    auth = auth_pb2_grpc.AuthServiceStub(mesh.channel("auth"))
    username = f"u{uuid.uuid4().hex[:12]}"
    await auth.Register(auth_pb2.RegisterRequest(username=username, password=PASSWORD))
    return [await login(mesh, username) for _ in range(devices)]


async def login(mesh: ServiceMesh, username: str) -> Device:
    auth = auth_pb2_grpc.AuthServiceStub(mesh.channel("auth"))
    r = await auth.Login(auth_pb2.LoginRequest(username=username, password=PASSWORD,
                                               device_display_name="d"))
    return Device(r.user.name, r.device.name, r.tokens.access_token, mesh)


async def direct(a: Device, b: Device) -> str:
    resp = await a.call("CreateConversation", pb.CreateConversationRequest(
        conversation=pb.Conversation(type=pb.Conversation.TYPE_DIRECT, participants=[b.user])))
    return resp.conversation.name


class Inbox:
    """A running Subscribe stream collected in the background."""

    def __init__(self, device: Device, after_cursor: str = "") -> None:
        self.call = device.subscribe(after_cursor)
        self.items: list[pb.SubscribeResponse] = []
        self.caught_up = asyncio.Event()
        self.error: grpc.aio.AioRpcError | None = None
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        try:
            async for r in self.call:
                if r.HasField("caught_up"):
                    self.caught_up.set()
                self.items.append(r)
                self._changed.set()
        except grpc.aio.AioRpcError as e:
            self.error = e
        self._changed.set()

    def entries(self) -> list[pb.SubscribeResponse]:
        """Queued entries only (no caught_up/keepalive)."""
        return [r for r in self.items if r.cursor]

    async def wait(self, predicate, timeout: float = 5.0):
        async def loop():
            while not predicate(self):
                self._changed.clear()
                if self._task.done() and not predicate(self):
                    raise AssertionError(f"stream ended: {self.error}")
                await self._changed.wait()
        await asyncio.wait_for(loop(), timeout)

    async def wait_entries(self, n: int, timeout: float = 5.0) -> list[pb.SubscribeResponse]:
        await self.wait(lambda s: len(s.entries()) >= n, timeout)
        return self.entries()

    async def ended(self, timeout: float = 5.0) -> grpc.aio.AioRpcError | None:
        await asyncio.wait_for(asyncio.shield(self._task), timeout)
        return self.error

    async def close(self) -> None:
        self.call.cancel()
        try:
            await asyncio.wait_for(self._task, 5)
        except (asyncio.CancelledError, TimeoutError):
            pass


@pytest.fixture(scope="module")
async def mesh(tmp_path_factory):
    m = await start_mesh(messaging_test_settings(tmp_path_factory.mktemp("msg")),
                         ["auth", "messaging"], collect_topics=TOPICS)
    yield m
    await m.stop()


def random_bytes(n: int) -> bytes:
    return os.urandom(n)
