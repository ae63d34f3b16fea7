"""The mesh's channels (services/runtime/channels.py — what every distributed process uses to
reach the others) against replicas that die mid-call, as separate processes sharing a port
(SO_REUSEPORT): a read in flight on a replica that is killed is retried on the replica that
took over; a write is not retried — its caller sees UNAVAILABLE and decides; and a call that
no replica answers ends at the default deadline instead of hanging."""

from __future__ import annotations

import asyncio
import pathlib
import sys
import time

import grpc
import pytest
from zynk.auth.v1 import auth_pb2, auth_pb2_grpc

from services.runtime.channels import Channels, retryable_methods
from tests.support.backends import free_port

pytestmark = pytest.mark.timeout(60)

AUTH = "zynk.auth.v1.AuthService"
ROOT = pathlib.Path(__file__).resolve().parents[3]


class Replica:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.calls: list[str] = []
        self._arrived = asyncio.Condition()
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            line = raw.decode().strip()
            if line.startswith("CALL "):
                async with self._arrived:
                    self.calls.append(line[5:])
                    self._arrived.notify_all()

    async def wait_call(self, method: str, timeout: float = 10) -> None:
        async with asyncio.timeout(timeout):
            async with self._arrived:
                await self._arrived.wait_for(lambda: method in self.calls)

    async def kill(self) -> None:
        self.proc.kill()
        await self.proc.wait()
        await self._reader


async def start_replica(port: int, mode: str) -> Replica:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.support.replica", "--port", str(port), "--mode", mode,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL)
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    assert line.decode().startswith("READY"), line
    return Replica(proc)


@pytest.fixture
async def replicas():
    started: list[Replica] = []

    async def start(port: int, mode: str) -> Replica:
        r = await start_replica(port, mode)
        started.append(r)
        return r

    yield start
    for r in started:
        if r.proc.returncode is None:
            await r.kill()


@pytest.fixture
async def channels():
    made: list[Channels] = []

    def make(port: int, deadline_s: float = 20.0) -> auth_pb2_grpc.AuthServiceStub:
        ch = Channels({AUTH: f"127.0.0.1:{port}"}, "", deadline_s)
        made.append(ch)
        return auth_pb2_grpc.AuthServiceStub(ch.get(AUTH))

    yield make
    for ch in made:
        await ch.close()


def test_the_contract_makes_reads_retryable_and_writes_not():
    methods = retryable_methods(AUTH)
    assert "GetJwks" in methods
    assert "Register" not in methods


async def test_a_read_in_flight_on_a_killed_replica_is_retried_on_the_next(replicas, channels):
    port = free_port()
    first = await replicas(port, "hang")
    stub = channels(port)
    call = asyncio.ensure_future(stub.GetJwks(auth_pb2.GetJwksRequest()))
    await first.wait_call("GetJwks")
    second = await replicas(port, "answer")  # the replacement, on the same port
    await first.kill()
    await asyncio.wait_for(call, 10)  # answered: the retry reached the second replica
    assert second.calls == ["GetJwks"]
    assert first.calls == ["GetJwks"]


async def test_a_write_in_flight_on_a_killed_replica_is_not_retried(replicas, channels):
    port = free_port()
    first = await replicas(port, "hang")
    stub = channels(port)
    call = asyncio.ensure_future(stub.Register(
        auth_pb2.RegisterRequest(username="alice", password="a long enough password")))
    await first.wait_call("Register")
    second = await replicas(port, "answer")
    await first.kill()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await asyncio.wait_for(call, 10)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    await asyncio.sleep(1.0)  # a retry, had there been one, would have arrived by now
    assert second.calls == []
    # The replacement serves new calls: only the in-flight write was left to its caller.
    await stub.Register(auth_pb2.RegisterRequest(username="alice",
                                                 password="a long enough password"))
    assert second.calls == ["Register"]


async def test_a_call_nobody_answers_ends_at_the_default_deadline(replicas, channels):
    port = free_port()
    replica = await replicas(port, "hang")
    stub = channels(port, deadline_s=0.5)
    t0 = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetJwks(auth_pb2.GetJwksRequest())
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - t0 < 3
    assert replica.calls == ["GetJwks"]  # a deadline is final: no retry
