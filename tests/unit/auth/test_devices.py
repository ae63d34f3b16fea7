"""Device listing (AIP-158 pagination), renaming and ownership."""

from __future__ import annotations

import pytest

from services.runtime.errors import InvalidArgument, NotFound, PermissionDenied
from tests.unit.auth.conftest import PASSWORD, principal


async def _devices(env, username: str, n: int):
    first = await env.signup(username, device="d0")
    logins = [first]
    for i in range(1, n):
        env.clock.advance(0.001 if i % 2 else 0)  # some equal create times: ties by id
        logins.append(await env.domain.login(username, PASSWORD, f"d{i}", "10.0.0.1"))
    return logins


async def test_pagination_walks_every_device_once(env):
    logins = await _devices(env, "alice", 7)
    caller = principal(logins[0])
    seen, token, pages = [], "", 0
    while True:
        page = await env.domain.list_devices(caller, "me", 3, token, False)
        pages += 1
        assert len(page.devices) <= 3
        seen += [d.id for d in page.devices]
        token = page.next_page_token
        if not token:
            break
    assert pages == 3
    assert sorted(seen) == sorted(lg.device.id for lg in logins) and len(set(seen)) == 7
    # Default page size covers all of them, with no next page.
    page = await env.domain.list_devices(caller, logins[0].user.id, 0, "", False)
    assert len(page.devices) == 7 and page.next_page_token == ""


async def test_revoked_devices_hidden_unless_asked(env):
    logins = await _devices(env, "bob", 3)
    caller = principal(logins[0])
    await env.domain.revoke_device(caller, "me", logins[1].device.id)
    live = await env.domain.list_devices(caller, "me", 0, "", False)
    assert {d.id for d in live.devices} == {logins[0].device.id, logins[2].device.id}
    every = await env.domain.list_devices(caller, "me", 0, "", True)
    assert len(every.devices) == 3
    assert {d.id for d in every.devices if d.revoked} == {logins[1].device.id}


async def test_page_tokens_are_checked(env):
    logins = await _devices(env, "carol", 3)
    caller = principal(logins[0])
    page = await env.domain.list_devices(caller, "me", 1, "", False)
    with pytest.raises(InvalidArgument) as e:  # same token, different request
        await env.domain.list_devices(caller, "me", 1, page.next_page_token, True)
    assert e.value.field_violations[0][0] == "page_token"
    for garbage in ("not-a-token", "eyJ1IjoxfQ", "%%%"):
        with pytest.raises(InvalidArgument):
            await env.domain.list_devices(caller, "me", 1, garbage, False)
    other = await env.signup("dave")
    with pytest.raises(InvalidArgument):  # another user's token for their own list
        await env.domain.list_devices(principal(other), "me", 1, page.next_page_token, False)


async def test_only_own_devices_are_listed(env):
    a = await env.signup("erin")
    b = await env.signup("frank")
    with pytest.raises(PermissionDenied):
        await env.domain.list_devices(principal(b), a.user.id, 0, "", False)


async def test_update_device_honours_the_mask(env):
    a = await env.signup("grace", device="old name")
    caller = principal(a)
    d = await env.domain.update_device(caller, "me", a.device.id, "new name", ["display_name"])
    assert d.display_name == "new name"
    d = await env.domain.update_device(caller, a.user.id, a.device.id, "newer", [])
    assert d.display_name == "newer"  # empty mask = every updatable field
    assert (await env.store.get_device(a.device.id)).display_name == "newer"
    with pytest.raises(InvalidArgument) as e:
        await env.domain.update_device(caller, "me", a.device.id, "x", ["display_name",
                                                                         "revoke_time"])
    assert e.value.field_violations == [("update_mask", "'revoke_time' cannot be updated")]
    assert (await env.store.get_device(a.device.id)).display_name == "newer"


async def test_update_device_only_own(env):
    a = await env.signup("heidi")
    b = await env.signup("ivan")
    with pytest.raises(PermissionDenied):
        await env.domain.update_device(principal(b), a.user.id, a.device.id, "pwned", [])
    with pytest.raises(NotFound):
        await env.domain.update_device(principal(b), "me", a.device.id, "pwned", [])
    assert (await env.store.get_device(a.device.id)).display_name == "phone"
