"""Processes for the realtime benchmarks, all on 127.0.0.1:

- upstream: the MessagingService/PresenceService test doubles of tests/support/realtime.py
  behind the real runtime (GrpcServer, ServerInterceptor, TokenVerifier);
- gateway: create_app + gateway.server as `zynk up` builds it (the runtime's Channels for
  unary calls, lean channels with CHANNEL_OPTIONS for the socket's own calls and streams).

    with Servers() as s:          # spawns both, prints nothing
        s.url, s.keys, s.gateway_pid, s.upstream_pid
"""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "gen")]


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds the process has used."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _upstream(jwk_path: str) -> None:
    from services.runtime.revocations import MemoryRevocationList
    from tests.support.realtime import Upstream

    class _Keys:
        jwk = json.loads(pathlib.Path(jwk_path).read_text())

    up = Upstream(_Keys(), MemoryRevocationList())  # type: ignore[arg-type]
    up.messaging.jitter = False
    await up.start()
    print(json.dumps({"port": up.port}), flush=True)
    await asyncio.Event().wait()


async def _gateway(jwk_path: str, upstream_port: int) -> None:
    import grpc

    from gateway.app import create_app
    from gateway.realtime import CHANNEL_OPTIONS
    from gateway.server import GatewayServer
    from services.runtime.channels import Channels
    from services.runtime.config import Rate, RealtimeSettings
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
    settings = RealtimeSettings(frame_rate=Rate(per_second=100_000, burst=100_000))
    app = create_app(channel_for=channels.get, modules=MODULES, verifier=verifier,
                     realtime=settings,
                     realtime_channel_for=lambda name: grpc.aio.insecure_channel(
                         addresses[name], options=CHANNEL_OPTIONS))
    server = GatewayServer(app, host="127.0.0.1", port=0, proxy_headers=False)
    await server.start()
    print(json.dumps({"port": server.port}), flush=True)
    await asyncio.Event().wait()


class Servers:
    def __init__(self) -> None:
        from tests.support.realtime import Keys

        self.keys = Keys()
        self._procs: list[subprocess.Popen] = []

    def __enter__(self) -> Servers:
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(self.keys.jwk, f)
        self._jwk = f.name
        try:
            up, info = self._spawn("upstream", self._jwk)
            gw, ginfo = self._spawn("gateway", self._jwk, str(info["port"]))
        except BaseException:
            self.__exit__()
            raise
        self.upstream_pid, self.gateway_pid = up.pid, gw.pid
        self.url = f"ws://127.0.0.1:{ginfo['port']}/api/v1/realtime"
        return self

    def __exit__(self, *exc: object) -> None:
        for p in self._procs:
            p.terminate()
            p.wait(10)
        os.unlink(self._jwk)

    def _spawn(self, role: str, *args: str) -> tuple[subprocess.Popen, dict]:
        proc = subprocess.Popen([sys.executable, __file__, role, *args],
                                stdout=subprocess.PIPE, text=True)
        self._procs.append(proc)
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the {role} process failed to start")
        return proc, json.loads(line)


def _main() -> None:
    import logging

    from services.runtime import logging as zlog

    zlog.configure("WARNING", "console")
    logging.basicConfig(level=logging.WARNING)
    role, *args = sys.argv[1:]
    if role == "upstream":
        asyncio.run(_upstream(*args))
    else:
        asyncio.run(_gateway(args[0], int(args[1])))


if __name__ == "__main__":
    _main()
