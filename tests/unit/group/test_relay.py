"""The membership relay over the SQLite store, with an in-process sink standing in for
messaging (the same relay against a real gRPC server is in tests/integration/group)."""

from __future__ import annotations

import asyncio
import time

import pytest

from services.group.relay import MembershipRelay, pending_change
from services.group.sqlite import SqliteGroupStore
from services.runtime.config import GroupSettings

FAST = GroupSettings(relay_inline_wait_s=1.0, relay_backoff_initial_s=0.01,
                     relay_backoff_max_s=0.05, relay_poll_s=0.05, relay_call_timeout_s=1.0)


class Sink:
    """Records what it accepted; refuses while `down` (or the next `fail` calls)."""

    def __init__(self) -> None:
        self.accepted: list[tuple[str, str]] = []  # (group, change_id)
        self.attempts = 0
        self.down = False
        self.fail = 0
        self.delay = 0.0

    async def apply(self, request) -> None:
        self.attempts += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.down or self.fail > 0:
            self.fail = max(0, self.fail - 1)
            raise ConnectionError("messaging unavailable")
        self.accepted.append((request.group.removeprefix("groups/"), request.change_id))


@pytest.fixture
async def store(tmp_path):
    s = await SqliteGroupStore.open(tmp_path / "group.sqlite3")
    yield s
    await s.close()


async def write(store, group_id: str, n: int = 1) -> list[str]:
    ids = []
    for _ in range(n):
        change = pending_change(group_id, "actor", added=["u"], admins=["actor"],
                                now=time.time())
        async with store.transaction() as tx:
            await tx.add_pending_change(change)
        ids.append(change.change_id)
    return ids


async def until(predicate, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def test_committed_relays_before_returning_and_deletes_the_row(store):
    sink = Sink()
    relay = MembershipRelay(store, sink, FAST)
    ids = await write(store, "g1")
    await relay.committed("g1")
    assert sink.accepted == [("g1", ids[0])]
    assert await store.pending_changes("g1", 10) == []


async def test_changes_of_a_group_arrive_in_order_across_failures(store):
    sink = Sink()
    sink.fail = 3
    relay = MembershipRelay(store, sink, FAST)
    relay.start()
    try:
        ids = await write(store, "g1", 5)
        other = await write(store, "g2", 2)
        relay.wake()
        await until(lambda: len(sink.accepted) >= 7)
        deadline = time.monotonic() + 3
        while await store.pending_groups(10):  # accepted rows are deleted
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
    finally:
        await relay.stop()
    assert [c for g, c in sink.accepted if g == "g1"] == ids
    assert [c for g, c in sink.accepted if g == "g2"] == other


async def test_rows_stay_while_messaging_is_down_and_go_when_it_is_back(store):
    sink = Sink()
    sink.down = True
    relay = MembershipRelay(store, sink, FAST)
    relay.start()
    try:
        ids = await write(store, "g1", 3)
        started = time.monotonic()
        await relay.committed("g1")  # fails fast, does not hang the caller
        assert time.monotonic() - started < 0.5
        await until(lambda: sink.attempts >= 3)
        assert [r.change_id for r in await store.pending_changes("g1", 10)] == ids
        # While messaging is failing, callers are not held up waiting for the relay.
        sink.delay = 0.5
        started = time.monotonic()
        await relay.committed("g1")
        assert time.monotonic() - started < 0.3
        sink.delay = 0.0
        sink.down = False
        await until(lambda: len(sink.accepted) == 3)
    finally:
        await relay.stop()
    assert [c for _, c in sink.accepted] == ids


async def test_a_new_relay_delivers_rows_left_by_the_previous_run(store):
    ids = await write(store, "g1", 2)  # committed, never relayed (a crash)
    sink = Sink()
    relay = MembershipRelay(store, sink, FAST)
    relay.start()
    try:
        await until(lambda: len(sink.accepted) == 2)
    finally:
        await relay.stop()
    assert [c for _, c in sink.accepted] == ids


async def test_the_lease_keeps_two_relays_from_sending_one_group(store):
    sink_a, sink_b = Sink(), Sink()
    a = MembershipRelay(store, sink_a, FAST, holder="a")
    b = MembershipRelay(store, sink_b, FAST, holder="b")
    await write(store, "g1", 1)
    now = time.time()
    assert await store.acquire_relay_lease("g1", "a", now, now + 60)
    assert not await b.drain("g1")  # a holds it
    assert sink_b.attempts == 0
    await store.release_relay_lease("g1", "a")
    assert await a.drain("g1")
    assert len(sink_a.accepted) == 1 and sink_b.accepted == []


async def test_a_relay_refused_the_lease_looks_again_soon(store):
    """The replica holding a group's lease releases it when its pass ends, which may be just
    before our commit's row was there to see: the row must not wait out the lease's term."""
    sink = Sink()
    relay = MembershipRelay(store, sink, FAST, holder="b")
    now = time.time()
    assert await store.acquire_relay_lease("g1", "a", now, now + 60)
    relay.start()
    try:
        ids = await write(store, "g1", 1)
        await relay.committed("g1")  # refused: "a" holds the lease
        assert sink.attempts == 0
        await store.release_relay_lease("g1", "a")  # "a" ends its pass without our row
        await until(lambda: len(sink.accepted) == 1, timeout=2.0)
        assert [c for _, c in sink.accepted] == ids
    finally:
        await relay.stop()


async def test_an_expired_lease_is_taken_over(store):
    now = time.time()
    assert await store.acquire_relay_lease("g1", "crashed", now - 100, now - 1)
    sink = Sink()
    await write(store, "g1", 1)
    assert await MembershipRelay(store, sink, FAST).drain("g1")
    assert len(sink.accepted) == 1


async def test_stop_leaves_unsent_rows(store):
    sink = Sink()
    sink.delay = 5.0
    relay = MembershipRelay(store, sink, FAST.model_copy(update={"relay_inline_wait_s": 0.05}))
    relay.start()
    ids = await write(store, "g1", 1)
    await relay.committed("g1")
    await relay.stop()
    assert [r.change_id for r in await store.pending_changes("g1", 10)] == ids
    # and the lease was released, so the next start can send at once
    now = time.time()
    assert await store.acquire_relay_lease("g1", "next", now, now + 60)
