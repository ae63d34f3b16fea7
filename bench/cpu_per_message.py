"""CPU per 1:1 message across the whole mesh, at a fixed offered rate.

    .venv/bin/python -m bench.cpu_per_message [--rate 100] [--duration 10] [--pairs 50]

Runs bench (a)'s open-loop 1:1 scenario (scenarios.one_rate: 50 sender and 50 receiver
sockets through the gateway, every message acknowledged by its receiver) against a fresh
embedded `zynk up`, and reads the CPU time (user + system, /proc/<pid>/stat) of the `zynk up`
process tree around it. The cost of opening and closing the sockets is measured by a run
with (almost) no messages and subtracted. CPU per message does not depend much on what else
the machine runs, unlike msg/s or latency."""

from __future__ import annotations

import argparse
import asyncio

from bench import scenarios
from tests.support.zynkup import ZynkUp


async def measure(rate: int, duration_s: float, pairs: int) -> dict:
    with ZynkUp() as m:
        both = await scenarios.make_pairs(m, pairs)
        # warm-up (first sockets, caches), then the sockets-only overhead, then the run
        await scenarios.one_rate(m, both, rate - 1, 2.0)
        c0 = m.cpu_seconds()
        await scenarios.one_rate(m, both, 1, 0.05)  # sockets only
        c1 = m.cpu_seconds()
        run = await scenarios.one_rate(m, both, rate, duration_s)
        c2 = m.cpu_seconds()
    overhead = c1 - c0
    messages = run["delivered"]  # its own run only (runs are tagged apart)
    per_msg_ms = (c2 - c1 - overhead) / max(1, messages) * 1000
    return {"offered_msgs_per_s": rate, "duration_s": duration_s, "delivered": run["delivered"],
            "lost": run["lost"], "duplicates": run["duplicates"],
            "sockets_overhead_cpu_s": round(overhead, 3), "run_cpu_s": round(c2 - c1, 3),
            "cpu_ms_per_message": round(per_msg_ms, 3), "p50_ms": run.get("p50_ms"),
            "p99_ms": run.get("p99_ms")}


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.cpu_per_message")
    ap.add_argument("--rate", type=int, default=100)
    ap.add_argument("--duration", type=float, default=10)
    ap.add_argument("--pairs", type=int, default=50)
    a = ap.parse_args()
    print(asyncio.run(measure(a.rate, a.duration, a.pairs)), flush=True)


if __name__ == "__main__":
    main()
