"""PostgreSQL adapter of the auth store (distributed mode), on the runtime's PostgresDatabase.

Several replicas write at once, so the serialisation SQLite gets from its single writer is
made explicit here, under READ COMMITTED:
- every read-then-write on a device starts with `AuthTx.get_device`, which locks the row
  (`FOR UPDATE`): publishing keys, refreshing, revoking and renaming one device take turns,
  and each sees the others' committed changes (identity key set once, prekey cap held);
- a one-time prekey is claimed by one statement that locks and deletes the lowest free
  row, skipping rows other claimers hold (`FOR UPDATE SKIP LOCKED`): each key is handed out
  at most once and concurrent claims do not queue behind each other;
- a refresh token is spent by compare-and-set (`UPDATE ... WHERE used_time IS NULL`);
- usernames are unique by constraint (`INSERT ... ON CONFLICT DO NOTHING`)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence

import asyncpg
from google.protobuf.message import Message

from services.auth import rows
from services.auth.store import (
    DevicePage,
    DeviceRow,
    OneTimePrekeyRow,
    RefreshTokenRow,
    SignedPrekeyRow,
    UserRow,
)
from services.runtime import outbox
from services.runtime.config import Settings
from services.runtime.postgres import PostgresDatabase, open_service_database

SERVICE = "auth"


class PostgresTx:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._c = conn

    async def get_user_by_username(self, username: str) -> UserRow | None:
        return rows.user(await self._c.fetchrow(
            f"SELECT {rows.USER_COLS} FROM users WHERE username = $1", username))

    async def insert_user(self, user: UserRow) -> bool:
        status = await self._c.execute(
            f"INSERT INTO users ({rows.USER_COLS}) VALUES ($1, $2, $3, $4, $5)"
            " ON CONFLICT DO NOTHING",
            user.id, user.username, user.display_name, user.password_hash, user.create_time)
        return status == "INSERT 0 1"

    async def set_password_hash(self, user_id: str, password_hash: str) -> None:
        await self._c.execute("UPDATE users SET password_hash = $1 WHERE id = $2",
                              password_hash, user_id)

    async def get_device(self, device_id: str) -> DeviceRow | None:
        # Locked until the transaction ends: see the module docstring.
        return rows.device(await self._c.fetchrow(
            f"SELECT {rows.DEVICE_COLS} FROM devices WHERE id = $1 FOR UPDATE", device_id))

    async def insert_device(self, device: DeviceRow) -> None:
        spk = device.signed_prekey
        await self._c.execute(
            f"INSERT INTO devices ({rows.DEVICE_COLS})"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            device.id, device.user_id, device.display_name, device.create_time,
            device.last_seen_time, device.revoke_time, device.revoke_reason,
            device.identity_key, spk and spk.key_id, spk and spk.public_key,
            spk and spk.signature, spk and spk.create_time)

    async def set_device_display_name(self, device_id: str, display_name: str) -> None:
        await self._c.execute("UPDATE devices SET display_name = $1 WHERE id = $2",
                              display_name, device_id)

    async def touch_device(self, device_id: str, last_seen_time: float) -> None:
        await self._c.execute("UPDATE devices SET last_seen_time = $1 WHERE id = $2",
                              last_seen_time, device_id)

    async def revoke_device(self, device_id: str, revoke_time: float, reason: str) -> None:
        await self._c.execute(
            "UPDATE devices SET revoke_time = $1, revoke_reason = $2, signed_prekey_id = NULL,"
            " signed_prekey_public = NULL, signed_prekey_signature = NULL,"
            " signed_prekey_create_time = NULL WHERE id = $3",
            revoke_time, reason, device_id)
        await self._c.execute("DELETE FROM one_time_prekeys WHERE device_id = $1", device_id)
        await self._c.execute("DELETE FROM refresh_tokens WHERE device_id = $1", device_id)

    async def get_refresh_token(self, token_hash: bytes) -> RefreshTokenRow | None:
        return rows.refresh(await self._c.fetchrow(
            f"SELECT {rows.REFRESH_COLS} FROM refresh_tokens WHERE token_hash = $1",
            token_hash))

    async def insert_refresh_token(self, token: RefreshTokenRow) -> None:
        await self._c.execute(
            f"INSERT INTO refresh_tokens ({rows.REFRESH_COLS})"
            " VALUES ($1, $2, $3, $4, $5, $6)",
            token.token_hash, token.device_id, token.user_id, token.create_time,
            token.expire_time, token.used_time)

    async def mark_refresh_token_used(self, token_hash: bytes, used_time: float) -> bool:
        status = await self._c.execute(
            "UPDATE refresh_tokens SET used_time = $1"
            " WHERE token_hash = $2 AND used_time IS NULL", used_time, token_hash)
        return status == "UPDATE 1"

    async def delete_expired_refresh_tokens(self, device_id: str, now: float) -> int:
        status = await self._c.execute(
            "DELETE FROM refresh_tokens WHERE device_id = $1 AND expire_time <= $2",
            device_id, now)
        return int(status.split()[-1])

    async def set_identity_key(self, device_id: str, identity_key: bytes) -> None:
        await self._c.execute("UPDATE devices SET identity_key = $1 WHERE id = $2",
                              bytes(identity_key), device_id)

    async def set_signed_prekey(self, device_id: str, prekey: SignedPrekeyRow) -> None:
        await self._c.execute(
            "UPDATE devices SET signed_prekey_id = $1, signed_prekey_public = $2,"
            " signed_prekey_signature = $3, signed_prekey_create_time = $4 WHERE id = $5",
            prekey.key_id, bytes(prekey.public_key), bytes(prekey.signature),
            prekey.create_time, device_id)

    async def one_time_prekey_ids(self, device_id: str, key_ids: Sequence[int]) -> set[int]:
        found = await self._c.fetch(
            "SELECT key_id FROM one_time_prekeys WHERE device_id = $1"
            " AND key_id = ANY($2::bigint[])", device_id, list(key_ids))
        return {r["key_id"] for r in found}

    async def count_one_time_prekeys(self, device_id: str) -> int:
        return await self._c.fetchval(
            "SELECT count(*) FROM one_time_prekeys WHERE device_id = $1", device_id)

    async def add_one_time_prekeys(self, device_id: str, prekeys: Sequence[OneTimePrekeyRow],
                                   create_time: float) -> None:
        # One statement for the whole batch; a duplicate id fails it (and the transaction).
        await self._c.execute(
            "INSERT INTO one_time_prekeys (device_id, key_id, public_key, create_time)"
            " SELECT $1, k, p, $4 FROM unnest($2::bigint[], $3::bytea[]) AS t(k, p)",
            device_id, [k.key_id for k in prekeys], [bytes(k.public_key) for k in prekeys],
            create_time)

    async def claimable_devices(self, user_id: str) -> list[DeviceRow]:
        # Not locked: claims on the same device must not queue behind each other.
        found = await self._c.fetch(
            f"SELECT {rows.DEVICE_COLS} FROM devices WHERE user_id = $1"
            " AND revoke_time IS NULL AND identity_key IS NOT NULL"
            " AND signed_prekey_public IS NOT NULL ORDER BY create_time, id", user_id)
        return [rows.device(r) for r in found]

    async def claim_one_time_prekey(self, device_id: str) -> OneTimePrekeyRow | None:
        r = await self._c.fetchrow(
            "DELETE FROM one_time_prekeys WHERE (device_id, key_id) = ("
            " SELECT device_id, key_id FROM one_time_prekeys WHERE device_id = $1"
            " ORDER BY key_id LIMIT 1 FOR UPDATE SKIP LOCKED)"
            " RETURNING key_id, public_key", device_id)
        return None if r is None else OneTimePrekeyRow(r["key_id"], bytes(r["public_key"]))

    async def add_event(self, topic: str, key: str, payload: Message, event_id: str) -> None:
        await outbox.add_event(self._c, topic, key, payload, event_id=event_id)


class PostgresAuthStore:
    def __init__(self, db: PostgresDatabase) -> None:
        self.db = db

    @classmethod
    async def open(cls, settings: Settings) -> PostgresAuthStore:
        return cls(await open_service_database(settings, SERVICE))

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[PostgresTx]:
        async with self.db.transaction() as conn:
            yield PostgresTx(conn)

    async def get_user(self, user_id: str) -> UserRow | None:
        return rows.user(await self.db.fetchrow(
            f"SELECT {rows.USER_COLS} FROM users WHERE id = $1", user_id))

    async def get_user_by_username(self, username: str) -> UserRow | None:
        return rows.user(await self.db.fetchrow(
            f"SELECT {rows.USER_COLS} FROM users WHERE username = $1", username))

    async def get_device(self, device_id: str) -> DeviceRow | None:
        return rows.device(await self.db.fetchrow(
            f"SELECT {rows.DEVICE_COLS} FROM devices WHERE id = $1", device_id))

    async def get_refresh_token(self, token_hash: bytes) -> RefreshTokenRow | None:
        return rows.refresh(await self.db.fetchrow(
            f"SELECT {rows.REFRESH_COLS} FROM refresh_tokens WHERE token_hash = $1",
            token_hash))

    async def list_devices(self, user_id: str, *, after: DevicePage | None, limit: int,
                           include_revoked: bool) -> list[DeviceRow]:
        sql = f"SELECT {rows.DEVICE_COLS} FROM devices WHERE user_id = $1"
        params: list = [user_id]
        if not include_revoked:
            sql += " AND revoke_time IS NULL"
        if after is not None:
            sql += " AND (create_time, id) > ($2, $3)"
            params += [after.create_time, after.device_id]
        sql += f" ORDER BY create_time, id LIMIT ${len(params) + 1}"
        params.append(limit)
        return [rows.device(r) for r in await self.db.fetch(sql, *params)]

    async def count_one_time_prekeys(self, device_id: str) -> int:
        return await self.db.fetchval(
            "SELECT count(*) FROM one_time_prekeys WHERE device_id = $1", device_id)

    async def active_devices(self, user_ids: Sequence[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for r in await self.db.fetch(
                "SELECT u.id AS user_id, d.id AS device_id FROM users u"
                " LEFT JOIN devices d ON d.user_id = u.id AND d.revoke_time IS NULL"
                " WHERE u.id = ANY($1::text[]) ORDER BY u.id, d.create_time, d.id",
                list(dict.fromkeys(user_ids))):
            devices = out.setdefault(r["user_id"], [])
            if r["device_id"] is not None:
                devices.append(r["device_id"])
        return out

    async def revoked_devices_since(self, since: float) -> list[DeviceRow]:
        return [rows.device(r) for r in await self.db.fetch(
            f"SELECT {rows.DEVICE_COLS} FROM devices WHERE revoke_time >= $1", since)]

    async def close(self) -> None:
        await self.db.close()
