"""In-memory AuthStore for fast unit tests of the rules. Same contract as the SQLite adapter
(tests/contract/test_auth_store.py runs against both): a transaction works on a copy of the
state under a lock and swaps it in on commit, so a failed transaction leaves nothing behind
and readers only ever see committed state."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Sequence

from google.protobuf.message import Message

from services.auth.store import (
    DevicePage,
    DeviceRow,
    OneTimePrekeyRow,
    RefreshTokenRow,
    SignedPrekeyRow,
    UserRow,
)


@dataclasses.dataclass
class _State:
    users: dict[str, UserRow] = dataclasses.field(default_factory=dict)
    devices: dict[str, DeviceRow] = dataclasses.field(default_factory=dict)
    refresh: dict[bytes, RefreshTokenRow] = dataclasses.field(default_factory=dict)
    prekeys: dict[str, dict[int, OneTimePrekeyRow]] = dataclasses.field(default_factory=dict)
    events: list[tuple[str, str, str, Message]] = dataclasses.field(default_factory=list)

    def copy(self) -> _State:
        # Rows are frozen dataclasses, so copying the containers is a full snapshot.
        return _State(dict(self.users), dict(self.devices), dict(self.refresh),
                      {d: dict(p) for d, p in self.prekeys.items()}, list(self.events))


def _user_by_name(state: _State, username: str) -> UserRow | None:
    return next((u for u in state.users.values() if u.username == username), None)


class MemoryTx:
    def __init__(self, state: _State) -> None:
        self._s = state

    async def get_user_by_username(self, username: str) -> UserRow | None:
        return _user_by_name(self._s, username)

    async def insert_user(self, user: UserRow) -> bool:
        if _user_by_name(self._s, user.username) is not None or user.id in self._s.users:
            return False
        self._s.users[user.id] = user
        return True

    async def set_password_hash(self, user_id: str, password_hash: str) -> None:
        self._s.users[user_id] = dataclasses.replace(self._s.users[user_id],
                                                     password_hash=password_hash)

    async def get_device(self, device_id: str) -> DeviceRow | None:
        return self._s.devices.get(device_id)

    async def insert_device(self, device: DeviceRow) -> None:
        if device.user_id not in self._s.users:
            raise KeyError(f"no user {device.user_id}")
        self._s.devices[device.id] = device

    def _update(self, device_id: str, **changes) -> None:
        self._s.devices[device_id] = dataclasses.replace(self._s.devices[device_id], **changes)

    async def set_device_display_name(self, device_id: str, display_name: str) -> None:
        self._update(device_id, display_name=display_name)

    async def touch_device(self, device_id: str, last_seen_time: float) -> None:
        self._update(device_id, last_seen_time=last_seen_time)

    async def revoke_device(self, device_id: str, revoke_time: float, reason: str) -> None:
        self._update(device_id, revoke_time=revoke_time, revoke_reason=reason,
                     signed_prekey=None)
        self._s.prekeys.pop(device_id, None)
        for h in [h for h, r in self._s.refresh.items() if r.device_id == device_id]:
            del self._s.refresh[h]

    async def get_refresh_token(self, token_hash: bytes) -> RefreshTokenRow | None:
        return self._s.refresh.get(token_hash)

    async def insert_refresh_token(self, token: RefreshTokenRow) -> None:
        if token.token_hash in self._s.refresh:
            raise KeyError("duplicate refresh token")
        self._s.refresh[token.token_hash] = token

    async def mark_refresh_token_used(self, token_hash: bytes, used_time: float) -> bool:
        row = self._s.refresh.get(token_hash)
        if row is None or row.used_time is not None:
            return False
        self._s.refresh[token_hash] = dataclasses.replace(row, used_time=used_time)
        return True

    async def delete_expired_refresh_tokens(self, device_id: str, now: float) -> int:
        dead = [h for h, r in self._s.refresh.items()
                if r.device_id == device_id and r.expire_time <= now]
        for h in dead:
            del self._s.refresh[h]
        return len(dead)

    async def set_identity_key(self, device_id: str, identity_key: bytes) -> None:
        self._update(device_id, identity_key=bytes(identity_key))

    async def set_signed_prekey(self, device_id: str, prekey: SignedPrekeyRow) -> None:
        self._update(device_id, signed_prekey=prekey)

    async def one_time_prekey_ids(self, device_id: str, key_ids: Sequence[int]) -> set[int]:
        pool = self._s.prekeys.get(device_id, {})
        return {k for k in key_ids if k in pool}

    async def count_one_time_prekeys(self, device_id: str) -> int:
        return len(self._s.prekeys.get(device_id, {}))

    async def add_one_time_prekeys(self, device_id: str, prekeys: Sequence[OneTimePrekeyRow],
                                   create_time: float) -> None:
        pool = self._s.prekeys.setdefault(device_id, {})
        for k in prekeys:
            if k.key_id in pool:
                raise KeyError(f"duplicate one-time prekey {k.key_id}")
            pool[k.key_id] = OneTimePrekeyRow(k.key_id, bytes(k.public_key))

    async def claimable_devices(self, user_id: str) -> list[DeviceRow]:
        rows = [d for d in self._s.devices.values()
                if d.user_id == user_id and not d.revoked and d.has_keys]
        return sorted(rows, key=lambda d: (d.create_time, d.id))

    async def claim_one_time_prekey(self, device_id: str) -> OneTimePrekeyRow | None:
        pool = self._s.prekeys.get(device_id)
        if not pool:
            return None
        return pool.pop(min(pool))

    async def add_event(self, topic: str, key: str, payload: Message, event_id: str) -> None:
        self._s.events.append((event_id, topic, key, payload))


class MemoryAuthStore:
    def __init__(self) -> None:
        self._state = _State()
        self._lock = asyncio.Lock()

    @property
    def events(self) -> list[tuple[str, str, str, Message]]:
        """Committed events (event_id, topic, key, payload), for tests."""
        return list(self._state.events)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[MemoryTx]:
        async with self._lock:
            work = self._state.copy()
            yield MemoryTx(work)
            self._state = work  # reached only without an exception: commit

    async def get_user(self, user_id: str) -> UserRow | None:
        return self._state.users.get(user_id)

    async def get_user_by_username(self, username: str) -> UserRow | None:
        return _user_by_name(self._state, username)

    async def get_device(self, device_id: str) -> DeviceRow | None:
        return self._state.devices.get(device_id)

    async def get_refresh_token(self, token_hash: bytes) -> RefreshTokenRow | None:
        return self._state.refresh.get(token_hash)

    async def list_devices(self, user_id: str, *, after: DevicePage | None, limit: int,
                           include_revoked: bool) -> list[DeviceRow]:
        rows = sorted((d for d in self._state.devices.values() if d.user_id == user_id
                       and (include_revoked or not d.revoked)),
                      key=lambda d: (d.create_time, d.id))
        if after is not None:
            rows = [d for d in rows if (d.create_time, d.id) > (after.create_time,
                                                                  after.device_id)]
        return rows[:limit]

    async def count_one_time_prekeys(self, device_id: str) -> int:
        return len(self._state.prekeys.get(device_id, {}))

    async def active_devices(self, user_ids: Sequence[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {u: [] for u in user_ids if u in self._state.users}
        for d in sorted(self._state.devices.values(), key=lambda d: (d.create_time, d.id)):
            if d.user_id in out and not d.revoked:
                out[d.user_id].append(d.id)
        return out

    async def revoked_devices_since(self, since: float) -> list[DeviceRow]:
        return [d for d in self._state.devices.values()
                if d.revoke_time is not None and d.revoke_time >= since]

    async def close(self) -> None:
        pass
