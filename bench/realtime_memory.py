"""Memory per idle authenticated realtime socket.

    .venv/bin/python bench/realtime_memory.py --sockets 2000

Three processes on 127.0.0.1: the upstream (the MessagingService/PresenceService test doubles
of tests/support/realtime.py behind the real runtime), the gateway (create_app +
gateway.server, as `zynk up` builds it: lean stream channels, the runtime's Channels for unary
calls), and this one, which opens the sockets with the `websockets` client, authenticates each
by header and waits for its `ready` and `caughtUp` frames. It then reads both servers' RSS
(/proc/<pid>/status) and prints the growth per socket: the gateway's, the upstream's (one
Subscribe stream per socket; the real messaging service will differ by what its handler keeps
per stream) and their sum.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "gen")]


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def run_upstream(jwk_path: str) -> None:
    from tests.support.realtime import Upstream
    from services.runtime.revocations import MemoryRevocationList

    class _Keys:
        jwk = json.loads(pathlib.Path(jwk_path).read_text())

    up = Upstream(_Keys(), MemoryRevocationList())  # type: ignore[arg-type]
    up.presence.interval_s = 3600
    await up.start()
    print(json.dumps({"port": up.port}), flush=True)
    await asyncio.Event().wait()


async def run_gateway(jwk_path: str, upstream_port: int) -> None:
    import grpc

    from gateway.app import create_app
    from gateway.realtime import STREAM_CHANNEL_OPTIONS
    from gateway.server import GatewayServer
    from services.runtime.channels import Channels
    from services.runtime.config import RealtimeSettings
    from services.runtime.revocations import MemoryRevocationList
    from services.runtime.tokens import JwksKeySource, TokenVerifier
    from tests.support.realtime import AUD, ISS, MESSAGING, MODULES, PRESENCE

    jwk = json.loads(pathlib.Path(jwk_path).read_text())

    async def fetch():
        return [jwk]

    keys = JwksKeySource(fetch)
    keys.set_keys([jwk])
    verifier = TokenVerifier(keys, ISS, AUD, MemoryRevocationList())
    addresses = {MESSAGING: f"127.0.0.1:{upstream_port}", PRESENCE: f"127.0.0.1:{upstream_port}"}
    channels = Channels(addresses, "", 30.0)
    app = create_app(channel_for=channels.get, modules=MODULES, verifier=verifier,
                     realtime=RealtimeSettings(),
                     stream_channel_for=lambda name: grpc.aio.insecure_channel(
                         addresses[name], options=STREAM_CHANNEL_OPTIONS))
    server = GatewayServer(app, host="127.0.0.1", port=0, proxy_headers=False)
    await server.start()
    print(json.dumps({"port": server.port}), flush=True)
    await asyncio.Event().wait()


def spawn(*args: str) -> tuple[subprocess.Popen, dict]:
    proc = subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE,
                            text=True)
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"{args[0]} failed to start")
    return proc, json.loads(line)


async def measure(n: int, batch: int) -> None:
    import websockets

    from tests.support.realtime import Keys

    keys = Keys()
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(keys.jwk, f)
    procs = []
    try:
        up, info = spawn("--role", "upstream", "--jwk", f.name)
        procs.append(up)
        gw, ginfo = spawn("--role", "gateway", "--jwk", f.name, "--upstream", str(info["port"]))
        procs.append(gw)
        url = f"ws://127.0.0.1:{ginfo['port']}/api/v1/realtime"

        async def open_one(i: int):
            token = keys.token(f"u{i}", f"d{i}")
            ws = await websockets.connect(url, subprotocols=["zynk.v1"], ping_interval=None,
                                          additional_headers={"Authorization": f"Bearer {token}"},
                                          open_timeout=30)
            for _ in range(2):  # ready, then the inbox's caughtUp
                await ws.recv()
            return ws

        # Warm up (imports, first-call allocations, channel connections) before the baseline.
        warm = [await open_one(-i - 1) for i in range(50)]
        await asyncio.sleep(1.0)
        base = (rss_kib(gw.pid), rss_kib(up.pid))
        started = time.perf_counter()
        sockets = []
        for start in range(0, n, batch):
            sockets += await asyncio.gather(*(open_one(i) for i in range(start,
                                                                        min(n, start + batch))))
        took = time.perf_counter() - started
        await asyncio.sleep(3.0)  # idle: let allocator and gRPC settle
        after = (rss_kib(gw.pid), rss_kib(up.pid))
        g = (after[0] - base[0]) / n
        u = (after[1] - base[1]) / n
        print(f"{n} idle authenticated sockets (opened in {took:.1f} s)")
        print(f"  gateway  RSS {base[0] / 1024:7.1f} -> {after[0] / 1024:7.1f} MiB  "
              f"= {g:5.1f} KiB per socket")
        print(f"  upstream RSS {base[1] / 1024:7.1f} -> {after[1] / 1024:7.1f} MiB  "
              f"= {u:5.1f} KiB per socket (test doubles; one Subscribe stream each)")
        print(f"  total {g + u:5.1f} KiB per socket")
        for ws in sockets + warm:
            await ws.close()
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)
        os.unlink(f.name)


def _quiet() -> None:
    import logging

    from services.runtime import logging as zlog

    zlog.configure("WARNING", "console")
    logging.basicConfig(level=logging.WARNING)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sockets", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--role", choices=["upstream", "gateway"])
    ap.add_argument("--jwk")
    ap.add_argument("--upstream", type=int)
    args = ap.parse_args()
    if args.role:
        _quiet()
    if args.role == "upstream":
        asyncio.run(run_upstream(args.jwk))
    elif args.role == "gateway":
        asyncio.run(run_gateway(args.jwk, args.upstream))
    else:
        asyncio.run(measure(args.sockets, args.batch))


if __name__ == "__main__":
    main()
