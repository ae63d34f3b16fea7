"""Bench actors: accounts made over REST and devices on the realtime WebSocket.

The bench measures the server, so it does no real encryption: a "ciphertext" is opaque bytes
to the server anyway. Each payload starts with the bench's own header (message number and
send time on the bench's monotonic clock) so the receiver can compute latency and detect
losses and duplicates; the rest is random padding to a realistic envelope size."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import struct
import time
import uuid
from collections.abc import Callable

import httpx
import websockets

PASSWORD = "bench password 123"
HEADER = struct.Struct("!QQd")  # sender index, message number, send time (monotonic)


def payload(sender: int, number: int, sent_at: float, size: int = 256) -> str:
    raw = HEADER.pack(sender, number, sent_at) + os.urandom(max(0, size - HEADER.size))
    return base64.b64encode(raw).decode()


def parse_payload(b64: str) -> tuple[int, int, float]:
    return HEADER.unpack(base64.b64decode(b64)[:HEADER.size])


class Account:
    def __init__(self, user: str, username: str, device: str, token: str) -> None:
        self.user = user
        self.username = username
        self.device = device
        self.token = token

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}


async def make_account(http: httpx.AsyncClient, prefix: str = "b") -> Account:
    username = f"{prefix}{uuid.uuid4().hex[:16]}"
    r = await http.post("/api/v1/auth/register", json={"username": username,
                                                         "password": PASSWORD})
    r.raise_for_status()
    return await login(http, username)


async def login(http: httpx.AsyncClient, username: str) -> Account:
    r = await http.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD,
                                                      "deviceDisplayName": "bench"})
    r.raise_for_status()
    body = r.json()
    return Account(body["user"]["name"], username, body["device"]["name"],
                   body["tokens"]["accessToken"])


async def make_accounts(http: httpx.AsyncClient, n: int, concurrency: int = 16) -> list[Account]:
    sem = asyncio.Semaphore(concurrency)

    async def one() -> Account:
        async with sem:
            return await make_account(http)

    return list(await asyncio.gather(*[one() for _ in range(n)]))


async def direct_conversation(http: httpx.AsyncClient, a: Account, b: Account) -> str:
    r = await http.post("/api/v1/conversations", headers=a.headers,
                        json={"type": "TYPE_DIRECT", "participants": [b.user]})
    r.raise_for_status()
    return r.json()["name"]


class Socket:
    """One device's realtime WebSocket: sends frames, acknowledges what it receives (batched,
    cumulative) and hands each inbox message to `on_message`."""

    def __init__(self, gateway: str, account: Account,
                 on_message: Callable[[dict], None] | None = None,
                 ack_every_s: float = 0.02) -> None:
        self.url = gateway.replace("http", "ws", 1) + "/api/v1/realtime"
        self.account = account
        self.on_message = on_message
        self.ack_every_s = ack_every_s
        self.ws = None
        self.results: dict[str, asyncio.Future] = {}
        self.errors = 0
        self._last_cursor = ""
        self._acked = ""
        self._ids = 0
        self._tasks: list[asyncio.Task] = []
        self.caught_up = asyncio.Event()

    async def connect(self) -> Socket:
        self.ws = await websockets.connect(
            self.url, subprotocols=["zynk.v1"], additional_headers=self.account.headers,
            max_size=1 << 20, ping_interval=None, compression=None)
        ready = json.loads(await self.ws.recv())
        if "ready" not in ready:
            raise RuntimeError(f"no ready frame: {ready}")
        self._tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._ack())]
        return self

    async def _read(self) -> None:
        async for raw in self.ws:
            frame = json.loads(raw)
            inbox = frame.get("inbox")
            if inbox is not None:
                if "caughtUp" in inbox:
                    self.caught_up.set()
                if inbox.get("cursor"):
                    self._last_cursor = inbox["cursor"]
                msg = inbox.get("message")
                if msg is not None and self.on_message is not None:
                    self.on_message(msg)
                continue
            fid = frame.get("id")
            if fid and fid in self.results:
                fut = self.results.pop(fid)
                if not fut.done():
                    if "error" in frame:
                        fut.set_exception(RuntimeError(json.dumps(frame["error"])))
                    else:
                        fut.set_result(frame.get("result"))
            elif "error" in frame:
                self.errors += 1

    async def _ack(self) -> None:
        while True:
            await asyncio.sleep(self.ack_every_s)
            if self._last_cursor and self._last_cursor != self._acked:
                self._acked = self._last_cursor
                await self.ws.send(json.dumps({"ack": {"cursor": self._acked}}))

    async def request(self, frame: dict) -> dict:
        self._ids += 1
        fid = str(self._ids)
        fut = asyncio.get_running_loop().create_future()
        self.results[fid] = fut
        await self.ws.send(json.dumps({"id": fid, **frame}))
        return await fut

    async def send_pairwise(self, conversation: str, recipient_device: str, ciphertext: str,
                            message_id: str | None = None) -> dict:
        return await self.request({"send": {
            "parent": conversation, "messageId": message_id or str(uuid.uuid4()),
            "pairwise": {"envelopes": [{"recipientDevice": recipient_device,
                                        "type": "ENVELOPE_TYPE_RATCHET",
                                        "ciphertext": ciphertext}]}}})

    async def send_sender_key(self, conversation: str, ciphertext: str) -> dict:
        return await self.request({"send": {
            "parent": conversation, "messageId": str(uuid.uuid4()),
            "senderKey": {"ciphertext": ciphertext}}})

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.ws is not None:
            await self.ws.close()


def now() -> float:
    return time.monotonic()
