"""A lean WebSocket protocol for uvicorn, built for thousands of mostly idle sockets.

uvicorn's own WebSocket implementations keep, per connection, an asyncio.Queue and Events,
the handshake request and response headers, a zlib context per direction (permessage-deflate)
and their own ping timers: at 5,000 idle sockets that is most of the gateway's memory. And
ASGI gives an application no way to send a ping, see a pong or notice that a client stopped
reading, which the realtime socket needs (heartbeats, idle close 4408, a bounded outbound
buffer). So this class speaks the same ASGI WebSocket contract (websocket.connect / receive /
disconnect; accept / send / close; the `websocket.http.response` extension for refusing a
handshake with an HTTP response) and exposes itself as the ASGI extension `zynk.websocket`:

    ws = scope["extensions"]["zynk.websocket"]
    ws.last_activity        # loop.time() of the last bytes received (frames, pings, pongs)
    ws.stalled_since        # loop.time() since which writing is paused (0.0: it is not)
    await ws.send_text(s)   # waits while the client is not reading (back-pressure)
    ws.send_text_nowait(s)  # never waits (one last error frame before a close)
    ws.ping()               # a WebSocket ping now; the client's pong counts as activity
    ws.close(code, reason)  # starts the closing handshake; never waits
    ws.abort()              # drops the TCP connection (a client that stopped reading)

Hand-written because no library does this; all of the WebSocket protocol itself (handshake
validation, framing, masking, size limits, the closing handshake) is websockets' sans-I/O
implementation. No compression: payloads are mostly ciphertext, and a zlib context per
socket would cost more memory than the whole connection.
"""

from __future__ import annotations

import asyncio
import http
import logging
from typing import Any
from urllib.parse import unquote

from uvicorn.protocols.utils import (
    ClientDisconnected,
    get_local_addr,
    get_remote_addr,
    is_ssl,
)
from websockets.datastructures import Headers
from websockets.exceptions import InvalidState
from websockets.frames import Opcode
from websockets.http11 import Request, Response
from websockets.protocol import Protocol, Side, State
from websockets.server import ServerProtocol

__all__ = ["EXTENSION", "WebSocketProtocol"]

EXTENSION = "zynk.websocket"
# How long to wait for the client's close frame after sending ours.
CLOSE_TIMEOUT_S = 5.0
# Stop reading from the socket once this many messages wait for the app (it reads on when
# they are taken). Not 1: pausing and resuming costs two epoll_ctl calls, and an app that
# keeps up has one message waiting most of the time.
MAX_PENDING = 2

_log = logging.getLogger("zynk.gateway.websocket")
_TEXT = Opcode.TEXT
_BINARY = Opcode.BINARY
_CONT = Opcode.CONT
_CLOSE = Opcode.CLOSE


class WebSocketProtocol(asyncio.Protocol):
    """One WebSocket connection; uvicorn creates it when an HTTP request asks for an upgrade
    (`uvicorn.Config(ws=WebSocketProtocol)`; gateway.server does that)."""

    __slots__ = (
        "_app", "_loop", "_config", "_connections", "_tasks", "_default_headers", "_app_state",
        "transport", "_client", "_server", "_scheme", "_conn", "_response", "_initial",
        "handshake_complete", "close_sent", "disconnected", "close_code", "_close_reason",
        "_disconnect_queued", "_close_timer", "_events", "_waiter", "_read_paused", "_drain",
        "_fragments", "_fragments_text", "last_activity", "stalled_since",
    )

    def __init__(self, config: Any, server_state: Any, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        if not config.loaded:
            config.load()
        self._config = config
        self._app = config.loaded_app
        self._loop = _loop or asyncio.get_running_loop()
        self._connections = server_state.connections
        self._tasks = server_state.tasks
        self._default_headers = server_state.default_headers
        self._app_state = app_state
        self.transport: asyncio.Transport | None = None
        self._client = self._server = None
        self._scheme = "ws"
        self._conn: Protocol = ServerProtocol(max_size=config.ws_max_size, logger=_log)
        self._response: Response | None = None  # the 101 waiting for the app's accept
        self._initial: list[Any] | None = None  # [status, headers, body] of a refusal
        self.handshake_complete = False
        self.close_sent = False
        self.disconnected = False
        self.close_code = 1006
        self._close_reason = ""
        self._disconnect_queued = False
        self._close_timer: asyncio.TimerHandle | None = None
        self._events: list[dict[str, Any]] | None = None  # ASGI events the app has not read
        self._waiter: asyncio.Future[None] | None = None
        self._read_paused = False
        self._drain: asyncio.Future[None] | None = None
        self._fragments: list[bytes] | None = None
        self._fragments_text = False
        self.last_activity = self._loop.time()
        self.stalled_since = 0.0

    # -- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._connections.add(self)
        self.transport = transport  # type: ignore[assignment]
        self._server = get_local_addr(transport)  # type: ignore[arg-type]
        self._client = get_remote_addr(transport)  # type: ignore[arg-type]
        self._scheme = "wss" if is_ssl(transport) else "ws"  # type: ignore[arg-type]

    def data_received(self, data: bytes) -> None:
        self.last_activity = self._loop.time()
        conn = self._conn
        if self._response is not None or (self._initial is not None and not self.close_sent):
            # RFC 6455 4.1: the client must wait for the handshake response before sending.
            self._drop()
            return
        try:
            conn.receive_data(data)
        except EOFError:  # data after the stream ended: nothing left to do
            return
        events = conn.events_received()
        if events and type(events[0]) is Request:
            self._handle_request(events[0])
            if len(events) > 1 or conn.reader.buffer:  # frames before our answer: see above
                self._drop()
                return
            events = ()
        for event in events:
            op = event.opcode
            if op is _TEXT or op is _BINARY:
                if event.fin:
                    self._deliver(event.data, op is _TEXT)
                else:
                    self._fragments = [event.data]
                    self._fragments_text = op is _TEXT
            elif op is _CONT:
                if self._fragments is not None:
                    self._fragments.append(event.data)
                    if event.fin:
                        whole = b"".join(self._fragments)
                        self._fragments = None
                        self._deliver(whole, self._fragments_text)
            elif op is _CLOSE:
                self._peer_closed()
            # PING: websockets queued the PONG; PONG: only activity, recorded above.
        if conn.parser_exc is not None and not self.disconnected:
            # websockets failed the connection (1002 protocol error, 1009 too big, ...).
            close = conn.close_sent
            self.close_sent = True
            self._queue_disconnect(close.code if close else 1006, close.reason if close else "")
        self._flush()

    def eof_received(self) -> bool | None:
        return None  # let the transport close; connection_lost follows

    def pause_writing(self) -> None:
        self.stalled_since = self._loop.time() or 1e-9

    def resume_writing(self) -> None:
        self.stalled_since = 0.0
        self._wake_drain()

    def connection_lost(self, exc: Exception | None) -> None:
        self._connections.discard(self)
        self.disconnected = True
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        self._queue_disconnect(self.close_code if self.close_sent else 1006, "")
        self._wake_drain()

    # -- uvicorn -------------------------------------------------------------------------------

    def shutdown(self) -> None:
        """uvicorn is stopping: close with 1001 (going away) so clients reconnect elsewhere."""
        if self.handshake_complete and self._initial is None:
            self.close(1001, "server shutting down")
            if self._close_timer is not None:  # do not hold up the shutdown for long
                self._close_timer.cancel()
                self._close_timer = self._loop.call_later(1.0, self._close_transport)
        else:
            self._queue_disconnect(1001, "")
            self._close_transport()

    # -- the zynk.websocket extension ----------------------------------------------------------

    async def send_text(self, text: str) -> None:
        """Send one text message, first waiting while the client is not reading."""
        await self.writable()
        self.send_text_nowait(text)

    async def writable(self) -> None:
        """Wait while the client is not reading (returns at once when it is, or is gone)."""
        while self.stalled_since and not self.disconnected:
            if self._drain is None:
                self._drain = self._loop.create_future()
            await asyncio.shield(self._drain)

    def send_text_nowait(self, text: str) -> None:
        if self.disconnected or self.close_sent:
            raise ClientDisconnected()
        self._conn.send_text(text.encode())
        self._flush()

    def ping(self) -> None:
        if not self.close_sent and not self.disconnected and self.handshake_complete:
            self._conn.send_ping(b"")
            self._flush()

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake; the TCP connection closes when the client answers (or
        after CLOSE_TIMEOUT_S). The app sees websocket.disconnect with this code."""
        if self.close_sent or self.disconnected or not self.handshake_complete:
            return
        try:
            self._conn.send_close(code, reason)
        except InvalidState:
            return
        self.close_sent = True
        self.close_code, self._close_reason = code, reason
        self._flush()
        self._queue_disconnect(code, reason)
        if self._read_paused:  # keep reading: the client's close frame must get through
            self._read_paused = False
            self.transport.resume_reading()
        if not self.disconnected:
            self._close_timer = self._loop.call_later(CLOSE_TIMEOUT_S, self._close_transport)

    def abort(self) -> None:
        """Drop the connection at once, discarding unsent data."""
        self.close_sent = True
        self._queue_disconnect(1006, "")
        if self.transport is not None:
            self.transport.abort()

    # -- ASGI ----------------------------------------------------------------------------------

    async def receive(self) -> dict[str, Any]:
        while not self._events:
            if self._disconnect_queued:  # already told; say it again rather than hang
                return {"type": "websocket.disconnect", "code": self.close_code,
                        "reason": self._close_reason}
            if self._waiter is None:
                self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        events = self._events
        event = events.pop(0)
        if not events:
            self._events = None
        if self._read_paused and not self.close_sent and len(events) < MAX_PENDING:
            self._read_paused = False
            self.transport.resume_reading()
        return event

    async def send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if not self.handshake_complete:
            self._handshake_reply(kind, message)
        elif kind == "websocket.send":
            if self.disconnected or self.close_sent:
                raise ClientDisconnected()
            text = message.get("text")
            if text is not None:
                await self.send_text(text)
            else:
                while self.stalled_since and not self.disconnected:
                    if self._drain is None:
                        self._drain = self._loop.create_future()
                    await asyncio.shield(self._drain)
                if self.disconnected or self.close_sent:
                    raise ClientDisconnected()
                self._conn.send_binary(message.get("bytes") or b"")
                self._flush()
        elif kind == "websocket.close":
            self.close(message.get("code", 1000), message.get("reason") or "")
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} on an open WebSocket")

    # -- internals -----------------------------------------------------------------------------

    def _handle_request(self, request: Request) -> None:
        response = self._conn.accept(request)  # validates the upgrade request
        if response.status_code != 101:
            self._respond(response)
            return
        self._response = response
        raw_path, _, query = request.path.partition("?")
        headers = [(k.lower().encode("ascii"), v.encode("latin-1"))
                   for k, v in request.headers.raw_items()]
        subprotocols: list[str] = []
        for value in request.headers.get_all("Sec-WebSocket-Protocol"):
            subprotocols.extend(p.strip() for p in value.split(",") if p.strip())
        root = self._config.root_path
        scope = {
            "type": "websocket",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "scheme": self._scheme,
            "server": self._server,
            "client": self._client,
            "root_path": root,
            "path": root + unquote(raw_path),
            "raw_path": root.encode("ascii") + raw_path.encode("ascii"),
            "query_string": query.encode("ascii"),
            "headers": headers,
            "subprotocols": subprotocols,
            "state": self._app_state.copy(),
            "extensions": {"websocket.http.response": {}, EXTENSION: self},
        }
        self._push({"type": "websocket.connect"})
        # The app's own coroutine is the task (no wrapper frame kept alive per socket); how
        # it ended is handled in _app_done.
        task = asyncio.ensure_future(self._app(scope, self.receive, self.send), loop=self._loop)
        self._tasks.add(task)
        task.add_done_callback(self._app_done)

    def _app_done(self, task: asyncio.Future[None]) -> None:
        self._tasks.discard(task)
        exc = None if task.cancelled() else task.exception()
        if exc is not None and not isinstance(exc, ClientDisconnected):
            _log.error("unhandled error in the WebSocket application", exc_info=exc)
            if not self.handshake_complete:
                self._refuse(500)
            else:
                self.close(1011, "internal error")
        elif not self.handshake_complete:
            self._refuse(500)  # the app returned without accepting or refusing
        else:
            self.close(1000)

    def _handshake_reply(self, kind: str, message: dict[str, Any]) -> None:
        if kind == "websocket.accept" and self._initial is None:
            response = self._response
            self._response = None
            if response is None or self.disconnected:
                raise ClientDisconnected()
            headers = response.headers
            del headers["Date"]
            for name, value in self._default_headers + list(message.get("headers") or []):
                headers[name.decode("latin-1")] = value.decode("latin-1")
            if message.get("subprotocol"):
                headers["Sec-WebSocket-Protocol"] = message["subprotocol"]
            self._conn.send_response(response)
            self._flush()
            # Frames from here on are parsed by a fresh protocol in the OPEN state: the
            # handshake object (and the request it keeps alive) is released.
            self._conn = Protocol(Side.SERVER, state=State.OPEN,
                                  max_size=self._config.ws_max_size, logger=_log)
            self.handshake_complete = True
        elif kind == "websocket.close" and self._initial is None:
            self._refuse(http.HTTPStatus.FORBIDDEN)
        elif kind == "websocket.http.response.start" and self._initial is None:
            self._response = None
            self._initial = [int(message["status"]), list(message.get("headers") or []), b""]
        elif kind == "websocket.http.response.body" and self._initial is not None:
            self._initial[2] += message.get("body", b"")
            if not message.get("more_body", False):
                status, raw_headers, body = self._initial
                headers = Headers([(k.decode("latin-1"), v.decode("latin-1"))
                                   for k, v in raw_headers])
                headers.setdefault("Connection", "close")
                headers.setdefault("Content-Length", str(len(body)))
                self._respond(Response(status, _phrase(status), headers, body))
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} during the WebSocket handshake")

    def _refuse(self, status: int) -> None:
        self._response = None
        self._respond(self._conn.reject(status, f"{_phrase(status)}\n"))

    def _respond(self, response: Response) -> None:
        """Answer the upgrade request with a plain HTTP response and close."""
        self.handshake_complete = True
        self.close_sent = True
        self._initial = self._initial or [response.status_code, [], b""]
        self._queue_disconnect(1006, "")
        self._conn.send_response(response)
        self._flush()
        self._close_transport()

    def _deliver(self, data: bytes, text: bool) -> None:
        if self.close_sent:
            return  # closing: the app is no longer reading
        if text:
            try:
                event = {"type": "websocket.receive", "text": data.decode()}
            except UnicodeDecodeError:
                self._conn.fail(1007, "invalid UTF-8")
                self.close_sent = True
                self._queue_disconnect(1007, "invalid UTF-8")
                return
        else:
            event = {"type": "websocket.receive", "bytes": bytes(data)}
        self._push(event)
        if not self._read_paused and len(self._events) >= MAX_PENDING:  # back-pressure
            self._read_paused = True
            self.transport.pause_reading()

    def _peer_closed(self) -> None:
        rcvd = self._conn.close_rcvd
        if not self.close_sent:
            self.close_sent = True
            self.close_code = rcvd.code if rcvd else 1005
            self._close_reason = rcvd.reason if rcvd else ""
        self._queue_disconnect(self.close_code, self._close_reason)

    def _push(self, event: dict[str, Any]) -> None:
        if self._events is None:
            self._events = [event]
        else:
            self._events.append(event)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _queue_disconnect(self, code: int, reason: str) -> None:
        if self._disconnect_queued:
            return
        self._disconnect_queued = True
        self.close_code, self._close_reason = code, reason
        self._push({"type": "websocket.disconnect", "code": code, "reason": reason})

    def _flush(self) -> None:
        writes = self._conn.data_to_send()
        if not writes or self.transport is None or self.transport.is_closing():
            return
        eof = False
        for chunk in writes:
            if chunk:
                self.transport.write(chunk)
            else:
                eof = True  # websockets' signal that the server closes TCP now
        if eof:
            self._close_transport()

    def _wake_drain(self) -> None:
        drain, self._drain = self._drain, None
        if drain is not None and not drain.done():
            drain.set_result(None)

    def _close_transport(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def _drop(self) -> None:
        self.close_sent = True
        self._queue_disconnect(1002, "")
        if self.transport is not None:
            self.transport.abort()


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""
