"""Harness for the realtime WebSocket's gateway tests.

The socket maps frames onto MessagingService and PresenceService, which are built elsewhere;
these gateway tests run TEST DOUBLES of those two neighbouring services: real grpc.aio
servers behind the real runtime (GrpcServer, ServerInterceptor, TokenVerifier with a JWKS
key source and MemoryRevocationList), with a few lines of in-memory state each, enough to
exercise the socket's side of every contract rule it relies on (ordered inbox with cursors,
after_cursor resume, cumulative acks, ABORTED for a second stream of a device,
UNAUTHENTICATED for a revoked device, presence heartbeats and watches). They are not the
services: end-to-end tests against the real ones live with the mesh tests.

The gateway is the real one (create_app + gateway.server on uvicorn, 127.0.0.1 port 0) and
clients are real WebSocket clients (the `websockets` library) or, where a test needs a client
that misbehaves at the protocol level, a raw TCP client driving websockets' sans-I/O client.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import json
import time
import uuid
from typing import Any

import grpc
import jwt
import websockets
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from google.protobuf import duration_pb2, json_format, timestamp_pb2
from websockets.client import ClientProtocol
from websockets.uri import parse_uri
from zynk.messaging.v1 import messaging_pb2 as mpb
from zynk.messaging.v1 import messaging_pb2_grpc as mgrpc
from zynk.presence.v1 import presence_pb2 as ppb
from zynk.presence.v1 import presence_pb2_grpc as pgrpc
from zynk.realtime.v1 import realtime_pb2

from gateway.app import create_app
from gateway.realtime import CHANNEL_OPTIONS
from gateway.server import GatewayServer
from services.messaging.relay import serve_relay
from services.runtime.channels import Channels
from services.runtime.config import RealtimeSettings
from services.runtime.context import current_principal
from services.runtime.errors import Aborted, NotFound, PermissionDenied, Unauthenticated
from services.runtime.interceptors import ServerInterceptor
from services.runtime.revocations import MemoryRevocationList
from services.runtime.server import GrpcServer, ServiceSpec
from services.runtime.tokens import JwksKeySource, TokenVerifier

ISS, AUD = "zynk", "zynk-api"
MESSAGING = "zynk.messaging.v1.MessagingService"
PRESENCE = "zynk.presence.v1.PresenceService"
MODULES = ["zynk.messaging.v1.messaging_pb2", "zynk.presence.v1.presence_pb2"]
RECV_TIMEOUT_S = 5.0


def _b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


class Keys:
    """An Ed25519 signing key issuing access tokens the runtime's TokenVerifier accepts."""

    def __init__(self, kid: str = "rt-test") -> None:
        self.kid = kid
        self.private = Ed25519PrivateKey.generate()
        raw = self.private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.jwk = {"kty": "OKP", "crv": "Ed25519", "x": _b64(raw), "kid": kid}

    def token(self, user: str, device: str, ttl: float = 600, kid: str | None = None) -> str:
        now = time.time()
        claims = {"iss": ISS, "aud": AUD, "sub": user, "sid": device, "jti": uuid.uuid4().hex,
                  "iat": int(now), "exp": int(now + ttl)}
        return jwt.encode(claims, self.private, algorithm="EdDSA",
                          headers={"kid": kid or self.kid, "typ": "at+jwt"})


@dataclasses.dataclass
class Device:
    user_id: str
    device_id: str
    token: str

    @property
    def name(self) -> str:
        return f"users/{self.user_id}/devices/{self.device_id}"


# -- the MessagingService double ----------------------------------------------------------------


class _Stream:
    """The state of one open Subscribe stream."""

    def __init__(self) -> None:
        self.wake = asyncio.Event()
        self.ended: Exception | None = None


class MessagingDouble(mgrpc.MessagingServiceServicer):
    """Test double: per device an inbox of entries with cursors "1", "2", ...; Subscribe
    replays unacknowledged entries after after_cursor, sends caught_up, then live entries;
    a second Subscribe of a device ends the first with ABORTED; revoke() ends a device's
    stream with UNAUTHENTICATED."""

    def __init__(self) -> None:
        self.inbox: dict[str, list[mpb.SubscribeResponse]] = {}
        self.acked: dict[str, int] = {}
        self.streams: dict[str, _Stream] = {}
        self.subscribes: list[tuple[str, str]] = []  # (device, after_cursor) per Subscribe
        self.sent: list[str] = []  # message ids in commit order
        self.relays = 0  # Relay streams opened (the gateway's shared links)
        self.reads: list[tuple[str, str, int]] = []
        self.gate: asyncio.Event | None = None  # when set, ListConversations waits for it
        self.sequence = 0
        self.jitter = True  # uneven SendMessage latency (ordering tests); off for benchmarks

    def push(self, device: str, message: mpb.Message | None = None, **event: Any) -> str:
        """Queue an entry for a device; returns its cursor."""
        entries = self.inbox.setdefault(device, [])
        entry = mpb.SubscribeResponse(cursor=str(len(entries) + 1))
        if message is not None:
            entry.message.CopyFrom(message)
        for k, v in event.items():
            getattr(entry, k).CopyFrom(v)
        entries.append(entry)
        stream = self.streams.get(device)
        if stream is not None:
            stream.wake.set()
        return entry.cursor

    def end_stream(self, device: str, error: Exception) -> None:
        stream = self.streams.get(device)
        if stream is not None:
            stream.ended = error
            stream.wake.set()

    async def Subscribe(self, request, context):
        me = current_principal()
        if request.device != me.device_name:
            raise PermissionDenied("not your device", reason="NOT_YOUR_DEVICE")
        device = request.device
        self.subscribes.append((device, request.after_cursor))
        old = self.streams.get(device)
        if old is not None:
            old.ended = Aborted("a newer connection subscribed", reason="SUPERSEDED")
            old.wake.set()
        stream = self.streams[device] = _Stream()
        position = max(int(request.after_cursor or 0), self.acked.get(device, 0))
        caught_up = False
        try:
            while True:
                entries = self.inbox.get(device, [])
                while position < len(entries):
                    position += 1
                    yield entries[position - 1]
                if not caught_up:
                    caught_up = True
                    yield mpb.SubscribeResponse(caught_up=mpb.CaughtUp())
                    continue
                await stream.wake.wait()
                stream.wake.clear()
                if stream.ended is not None:
                    raise stream.ended
        finally:
            if self.streams.get(device) is stream:
                del self.streams[device]

    def Relay(self, request_iterator, context):
        # The service's own Relay engine over this double's methods: per-slot token checks
        # with the runtime's verifier, batching, limits (services/messaging/relay.py).
        self.relays += 1
        return serve_relay(self, request_iterator)

    async def AcknowledgeDeliveries(self, request, context):
        if request.device != current_principal().device_name:
            raise PermissionDenied("not your device", reason="NOT_YOUR_DEVICE")
        acked = max(self.acked.get(request.device, 0), int(request.cursor))
        self.acked[request.device] = acked
        pending = len(self.inbox.get(request.device, [])) - acked
        return mpb.AcknowledgeDeliveriesResponse(pending_count=pending)

    async def SendMessage(self, request, context):
        me = current_principal()
        if self.jitter:  # uneven latency, so that concurrent sends would commit out of order
            await asyncio.sleep(0.02 if len(self.sent) % 2 == 0 else 0.0)
        self.sequence += 1
        self.sent.append(request.message_id)
        stored = mpb.Message(name=f"{request.parent}/messages/{request.message_id}",
                             sequence=self.sequence, sender=me.user_name,
                             sender_device=me.device_name)
        stored.create_time.GetCurrentTime()
        for env in request.pairwise.envelopes:
            delivered = mpb.Message()
            delivered.CopyFrom(stored)
            delivered.envelope.CopyFrom(env)
            self.push(env.recipient_device, delivered)
        return mpb.SendMessageResponse(message=stored)

    async def MarkRead(self, request, context):
        me = current_principal()
        self.reads.append((me.device_name, request.conversation, request.read_sequence))
        return mpb.MarkReadResponse(read_sequence=request.read_sequence)

    async def GetConversation(self, request, context):
        if request.name.endswith("0000"):
            raise NotFound(f"{request.name} not found", reason="CONVERSATION_NOT_FOUND")
        return mpb.GetConversationResponse(conversation=mpb.Conversation(name=request.name))

    async def ListConversations(self, request, context):
        if self.gate is not None:
            await self.gate.wait()
        return mpb.ListConversationsResponse(
            conversations=[mpb.Conversation(name=f"conversations/c{i}")
                           for i in range(request.page_size or 2)])


# -- the PresenceService double -----------------------------------------------------------------


class PresenceDouble(pgrpc.PresenceServiceServicer):
    """Test double: records heartbeats and typing; WatchPresence yields the watched users'
    presence, then whatever a test feeds into `watch_feed`."""

    def __init__(self, interval_s: float = 25.0) -> None:
        self.heartbeats: list[tuple[str, int]] = []  # (device, state)
        self.typing: list[tuple[str, str, bool]] = []
        self.watches: list[list[str]] = []
        self.watch_feed: asyncio.Queue[ppb.WatchPresenceResponse] = asyncio.Queue()
        self.interval_s = interval_s
        self.fail_heartbeats = False

    def states(self, device: str) -> list[int]:
        return [s for d, s in self.heartbeats if d == device]

    async def Heartbeat(self, request, context):
        if self.fail_heartbeats:
            raise Unauthenticated("presence says no", reason="TEST_FAILURE")
        me = current_principal()
        self.heartbeats.append((me.device_name, request.state or ppb.PRESENCE_STATE_ONLINE))
        return ppb.HeartbeatResponse(
            heartbeat_interval=duration_pb2.Duration(seconds=int(self.interval_s)))

    async def SetTyping(self, request, context):
        me = current_principal()
        self.typing.append((me.user_name, request.conversation, request.typing))
        resp = ppb.SetTypingResponse()
        if request.typing:
            resp.expire_time.FromSeconds(int(time.time()) + 5)
        return resp

    async def WatchPresence(self, request, context):
        self.watches.append(list(request.names) + list(request.conversations))
        for name in request.names:
            yield ppb.WatchPresenceResponse(presence=ppb.Presence(
                name=name, state=ppb.PRESENCE_STATE_ONLINE))
        while True:
            yield await self.watch_feed.get()


# -- the harness --------------------------------------------------------------------------------


class Upstream:
    """The two doubles served over real gRPC with the real runtime; restartable on its port."""

    def __init__(self, keys: Keys, revocations: MemoryRevocationList) -> None:
        async def fetch():
            return [keys.jwk]

        jwks = JwksKeySource(fetch, min_refresh_s=0.0)
        jwks.set_keys([keys.jwk])
        self.verifier = TokenVerifier(jwks, ISS, AUD, revocations)
        self.messaging = MessagingDouble()
        self.presence = PresenceDouble()
        self.server: GrpcServer | None = None
        self.port = 0

    async def start(self) -> None:
        def register(server):
            mgrpc.add_MessagingServiceServicer_to_server(self.messaging, server)
            pgrpc.add_PresenceServiceServicer_to_server(self.presence, server)

        spec = ServiceSpec("doubles", [MESSAGING, PRESENCE], register)
        self.server = GrpcServer(spec, ServerInterceptor(self.verifier, "internal"), 4 << 20)
        self.port = await self.server.start("127.0.0.1", self.port)

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop(0)
            self.server = None


class Harness:
    """Upstream doubles + the real gateway; `connect()` opens real WebSocket clients."""

    def __init__(self, settings: RealtimeSettings | None = None, **gateway_options: Any) -> None:
        self.settings = settings or RealtimeSettings()
        self.keys = Keys()
        self.revocations = MemoryRevocationList()
        self.up = Upstream(self.keys, self.revocations)
        self.gateway_options = gateway_options
        self.gateway: GatewayServer | None = None
        self.app: Any = None
        self._channels: Channels | None = None
        self._streams: list[grpc.aio.Channel] = []
        self._clients: list[Any] = []

    async def __aenter__(self) -> Harness:
        await self.up.start()
        addresses = {MESSAGING: f"127.0.0.1:{self.up.port}", PRESENCE: f"127.0.0.1:{self.up.port}"}
        self._channels = Channels(addresses, "", 5.0)

        def realtime_channel_for(name: str) -> grpc.aio.Channel:
            ch = grpc.aio.insecure_channel(addresses[name], options=[
                *CHANNEL_OPTIONS, ("grpc.initial_reconnect_backoff_ms", 100),
                ("grpc.max_reconnect_backoff_ms", 300)])
            self._streams.append(ch)
            return ch

        self.app = create_app(channel_for=self._channels.get, modules=MODULES,
                              default_timeout_s=5, verifier=self.up.verifier,
                              realtime=self.settings, realtime_channel_for=realtime_channel_for)
        self.gateway = GatewayServer(self.app, host="127.0.0.1", port=0, grace_s=2.0,
                                     ws_max_size=self.settings.max_frame_bytes,
                                     **self.gateway_options)
        await self.gateway.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for c in self._clients:
            with contextlib.suppress(Exception):
                await c.close()
        if self.gateway is not None:
            await self.gateway.stop()
        await self.up.stop()
        if self._channels is not None:
            await self._channels.close()
        for ch in self._streams:
            await ch.close()

    @property
    def url(self) -> str:
        assert self.gateway is not None
        return self.gateway.url.replace("http://", "ws://") + "/api/v1/realtime"

    @property
    def realtime(self) -> Any:
        return self.app.state.realtime

    def device(self, user_id: str | None = None, ttl: float = 600) -> Device:
        user_id = user_id or str(uuid.uuid4())
        device_id = str(uuid.uuid4())
        return Device(user_id, device_id, self.keys.token(user_id, device_id, ttl))

    async def connect(self, device: Device | None = None, *, header: bool = True,
                      subprotocols: tuple[str, ...] = ("zynk.v1",), **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {device.token}"} if device and header else {}
        ws = await websockets.connect(self.url, subprotocols=list(subprotocols) or None,
                                      additional_headers=headers, ping_interval=None,
                                      open_timeout=5, close_timeout=2, max_size=None, **kw)
        self._clients.append(ws)
        return ws

    async def ready(self, device: Device, **kw: Any) -> Any:
        """A socket authenticated by header, past its `ready` frame."""
        ws = await self.connect(device, **kw)
        frame = await recv(ws)
        assert "ready" in frame, frame
        return ws


async def recv(ws: Any, timeout: float = RECV_TIMEOUT_S) -> dict[str, Any]:
    """The next frame, checked to be the proto3 JSON of a ServerFrame."""
    text = await asyncio.wait_for(ws.recv(), timeout)
    assert isinstance(text, str)
    json_format.Parse(text, realtime_pb2.ServerFrame())  # the contract, exactly
    return json.loads(text)


async def recv_until(ws: Any, predicate: Any, timeout: float = RECV_TIMEOUT_S
                     ) -> list[dict[str, Any]]:
    """Frames up to and including the first one matching `predicate`."""
    seen = []
    deadline = time.monotonic() + timeout
    while True:
        frame = await recv(ws, max(0.01, deadline - time.monotonic()))
        seen.append(frame)
        if predicate(frame):
            return seen


async def closed(ws: Any, timeout: float = RECV_TIMEOUT_S) -> tuple[int, list[dict[str, Any]]]:
    """Read until the server closes; the close code and the frames received before it."""
    seen = []
    with contextlib.suppress(websockets.ConnectionClosed):
        async with asyncio.timeout(timeout):
            while True:
                text = await ws.recv()
                json_format.Parse(text, realtime_pb2.ServerFrame())
                seen.append(json.loads(text))
    assert ws.close_code is not None, "the server did not close the socket"
    return ws.close_code, seen


def send(ws: Any, frame: dict[str, Any]) -> Any:
    return ws.send(json.dumps(frame))


def reason(frame: dict[str, Any]) -> str:
    """The ErrorInfo reason of an error frame."""
    for d in frame["error"].get("details", []):
        if d.get("@type", "").endswith("google.rpc.ErrorInfo"):
            return d["reason"]
    return ""


def message(conversation: str = "conversations/c1", seq: int = 1) -> mpb.Message:
    m = mpb.Message(name=f"{conversation}/messages/{uuid.uuid4()}", sequence=seq,
                    create_time=timestamp_pb2.Timestamp(seconds=int(time.time())))
    return m


class RawClient:
    """A WebSocket client that does the handshake and then only what the test tells it: it
    does not answer pings and does not read unless asked (a dead or stuck client)."""

    def __init__(self, url: str, token: str | None) -> None:
        self.url = url
        self.token = token
        self.proto = ClientProtocol(parse_uri(url), subprotocols=["zynk.v1"], max_size=None)
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        uri = parse_uri(self.url)
        self.reader, self.writer = await asyncio.open_connection(uri.host, uri.port)
        request = self.proto.connect()
        if self.token:
            request.headers["Authorization"] = f"Bearer {self.token}"
        self.proto.send_request(request)
        self._flush()
        while self.proto.handshake_exc is None and not any(
                type(e).__name__ == "Response" for e in self._peek()):
            data = await self.reader.read(65536)
            assert data, "connection closed during the handshake"
            self.proto.receive_data(data)
        assert self.proto.handshake_exc is None

    def _peek(self) -> list[Any]:
        return self.proto.events  # not consumed: frames after the response stay queued

    def _flush(self) -> None:
        for chunk in self.proto.data_to_send():
            if chunk:
                self.writer.write(chunk)

    def pause_reading(self) -> None:
        self.writer.transport.pause_reading()

    async def read_until_closed(self, timeout: float) -> tuple[int | None, int]:
        """Read until the server's close frame or EOF; (close code or None, bytes read)."""
        total = 0
        async with asyncio.timeout(timeout):
            while self.proto.close_rcvd is None:
                try:
                    data = await self.reader.read(65536)
                except ConnectionResetError:
                    return None, total
                if not data:
                    break
                total += len(data)
                self.proto.receive_data(data)
        rcvd = self.proto.close_rcvd
        return (rcvd.code if rcvd else None), total

    def close(self) -> None:
        if self.writer is not None:
            self.writer.transport.abort()
