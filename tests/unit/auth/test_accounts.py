"""Registration, login and profile rules."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from services.auth.domain import INVALID_CREDENTIALS, TOPIC_USERS_REGISTERED
from services.runtime.config import Rate, RateLimits
from services.runtime.errors import (
    AlreadyExists,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unauthenticated,
)
from tests.support.auth import auth_test_settings
from tests.unit.auth.conftest import PASSWORD, make_env, principal


async def test_register_stores_lower_case_username_and_argon2id_hash(env):
    user = await env.domain.register("Alice.Smith", PASSWORD, "Alice", "10.0.0.1")
    assert user.username == "alice.smith"
    stored = await env.store.get_user(user.id)
    assert stored.username == "alice.smith" and stored.display_name == "Alice"
    assert PASSWORD not in stored.password_hash
    assert stored.password_hash.startswith("$argon2id$v=19$m=8192,t=1,p=1$")
    assert PasswordHasher().verify(stored.password_hash, PASSWORD)


async def test_usernames_are_unique_case_insensitively(env):
    await env.domain.register("bob", PASSWORD, "", "10.0.0.1")
    with pytest.raises(AlreadyExists) as e:
        await env.domain.register("BOB", PASSWORD + "x", "", "10.0.0.1")
    assert e.value.reason == "USERNAME_TAKEN" and "already taken" in e.value.message


@pytest.mark.parametrize("password", ["carol_the_great", "xxCAROL_THE_GREATxx",
                                      "my-Carol_The_Great-pw"])
async def test_password_must_not_contain_the_username(env, password):
    with pytest.raises(InvalidArgument) as e:
        await env.domain.register("Carol_The_Great", password, "", "10.0.0.1")
    assert e.value.field_violations == [("password", "must not contain the username")]
    assert await env.store.get_user_by_username("carol_the_great") is None


async def test_register_publishes_users_registered_in_the_same_transaction(env):
    user = await env.domain.register("dave", PASSWORD, "Dave", "10.0.0.1")
    [(event_id, topic, key, envelope)] = env.store.events
    assert topic == TOPIC_USERS_REGISTERED and key == user.id
    assert envelope.DESCRIPTOR.full_name == "zynk.events.v1.EventEnvelope"
    assert envelope.metadata.event_id == event_id and envelope.metadata.producer == "auth"
    assert (envelope.topic, envelope.partition_key) == (topic, user.id)
    assert envelope.WhichOneof("payload") == "user_registered"
    assert envelope.user_registered.user == f"users/{user.id}"
    assert envelope.user_registered.username == "dave"
    assert envelope.user_registered.display_name == "Dave"
    # A failed registration publishes nothing.
    with pytest.raises(AlreadyExists):
        await env.domain.register("DAVE", PASSWORD + "!", "", "10.0.0.1")
    assert len(env.store.events) == 1


async def test_login_creates_a_device_and_tokens(env):
    login = await env.signup("erin", device="Erin's laptop")
    assert login.user.username == "erin"
    assert login.device.display_name == "Erin's laptop" and login.device.user_id == login.user.id
    assert await env.store.get_device(login.device.id) == login.device
    p = await env.verifier.verify(login.tokens.access_token)
    assert (p.user_id, p.device_id) == (login.user.id, login.device.id)
    # A second login is a second device.
    again = await env.domain.login("ERIN", PASSWORD, "", "10.0.0.1")
    assert again.device.id != login.device.id


async def test_login_failures_are_indistinguishable(env, monkeypatch):
    await env.domain.register("frank", PASSWORD, "", "10.0.0.1")
    calls = []
    real_verify = env.domain._passwords.verify

    async def spy(h, p):
        calls.append(h)
        return await real_verify(h, p)

    monkeypatch.setattr(env.domain._passwords, "verify", spy)
    with pytest.raises(Unauthenticated) as wrong_pw:
        await env.domain.login("frank", "not the password", "", "10.0.0.1")
    with pytest.raises(Unauthenticated) as no_user:
        await env.domain.login("nobody_here", "not the password", "", "10.0.0.1")
    assert wrong_pw.value.message == no_user.value.message == INVALID_CREDENTIALS
    assert wrong_pw.value.reason == no_user.value.reason
    # The unknown account still paid for an argon2 verification (against a dummy hash).
    assert len(calls) == 2 and all(h.startswith("$argon2id$") for h in calls)


async def test_login_rehashes_when_argon2_parameters_change(env, tmp_path):
    await env.domain.register("grace", PASSWORD, "", "10.0.0.1")
    before = (await env.store.get_user_by_username("grace")).password_hash
    stronger = env.new_domain(auth_test_settings(tmp_path, argon2_time_cost=2))
    await stronger.login("grace", PASSWORD, "", "10.0.0.1")
    after = (await env.store.get_user_by_username("grace")).password_hash
    assert ",t=1," in before and ",t=2," in after
    # ... and the new hash still verifies.
    await stronger.login("grace", PASSWORD, "", "10.0.0.1")


async def test_login_rate_limited_per_account_and_per_address(tmp_path):
    s = auth_test_settings(tmp_path)
    s.rate_limits = RateLimits(login_per_account=Rate(per_second=0.001, burst=2),
                               login_per_address=Rate(per_second=0.001, burst=3))
    env = make_env(s)
    await env.domain.register("heidi", PASSWORD, "", "1.1.1.1")
    for _ in range(2):
        await env.domain.login("heidi", PASSWORD, "", "1.1.1.1")
    with pytest.raises(ResourceExhausted) as e:  # same account, another address
        await env.domain.login("HEIDI", PASSWORD, "", "2.2.2.2")
    assert e.value.retry_after_s > 0
    # Per address: a third account-distinct attempt from 1.1.1.1 is the address's 3rd, then out.
    with pytest.raises(Unauthenticated):
        await env.domain.login("someone_else", PASSWORD, "", "1.1.1.1")
    with pytest.raises(ResourceExhausted):
        await env.domain.login("yet_another", PASSWORD, "", "1.1.1.1")


async def test_register_rate_limited_per_address(tmp_path):
    s = auth_test_settings(tmp_path)
    s.rate_limits = RateLimits(register_per_address=Rate(per_second=0.001, burst=1))
    env = make_env(s)
    await env.domain.register("ivan", PASSWORD, "", "3.3.3.3")
    with pytest.raises(ResourceExhausted):
        await env.domain.register("judy", PASSWORD, "", "3.3.3.3")
    await env.domain.register("judy", PASSWORD, "", "4.4.4.4")


async def test_get_and_lookup_user(env):
    me = await env.signup("Mallory")
    other = await env.domain.register("niaj", PASSWORD, "Niaj", "10.0.0.1")
    caller = principal(me)
    assert (await env.domain.get_user(caller, "me")).name == f"users/{me.user.id}"
    assert (await env.domain.get_user(caller, other.id)).display_name == "Niaj"
    assert (await env.domain.lookup_user("NIAJ")).name == f"users/{other.id}"
    with pytest.raises(NotFound):
        await env.domain.get_user(caller, "no-such-user")
    with pytest.raises(NotFound):
        await env.domain.lookup_user("nobody")
