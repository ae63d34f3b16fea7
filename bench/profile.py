"""Where the CPU of a 1:1 message goes: a fixed offered rate through the WebSocket against a
fresh `zynk up`, the mesh process sampled with py-spy (`pip install -e .[bench]`) meanwhile,
its CPU time divided by the messages delivered, and the samples grouped by what code was
running.

    .venv/bin/python -m bench.profile [--rate 100] [--duration 10] [--out bench/results]

CPU per message (process CPU seconds / messages delivered) hardly depends on what else the
machine is doing, unlike messages per second; it is the figure to compare across changes."""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

from bench import scenarios
from tests.support.zynkup import ZynkUp

# First match wins, tried on the innermost frame first, then outwards: a sample counts for
# the innermost frame that belongs to one of these.
COMPONENTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("SQLite writer thread (statements, commit, fsync)", (
        "services/runtime/sqlite.py", "services/messaging/sqlite.py", "sqlite3")),
    ("protobuf JSON mapping", ("google/protobuf/json_format.py",)),
    ("request validation (protovalidate)", ("protovalidate/",)),
    ("gRPC Python layer (grpc.aio calls, streams)", ("grpc/aio/", "grpc/_")),
    ("server interceptor (auth, context, errors, log)", ("services/runtime/interceptors.py",
                                                         "services/runtime/tokens.py",
                                                         "jwt/", "cryptography/")),
    ("WebSocket transport (framing, writes)", ("gateway/realtime/transport.py", "websockets/")),
    ("realtime socket logic (frames, routing)", ("gateway/realtime/",)),
    ("gateway REST/ASGI", ("gateway/", "uvicorn/", "starlette/")),
    ("messaging domain, live streams, outbox", ("services/messaging/", "services/runtime/")),
    # Innermost Python frame is the loop itself: native code run by it (uvloop's I/O, and
    # grpc.aio's Cython callbacks, which py-spy cannot see into without --native).
    ("native: event loop I/O and gRPC core callbacks", ("asyncio/", "uvloop", "selectors.py")),
    ("executor threads (SQLite reads, to_thread)", ("threading.py", "concurrent/futures")),
)


PAIRS = 20


def samples(raw: pathlib.Path):
    """(frames, count) of each line of py-spy's raw output; frames[0] names the thread."""
    for line in raw.read_text().splitlines():
        if line.strip():
            stack, n = line.rsplit(" ", 1)
            yield stack.split(";"), int(n)


def shares(counts: collections.Counter[str], most: int | None = None) -> dict[str, float]:
    total = max(1, sum(counts.values()))
    return {k: round(100 * v / total, 1) for k, v in counts.most_common(most)}


def by_thread(raw: pathlib.Path) -> dict[str, float]:
    """Samples per thread kind (pool threads numbered alike are counted together)."""
    counts: collections.Counter[str] = collections.Counter()
    for frames, n in samples(raw):
        name = re.sub(r"\(\d+\)", "", frames[0])
        counts[re.sub(r"_\d+$", "_N", name.removeprefix("thread : ").strip())] += n
    return shares(counts, 8)


def classify(raw: pathlib.Path) -> dict[str, float]:
    counts: collections.Counter[str] = collections.Counter()
    for frames, n in samples(raw):
        if "_poll_wrapper" in frames[0]:  # the thread (first frame) grpc.aio polls C-core on
            counts["gRPC poller thread"] += n
            continue
        for frame in reversed(frames):
            name = next((c for c, needles in COMPONENTS if any(x in frame for x in needles)),
                        None)
            if name is not None:
                counts[name] += n
                break
        else:
            counts["other"] += n
    return shares(counts)


async def run(rate: int, duration_s: float, raw: pathlib.Path) -> dict:
    spy = shutil.which("py-spy") or str(pathlib.Path(sys.executable).parent / "py-spy")
    with ZynkUp() as mesh:
        # Accounts first (argon2 would otherwise show up in the samples), then a warm-up.
        both = await scenarios.make_pairs(mesh, PAIRS)
        # warm-up at another rate: runs are told apart by their rate (scenarios.Tally)
        await scenarios.one_rate(mesh, both, 50 if rate != 50 else 49, 3)
        record = subprocess.Popen(
            [spy, "record", "-p", str(mesh.proc.pid), "-d", str(int(duration_s)), "-r", "250",
             "-f", "raw", "-o", str(raw), "--nonblocking", "--threads"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cpu0 = mesh.cpu_seconds()
        result = await scenarios.one_rate(mesh, both, rate, duration_s)
        cpu1 = mesh.cpu_seconds()
        record.wait(60)
    delivered = max(1, result["delivered"])
    return {"offered_msgs_per_s": rate, "delivered": result["delivered"],
            "p50_ms": result["p50_ms"], "p99_ms": result["p99_ms"],
            "mesh_cpu_ms_per_message": round((cpu1 - cpu0) * 1000 / delivered, 2),
            "samples_by_thread_pct": by_thread(raw),
            "samples_by_component_pct": classify(raw)}


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.profile")
    ap.add_argument("--rate", type=int, default=100)
    ap.add_argument("--duration", type=float, default=10)
    ap.add_argument("--out", type=pathlib.Path, default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        raw = pathlib.Path(tmp) / "profile.raw"
        out = asyncio.run(run(args.rate, args.duration, raw))
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            shutil.copy(raw, args.out / "profile-1to1.raw")
    print(json.dumps(out, indent=2))
    if args.out:
        (args.out / "profile-1to1.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
