"""Presence rules: state transitions, expiry with an injected clock, visibility, typing."""

from __future__ import annotations

import pytest

from services.presence import wire
from services.presence.domain import ME
from services.presence.views import PresenceView, hidden
from services.runtime.bus import Event
from services.runtime.config import Rate
from services.runtime.errors import PermissionDenied, ResourceExhausted
from tests.unit.presence.conftest import PresenceEnv, make_env, who
from zynk.events.v1 import events_pb2


async def published(env: PresenceEnv, *channels: str):
    """A subscription to collect what the domain publishes on `channels`."""
    return await env.pubsub.subscribe(channels)


def drain(sub) -> list[tuple[str, bytes]]:
    out = []
    while not sub._queue.empty():
        out.append(sub._queue.get_nowait())
    return out


def presences(sub):
    return [wire.decode_presence(data) for _, data in drain(sub)]


def minute(t: float) -> float:
    return float(int(t // 60) * 60)


# -- heartbeats and expiry -----------------------------------------------------------------


async def test_heartbeat_makes_the_user_online_and_publishes_once(env):
    sub = await published(env, wire.user_channel("alice"))
    t0 = env.clock.now
    interval, own = await env.domain.heartbeat(who("alice"), online=True)
    assert interval == env.settings.presence.heartbeat_interval_s == 25
    assert own == PresenceView("alice", True, None, minute(t0))
    env.clock.advance(20)
    await env.domain.heartbeat(who("alice"), online=True)
    [p] = presences(sub)  # the refresh changed nothing, so only the first is published
    assert (p.user_id, p.online, p.since, p.last_seen) == ("alice", True, t0, None)


async def test_missing_heartbeats_expire_into_offline_with_last_seen(env):
    sub = await published(env, wire.user_channel("alice"))
    t0 = env.clock.now
    await env.domain.heartbeat(who("alice"), online=True)
    env.clock.advance(30)
    await env.domain.heartbeat(who("alice"), online=True)  # lease now ends at t0 + 90
    drain(sub)
    env.clock.advance(59)
    assert await env.domain.sweep() == 0
    [view] = await env.domain.batch_get(who("alice"), ["alice"])
    assert view.online
    env.clock.advance(2)  # t0 + 91: two turns missed
    # Reads do not wait for the sweeper...
    [view] = await env.domain.batch_get(who("alice"), ["alice"])
    assert (view.online, view.last_seen) == (False, minute(t0 + 30))
    assert presences(sub) == []
    # ...which then publishes the change exactly once.
    assert await env.domain.sweep() == 1
    [p] = presences(sub)
    assert (p.online, p.last_seen, p.since) == (False, t0 + 30, t0 + 90)
    assert await env.domain.sweep() == 0
    assert presences(sub) == []


async def test_last_device_going_offline_records_last_seen(env):
    sub = await published(env, wire.user_channel("alice"))
    await env.domain.heartbeat(who("alice", "phone"), online=True)
    await env.domain.heartbeat(who("alice", "laptop"), online=True)
    env.clock.advance(10)
    _, own = await env.domain.heartbeat(who("alice", "phone"), online=False)
    assert own.online  # the laptop still is
    env.clock.advance(5)
    t_off = env.clock.now
    _, own = await env.domain.heartbeat(who("alice", "laptop"), online=False)
    assert (own.online, own.last_seen) == (False, minute(t_off))
    ps = presences(sub)
    assert [p.online for p in ps] == [True, False]
    assert ps[1].last_seen == t_off
    # Signing off again, or an unknown device, changes nothing and publishes nothing.
    await env.domain.heartbeat(who("alice", "laptop"), online=False)
    await env.domain.heartbeat(who("alice", "tablet"), online=False)
    assert presences(sub) == []


async def test_one_device_expiring_keeps_the_user_online_while_another_lives(env):
    sub = await published(env, wire.user_channel("alice"))
    t0 = env.clock.now
    await env.domain.heartbeat(who("alice", "phone"), online=True)
    env.clock.advance(40)
    await env.domain.heartbeat(who("alice", "laptop"), online=True)
    drain(sub)
    env.clock.advance(30)  # phone lapsed at +60, laptop lives until +100
    assert await env.domain.sweep() == 0
    [view] = await env.domain.batch_get(who("alice"), [ME])
    assert view.online
    env.clock.advance(31)
    assert await env.domain.sweep() == 1
    [p] = presences(sub)
    assert (p.online, p.last_seen, p.since) == (False, t0 + 40, t0 + 100)


async def test_a_heartbeat_after_an_unswept_expiry_is_a_new_session(env):
    sub = await published(env, wire.user_channel("alice"))
    await env.domain.heartbeat(who("alice"), online=True)
    drain(sub)
    env.clock.advance(120)
    _, own = await env.domain.heartbeat(who("alice"), online=True)
    assert own.update_time == minute(env.clock.now)
    [p] = presences(sub)
    assert p.online and p.since == env.clock.now
    assert await env.domain.sweep() == 0  # the dead lease went with the new heartbeat


async def test_revoked_device_signs_off_at_once(env):
    sub = await published(env, wire.user_channel("alice"))
    await env.domain.heartbeat(who("alice", "phone"), online=True)
    drain(sub)

    def event(change, device="users/alice/devices/phone"):
        env_pb = events_pb2.EventEnvelope(device_changed=events_pb2.DeviceChanged(
            device=device, user="users/alice", change=change))
        return Event("devices.changed", "alice", "e1", "x", env_pb.SerializeToString())

    await env.domain.on_device_changed(event(events_pb2.DeviceChanged.CHANGE_ADDED))
    await env.domain.on_device_changed(event(events_pb2.DeviceChanged.CHANGE_REVOKED,
                                             device="garbage"))
    assert presences(sub) == []
    await env.domain.on_device_changed(event(events_pb2.DeviceChanged.CHANGE_REVOKED))
    [p] = presences(sub)
    assert not p.online
    await env.domain.on_device_changed(event(events_pb2.DeviceChanged.CHANGE_REVOKED))
    assert presences(sub) == []  # idempotent: the bus may deliver twice


async def test_last_seen_is_forgotten_after_the_retention(tmp_path):
    env = make_env(tmp_path, last_seen_retention_s=3600)
    await env.domain.heartbeat(who("alice"), online=True)
    await env.domain.heartbeat(who("alice"), online=False)
    env.clock.advance(3599)
    [view] = await env.domain.batch_get(who("alice"), [ME])
    assert view.last_seen is not None
    env.clock.advance(2)
    await env.domain.sweep()
    assert await env.domain.batch_get(who("alice"), [ME]) == [hidden("alice")]


# -- visibility ----------------------------------------------------------------------------


async def test_presence_is_shown_only_to_users_who_share_a_conversation(env):
    env.peers.add("c1", "alice", "bob")
    for user in ("bob", "carol"):
        await env.domain.heartbeat(who(user), online=True)
    views = await env.domain.batch_get(who("alice"), ["bob", "carol", "nobody", ME, "bob"])
    assert [v.user_id for v in views] == ["bob", "carol", "nobody", "alice", "bob"]
    assert views[0].online and views[4] == views[0]
    # carol is online but shares nothing with alice: she looks exactly like an unknown user.
    assert views[1] == hidden("carol")
    assert views[2] == hidden("nobody")
    assert views[1].online is False and views[1].last_seen is None
    assert views[3] == hidden("alice")  # alice never heartbeated, but may see herself


async def test_own_presence_needs_no_membership_lookup(env):
    await env.domain.heartbeat(who("alice"), online=True)
    [view] = await env.domain.batch_get(who("alice"), [ME])
    assert view.online
    [view] = await env.domain.batch_get(who("alice"), ["alice"])
    assert view.online
    assert env.peers.visibility_calls == 0


async def test_group_membership_grants_visibility_both_ways(env):
    env.peers.add("group", "alice", "bob", "carol")
    await env.domain.heartbeat(who("carol"), online=True)
    await env.domain.heartbeat(who("alice"), online=True)
    assert (await env.domain.batch_get(who("alice"), ["carol"]))[0].online
    assert (await env.domain.batch_get(who("carol"), ["alice"]))[0].online


async def test_reads_are_rate_limited(tmp_path):
    env = make_env(tmp_path, limits={
        "presence_reads_per_user": Rate(per_second=0.001, burst=2)})
    await env.domain.batch_get(who("alice"), [ME])
    await env.domain.batch_get(who("alice"), [ME])
    with pytest.raises(ResourceExhausted):
        await env.domain.batch_get(who("alice"), [ME])
    await env.domain.batch_get(who("bob"), [ME])  # per user


async def test_heartbeats_are_rate_limited_per_device(tmp_path):
    env = make_env(tmp_path, limits={
        "presence_heartbeats_per_device": Rate(per_second=0.001, burst=1)})
    await env.domain.heartbeat(who("alice", "phone"), online=True)
    with pytest.raises(ResourceExhausted):
        await env.domain.heartbeat(who("alice", "phone"), online=False)
    await env.domain.heartbeat(who("alice", "laptop"), online=True)


# -- typing --------------------------------------------------------------------------------


async def test_typing_is_published_to_the_conversation_and_lapses(env):
    env.peers.add("c1", "alice", "bob")
    sub = await published(env, wire.typing_channel("c1"))
    expire_at = await env.domain.set_typing(who("alice"), "c1", True)
    assert expire_at == env.clock.now + env.settings.presence.typing_ttl_s
    assert await env.domain.set_typing(who("alice"), "c1", False) is None
    got = [wire.decode_typing(d) for _, d in drain(sub)]
    assert got == [wire.Typing("c1", "alice", True, expire_at),
                   wire.Typing("c1", "alice", False, None)]


async def test_typing_needs_membership_and_does_not_tell_whether_a_conversation_exists(env):
    env.peers.add("c1", "alice", "bob")
    sub = await published(env, wire.typing_channel("c1"), wire.typing_channel("nope"))
    with pytest.raises(PermissionDenied) as not_member:
        await env.domain.set_typing(who("mallory"), "c1", True)
    with pytest.raises(PermissionDenied) as missing:
        await env.domain.set_typing(who("mallory"), "nope", True)
    assert not_member.value.reason == missing.value.reason == "NOT_A_MEMBER"
    assert drain(sub) == []


async def test_typing_is_rate_limited_per_device(tmp_path):
    env = make_env(tmp_path, limits={
        "typing_per_device": Rate(per_second=0.001, burst=3)})
    env.peers.add("c1", "alice", "bob")
    for _ in range(3):
        await env.domain.set_typing(who("alice"), "c1", True)
    with pytest.raises(ResourceExhausted) as e:
        await env.domain.set_typing(who("alice"), "c1", True)
    assert e.value.retry_after_s > 0
    await env.domain.set_typing(who("alice", "laptop"), "c1", True)
