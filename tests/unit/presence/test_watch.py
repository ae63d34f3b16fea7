"""Watch streams: snapshot, changes, typing and its lapse, keepalives, bounded buffers,
visibility that follows membership, and clean ends. Real clock, short timings."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from services.presence import wire
from services.presence.domain import ME
from services.presence.store import UserPresence
from services.presence.views import Keepalive, PresenceView, hidden
from services.runtime.errors import PermissionDenied, ResourceExhausted
from services.runtime.pubsub import MemoryPubSub
from tests.unit.presence.conftest import PresenceEnv, make_env, who

pytestmark = pytest.mark.timeout(5)


async def next_event(stream, timeout: float = 3.0):
    return await asyncio.wait_for(anext(stream), timeout)


async def next_change(stream, timeout: float = 3.0):
    """The next event that is not a keepalive."""
    async with asyncio.timeout(timeout):
        while True:
            event = await anext(stream)
            if not isinstance(event, Keepalive):
                return event


@contextlib.asynccontextmanager
async def watching(env: PresenceEnv, user: str, users=(), conversations=()):
    stream = env.domain.watch(who(user, "watcher"), list(users), list(conversations))
    try:
        yield stream
    finally:
        await stream.aclose()


async def test_snapshot_then_changes_of_visible_users_only(live_env):
    env = live_env
    env.peers.add("c1", "alice", "bob")
    await env.domain.heartbeat(who("bob"), online=True)
    await env.domain.heartbeat(who("carol"), online=True)
    async with watching(env, "alice", ["bob", "carol", ME]) as stream:
        snapshot = [await next_event(stream) for _ in range(3)]
        assert [v.user_id for v in snapshot] == ["bob", "carol", "alice"]
        assert snapshot[0].online
        assert snapshot[1] == hidden("carol")  # online, but a stranger to alice
        assert snapshot[2] == hidden("alice")
        await env.domain.heartbeat(who("carol"), online=False)
        await env.domain.heartbeat(who("alice", "phone"), online=True)
        await env.domain.heartbeat(who("bob"), online=False)
        alice = await next_change(stream)
        assert alice.user_id == "alice" and alice.online
        bob = await next_change(stream)
        assert bob.user_id == "bob" and not bob.online and bob.last_seen is not None
        # Carol's change never reached the stream; an idle stream sends keepalives.
        assert isinstance(await next_event(stream, 1.0), Keepalive)


async def test_keepalives_on_an_idle_stream(live_env):
    async with watching(live_env, "alice", [ME]) as stream:
        await next_event(stream)
        loop = asyncio.get_running_loop()
        started = loop.time()
        for _ in range(2):
            event = await next_event(stream, 1.0)
            assert isinstance(event, Keepalive)
        assert loop.time() - started >= 2 * live_env.settings.presence.keepalive_s * 0.8


async def test_typing_is_forwarded_and_lapses_without_a_refresh(live_env):
    env = live_env
    env.peers.add("c1", "alice", "bob")
    async with watching(env, "alice", conversations=["c1"]) as stream:
        assert isinstance(await next_event(stream, 0.1), Keepalive)  # subscribed
        expire_at = await env.domain.set_typing(who("bob"), "c1", True)
        # The wire carries nanoseconds; a float epoch does not survive that bit for bit.
        expire_at = pytest.approx(expire_at, abs=1e-6)
        assert await next_change(stream) == wire.Typing("c1", "bob", True, expire_at)
        # No refresh: the stream reports the stop itself when the indicator lapses.
        lapsed = await next_change(stream, 2.0)
        assert lapsed == wire.Typing("c1", "bob", False, expire_at)
        assert env.clock() >= lapsed.expire_at
        # An explicit stop goes out as it is.
        await env.domain.set_typing(who("bob"), "c1", True)
        await next_change(stream)
        await env.domain.set_typing(who("bob"), "c1", False)
        assert await next_change(stream) == wire.Typing("c1", "bob", False, None)


async def test_watching_typing_needs_membership(live_env):
    env = live_env
    env.peers.add("c1", "alice", "bob")
    env.peers.add("c2", "bob", "carol")
    with pytest.raises(PermissionDenied) as e:
        async with watching(env, "alice", [ME], ["c1", "c2"]) as stream:
            await next_event(stream)
    assert e.value.metadata == {"conversation": "conversations/c2"}
    assert env.domain.open_watches("alice") == 0


async def test_leaving_a_watched_conversation_ends_the_stream(live_env):
    env = live_env
    env.peers.add("c1", "alice", "bob")
    async with watching(env, "alice", conversations=["c1"]) as stream:
        assert isinstance(await next_event(stream, 0.1), Keepalive)  # subscribed
        env.peers.conversations["c1"].discard("alice")
        with pytest.raises(PermissionDenied):
            while True:
                await next_event(stream, 2.0)


async def test_visibility_follows_membership_while_watching(live_env):
    env = live_env
    await env.domain.heartbeat(who("dave"), online=True)
    async with watching(env, "alice", ["dave"]) as stream:
        assert await next_event(stream) == hidden("dave")
        env.peers.add("c9", "alice", "dave")
        shown = await next_change(stream, 2.0)
        assert shown.user_id == "dave" and shown.online
        await env.domain.heartbeat(who("dave"), online=False)  # now subscribed: live change
        assert not (await next_change(stream)).online
        await env.domain.heartbeat(who("dave"), online=True)
        assert (await next_change(stream)).online
        env.peers.conversations["c9"].discard("alice")
        assert await next_change(stream, 2.0) == hidden("dave")


async def test_stale_and_repeated_reports_are_not_forwarded(live_env):
    env = live_env
    env.peers.add("c1", "alice", "bob")
    _, bob = await env.domain.heartbeat(who("bob"), online=True)
    [since] = [p.since for p in await env.store.get(["bob"], env.clock())]
    async with watching(env, "alice", ["bob"]) as stream:
        assert (await next_event(stream)).online
        channel = wire.user_channel("bob")
        # Older than the snapshot (a publish that raced the subscription): dropped.
        await env.pubsub.publish(channel, wire.encode_presence(
            UserPresence("bob", False, since - 10, since - 20)))
        # Newer but identical to what the client has: dropped.
        await env.pubsub.publish(channel, wire.encode_presence(
            UserPresence("bob", True, since + 1, None)))
        # Garbage on the channel: ignored.
        await env.pubsub.publish(channel, b"\xff\x00not a proto")
        assert isinstance(await next_event(stream, 1.0), Keepalive)
        await env.pubsub.publish(channel, wire.encode_presence(
            UserPresence("bob", False, since + 2, since + 2)))
        assert not (await next_change(stream)).online


async def test_a_stream_that_falls_behind_resynchronises_from_the_store(tmp_path):
    import time

    env = make_env(tmp_path, clock=time.time, pubsub=MemoryPubSub(max_pending=2),
                   keepalive_s=5.0)
    env.peers.add("c1", "alice", "bob")
    async with watching(env, "alice", ["bob"], ["c1"]) as stream:
        assert await next_event(stream) == hidden("bob")
        # Nobody reads the stream while far more happens than its buffer holds.
        for _ in range(5):
            await env.domain.heartbeat(who("bob"), online=True)
            await env.domain.set_typing(who("bob"), "c1", True)
            await env.domain.heartbeat(who("bob"), online=False)
        event = await next_change(stream)
        # The buffered events were dropped (else this would be the first "online"); what the
        # stream sends instead is the current truth, read from the store.
        assert isinstance(event, PresenceView) and event.user_id == "bob"
        assert not event.online and event.last_seen is not None


async def test_open_watches_are_limited_per_user_and_released_on_close(tmp_path):
    import time

    env = make_env(tmp_path, clock=time.time, max_watches_per_user=2)
    first = env.domain.watch(who("alice"), [ME], [])
    second = env.domain.watch(who("alice"), [ME], [])
    await next_event(first)
    await next_event(second)
    assert env.domain.open_watches("alice") == 2
    with pytest.raises(ResourceExhausted):
        async with watching(env, "alice", [ME]) as third:
            await next_event(third)
    async with watching(env, "bob", [ME]) as other_user:
        await next_event(other_user)
    await first.aclose()
    assert env.domain.open_watches("alice") == 1
    async with watching(env, "alice", [ME]) as again:
        await next_event(again)
    await second.aclose()
    assert env.domain.open_watches("alice") == 0
    assert env.pubsub._subs == {}  # every subscription was closed


async def test_cancelling_the_consumer_ends_the_stream(live_env):
    env = live_env
    stream = env.domain.watch(who("alice"), [ME], [])
    await next_event(stream)

    async def consume():
        async for _ in stream:
            pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert env.domain.open_watches("alice") == 0
    assert env.pubsub._subs == {}
