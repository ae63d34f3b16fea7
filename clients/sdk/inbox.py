"""Where inbox entries come from: the realtime WebSocket (default) or the REST Subscribe
stream (newline-delimited JSON). Both yield batches of SubscribeResponse in inbox order and
take cumulative acknowledgements; the client acknowledges a cursor only after the entries
up to it are processed and the state is durably saved, and reconnects resume after the last
*processed* cursor, so nothing is lost and nothing is shown twice.

The WebSocket frames are the proto3 JSON of zynk.realtime.v1.ClientFrame / ServerFrame
(proto/zynk/realtime/v1/realtime.proto, the contract; docs/realtime.md is its prose).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import AsyncIterator, Callable
from typing import Protocol

from google.protobuf import json_format
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from clients.sdk import errors as E
from clients.sdk.transport import Transport, api_error
from zynk.messaging.v1 import messaging_pb2 as msg
from zynk.realtime.v1 import realtime_pb2 as rt

SUBPROTOCOL = "zynk.v1"
READY_TIMEOUT_S = 10.0
MAX_BATCH = 200
BACKOFF_MIN_S, BACKOFF_MAX_S = 0.5, 30.0
MAX_FRAME_BYTES = 256 * 1024


def backoff(attempt: int) -> float:
    """Exponential backoff with jitter: 0.5 s, 1 s, 2 s ... at most 30 s."""
    return min(BACKOFF_MAX_S, BACKOFF_MIN_S * 2 ** attempt) * random.uniform(0.5, 1.0)


class InboxSource(Protocol):
    def batches(self) -> AsyncIterator[list[msg.SubscribeResponse]]: ...

    async def ack(self, cursor: str) -> None: ...


def ws_url(server: str) -> str:
    if server.startswith("https://"):
        return "wss://" + server[len("https://"):] + "/api/v1/realtime"
    if server.startswith("http://"):
        return "ws://" + server[len("http://"):] + "/api/v1/realtime"
    raise E.ZynkError(f"server URL must start with http:// or https://, not {server!r}")


def client_frame(frame: rt.ClientFrame) -> str:
    return json.dumps(json_format.MessageToDict(frame), separators=(",", ":"))


def server_frame(text: str | bytes) -> rt.ServerFrame:
    try:
        return json_format.Parse(text, rt.ServerFrame(), ignore_unknown_fields=True)
    except json_format.ParseError as e:
        raise E.ServerError("the realtime socket sent a malformed frame") from e


class RealtimeInbox:
    """The device's inbox over the WebSocket, reconnecting with backoff."""

    def __init__(self, transport: Transport, cursor: Callable[[], str],
                 on_status: Callable[[str], None] | None = None) -> None:
        self._transport = transport
        self._cursor = cursor
        self._on_status = on_status or (lambda _s: None)
        self._ws: ClientConnection | None = None
        self._url = ws_url(transport.server)

    async def ack(self, cursor: str) -> None:
        ws = self._ws
        if ws is None:
            return  # the next connection resumes after the processed cursor anyway
        with contextlib.suppress(ConnectionClosed):
            await ws.send(client_frame(rt.ClientFrame(ack=rt.Acknowledge(cursor=cursor))))

    async def _authenticate(self, ws: ClientConnection) -> rt.Ready:
        token = await self._transport.access_token()
        await ws.send(client_frame(rt.ClientFrame(id="auth", auth=rt.Authenticate(
            access_token=token, after_cursor=self._cursor()))))
        async with asyncio.timeout(READY_TIMEOUT_S):
            while True:
                frame = server_frame(await ws.recv())
                kind = frame.WhichOneof("frame")
                if kind == "ready":
                    return frame.ready
                if kind == "error":
                    raise api_error(json_format.MessageToDict(frame.error),
                                    what="the realtime socket")

    async def _renew(self, ws: ClientConnection, ready: rt.Ready) -> None:
        """Renew the socket's access token before it expires."""
        expire = ready.access_token_expire_time
        deadline = expire.seconds + expire.nanos / 1e9 if expire.seconds else 0.0
        while deadline:
            await asyncio.sleep(max(1.0, deadline - time.time() - 60))
            tokens = await self._transport.refresh(force=True)
            await ws.send(client_frame(rt.ClientFrame(id="renew", auth=rt.Authenticate(
                access_token=tokens.access_token))))
            deadline = tokens.access_expire

    async def batches(self) -> AsyncIterator[list[msg.SubscribeResponse]]:
        attempt = 0
        refreshed = False
        while True:
            try:
                async with connect(self._url, subprotocols=[SUBPROTOCOL],
                                   max_size=MAX_FRAME_BYTES, open_timeout=15) as ws:
                    ready = await self._authenticate(ws)
                    self._on_status("connected")
                    attempt, refreshed, self._ws = 0, False, ws
                    renew = asyncio.create_task(self._renew(ws, ready))
                    try:
                        while True:
                            batch = await self._read_batch(ws)
                            if batch:
                                yield batch
                    finally:
                        self._ws = None
                        renew.cancel()
                        with contextlib.suppress(asyncio.CancelledError, E.ZynkError):
                            await renew
            except InvalidStatus as e:
                status = e.response.status_code
                if status == 401 and not refreshed:
                    await self._transport.refresh(force=True)
                    refreshed = True
                    continue
                # Authentication happens after the upgrade (first frame), so a refused
                # upgrade means there is no socket here (Starlette answers 403 for a
                # WebSocket path it does not route).
                if status in (403, 404, 405, 426, 501):
                    raise E.Unimplemented("the server does not offer the realtime WebSocket "
                                          f"yet (HTTP {status})", code=E.UNIMPLEMENTED,
                                          http_status=status) from None
                if 400 <= status < 500 and status != 429:
                    raise E.ServerError(f"the server refused the realtime WebSocket (HTTP "
                                        f"{status})", http_status=status) from None
            except ConnectionClosed as e:
                code = e.rcvd.code if e.rcvd is not None else None
                if code == 4401 and not refreshed:
                    await self._transport.refresh(force=True)
                    refreshed = True
                    continue
                reason = e.rcvd.reason if e.rcvd is not None and e.rcvd.reason else "refused"
                if code == 4401:
                    raise E.NotAuthenticated(f"the realtime socket refused the token ({reason})",
                                             code=E.UNAUTHENTICATED) from None
                if code == 4403:
                    raise E.PermissionDenied(f"the realtime socket refused this device "
                                             f"({reason})", code=E.PERMISSION_DENIED) from None
                if code == 4400:
                    raise E.ServerError(f"the realtime socket rejected a frame ({reason})",
                                        code=E.INVALID_ARGUMENT) from None
                if code == 4409:
                    raise E.ProfileError("another connection for this device took over the "
                                         "realtime socket") from None
            except (OSError, InvalidHandshake, TimeoutError):
                pass
            except E.SessionExpired:
                raise
            except E.NotAuthenticated:
                # The error frame that precedes a 4401 close: renew the token once.
                if refreshed:
                    raise
                await self._transport.refresh(force=True)
                refreshed = True
                continue
            except E.ApiError as e:
                if not isinstance(e, E.TRANSIENT):
                    raise
            self._on_status("reconnecting")
            await asyncio.sleep(backoff(attempt))
            attempt += 1

    async def _read_batch(self, ws: ClientConnection) -> list[msg.SubscribeResponse]:
        """Everything already received (at least one frame), so one save covers many."""
        frames = [server_frame(await ws.recv())]
        while len(frames) < MAX_BATCH:
            try:
                async with asyncio.timeout(0.01):
                    frames.append(server_frame(await ws.recv()))
            except TimeoutError:
                break
        out = []
        for f in frames:
            kind = f.WhichOneof("frame")
            if kind == "inbox":
                out.append(f.inbox)
            elif kind == "error" and not f.id:
                raise api_error(json_format.MessageToDict(f.error), what="the realtime socket")
        return out


class RestInbox:
    """The inbox over REST (Subscribe as NDJSON). With follow=False it stops once caught up."""

    def __init__(self, transport: Transport, device: str, cursor: Callable[[], str],
                 follow: bool = True) -> None:
        self._transport = transport
        self._device = device
        self._cursor = cursor
        self._follow = follow

    async def ack(self, cursor: str) -> None:
        await self._transport.acknowledge(self._device, cursor)

    async def batches(self) -> AsyncIterator[list[msg.SubscribeResponse]]:
        attempt = 0
        while True:
            try:
                async for entry in self._transport.subscribe(self._device, self._cursor()):
                    attempt = 0
                    yield [entry]
                    if not self._follow and entry.HasField("caught_up"):
                        return
                if not self._follow:
                    return
            except E.TRANSIENT:
                if not self._follow:
                    raise
            await asyncio.sleep(backoff(attempt))
            attempt += 1
