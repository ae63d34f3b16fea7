"""Messaging rules: device coverage, idempotency, sequencing, limits, groups, expiry."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from services.messaging.domain import DeviceMismatch
from services.runtime.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    PermissionDenied,
    ResourceExhausted,
)
from tests.unit.messaging.conftest import envelopes


def new_id() -> str:
    return str(uuid.uuid4())


async def test_envelopes_must_cover_exactly_the_other_active_devices(env):
    a1, a2 = env.auth.user(2)
    b1, b2 = env.auth.user(2)
    conv = await env.direct(a1, b1)
    with pytest.raises(DeviceMismatch) as e:
        await env.domain.send(a1, conv, new_id(), envelopes(b1, b2), None)
    assert e.value.metadata == {"missing_devices": a2.device_name, "extra_devices": ""}
    with pytest.raises(DeviceMismatch) as e:
        await env.domain.send(a1, conv, new_id(), envelopes(a1, a2, b1, b2), None)
    assert e.value.metadata["extra_devices"] == a1.device_name  # never to the sending device
    row = await env.domain.send(a1, conv, new_id(), envelopes(a2, b1, b2), None)
    assert row.sequence == 2 and row.envelope_count == 3


async def test_a_stale_device_list_is_refetched_before_refusing(env):
    a1, = env.auth.user()
    b1, = env.auth.user()
    conv = await env.direct(a1, b1)
    await env.domain.send(a1, conv, new_id(), envelopes(b1), None)
    calls = env.auth.calls
    b2 = type(b1)(b1.user_id, str(uuid.uuid4()))
    env.auth.devices[b1.user_id].append(b2.device_id)  # logged in; no event reached us
    row = await env.domain.send(a1, conv, new_id(), envelopes(b1, b2), None)
    assert row.sequence == 3
    assert env.auth.calls == calls + 1  # exactly one fresh fetch
    # and a genuine mismatch is refused after that one fresh look
    with pytest.raises(DeviceMismatch):
        await env.domain.send(a1, conv, new_id(), envelopes(b1), None)


async def test_many_missing_devices_are_listed_truncated(env):
    a1, = env.auth.user()
    b = env.auth.user(30)
    conv = await env.direct(a1, b[0])
    with pytest.raises(DeviceMismatch) as e:
        await env.domain.send(a1, conv, new_id(), envelopes(b[0]), None)
    assert len(e.value.metadata["missing_devices"].split(",")) == 20
    assert e.value.metadata["truncated"] == "true"
    assert len(e.value.missing) == 29


async def test_message_ids_are_idempotency_keys(env):
    a1, a2 = env.auth.user(2)
    b1, = env.auth.user()
    conv = await env.direct(a1, b1)
    mid = new_id()
    first = await env.domain.send(a1, conv, mid, envelopes(a2, b1), None)
    assert await env.domain.send(a1, conv, mid.upper(), envelopes(a2, b1), None) == first
    with pytest.raises(AlreadyExists):
        await env.domain.send(a1, conv, mid, envelopes(a2, b1, body=b"other"), None)
    with pytest.raises(AlreadyExists):  # the same content from another device
        await env.domain.send(a2, conv, mid, envelopes(a1, b1), None)
    # a retry after the device set changed still returns the stored message
    env.auth.devices[b1.user_id].append(str(uuid.uuid4()))
    await env.devices.drop(b1.user_id)
    assert await env.domain.send(a1, conv, mid, envelopes(a2, b1), None) == first
    items = await env.store.read_inbox(b1.device_id, 0, 10)
    assert [i.message.sequence for i in items] == [1, 2]  # stored once


async def test_a_retry_after_removal_still_returns_the_stored_message(env):
    owner, = env.auth.user()
    ann, = env.auth.user()
    group = str(uuid.uuid4())
    await env.domain.apply_group_change(group, new_id(), owner.user_id,
                                        [owner.user_id, ann.user_id], [], False, [])
    mid = new_id()
    first = await env.domain.send(ann, group, mid, None, b"bye")
    await env.domain.apply_group_change(group, new_id(), owner.user_id, [], [ann.user_id],
                                        False, [])
    assert await env.domain.send(ann, group, mid, None, b"bye") == first
    with pytest.raises(PermissionDenied):
        await env.domain.send(ann, group, new_id(), None, b"bye")


async def test_concurrent_sends_get_gapless_sequences(env):
    a1, = env.auth.user()
    b1, = env.auth.user()
    conv = await env.direct(a1, b1)
    rows = await asyncio.gather(*[env.domain.send(a1, conv, new_id(), envelopes(b1), None)
                                  for _ in range(60)])
    assert sorted(r.sequence for r in rows) == list(range(2, 62))
    items = await env.store.read_inbox(b1.device_id, 0, 100)
    assert [i.seq for i in items] == list(range(1, 62))
    assert [i.message.sequence for i in items] == list(range(1, 62))


async def test_limits(env):
    a1, = env.auth.user()
    b1, = env.auth.user()
    conv = await env.direct(a1, b1)
    with pytest.raises(InvalidArgument) as e:
        await env.domain.send(a1, conv, new_id(), envelopes(b1, body=b"x" * 10_001), None)
    assert e.value.reason == "MESSAGE_TOO_LARGE"
    with pytest.raises(InvalidArgument) as e:
        await env.domain.send(a1, conv, new_id(), None, b"sender key")
    assert e.value.reason == "SENDER_KEY_NOT_ALLOWED"
    sent = 0
    with pytest.raises(ResourceExhausted):
        for _ in range(200):
            await env.domain.send(a1, conv, new_id(), envelopes(b1), None)
            sent += 1
    assert 90 <= sent < 100  # burst 100, minus the two refused above


async def test_only_members_send_and_read(env):
    a1, = env.auth.user()
    b1, = env.auth.user()
    eve, = env.auth.user()
    conv = await env.direct(a1, b1)
    with pytest.raises(PermissionDenied):
        await env.domain.send(eve, conv, new_id(), envelopes(a1, b1), None)
    with pytest.raises(PermissionDenied):
        await env.domain.list_messages(eve, conv, 0, "", 0, 0, "")
    with pytest.raises(PermissionDenied):
        await env.domain.get_conversation(eve, str(uuid.uuid4()))


async def test_group_changes_roles_and_closing(env):
    owner, = env.auth.user()
    ann, = env.auth.user()
    bob, = env.auth.user()
    group = str(uuid.uuid4())
    change = new_id()
    conv, seq = await env.domain.apply_group_change(group, change, owner.user_id,
                                                    [owner.user_id, ann.user_id], [], False,
                                                    [owner.user_id])
    assert (conv, seq) == (group, 1)
    assert await env.domain.apply_group_change(group, change, owner.user_id, [bob.user_id], [],
                                               False, []) == (group, 1)
    # ann is no admin yet
    with pytest.raises(PermissionDenied):
        await env.domain.update_message_ttl(ann, group, 60.0, "", [])
    assert await env.domain.apply_group_change(group, new_id(), owner.user_id, [], [], False,
                                               [owner.user_id, ann.user_id]) == (group, 0)
    row, _ = await env.domain.update_message_ttl(ann, group, 60.0, "", [])
    assert row.message_ttl_s == 60.0 and row.last_sequence == 2
    # adding and removing in one change: two SystemEvents, the last sequence returned
    assert await env.domain.apply_group_change(group, new_id(), owner.user_id, [bob.user_id],
                                               [ann.user_id], False, [owner.user_id]) == (group, 4)
    rows = await env.store.list_messages(group, bob.device_id, min_sequence=1, max_sequence=9,
                                         descending=False, limit=10)
    assert [r.sequence for r, _ in rows] == [1, 2, 3, 4]
    state = await env.store.load_conversation(group)
    assert set(state.members) == {owner.user_id, bob.user_id}
    assert state.members[bob.user_id].joined_sequence == 3
    assert await env.domain.apply_group_change(group, new_id(), owner.user_id, [], [], True,
                                               []) == (group, 5)
    with pytest.raises(FailedPrecondition):
        await env.domain.send(owner, group, new_id(), None, b"late")
    with pytest.raises(FailedPrecondition):
        await env.domain.apply_group_change(group, new_id(), owner.user_id, [ann.user_id], [],
                                            False, [])
    # a repeated delete is harmless
    assert await env.domain.apply_group_change(group, new_id(), owner.user_id, [], [], True,
                                               []) == (group, 0)


async def test_sender_key_fans_out_to_member_devices_but_the_senders(env):
    owner, owner2 = env.auth.user(2)
    ann, ann2 = env.auth.user(2)
    group = str(uuid.uuid4())
    await env.domain.apply_group_change(group, new_id(), owner.user_id,
                                        [owner.user_id, ann.user_id], [], False, [])
    row = await env.domain.send(owner, group, new_id(), None, b"to all")
    for dev in (owner2, ann, ann2):
        items = await env.store.read_inbox(dev.device_id, 0, 10)
        assert items[-1].message.id == row.id
        assert items[-1].message.sender_key_ciphertext == b"to all"
    assert [i.message.sequence for i in await env.store.read_inbox(owner.device_id, 0, 10)] == [1]


async def test_disappearing_messages_expire(env):
    a1, = env.auth.user()
    b1, = env.auth.user()
    conv = await env.direct(a1, b1)
    await env.domain.update_message_ttl(a1, conv, 10.0, "", ["message_ttl"])
    row = await env.domain.send(a1, conv, new_id(), envelopes(b1), None)
    assert row.expire_time == pytest.approx(row.create_time + 10.0)
    assert await env.domain.expire_due() == 0
    env.clock.advance(11)
    view = await env.domain.get_message(b1, conv, row.id)
    assert view.row.erased(env.clock())  # a tombstone even before the sweep
    assert await env.domain.expire_due() == 1
    assert await env.store.get_envelopes(conv, row.sequence, None) == []
    stored = await env.store.get_message(row.id)
    assert stored.delete_time == row.expire_time


async def test_mark_read_is_monotonic_and_bounded(env):
    a1, = env.auth.user()
    b1, = env.auth.user()
    conv = await env.direct(a1, b1)
    for _ in range(3):
        await env.domain.send(a1, conv, new_id(), envelopes(b1), None)
    assert await env.domain.mark_read(b1, conv, 3, False) == 3
    assert await env.domain.mark_read(b1, conv, 2, False) == 3
    with pytest.raises(InvalidArgument):
        await env.domain.mark_read(b1, conv, 5, False)
    with pytest.raises(PermissionDenied):
        await env.domain.acknowledge(b1, (a1.user_id, a1.device_id), "x")
