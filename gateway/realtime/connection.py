"""One realtime socket: authentication, the frame loop, the upstream streams.

Tasks per socket: the ASGI task reads frames (`Connection.serve`), one more only while the
client watches presence; calls run as short tasks, at most `max_calls_in_flight` at a time.
The device's inbox and its send/ack/read calls go over the process's shared Relay stream
(gateway/realtime/relay.py), where the socket holds a slot; inbox entries are written
straight to the transport, through a small backlog (and a task draining it) only while the
client is not reading. Timers (heartbeats,
idle and expiry checks) live in the shared Hub, not per socket. Outbound frames are written
straight to the transport; a writer waits while the client is not reading, so what a socket
buffers is bounded by the transport's high-water mark plus one frame per writer.
"""

from __future__ import annotations

import asyncio
import collections
import json
import random
import secrets
import time
from typing import TYPE_CHECKING, Any

import grpc
import structlog
from uvicorn.protocols.utils import ClientDisconnected
from zynk.messaging.v1 import messaging_pb2
from zynk.presence.v1 import presence_pb2

from gateway.errors import from_rpc_error, status_json
from gateway.realtime import frames
from gateway.realtime.frames import FrameError, error_status
from gateway.realtime.relay import RelayError
from gateway.realtime.transport import EXTENSION
from gateway.transcode import TranscodeError, parse_into
from services.runtime.errors import Unauthenticated, ZynkError
from services.runtime.tokens import b64url_decode

if TYPE_CHECKING:
    from gateway.realtime.app import Realtime
    from gateway.realtime.transport import WebSocketProtocol

__all__ = ["SUBPROTOCOL", "Close", "Connection"]

SUBPROTOCOL = "zynk.v1"

log = structlog.get_logger("zynk.gateway.realtime")
C = grpc.StatusCode
EOF = grpc.aio.EOF
# Upstream stream endings that mean "try again": the service restarted or is unreachable.
_RETRY = frozenset({C.UNAVAILABLE, C.CANCELLED})
# Inbox entries held for a client that is not reading; beyond this the slot is detached and
# re-attached from the last forwarded cursor once the client reads again (nothing is lost).
MAX_BACKLOG = 256
_OFFLINE = presence_pb2.HeartbeatRequest(state=presence_pb2.PRESENCE_STATE_OFFLINE)


class Close:
    """Close codes (docs/realtime.md)."""

    NORMAL = 1000
    GOING_AWAY = 1001
    SERVER_ERROR = 1011
    BAD_FRAME = 4400
    UNAUTHENTICATED = 4401
    IDLE = 4408
    REPLACED = 4409
    FLOOD = 4429


class Connection:
    __slots__ = (
        "rt", "ws", "peer", "cid", "seq", "device", "expires", "md", "token", "cursor",
        "slot", "backlog", "drainer", "resync", "delay", "watch", "tasks", "ordered",
        "in_flight", "tokens", "refilled", "next_beat",
        "closing", "close_code",
    )

    def __init__(self, rt: Realtime) -> None:
        self.rt = rt
        self.ws: WebSocketProtocol = None  # type: ignore[assignment]  # set by serve()
        self.peer = ""
        self.cid = secrets.token_hex(6)  # prefix of the request ids of this socket's calls
        self.seq = 0
        self.device = ""  # users/{uuid}/devices/{uuid} once authenticated
        self.expires = 0.0  # epoch seconds at which the access token expires
        self.md: tuple[tuple[str, str], ...] = ()
        self.token = ""  # the device's access token (attaches its relay slot)
        self.cursor = ""  # the last inbox cursor forwarded to the client
        self.slot = 0  # on the relay link, once authenticated
        self.backlog: collections.deque[Any] | None = None  # inbox entries not yet written
        self.drainer: asyncio.Task[None] | None = None
        self.resync = False  # the slot was detached for a client not reading
        self.delay = rt.settings.retry_initial_s  # before re-attaching a dropped slot
        self.watch: asyncio.Task[None] | None = None
        self.tasks: set[asyncio.Task[None]] | None = None  # unary calls in flight
        self.ordered: asyncio.Task[None] | None = None  # the last send/ack/read/typing task
        self.in_flight = 0
        rate = rt.settings.frame_rate
        self.tokens = float(rate.burst)
        self.refilled = time.monotonic()
        self.next_beat = 0.0
        self.closing = False
        self.close_code = 0

    # -- lifecycle ---------------------------------------------------------------------------

    async def serve(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """The ASGI application for one socket: handshake, authentication, then frames."""
        event = await receive()
        if event["type"] != "websocket.connect":
            return
        ws = scope.get("extensions", {}).get(EXTENSION)
        if ws is None:
            log.error("realtime.no_transport",
                      note="serve the gateway with gateway.server (its WebSocket protocol)")
            await send({"type": "websocket.close", "code": 1011})
            return
        if SUBPROTOCOL not in scope.get("subprotocols", ()):
            await _refuse(send, 400, error_status(
                C.INVALID_ARGUMENT, "SUBPROTOCOL_REQUIRED",
                f"ask for the WebSocket subprotocol {SUBPROTOCOL!r}"))
            return
        self.ws = ws
        client = scope.get("client")
        self.peer = client[0] if client else ""
        header_token = _bearer(scope)
        # Nothing reads the request headers again, and the socket may live for hours.
        scope["headers"] = []
        await send({"type": "websocket.accept", "subprotocol": SUBPROTOCOL})
        try:
            if header_token is not None:
                ready_id = ""
                ok = await self._authenticate(header_token, "", "")
            else:
                ok, ready_id = await self._first_frame(receive)
            header_token = None  # the token lives on in self.md only
            if not ok:
                return
            self.rt.hub.add(self)
            await self.ws.send_text(frames.ready(
                ready_id, self.device, self.rt.settings.heartbeat_interval_s, self.expires))
            self.slot = self.rt.link.attach(self)
            # The frame loop, inline: this coroutine stays suspended for the socket's life.
            while True:
                event = await receive()
                keep = await self._on_event(event)
                del event  # a frame may be 256 KiB: not kept while the socket idles
                if not keep:
                    return
        except ClientDisconnected:
            pass
        finally:
            await self._cleanup()

    async def _on_event(self, event: dict[str, Any]) -> bool:
        text = self._frame_text(event)
        if text is None:
            return False
        try:
            frame, data = frames.parse(text)
        except FrameError as e:
            await self.ws.send_text(frames.error(e.frame_id, e.status))
            return True
        await self._dispatch(frame, data)
        return True

    async def _first_frame(self, receive: Any) -> tuple[bool, str]:
        try:
            async with asyncio.timeout(self.rt.settings.auth_timeout_s):
                event = await receive()
        except TimeoutError:
            self.fail(Close.UNAUTHENTICATED, error_status(
                C.UNAUTHENTICATED, "AUTH_TIMEOUT",
                f"no auth frame within {self.rt.settings.auth_timeout_s:g} s"), "auth timeout")
            return False, ""
        text = self._frame_text(event)
        if text is None:
            return False, ""
        try:
            frame, _ = frames.parse(text)
        except FrameError as e:
            self.fail(Close.BAD_FRAME, e.status, "bad frame", e.frame_id)
            return False, ""
        if frame.WhichOneof("frame") != "auth":
            self.fail(Close.UNAUTHENTICATED, error_status(
                C.UNAUTHENTICATED, "AUTH_REQUIRED",
                "the first frame must be `auth` (or send Authorization: Bearer on the upgrade)"),
                "unauthenticated", frame.id)
            return False, ""
        ok = await self._authenticate(frame.auth.access_token, frame.auth.after_cursor, frame.id)
        return ok, frame.id

    async def _authenticate(self, token: str, after_cursor: str, frame_id: str) -> bool:
        try:
            principal, expires = await self._verify(token)
        except Unauthenticated as e:
            self.fail(Close.UNAUTHENTICATED, status_json(e.to_status()), "unauthenticated",
                      frame_id)
            return False
        except ZynkError as e:
            # The token could not be checked right now (e.g. UNAVAILABLE: the revocation list
            # is in Redis and Redis is down). Not the client's fault and not a bad token: say
            # so in an error frame and close 1011 ("reconnect with backoff"), instead of
            # letting the exception escape as a bare 1011 and a logged traceback.
            self.fail(Close.SERVER_ERROR, status_json(e.to_status()), "cannot verify now",
                      frame_id)
            return False
        self.device = principal.device_name
        self.cursor = after_cursor
        self._use_token(token, expires)
        return True

    async def _verify(self, token: str) -> tuple[Any, float]:
        principal = await self.rt.verifier.verify(token)
        # The signature and claims were just checked; this only reads `exp` back.
        expires = float(json.loads(b64url_decode(token.split(".")[1]))["exp"])
        if expires <= time.time():  # inside the verifier's leeway: as good as expired here
            raise Unauthenticated("access token expired", reason="TOKEN_EXPIRED")
        return principal, expires

    def _use_token(self, token: str, expires: float) -> None:
        self.expires = expires
        self.token = token
        md = [("authorization", f"Bearer {token}")]
        if self.peer:
            md.append(("x-forwarded-for", self.peer))
        self.md = tuple(md)

    async def _cleanup(self) -> None:
        self.closing = True
        if not self.close_code:
            self.close_code = self.ws.close_code
        # Leave the hub first: nothing below may be skipped by a second cancellation.
        current = bool(self.device) and self.rt.hub.remove(self)
        if self.slot:
            self.rt.link.detach(self.slot)
        self.backlog = None
        pending = [t for t in (self.drainer, self.watch) if t is not None]
        pending.extend(self.tasks or ())
        for t in pending:
            t.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        self.drainer = self.watch = self.tasks = self.ordered = None
        # A newer socket of this device (here or on another replica) keeps it online.
        if current and self.close_code != Close.REPLACED:
            try:
                await self.rt.up.heartbeat(_OFFLINE, timeout=self.rt.settings.presence_timeout_s,
                                           metadata=self.metadata())
            except grpc.RpcError as e:
                log.debug("realtime.offline_failed", code=_code_name(e))
            except Exception:  # noqa: BLE001 -- presence must never break the socket
                log.warning("realtime.offline_failed", exc_info=True)

    def fail(self, code: int, status: dict[str, Any] | None, reason: str,
             frame_id: str = "") -> None:
        """Send the error frame that explains a close, then close (never waits)."""
        if self.close_code:
            return
        self.close_code = code
        try:
            if status is not None:
                self.ws.send_text_nowait(frames.error(frame_id, status))
        except ClientDisconnected:
            pass
        self.ws.close(code, reason)

    # -- frames from the client --------------------------------------------------------------

    def _frame_text(self, event: dict[str, Any]) -> str | None:
        """The text of a websocket.receive event, or None when the loop must stop."""
        if event["type"] != "websocket.receive":
            return None
        text = event.get("text")
        if text is None:
            self.fail(Close.BAD_FRAME, error_status(
                C.INVALID_ARGUMENT, "BINARY_FRAME", "frames are JSON text messages"), "bad frame")
            return None
        if len(text) > self.rt.settings.max_frame_bytes:  # the transport enforces it too
            self.fail(1009, None, "frame too large")
            return None
        if not self._take_token():
            self.fail(Close.FLOOD, error_status(
                C.RESOURCE_EXHAUSTED, "TOO_MANY_FRAMES", "too many frames; slow down"),
                "too many frames")
            return None
        return text

    def _take_token(self) -> bool:
        rate = self.rt.settings.frame_rate
        now = time.monotonic()
        tokens = min(float(rate.burst), self.tokens + (now - self.refilled) * rate.per_second)
        self.refilled = now
        if tokens < 1.0:
            self.tokens = tokens
            return False
        self.tokens = tokens - 1.0
        return True

    async def _dispatch(self, frame: Any, data: dict[str, Any]) -> None:
        kind = frame.WhichOneof("frame")
        fid = frame.id
        up = self.rt.up
        if kind == "ping":
            await self.ws.send_text(frames.pong(fid))
            return
        if kind == "watch":
            if self.watch is not None:
                self.watch.cancel()
            self.watch = asyncio.create_task(self._pump_watch(frame.watch, fid))
            return
        if self.in_flight >= self.rt.settings.max_calls_in_flight:
            await self.ws.send_text(frames.error(fid, error_status(
                C.RESOURCE_EXHAUSTED, "TOO_MANY_CALLS",
                f"at most {self.rt.settings.max_calls_in_flight} calls in flight per socket")))
            return
        ordered = True
        if kind == "send":
            self._spawn(self._relayed(fid, "send", frame.send), ordered)
            return
        if kind == "ack":
            ack = messaging_pb2.AcknowledgeDeliveriesRequest(device=self.device,
                                                             cursor=frame.ack.cursor)
            self._spawn(self._relayed(fid, "acknowledge", ack), ordered)
            return
        if kind == "read":
            self._spawn(self._relayed(fid, "mark_read", frame.read), ordered)
            return
        if kind == "typing":
            call, request = up.set_typing, frame.typing
        elif kind == "call":
            ordered = False
            method = up.methods.get(frame.call.method)
            if method is None:
                await self.ws.send_text(frames.error(fid, error_status(
                    C.NOT_FOUND, "METHOD_NOT_FOUND",
                    f"no method {frame.call.method!r} can be called here: only unary methods "
                    "with a REST binding, named package.Service/Method", field="call.method")))
                return
            request = method.request_class()
            try:
                parse_into(data.get("call", {}).get("request") or {}, request)
            except TranscodeError as e:
                field = f"call.request.{e.field}" if e.field else "call.request"
                await self.ws.send_text(frames.error(fid, error_status(
                    C.INVALID_ARGUMENT, e.reason, e.message, field=field)))
                return
            call = method.call
        elif kind == "auth":
            self._spawn(self._renew(fid, frame.auth.access_token), ordered=False)
            return
        else:  # a oneof member this gateway does not know yet (newer contract)
            await self.ws.send_text(frames.error(fid, error_status(
                C.UNIMPLEMENTED, "UNSUPPORTED_FRAME", f"frame {kind!r} is not supported")))
            return
        self._spawn(self._unary(fid, call, request), ordered)

    def _spawn(self, coro: Any, ordered: bool) -> None:
        """Run a unary call as its own task. Ordered ones (send, ack, read, typing) start
        upstream only after the previous ordered one finished, so a client's messages commit
        in the order it sent them."""
        self.in_flight += 1
        prev = self.ordered if ordered else None
        task = asyncio.create_task(self._run_call(coro, prev))
        if ordered:
            self.ordered = task
        if self.tasks is None:
            self.tasks = set()
        self.tasks.add(task)
        task.add_done_callback(self._call_done)

    def _call_done(self, task: asyncio.Task[None]) -> None:
        self.in_flight -= 1
        if self.tasks is not None:
            self.tasks.discard(task)
            if not self.tasks:
                self.tasks = None
        if self.ordered is task:
            self.ordered = None

    async def _run_call(self, coro: Any, prev: asyncio.Task[None] | None) -> None:
        try:
            if prev is not None and not prev.done():
                await asyncio.wait((prev,))
            await coro
        except ClientDisconnected:
            pass
        finally:
            coro.close()  # never started when cancelled while waiting for `prev`

    async def _unary(self, fid: str, call: Any, request: Any) -> None:
        try:
            reply = await call(request, timeout=self.rt.timeout_s, metadata=self.metadata())
        except grpc.RpcError as e:
            await self.ws.send_text(frames.error(fid, self._upstream_status(e, "call")))
            return
        if fid:
            await self.ws.send_text(frames.result(fid, reply))

    async def _relayed(self, fid: str, kind: str, request: Any) -> None:
        """send / ack / read over the relay link, as this socket's device."""
        try:
            reply = await self.rt.link.call(self.slot, kind, request)
        except grpc.RpcError as e:
            await self.ws.send_text(frames.error(fid, self._upstream_status(e, "call")))
            return
        if fid:
            await self.ws.send_text(frames.result(fid, reply))

    async def _renew(self, fid: str, token: str) -> None:
        try:
            principal, expires = await self._verify(token)
        except ZynkError as e:  # a bad token, or one that cannot be checked right now
            await self.ws.send_text(frames.error(fid, status_json(e.to_status())))
            return
        if principal.device_name != self.device:
            await self.ws.send_text(frames.error(fid, error_status(
                C.PERMISSION_DENIED, "DEVICE_MISMATCH",
                "a socket serves one device: renew it with a token of the same device")))
            return
        self._use_token(token, expires)
        try:  # messaging holds the slot's token too: it detaches slots whose token expired
            await self.rt.link.renew(self.slot, token)
        except grpc.RpcError as e:  # the link is reconnecting: it re-attaches with the new one
            log.debug("realtime.relay_renew_failed", code=_code_name(e))
        await self.ws.send_text(frames.ready(
            fid, self.device, self.rt.settings.heartbeat_interval_s, self.expires))

    # -- upstream streams --------------------------------------------------------------------

    def on_inbox(self, item: Any) -> None:
        """An inbox entry from the relay link, in order. Written at once while the client
        reads; otherwise kept in a small backlog drained by a task. A client that lets the
        backlog fill up loses its slot until it reads again, then the slot is re-attached
        after the last cursor written: the inbox replays the rest."""
        if self.closing or self.resync:
            return
        if self.backlog is None and not self.ws.stalled_since:
            try:
                self.ws.send_text_nowait(frames.inbox(item))
            except ClientDisconnected:
                return
            self._forwarded(item)
            return
        if self.backlog is None:
            self.backlog = collections.deque()
        if len(self.backlog) >= MAX_BACKLOG:
            self.backlog = None
            self.resync = True
            self.rt.link.detach(self.slot, forget=False)
        else:
            self.backlog.append(item)
        if self.drainer is None:
            self.drainer = asyncio.create_task(self._drain())

    def _forwarded(self, item: Any) -> None:
        if item.cursor:
            self.cursor = item.cursor
        elif item.HasField("caught_up"):
            self.delay = self.rt.settings.retry_initial_s

    async def _drain(self) -> None:
        try:
            while self.backlog:
                item = self.backlog.popleft()
                await self.ws.send_text(frames.inbox(item))
                self._forwarded(item)
            self.backlog = None
            if self.resync:
                await self.ws.writable()
                self.resync = False
                self.rt.link.reattach(self.slot)
        except ClientDisconnected:
            pass
        finally:
            if self.drainer is asyncio.current_task():
                self.drainer = None

    def on_detached(self, e: RelayError) -> None:
        """Messaging ended the slot's inbox. UNAVAILABLE/CANCELLED (it could not keep up, or
        the inbox stream ended): re-attached after a jittered backoff, from the last cursor
        forwarded. Otherwise the socket closes as the inbox's error says (4409, 4401, 1011)."""
        code = e.code()
        if code in _RETRY:
            delay, self.delay = self.delay, min(self.delay * 2, self.rt.settings.retry_max_s)
            log.debug("realtime.inbox_reattach", delay_s=round(delay, 2))
            asyncio.get_running_loop().call_later(random.uniform(0, delay),
                                                  self._reattach)
            return
        self.rt.link.forget(self.slot)
        close = _CLOSE_FOR.get(code, Close.SERVER_ERROR)
        self.fail(close, self._upstream_status(e, "inbox"), _REASONS[close])

    def _reattach(self) -> None:
        if not self.closing and not self.resync:
            self.rt.link.reattach(self.slot)

    async def _pump_watch(self, request: Any, fid: str) -> None:
        """Forward WatchPresence; reopened after UNAVAILABLE (presence restates the current
        presences first, so nothing is lost). Other errors end the watch with an `error`
        frame carrying the watch frame's id; the socket stays open."""
        rt = self.rt
        delay = rt.settings.retry_initial_s
        try:
            while True:
                stream = rt.up.watch_presence(request, metadata=self.metadata())
                try:
                    while True:
                        item = await stream.read()
                        if item is EOF:
                            break
                        if item.HasField("keepalive"):  # not a change; the socket pings
                            continue
                        await self.ws.send_text(frames.presence(item))
                        delay = rt.settings.retry_initial_s
                except grpc.RpcError as e:
                    if e.code() not in _RETRY:
                        await self.ws.send_text(frames.error(fid, self._upstream_status(e,
                                                                                   "watch")))
                        return
                finally:
                    stream.cancel()
                delay = await self._back_off(delay)
        except ClientDisconnected:
            pass
        except Exception:
            log.exception("realtime.watch_failed")
            self._fail_internal()
        finally:
            if self.watch is asyncio.current_task():
                self.watch = None

    # -- helpers -----------------------------------------------------------------------------

    def metadata(self) -> tuple[tuple[str, str], ...]:
        """gRPC metadata for one upstream call: the token, client address, a request id."""
        self.seq += 1
        return (*self.md, ("x-request-id", f"rt-{self.cid}-{self.seq}"))

    async def _back_off(self, delay: float) -> float:
        """Sleep a random part of `delay` (full jitter) before reopening an upstream stream;
        the next delay, doubled up to retry_max_s."""
        await asyncio.sleep(random.uniform(0, delay))
        return min(delay * 2, self.rt.settings.retry_max_s)

    def _fail_internal(self) -> None:
        self.fail(Close.SERVER_ERROR, error_status(C.INTERNAL, "INTERNAL", "internal error"),
                  "server error")

    def _upstream_status(self, e: grpc.RpcError, what: str) -> dict[str, Any]:
        err, original = from_rpc_error(e)
        if err.http_status >= 500:
            log.warning("realtime.upstream_error", what=what, grpc_code=_code_name(e),
                        upstream_message=original)
        return status_json(err.status)


async def _refuse(send: Any, status: int, body: dict[str, Any]) -> None:
    """Refuse the upgrade with an HTTP error carrying the same Status JSON as REST errors."""
    payload = json.dumps(body, separators=(",", ":")).encode()
    await send({"type": "websocket.http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(payload)).encode())]})
    await send({"type": "websocket.http.response.body", "body": payload})


def _bearer(scope: dict[str, Any]) -> str | None:
    """The token of the upgrade request's Authorization header ("" when it is malformed, so
    it fails verification like any bad token); None without the header."""
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else ""
    return None


_CLOSE_FOR = {C.ABORTED: Close.REPLACED, C.UNAUTHENTICATED: Close.UNAUTHENTICATED}
_REASONS = {
    Close.REPLACED: "replaced by a newer connection",
    Close.UNAUTHENTICATED: "unauthenticated",
    Close.SERVER_ERROR: "upstream error",
}


def _code_name(e: grpc.RpcError) -> str:
    code = e.code() if callable(getattr(e, "code", None)) else None
    return code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"
