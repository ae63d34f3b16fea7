"""Run the benchmarks against a fresh `zynk up` and write the results with the machine.

    .venv/bin/python -m bench [--only a,b,c,d] [--duration 10] [--rates 500,1000,2000,3000]
                              [--sockets 5000] [--out bench/results]
                              [--distributed N]   # PostgreSQL + Redis + Kafka, N gateway
                                                  # and N messaging processes"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import pathlib
import platform
import subprocess

from bench import distributed, scenarios
from tests.support.zynkup import ZynkUp


def machine() -> dict:
    cpu = ""
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = pathlib.Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    return {"cpu": cpu, "cores": os.cpu_count(), "mem_gib": round(int(mem) / 2**20, 1),
            "python": platform.python_version(), "kernel": platform.release(),
            "commit": commit}


def load_average() -> list[float]:
    return [float(x) for x in pathlib.Path("/proc/loadavg").read_text().split()[:3]]


async def run(args) -> dict:
    only = set(args.only.split(","))
    out: dict = {"machine": machine(), "command": args.command,
                 "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                 "mode": "embedded" if not args.distributed else
                 f"distributed: PostgreSQL + Redis + Kafka (Tansu), {args.distributed} "
                 f"gateway and {args.distributed} messaging processes",
                 "load_average_at_start": load_average()}
    replicas = args.distributed or 1

    def mesh() -> contextlib.AbstractContextManager[ZynkUp]:
        # Each measurement gets its own fresh mesh (and servers) so one does not inherit
        # another's backlog.
        if not args.distributed:
            return ZynkUp()

        @contextlib.contextmanager
        def up():
            with distributed.servers() as env, ZynkUp(env, (
                    "--distributed", "--replicas",
                    f"gateway={replicas},messaging={replicas}")) as m:
                yield m
        return up()

    if "a" in only:
        with mesh() as m:
            out["one_to_one"] = await scenarios.one_to_one(
                m, [int(r) for r in args.rates.split(",")], args.duration)
    if "b" in only:
        with mesh() as m:
            out["group_fanout"] = await scenarios.group_fanout(m, [10, 100],
                                                               duration_s=args.duration)
    if "c" in only:
        with mesh() as m:
            out["idle_sockets"] = await scenarios.idle_memory(m, args.sockets)
    if "d" in only:
        with mesh() as m:
            # Replicas share a port and the kernel picks one per connection: several
            # channels per replica so that every replica gets some.
            channels = 4 * replicas if args.distributed else 1
            out["grpc_send_vs_echo"] = await scenarios.grpc_ratio(m, args.duration,
                                                                  channels=channels)
    out["load_average_at_end"] = load_average()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench")
    ap.add_argument("--only", default="a,b,c,d")
    ap.add_argument("--duration", type=float, default=10)
    ap.add_argument("--rates", default="500,1000,2000,3000")
    ap.add_argument("--sockets", type=int, default=5000)
    ap.add_argument("--out", type=pathlib.Path, default=pathlib.Path("bench/results"))
    ap.add_argument("--distributed", type=int, default=0, metavar="N",
                    help="PostgreSQL + Redis + Kafka, N gateway and N messaging processes")
    ap.add_argument("--label", default=None)
    args = ap.parse_args()
    args.command = "python -m bench " + " ".join(
        f"--{k} {v}" for k, v in vars(args).items() if k in ("only", "duration", "rates",
                                                              "sockets", "label",
                                                              "distributed") and v)
    args.label = args.label or (f"distributed-{args.distributed}" if args.distributed
                                else "embedded")
    result = asyncio.run(run(args))
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = args.out / f"{stamp}-{args.label}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"results: {path}")


if __name__ == "__main__":
    main()
