"""Memory per idle authenticated realtime socket.

    .venv/bin/python bench/realtime_memory.py --sockets 2000

Opens the sockets against the gateway of bench/realtime_procs.py with the `websockets`
client (authenticated by header, each past its `ready` and `caughtUp` frames), lets them
idle, and prints the RSS growth per socket of the gateway process and of the upstream
process (the test doubles behind the service's Relay engine: one slot per socket on the
gateway's shared Relay stream; the real messaging service will differ by what its inbox
stream keeps per slot), and their sum.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from realtime_procs import Servers, rss_kib


async def measure(n: int, batch: int) -> None:
    import websockets

    with Servers() as s:
        async def open_one(i: int):
            token = s.keys.token(f"u{i}", f"d{i}")
            ws = await websockets.connect(s.url, subprotocols=["zynk.v1"], ping_interval=None,
                                          additional_headers={"Authorization": f"Bearer {token}"},
                                          open_timeout=30)
            for _ in range(2):  # ready, then the inbox's caughtUp
                await ws.recv()
            return ws

        # Warm up (imports, first allocations, channel connections) before the baseline.
        warm = [await open_one(-i - 1) for i in range(50)]
        await asyncio.sleep(1.0)
        base = (rss_kib(s.gateway_pid), rss_kib(s.upstream_pid))
        started = time.perf_counter()
        sockets = []
        for first in range(0, n, batch):
            sockets += await asyncio.gather(*(open_one(i) for i in range(first,
                                                                        min(n, first + batch))))
        took = time.perf_counter() - started
        await asyncio.sleep(3.0)  # idle a while: heartbeats, allocator settling
        after = (rss_kib(s.gateway_pid), rss_kib(s.upstream_pid))
        g = (after[0] - base[0]) / n
        u = (after[1] - base[1]) / n
        print(f"{n} idle authenticated sockets (opened in {took:.1f} s)")
        print(f"  gateway  RSS {base[0] / 1024:7.1f} -> {after[0] / 1024:7.1f} MiB"
              f"  = {g:5.1f} KiB per socket")
        print(f"  upstream RSS {base[1] / 1024:7.1f} -> {after[1] / 1024:7.1f} MiB"
              f"  = {u:5.1f} KiB per socket (test doubles; one relay slot each)")
        print(f"  total {g + u:5.1f} KiB per socket")
        for ws in sockets + warm:
            await ws.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sockets", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=100)
    args = ap.parse_args()
    asyncio.run(measure(args.sockets, args.batch))


if __name__ == "__main__":
    main()
