"""A load generator and a delivery checker for the fault tests, as real clients behave.

Senders send through the gateway's REST API (`POST /api/v1/{conversation}/messages:send`),
one message at a time each, with a client-generated message id: a send that fails (any
non-200 answer, or no answer) is retried with the SAME id until it is acknowledged (HTTP
200) or its deadline passes. The server never decrypts, so ciphertexts are opaque random
bytes; 1:1 sends carry one pairwise envelope for the recipient's only device, group sends
one sender-key ciphertext.

Receivers hold the realtime WebSocket (`GET /api/v1/realtime`, docs/realtime.md) of one
device each, acknowledge what they processed (cumulative `ack` frames) and, when the socket
closes, reconnect with `afterCursor` = the last cursor they processed.

What is counted is what each device RECEIVES, without any client-side deduplication. The
protocol does expect replays (delivery is at-least-once: a new subscription replays every
unacknowledged entry after its `afterCursor`, and clients drop duplicates by message name),
but only of entries the client has not processed yet: these receivers always resume after
the last cursor they processed, and the gateway resumes its own upstream stream after the
last cursor it forwarded ("nothing is skipped or sent twice", docs/realtime.md). So no
entry is ever legitimately delivered to a device twice here, and every repeat of a message
id on a device is counted as a duplicate."""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import dataclasses
import json
import os
import random
import time
import uuid

import httpx
import websockets

PASSWORD = "a long enough fault-test password"
# Retryable answers a client may see while a server is down (AIP-193/google.rpc.Status
# bodies): 503 UNAVAILABLE, 429 RESOURCE_EXHAUSTED.
RETRYABLE_HTTP = {503: 14, 429: 8}


def now() -> float:
    return time.monotonic()


@dataclasses.dataclass
class Account:
    user: str  # users/<id>
    username: str
    device: str  # users/<id>/devices/<id>
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}


async def make_account(http: httpx.AsyncClient, prefix: str) -> Account:
    username = f"{prefix}{uuid.uuid4().hex[:12]}"
    r = await http.post("/api/v1/auth/register", json={"username": username,
                                                         "password": PASSWORD})
    assert r.status_code == 200, r.text
    r = await http.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD,
                                                      "deviceDisplayName": "faults"})
    assert r.status_code == 200, r.text
    body = r.json()
    return Account(body["user"]["name"], username, body["device"]["name"],
                   body["tokens"]["accessToken"])


@dataclasses.dataclass
class Attempt:
    at: float  # monotonic
    outcome: str  # "200", "503", ..., or "transport:<exception>"


class Tally:
    """Everything a scenario's clients saw."""

    def __init__(self) -> None:
        self.attempts: list[Attempt] = []
        self.http_errors: collections.Counter[str] = collections.Counter()
        self.bad_bodies: list[str] = []  # error answers that are not a google.rpc.Status
        self.unexpected: list[str] = []  # the first few answers that are not 200/503/429
        self.ws_errors: collections.Counter[str] = collections.Counter()
        self.ws_closes: collections.Counter[str] = collections.Counter()
        self.ws_connects = 0
        self.acked: dict[str, dict] = {}  # message id -> what the sender knows of it
        self.unacked: list[str] = []  # gave up: deadline passed
        self.attempted: set[str] = set()

    def record(self, outcome: str) -> None:
        self.attempts.append(Attempt(now(), outcome))
        if outcome != "200":
            self.http_errors[outcome] += 1

    def errors_after(self, t: float) -> list[Attempt]:
        return [a for a in self.attempts if a.at >= t and a.outcome != "200"]

    def last_error_at(self) -> float | None:
        errs = [a.at for a in self.attempts if a.outcome != "200"]
        return max(errs) if errs else None


def check_error_body(r: httpx.Response, tally: Tally) -> None:
    """An error answer must be a google.rpc.Status JSON whose code matches the HTTP status."""
    try:
        body = r.json()
    except ValueError:
        tally.bad_bodies.append(f"{r.status_code}: not JSON: {r.text[:200]!r}")
        return
    expected = RETRYABLE_HTTP.get(r.status_code)
    if (not isinstance(body, dict) or not isinstance(body.get("code"), int)
            or not isinstance(body.get("message"), str) or "details" not in body
            or (expected is not None and body["code"] != expected)):
        tally.bad_bodies.append(f"{r.status_code}: {r.text[:300]}")


class Sender:
    """Sends to one conversation, one message at a time, retrying each with its id."""

    def __init__(self, http: httpx.AsyncClient, account: Account, conversation: str,
                 tally: Tally, *, recipient_device: str | None = None,
                 interval_s: float = 0.1, deadline_s: float = 60.0) -> None:
        self.http = http
        self.account = account
        self.conversation = conversation
        self.recipient_device = recipient_device  # None: a group (sender-key) send
        self.tally = tally
        self.interval_s = interval_s
        self.deadline_s = deadline_s
        self.sent: list[str] = []  # acknowledged ids, in order

    def body(self, message_id: str, payload: bytes) -> dict:
        ciphertext = base64.b64encode(payload).decode()
        if self.recipient_device is None:
            return {"messageId": message_id, "senderKey": {"ciphertext": ciphertext}}
        return {"messageId": message_id, "pairwise": {"envelopes": [{
            "recipientDevice": self.recipient_device, "type": "ENVELOPE_TYPE_RATCHET",
            "ciphertext": ciphertext}]}}

    async def send_one(self) -> bool:
        message_id = str(uuid.uuid4())
        payload = os.urandom(96)  # opaque "ciphertext": the server never decrypts
        body = self.body(message_id, payload)
        self.tally.attempted.add(message_id)
        give_up = now() + self.deadline_s
        delay = 0.1
        while True:
            try:
                r = await self.http.post(f"/api/v1/{self.conversation}/messages:send",
                                         json=body, headers=self.account.headers)
            except httpx.HTTPError as e:
                self.tally.record(f"transport:{type(e).__name__}")
            else:
                if r.status_code == 200:
                    self.tally.record("200")
                    message = r.json()["message"]
                    assert message["name"].endswith("/messages/" + message_id), message
                    self.tally.acked[message_id] = {"sequence": int(message["sequence"]),
                                                    "conversation": self.conversation,
                                                    "name": message["name"], "at": now()}
                    self.sent.append(message_id)
                    return True
                self.tally.record(str(r.status_code))
                check_error_body(r, self.tally)
                if r.status_code not in RETRYABLE_HTTP and len(self.tally.unexpected) < 5:
                    self.tally.unexpected.append(
                        f"{r.status_code} {r.headers.get('x-request-id', '')} {r.text[:300]}")
                retry_after = r.headers.get("retry-after")
                if retry_after:
                    with contextlib.suppress(ValueError):
                        delay = max(delay, min(float(retry_after), 2.0))
            if now() + delay > give_up:
                self.tally.unacked.append(message_id)
                return False
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, 1.0)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.send_one()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval_s)


class Receiver:
    """One device's realtime WebSocket, as a client keeps it: resumes after the last cursor
    it processed, acknowledges cumulatively, reconnects with backoff."""

    def __init__(self, gateway: str, account: Account, tally: Tally, *,
                 flap_s: float | None = None) -> None:
        self.url = gateway.replace("http", "ws", 1) + "/api/v1/realtime"
        self.account = account
        self.tally = tally
        # A flapping client (a phone moving between networks) closes its socket after
        # flap_s..2*flap_s and connects again, resuming after its last processed cursor.
        self.flap_s = flap_s
        self.counts: collections.Counter[str] = collections.Counter()  # message id -> copies
        self.sequences: dict[str, list[int]] = collections.defaultdict(list)  # per conversation
        self.cursor = ""  # last processed
        self.acked_cursor = ""
        self.ids = 0
        self.live = asyncio.Event()  # caught up on the current connection

    async def run(self) -> None:
        delay = 0.2
        while True:
            try:
                await self._connection()
                delay = 0.2
            except (OSError, websockets.exceptions.WebSocketException, TimeoutError) as e:
                code = getattr(getattr(e, "rcvd", None), "code", None)
                self.tally.ws_closes[f"server:{code}" if code else type(e).__name__] += 1
            self.live.clear()
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, 2.0)

    async def _connection(self) -> None:
        async with websockets.connect(self.url, subprotocols=["zynk.v1"], open_timeout=10,
                                      ping_interval=None, compression=None,
                                      max_size=1 << 20) as ws:
            self.tally.ws_connects += 1
            await ws.send(json.dumps({"id": "auth", "auth": {
                "accessToken": self.account.token, "afterCursor": self.cursor}}))
            acker = asyncio.create_task(self._acks(ws))
            flapped: list[bool] = []

            def flap() -> None:
                flapped.append(True)
                asyncio.ensure_future(ws.close())

            flapper = (asyncio.get_running_loop().call_later(
                random.uniform(self.flap_s, 2 * self.flap_s), flap) if self.flap_s else None)
            try:
                async for raw in ws:
                    self._frame(json.loads(raw))
            finally:
                if flapper is not None:
                    flapper.cancel()
                acker.cancel()
                with contextlib.suppress(BaseException):
                    await acker
            self.tally.ws_closes["client" if flapped else f"server:{ws.close_code}"] += 1

    def _frame(self, frame: dict) -> None:
        if "error" in frame:
            # Keyed by what failed: "ack" (an acknowledgement), "auth" (the socket could not be
            # authenticated) or "socket" (the connection-level error that precedes a close).
            what = "ack" if frame.get("id", "").startswith("ack") else frame.get("id") or "socket"
            self.tally.ws_errors[f"{what}:{frame['error'].get('code')}"] += 1
            return
        inbox = frame.get("inbox")
        if inbox is None:
            return
        if "caughtUp" in inbox:
            self.live.set()
        message = inbox.get("message")
        if message is not None and "systemEvent" not in message:
            message_id = message["name"].rsplit("/", 1)[1]
            self.counts[message_id] += 1
            conversation = message["name"].split("/messages/")[0]
            self.sequences[conversation].append(int(message["sequence"]))
        if inbox.get("cursor"):
            self.cursor = inbox["cursor"]  # processed (kept in memory for the whole run)

    async def _acks(self, ws) -> None:
        while True:
            await asyncio.sleep(0.2)
            if self.cursor and self.cursor != self.acked_cursor:
                cursor = self.cursor
                self.ids += 1
                await ws.send(json.dumps({"id": f"ack{self.ids}", "ack": {"cursor": cursor}}))
                self.acked_cursor = cursor


@dataclasses.dataclass
class Verdict:
    acked: int
    expected_deliveries: int
    lost: int
    duplicated: int
    out_of_order: int
    lost_examples: list[str]
    duplicate_examples: list[str]


def verdict(tally: Tally, expectations: list[tuple[Receiver, set[str]]]) -> Verdict:
    """`expectations`: (receiver, the message ids it must get exactly once)."""
    lost: list[str] = []
    dups: list[str] = []
    expected = 0
    out_of_order = 0
    for receiver, ids in expectations:
        must = ids & tally.acked.keys()
        expected += len(must)
        for message_id in must:
            n = receiver.counts.get(message_id, 0)
            if n == 0:
                lost.append(f"{receiver.account.device}: {message_id}")
        for message_id, n in receiver.counts.items():
            if n > 1:
                dups.extend([f"{receiver.account.device}: {message_id}"] * (n - 1))
        for seqs in receiver.sequences.values():
            out_of_order += sum(1 for a, b in zip(seqs, seqs[1:], strict=False) if b <= a)
    return Verdict(acked=len(tally.acked), expected_deliveries=expected, lost=len(lost),
                   duplicated=len(dups), out_of_order=out_of_order, lost_examples=lost[:5],
                   duplicate_examples=dups[:5])
