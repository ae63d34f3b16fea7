"""`zynk serve` as its own process: it refuses configurations that cannot work (no internal
credential, backends that cannot be shared between processes) with a clear message, stops
cleanly on SIGTERM, and stops by itself when its supervisor goes away — no orphans."""

from __future__ import annotations

import asyncio
import os
import pathlib
import signal
import socket
import sys

import httpx
import pytest

from tests.support.backends import free_port

pytestmark = pytest.mark.timeout(90)

ROOT = pathlib.Path(__file__).resolve().parents[3]
TOKEN = "serve-test-internal-credential-0123456789"


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZYNK_")}
    env.update(extra)
    return env


async def serve(*args: str, env: dict[str, str], pass_fds=()) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mesh.cli", "serve", *args, cwd=ROOT, env=env,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, pass_fds=pass_fds)


async def refused(*args: str, env: dict[str, str]) -> str:
    proc = await serve(*args, env=env)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2, err
    return err.decode()


async def test_no_internal_credential_no_service(tmp_path):
    err = await refused("auth", env=clean_env(
        ZYNK_DATA_DIR=str(tmp_path), ZYNK_BACKENDS__BUS="kafka",
        ZYNK_BACKENDS__KAFKA_BOOTSTRAP="127.0.0.1:1", ZYNK_BACKENDS__CACHE="redis",
        ZYNK_BACKENDS__REDIS_URL="redis://127.0.0.1:1/0"))
    assert "ZYNK_MESH__INTERNAL_TOKEN" in err


async def test_in_process_backends_are_refused_in_a_service_process(tmp_path):
    err = await refused("auth", env=clean_env(ZYNK_DATA_DIR=str(tmp_path),
                                              ZYNK_MESH__INTERNAL_TOKEN=TOKEN))
    assert "backends.bus must be kafka" in err and "backends.cache must be redis" in err
    assert TOKEN not in err


async def test_an_unknown_target_is_refused(tmp_path):
    assert "no service named 'nope'" in await refused("nope", env=clean_env())


async def start_gateway(tmp_path, port: int, *args: str, pass_fds=(), redis_url=""):
    # The gateway checks tokens for the realtime socket: it needs Redis (the revocations).
    env = clean_env(ZYNK_DATA_DIR=str(tmp_path), ZYNK_BACKENDS__BUS="kafka",
                    ZYNK_BACKENDS__KAFKA_BOOTSTRAP="127.0.0.1:1", ZYNK_BACKENDS__CACHE="redis",
                    ZYNK_BACKENDS__REDIS_URL=redis_url)
    return await serve("gateway", "--port", str(port), *args, env=env, pass_fds=pass_fds)


async def test_a_gateway_stops_when_its_supervisor_goes_away(tmp_path, redis_url):
    ours, theirs = socket.socketpair()
    port = free_port()
    proc = await start_gateway(tmp_path, port, "--notify-fd", str(theirs.fileno()),
                               pass_fds=(theirs.fileno(),), redis_url=redis_url)
    theirs.close()
    reader, writer = await asyncio.open_connection(sock=ours)
    line = await asyncio.wait_for(reader.readline(), 60)
    assert line == f"READY {port}\n".encode()
    async with httpx.AsyncClient(timeout=5) as http:
        assert (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200
    writer.close()  # the supervisor's end closes: it died
    assert await asyncio.wait_for(proc.wait(), 30) == 0
    _, err = await proc.communicate()
    assert b"supervisor gone" in err


async def test_a_gateway_stops_cleanly_on_sigterm(tmp_path, redis_url):
    port = free_port()
    proc = await start_gateway(tmp_path, port, redis_url=redis_url)
    async with asyncio.timeout(60), httpx.AsyncClient(timeout=2) as http:
        while True:
            try:
                if (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                    break
            except httpx.TransportError:
                await asyncio.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(proc.wait(), 30) == 0
