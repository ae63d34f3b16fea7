"""The four measurements of the messaging issue, each against a running `zynk up`:

(a) 1:1 send-to-deliver latency and throughput over the WebSocket, with lost and duplicated
    messages counted; (b) group fan-out to 10 and 100 members; (c) memory per idle
    authenticated WebSocket; (d) SendMessage over gRPC as a ratio to a bare grpc.aio echo."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import os
import subprocess
import sys
import time
import uuid

import grpc
import httpx

from bench.actors import (
    Account,
    Socket,
    direct_conversation,
    login,
    make_account,
    make_accounts,
    now,
    parse_payload,
    payload,
)
from tests.support.zynkup import ZynkUp, free_port
from zynk.messaging.v1 import messaging_pb2, messaging_pb2_grpc


def percentiles(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {"p50_ms": float("nan"), "p90_ms": float("nan"), "p99_ms": float("nan"),
                "max_ms": float("nan")}
    s = sorted(samples)

    def at(q: float) -> float:
        return round(s[min(len(s) - 1, int(q * len(s)))] * 1000, 2)

    return {"p50_ms": at(0.50), "p90_ms": at(0.90), "p99_ms": at(0.99),
            "max_ms": round(s[-1] * 1000, 2)}


RUN_TAG = 1_000_000  # sender ids carry their run: tag * RUN_TAG + sender index


class Tally:
    """What the receivers saw: latency per message, duplicates by (sender, number).

    The rates of (a) reuse the same devices; a message of an earlier rate that its receiver
    had not acknowledged when that rate's socket closed is (correctly) delivered again on the
    next connection. Those belong to another run (their tag differs): counted apart, never as
    this run's deliveries or duplicates."""

    def __init__(self, tag: int = 0) -> None:
        self.tag = tag
        self.other_runs = 0
        self.seen: set[tuple[int, int]] = set()
        self.latencies: list[float] = []
        self.duplicates = 0
        self.first = float("inf")
        self.last = 0.0

    def receive(self, msg: dict) -> None:
        content = msg.get("envelope") or msg.get("senderKey")
        if content is None:
            return
        sender, number, sent_at = parse_payload(content["ciphertext"])
        if sender // RUN_TAG != self.tag:
            self.other_runs += 1
            return
        t = now()
        key = (sender, number)
        if key in self.seen:
            self.duplicates += 1
            return
        self.seen.add(key)
        self.latencies.append(t - sent_at)
        self.first = min(self.first, t)
        self.last = max(self.last, t)


# -- (a) 1:1 over the WebSocket -----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Pairs:
    """Sender i talks to receiver i in direct conversation convs[i]."""

    senders: list[Account]
    receivers: list[Account]
    convs: list[str]


async def make_pairs(mesh: ZynkUp, n: int) -> Pairs:
    async with httpx.AsyncClient(base_url=mesh.gateway, timeout=30) as http:
        senders = await make_accounts(http, n)
        receivers = await make_accounts(http, n)
        convs = [await direct_conversation(http, a, b)
                 for a, b in zip(senders, receivers, strict=True)]
    return Pairs(senders, receivers, convs)


async def one_to_one(mesh: ZynkUp, rates: list[int], duration_s: float,
                     pairs: int = 50) -> list[dict]:
    both = await make_pairs(mesh, pairs)
    results = []
    for rate in rates:
        results.append(await one_rate(mesh, both, rate, duration_s))
        print(f"  1:1 @ {rate}/s: {results[-1]}", flush=True)
    return results


async def one_rate(mesh: ZynkUp, both: Pairs, rate: int, duration_s: float) -> dict:
    """Open loop: every sender sends on a fixed schedule whatever the answers, and latency
    is measured from the scheduled time, so a slow server cannot hide its queueing."""
    senders, receivers, convs = both.senders, both.receivers, both.convs
    pairs = len(senders)
    tally = Tally(tag=rate)
    rx = [await Socket(mesh.gateway, r, tally.receive).connect() for r in receivers]
    tx = [await Socket(mesh.gateway, s).connect() for s in senders]
    await asyncio.gather(*[s.caught_up.wait() for s in rx + tx])
    acked: set[tuple[int, int]] = set()
    failed = 0
    per_sender = rate / pairs
    start = now() + 0.2
    end = start + duration_s

    async def send_one(i: int, n: int, at: float) -> None:
        nonlocal failed
        try:
            sender = rate * RUN_TAG + i
            await tx[i].send_pairwise(convs[i], receivers[i].device, payload(sender, n, at))
            acked.add((sender, n))
        except (Exception, asyncio.CancelledError):
            failed += 1

    async def sender(i: int) -> None:
        n = 0
        inflight: set[asyncio.Task] = set()
        while True:
            at = start + (n + i / pairs) / per_sender  # spread senders over the interval
            if at >= end:
                break
            delay = at - now()
            if delay > 0:
                await asyncio.sleep(delay)
            t = asyncio.create_task(send_one(i, n, at))
            inflight.add(t)
            t.add_done_callback(inflight.discard)
            n += 1
        if inflight:
            _, unanswered = await asyncio.wait(inflight, timeout=30)
            for t in unanswered:  # no answer in time: a send error, not silently dropped
                t.cancel()
            await asyncio.gather(*unanswered, return_exceptions=True)

    await asyncio.gather(*[sender(i) for i in range(pairs)])
    drain_deadline = now() + 10
    while now() < drain_deadline and not acked <= tally.seen:
        await asyncio.sleep(0.05)
    for s in rx + tx:
        await s.close()
    window = max(1e-9, min(tally.last, end + 10) - start)
    return {"offered_msgs_per_s": rate, "duration_s": duration_s, "pairs": pairs,
            "sent_ok": len(acked), "send_errors": failed, "delivered": len(tally.seen),
            "delivered_msgs_per_s": round(len(tally.seen) / window, 1),
            "lost": len(acked - tally.seen), "duplicates": tally.duplicates,
            "redelivered_from_earlier_rates": tally.other_runs,
            "error_frames_without_id": sum(s.errors for s in rx + tx),
            **percentiles(tally.latencies)}


# -- (b) group fan-out ----------------------------------------------------------------------------


async def group_fanout(mesh: ZynkUp, sizes: list[int], deliveries_per_s: int = 1000,
                       duration_s: float = 10) -> list[dict]:
    results = []
    for size in sizes:
        results.append(await _fanout(mesh, size, deliveries_per_s, duration_s))
        print(f"  group of {size}: {results[-1]}", flush=True)
    return results


async def _fanout(mesh: ZynkUp, size: int, deliveries_per_s: int, duration_s: float) -> dict:
    """One sender, size-1 receiving members, sender-key messages at a rate that offers
    `deliveries_per_s` deliveries; latency per delivery and until every member had it."""
    async with httpx.AsyncClient(base_url=mesh.gateway, timeout=30) as http:
        members = await make_accounts(http, size)
        owner = members[0]
        r = await http.post("/api/v1/groups", headers=owner.headers, json={
            "group": {"displayName": f"bench {size}"},
            "initialMembers": [m.user for m in members[1:]]})
        r.raise_for_status()
        conversation = r.json()["group"]["conversation"]
    per_message: dict[int, list[float]] = {}
    seen: set[tuple[str, int]] = set()
    duplicates = 0

    def receiver(member: Account):
        def receive(msg: dict) -> None:
            nonlocal duplicates
            content = msg.get("senderKey")
            if content is None:
                return
            _, number, sent_at = parse_payload(content["ciphertext"])
            if (member.device, number) in seen:
                duplicates += 1
                return
            seen.add((member.device, number))
            per_message.setdefault(number, []).append(now() - sent_at)
        return receive

    sockets = [await Socket(mesh.gateway, m, receiver(m)).connect() for m in members[1:]]
    sender = await Socket(mesh.gateway, owner).connect()
    await asyncio.gather(*[s.caught_up.wait() for s in [*sockets, sender]])
    rate = max(1.0, deliveries_per_s / (size - 1))
    count = int(rate * duration_s)
    start = now() + 0.2
    acked: set[int] = set()
    failed = 0
    for n in range(count):
        at = start + n / rate
        delay = at - now()
        if delay > 0:
            await asyncio.sleep(delay)
        try:
            await sender.send_sender_key(conversation, payload(0, n, at))
            acked.add(n)
        except Exception:
            failed += 1
    # What each member must have: every acknowledged message (a delivery of a message whose
    # send failed must not make up for a lost one).
    wanted = {(m.device, n) for m in members[1:] for n in acked}
    expected = len(wanted)
    deadline = now() + 15
    while now() < deadline and not wanted <= seen:
        await asyncio.sleep(0.05)
    for s in [*sockets, sender]:
        await s.close()
    complete = [max(v) for v in per_message.values() if len(v) >= size - 1]
    each = [x for v in per_message.values() for x in v]
    return {"members": size, "messages": len(acked), "send_errors": failed,
            "deliveries_expected": expected, "deliveries": len(seen & wanted),
            "lost": len(wanted - seen),
            "duplicates": duplicates, "per_delivery": percentiles(each),
            "all_members_reached": percentiles(complete)}


# -- (c) memory per idle WebSocket -------------------------------------------------------------


async def idle_memory(mesh: ZynkUp, sockets: int, devices_per_user: int = 50) -> dict:
    async with httpx.AsyncClient(base_url=mesh.gateway, timeout=60) as http:
        users = await make_accounts(http, max(1, sockets // devices_per_user))
        sem = asyncio.Semaphore(16)

        async def device(u: Account) -> Account:
            async with sem:
                return await login(http, u.username)

        accounts = list(await asyncio.gather(*[device(users[i % len(users)])
                                               for i in range(sockets)]))
    await asyncio.sleep(2)
    before = mesh.rss()
    opened: list[Socket] = []
    sem = asyncio.Semaphore(64)

    async def open_one(a: Account) -> None:
        async with sem:
            s = Socket(mesh.gateway, a, ack_every_s=3600)
            await s.connect()
            await s.caught_up.wait()
            opened.append(s)

    t0 = time.monotonic()
    await asyncio.gather(*[open_one(a) for a in accounts])
    open_s = time.monotonic() - t0
    await asyncio.sleep(5)
    after = mesh.rss()
    for s in opened:
        await s.close()
    per = (after - before) / sockets
    out = {"sockets": sockets, "rss_before_mib": round(before / 2**20, 1),
           "rss_after_mib": round(after / 2**20, 1),
           "per_socket_kib": round(per / 1024, 2), "open_all_s": round(open_s, 1)}
    print(f"  idle sockets: {out}", flush=True)
    return out


# -- (d) SendMessage over gRPC vs a bare echo -------------------------------------------------


async def _drive(calls, make_request, metadata, concurrency: int, duration_s: float) -> float:
    """Requests per second from `concurrency` closed-loop workers spread over `calls` (one
    per channel: with replicas on one port each channel's connection lands on one process,
    which the kernel picks, so use several channels per replica)."""
    done = 0
    errors = 0
    end = now() + duration_s

    async def worker(call) -> None:
        nonlocal done, errors
        while now() < end:
            try:
                await call(make_request(), metadata=metadata, timeout=10)
                done += 1
            except grpc.aio.AioRpcError:
                errors += 1

    t0 = now()
    await asyncio.gather(*[worker(calls[i % len(calls)]) for i in range(concurrency)])
    if errors:
        print(f"    ({errors} errors)", flush=True)
    return done / (now() - t0)


async def grpc_ratio(mesh: ZynkUp, duration_s: float, concurrency: int = 64,
                     channels: int = 1) -> dict:
    async with httpx.AsyncClient(base_url=mesh.gateway, timeout=30) as http:
        a, b = await make_account(http), await make_account(http)
        conv = await direct_conversation(http, a, b)
    ciphertext = base64.b64decode(payload(0, 0, 0.0))

    def request() -> messaging_pb2.SendMessageRequest:
        return messaging_pb2.SendMessageRequest(
            parent=conv, message_id=str(uuid.uuid4()),
            pairwise=messaging_pb2.PairwiseContent(envelopes=[messaging_pb2.Envelope(
                recipient_device=b.device, type=messaging_pb2.ENVELOPE_TYPE_RATCHET,
                ciphertext=ciphertext)]))

    port = free_port()
    echo = subprocess.Popen([sys.executable, "-m", "bench.echo_server", str(port)],
                            stdout=subprocess.PIPE, env=os.environ)
    try:
        echo.stdout.readline()
        chans = [_channel(f"127.0.0.1:{port}") for _ in range(channels)]
        calls = [ch.unary_unary(
            "/bench.Echo/Echo",
            request_serializer=messaging_pb2.SendMessageRequest.SerializeToString,
            response_deserializer=messaging_pb2.SendMessageRequest.FromString)
            for ch in chans]
        await _drive(calls, request, None, concurrency, 2)  # warm-up
        echo_rps = await _drive(calls, request, None, concurrency, duration_s)
        for ch in chans:
            await ch.close()
    finally:
        echo.terminate()
        echo.wait()
    chans = [_channel(mesh.address("messaging")) for _ in range(channels)]
    calls = [messaging_pb2_grpc.MessagingServiceStub(ch).SendMessage for ch in chans]
    md = (("authorization", f"Bearer {a.token}"),)
    await _drive(calls, request, md, concurrency, 2)
    mesh_cpu, client_cpu = mesh.cpu_seconds(), time.process_time()
    send_rps = await _drive(calls, request, md, concurrency, duration_s)
    calls_made = max(1.0, send_rps * duration_s)
    mesh_cpu = (mesh.cpu_seconds() - mesh_cpu) / calls_made
    client_cpu = (time.process_time() - client_cpu) / calls_made
    for ch in chans:
        await ch.close()
    out = {"concurrency": concurrency, "channels": channels, "echo_rps": round(echo_rps, 1),
           "send_message_rps": round(send_rps, 1), "ratio": round(send_rps / echo_rps, 3),
           "mesh_cpu_ms_per_send": round(mesh_cpu * 1000, 3),
           "load_generator_cpu_ms_per_send": round(client_cpu * 1000, 3)}
    print(f"  gRPC: {out}", flush=True)
    return out


def _channel(target: str) -> grpc.aio.Channel:
    # Distinct channels must not share one subchannel (and so one connection).
    return grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])

