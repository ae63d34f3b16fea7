"""Timers for every socket at once: one task ticks, instead of timers in each socket.

Each tick (at most a second apart) walks the authenticated sockets and:
- drops a socket whose outbound buffer has stayed full for `stall_timeout_s` (its client does
  not read; the data could not reach it anyway, so the TCP connection is aborted);
- closes 4408 a socket with no sign of life (any frame, ping or pong) for 2 heartbeats;
- closes 4401 a socket whose access token expired without renewal;
- every heartbeat interval per socket, sends a WebSocket ping and queues a
  PresenceService.Heartbeat for its device.

Presence heartbeats go out from a few worker coroutines (not one task per socket), each call
with the socket's own token; a failure is logged and never touches the socket.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from typing import TYPE_CHECKING

import grpc
import structlog
from zynk.presence.v1 import presence_pb2

from gateway.realtime.frames import error_status

if TYPE_CHECKING:
    from gateway.realtime.app import Realtime
    from gateway.realtime.connection import Connection

__all__ = ["Hub"]

log = structlog.get_logger("zynk.gateway.realtime")
_ONLINE = presence_pb2.HeartbeatRequest(state=presence_pb2.PRESENCE_STATE_ONLINE)
_MAX_BEAT_WORKERS = 16
_WARN_EVERY_S = 60.0


class Hub:
    def __init__(self, rt: Realtime) -> None:
        self.rt = rt
        self.connections: set[Connection] = set()
        self.by_device: dict[str, Connection] = {}
        interval = rt.settings.heartbeat_interval_s
        self.tick_s = min(1.0, interval / 5)
        self._task: asyncio.Task[None] | None = None
        self._beats: collections.deque[Connection] = collections.deque()
        self._workers: set[asyncio.Task[None]] = set()
        self._warned: dict[str, float] = {}

    def add(self, conn: Connection) -> None:
        self.connections.add(conn)
        self.by_device[conn.device] = conn
        conn.next_beat = 0.0  # ping and mark the device online at the next tick
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="zynk-realtime-hub")

    def remove(self, conn: Connection) -> bool:
        """Forget a socket; True when it was its device's newest socket here."""
        self.connections.discard(conn)
        if self.by_device.get(conn.device) is conn:
            del self.by_device[conn.device]
            return True
        return False

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._workers) if t is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._task = None

    async def _run(self) -> None:
        while self.connections:
            await asyncio.sleep(self.tick_s)
            try:
                self.tick()
            except Exception:  # noqa: BLE001 -- one bad socket must not stop every timer
                log.exception("realtime.tick_failed")

    def tick(self) -> None:
        s = self.rt.settings
        loop = asyncio.get_running_loop()
        now = loop.time()
        wall = time.time()
        interval = s.heartbeat_interval_s
        idle = 2 * interval
        for conn in self.connections:
            if conn.closing or conn.close_code:
                continue
            ws = conn.ws
            if ws.stalled_since and now - ws.stalled_since > s.stall_timeout_s:
                log.info("realtime.slow_consumer_dropped")
                conn.close_code = 1006
                ws.abort()
            elif now - ws.last_activity > idle:
                conn.fail(4408, error_status(
                    grpc.StatusCode.DEADLINE_EXCEEDED, "IDLE",
                    f"no sign of life for {idle:g} s"), "idle")
            elif wall >= conn.expires:
                conn.fail(4401, error_status(
                    grpc.StatusCode.UNAUTHENTICATED, "TOKEN_EXPIRED",
                    "the access token expired; renew it with an auth frame before "
                    "accessTokenExpireTime"), "token expired")
            elif now >= conn.next_beat:
                conn.next_beat = now + interval
                ws.ping()
                self._beats.append(conn)
        while self._beats and len(self._workers) < _MAX_BEAT_WORKERS:
            task = asyncio.create_task(self._beat_worker())
            self._workers.add(task)
            task.add_done_callback(self._workers.discard)

    async def _beat_worker(self) -> None:
        up, timeout = self.rt.up, self.rt.settings.presence_timeout_s
        while self._beats:
            conn = self._beats.popleft()
            if conn.closing or conn.close_code:
                continue
            try:
                await up.heartbeat(_ONLINE, timeout=timeout, metadata=conn.metadata())
            except grpc.RpcError as e:
                code = e.code() if callable(getattr(e, "code", None)) else None
                self._warn(code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN")
            except Exception:  # noqa: BLE001 -- presence must never break the socket
                log.warning("realtime.heartbeat_failed", exc_info=True)

    def _warn(self, code: str) -> None:
        now = time.monotonic()
        if now - self._warned.get(code, float("-inf")) >= _WARN_EVERY_S:
            self._warned[code] = now
            log.warning("realtime.heartbeat_failed", grpc_code=code,
                        note="presence heartbeats failing; sockets stay open")
