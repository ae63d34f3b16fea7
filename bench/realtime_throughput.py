"""1:1 messages through the realtime socket, end to end.

    .venv/bin/python bench/realtime_throughput.py --pairs 20 --messages 200 --window 8

Opens `pairs` sender/recipient socket pairs against the gateway of bench/realtime_procs.py.
Every sender sends `messages` `send` frames (a 300-byte ciphertext envelope to its
recipient's device) keeping `window` in flight; every recipient reads its inbox frames and
acknowledges every 10th cursor. It prints the end-to-end rate (first send to the last
delivery) and the gateway's CPU time per message (frame in, SendMessage, result out, inbox
frame out, ack), the figure to compare across changes: the clients and the upstream doubles
share this machine's cores, so the rate is a floor.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import time
import uuid

from realtime_procs import Servers, cpu_s


async def run(pairs: int, messages: int, window: int) -> None:
    import websockets

    with Servers() as s:
        async def open_socket(user: str, device: str):
            token = s.keys.token(user, device)
            ws = await websockets.connect(s.url, subprotocols=["zynk.v1"], ping_interval=None,
                                          additional_headers={"Authorization": f"Bearer {token}"},
                                          max_size=None)
            await ws.recv()  # ready
            await ws.recv()  # caughtUp
            return ws

        ciphertext = base64.b64encode(os.urandom(300)).decode()
        conversation = f"conversations/{uuid.uuid4()}"

        async def sender(ws, to: str) -> None:
            sem = asyncio.Semaphore(window)

            async def results() -> None:
                for _ in range(messages):
                    frame = json.loads(await ws.recv())
                    assert "result" in frame, frame
                    sem.release()

            reader = asyncio.create_task(results())
            for i in range(messages):
                await sem.acquire()
                await ws.send(json.dumps({"id": str(i), "send": {
                    "parent": conversation, "messageId": str(uuid.uuid4()),
                    "pairwise": {"envelopes": [{"recipientDevice": to,
                                                "type": "ENVELOPE_TYPE_RATCHET",
                                                "ciphertext": ciphertext}]}}}))
            await reader

        async def recipient(ws) -> None:
            got = 0
            while got < messages:
                frame = json.loads(await ws.recv())
                cursor = frame.get("inbox", {}).get("cursor")
                if cursor:
                    got += 1
                    if got % 10 == 0:
                        await ws.send(json.dumps({"ack": {"cursor": cursor}}))

        socks = []
        for p in range(pairs):
            a_dev, b_dev = str(uuid.uuid4()), str(uuid.uuid4())
            a = await open_socket(f"a{p}", a_dev)
            b = await open_socket(f"b{p}", b_dev)
            socks.append((a, b, f"users/b{p}/devices/{b_dev}"))
        await asyncio.sleep(0.5)
        cpu0 = cpu_s(s.gateway_pid)
        started = time.perf_counter()
        await asyncio.gather(*(sender(a, to) for a, _, to in socks),
                             *(recipient(b) for _, b, _ in socks))
        took = time.perf_counter() - started
        cpu = cpu_s(s.gateway_pid) - cpu0
        total = pairs * messages
        print(f"{total} messages over {pairs} socket pairs, window {window}: {took:.2f} s, "
              f"{total / took:,.0f} msg/s end to end")
        print(f"  gateway CPU {cpu:.2f} s = {cpu / total * 1e6:,.0f} us per message "
              f"(~{total / cpu:,.0f} msg/s per gateway core)")
        for a, b, _ in socks:
            await a.close()
            await b.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--pairs", type=int, default=20)
    ap.add_argument("--messages", type=int, default=200)
    ap.add_argument("--window", type=int, default=8)
    args = ap.parse_args()
    asyncio.run(run(args.pairs, args.messages, args.window))


if __name__ == "__main__":
    main()
