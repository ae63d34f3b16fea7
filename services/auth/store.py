"""The storage interface the auth domain depends on, and the rows it exchanges.

Reads that need no consistency with a write go through `AuthStore`; everything that writes
runs inside `async with store.transaction() as tx:` on an `AuthTx`, which commits when the
block ends and rolls back on any exception (never a partial write). Transactions are
serialisable with respect to each other (SQLite: BEGIN IMMEDIATE on one writer; PostgreSQL:
row locks, `DELETE ... RETURNING` and `FOR UPDATE SKIP LOCKED` where the docstrings say so).

Times are wall-clock epoch seconds (float). Usernames are passed already lower-cased."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from google.protobuf.message import Message


@dataclasses.dataclass(frozen=True, slots=True)
class UserRow:
    id: str
    username: str  # lower-case, unique
    display_name: str
    password_hash: str  # argon2id PHC string
    create_time: float


@dataclasses.dataclass(frozen=True, slots=True)
class SignedPrekeyRow:
    key_id: int
    public_key: bytes  # 32-byte X25519
    signature: bytes  # 64-byte Ed25519 signature by the identity key over public_key
    create_time: float


@dataclasses.dataclass(frozen=True, slots=True)
class DeviceRow:
    id: str
    user_id: str
    display_name: str
    create_time: float
    last_seen_time: float
    revoke_time: float | None = None
    revoke_reason: str = ""
    identity_key: bytes | None = None  # 32-byte Ed25519, set once
    signed_prekey: SignedPrekeyRow | None = None

    @property
    def revoked(self) -> bool:
        return self.revoke_time is not None

    @property
    def has_keys(self) -> bool:
        return self.identity_key is not None and self.signed_prekey is not None


@dataclasses.dataclass(frozen=True, slots=True)
class RefreshTokenRow:
    """One refresh token. Its family is the device's session: every token of a device
    belongs to it, and revoking the device revokes them all."""

    token_hash: bytes  # SHA-256 of the token; the token itself is never stored
    device_id: str
    user_id: str
    create_time: float
    expire_time: float
    used_time: float | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class OneTimePrekeyRow:
    key_id: int
    public_key: bytes  # 32-byte X25519


@dataclasses.dataclass(frozen=True, slots=True)
class DevicePage:
    """A keyset position in the (create_time, id) order of a user's devices."""

    create_time: float
    device_id: str


class AuthTx(Protocol):
    """Operations inside one write transaction."""

    # users
    async def get_user_by_username(self, username: str) -> UserRow | None: ...

    async def insert_user(self, user: UserRow) -> bool:
        """False (and no write) when the username is taken."""

    async def set_password_hash(self, user_id: str, password_hash: str) -> None: ...

    # devices
    async def get_device(self, device_id: str) -> DeviceRow | None: ...

    async def insert_device(self, device: DeviceRow) -> None: ...

    async def set_device_display_name(self, device_id: str, display_name: str) -> None: ...

    async def touch_device(self, device_id: str, last_seen_time: float) -> None: ...

    async def revoke_device(self, device_id: str, revoke_time: float, reason: str) -> None:
        """Mark the device revoked and withdraw everything it had: its signed prekey and
        one-time prekeys (nobody encrypts to it any more) and its refresh tokens (the
        family). The identity key stays on record so it can never be re-published."""

    # refresh tokens
    async def get_refresh_token(self, token_hash: bytes) -> RefreshTokenRow | None: ...

    async def insert_refresh_token(self, token: RefreshTokenRow) -> None: ...

    async def mark_refresh_token_used(self, token_hash: bytes, used_time: float) -> bool:
        """Compare-and-set: True only for the call that flips it from unused to used."""

    async def delete_expired_refresh_tokens(self, device_id: str, now: float) -> int: ...

    # keys
    async def set_identity_key(self, device_id: str, identity_key: bytes) -> None: ...

    async def set_signed_prekey(self, device_id: str, prekey: SignedPrekeyRow) -> None: ...

    async def one_time_prekey_ids(self, device_id: str, key_ids: Sequence[int]) -> set[int]:
        """Which of `key_ids` the device already has in its pool."""

    async def count_one_time_prekeys(self, device_id: str) -> int: ...

    async def add_one_time_prekeys(self, device_id: str, prekeys: Sequence[OneTimePrekeyRow],
                                   create_time: float) -> None: ...

    async def claimable_devices(self, user_id: str) -> list[DeviceRow]:
        """The user's devices that are not revoked and have an identity key and signed
        prekey, in (create_time, id) order."""

    async def claim_one_time_prekey(self, device_id: str) -> OneTimePrekeyRow | None:
        """Remove and return the device's oldest-id one-time prekey, or None when the pool
        is empty. Atomic: a prekey is returned by at most one call, ever. (PostgreSQL:
        `DELETE ... WHERE (device_id, key_id) = (SELECT ... ORDER BY key_id LIMIT 1
        FOR UPDATE SKIP LOCKED) RETURNING key_id, public_key`.)"""

    # events (transactional outbox)
    async def add_event(self, topic: str, key: str, payload: Message, event_id: str) -> None:
        """Publish `payload` on `topic` once this transaction commits (never if it rolls
        back); `event_id` is the id consumers deduplicate on."""


class AuthStore(Protocol):
    def transaction(self) -> AbstractAsyncContextManager[AuthTx]: ...

    async def get_user(self, user_id: str) -> UserRow | None: ...

    async def get_user_by_username(self, username: str) -> UserRow | None: ...

    async def get_device(self, device_id: str) -> DeviceRow | None: ...

    async def get_refresh_token(self, token_hash: bytes) -> RefreshTokenRow | None: ...

    async def list_devices(self, user_id: str, *, after: DevicePage | None, limit: int,
                           include_revoked: bool) -> list[DeviceRow]:
        """The user's devices in (create_time, id) order, strictly after `after`."""

    async def count_one_time_prekeys(self, device_id: str) -> int: ...

    async def active_devices(self, user_ids: Sequence[str]) -> dict[str, list[str]]:
        """Device ids that are not revoked, in (create_time, id) order, for each of `user_ids`
        that exists (a user without devices maps to []; unknown users are absent)."""

    async def revoked_devices_since(self, since: float) -> list[DeviceRow]:
        """Devices whose revoke_time >= since (to rebuild the revocation list on start)."""

    async def close(self) -> None: ...
