"""SQLite adapter of the auth store (embedded mode), on the runtime's SqliteDatabase.

Write transactions are BEGIN IMMEDIATE on the single writer connection, so they are
serialised; reads outside a transaction use the reader connection (WAL snapshot)."""

from __future__ import annotations

import contextlib
import pathlib
from collections.abc import AsyncIterator, Sequence

import aiosqlite
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
from services.runtime.sqlite import SqliteDatabase

MIGRATIONS = pathlib.Path(__file__).parent / "migrations" / "sqlite"


async def _one(conn: aiosqlite.Connection, sql: str, params: Sequence = ()):
    async with conn.execute(sql, params) as cur:
        return await cur.fetchone()


class SqliteTx:
    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._c = conn

    async def get_user_by_username(self, username: str) -> UserRow | None:
        return rows.user(await _one(
            self._c, f"SELECT {rows.USER_COLS} FROM users WHERE username = ?", (username,)))

    async def insert_user(self, user: UserRow) -> bool:
        cur = await self._c.execute(
            f"INSERT INTO users ({rows.USER_COLS}) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT DO NOTHING",
            (user.id, user.username, user.display_name, user.password_hash, user.create_time))
        return cur.rowcount == 1

    async def set_password_hash(self, user_id: str, password_hash: str) -> None:
        await self._c.execute("UPDATE users SET password_hash = ? WHERE id = ?",
                              (password_hash, user_id))

    async def get_device(self, device_id: str) -> DeviceRow | None:
        return rows.device(await _one(
            self._c, f"SELECT {rows.DEVICE_COLS} FROM devices WHERE id = ?", (device_id,)))

    async def insert_device(self, device: DeviceRow) -> None:
        spk = device.signed_prekey
        await self._c.execute(
            f"INSERT INTO devices ({rows.DEVICE_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (device.id, device.user_id, device.display_name, device.create_time,
             device.last_seen_time, device.revoke_time, device.revoke_reason,
             device.identity_key, spk and spk.key_id, spk and spk.public_key,
             spk and spk.signature, spk and spk.create_time))

    async def set_device_display_name(self, device_id: str, display_name: str) -> None:
        await self._c.execute("UPDATE devices SET display_name = ? WHERE id = ?",
                              (display_name, device_id))

    async def touch_device(self, device_id: str, last_seen_time: float) -> None:
        await self._c.execute("UPDATE devices SET last_seen_time = ? WHERE id = ?",
                              (last_seen_time, device_id))

    async def revoke_device(self, device_id: str, revoke_time: float, reason: str) -> None:
        await self._c.execute(
            "UPDATE devices SET revoke_time = ?, revoke_reason = ?, signed_prekey_id = NULL,"
            " signed_prekey_public = NULL, signed_prekey_signature = NULL,"
            " signed_prekey_create_time = NULL WHERE id = ?",
            (revoke_time, reason, device_id))
        await self._c.execute("DELETE FROM one_time_prekeys WHERE device_id = ?", (device_id,))
        await self._c.execute("DELETE FROM refresh_tokens WHERE device_id = ?", (device_id,))

    async def get_refresh_token(self, token_hash: bytes) -> RefreshTokenRow | None:
        return rows.refresh(await _one(
            self._c, f"SELECT {rows.REFRESH_COLS} FROM refresh_tokens WHERE token_hash = ?",
            (token_hash,)))

    async def insert_refresh_token(self, token: RefreshTokenRow) -> None:
        await self._c.execute(
            f"INSERT INTO refresh_tokens ({rows.REFRESH_COLS}) VALUES (?, ?, ?, ?, ?, ?)",
            (token.token_hash, token.device_id, token.user_id, token.create_time,
             token.expire_time, token.used_time))

    async def mark_refresh_token_used(self, token_hash: bytes, used_time: float) -> bool:
        cur = await self._c.execute(
            "UPDATE refresh_tokens SET used_time = ? WHERE token_hash = ? AND used_time IS NULL",
            (used_time, token_hash))
        return cur.rowcount == 1

    async def delete_expired_refresh_tokens(self, device_id: str, now: float) -> int:
        cur = await self._c.execute(
            "DELETE FROM refresh_tokens WHERE device_id = ? AND expire_time <= ?",
            (device_id, now))
        return cur.rowcount

    async def set_identity_key(self, device_id: str, identity_key: bytes) -> None:
        await self._c.execute("UPDATE devices SET identity_key = ? WHERE id = ?",
                              (bytes(identity_key), device_id))

    async def set_signed_prekey(self, device_id: str, prekey: SignedPrekeyRow) -> None:
        await self._c.execute(
            "UPDATE devices SET signed_prekey_id = ?, signed_prekey_public = ?,"
            " signed_prekey_signature = ?, signed_prekey_create_time = ? WHERE id = ?",
            (prekey.key_id, bytes(prekey.public_key), bytes(prekey.signature),
             prekey.create_time, device_id))

    async def one_time_prekey_ids(self, device_id: str, key_ids: Sequence[int]) -> set[int]:
        found: set[int] = set()
        ids = list(key_ids)
        for i in range(0, len(ids), 500):  # stay under SQLite's bound-parameter limit
            chunk = ids[i:i + 500]
            marks = ",".join("?" * len(chunk))
            async with self._c.execute(
                    f"SELECT key_id FROM one_time_prekeys WHERE device_id = ?"
                    f" AND key_id IN ({marks})", (device_id, *chunk)) as cur:
                found.update(r[0] for r in await cur.fetchall())
        return found

    async def count_one_time_prekeys(self, device_id: str) -> int:
        r = await _one(self._c, "SELECT count(*) FROM one_time_prekeys WHERE device_id = ?",
                       (device_id,))
        return int(r[0])

    async def add_one_time_prekeys(self, device_id: str, prekeys: Sequence[OneTimePrekeyRow],
                                   create_time: float) -> None:
        await self._c.executemany(
            "INSERT INTO one_time_prekeys (device_id, key_id, public_key, create_time)"
            " VALUES (?, ?, ?, ?)",
            [(device_id, k.key_id, bytes(k.public_key), create_time) for k in prekeys])

    async def claimable_devices(self, user_id: str) -> list[DeviceRow]:
        async with self._c.execute(
                f"SELECT {rows.DEVICE_COLS} FROM devices WHERE user_id = ? AND revoke_time IS NULL"
                " AND identity_key IS NOT NULL AND signed_prekey_public IS NOT NULL"
                " ORDER BY create_time, id", (user_id,)) as cur:
            return [rows.device(r) for r in await cur.fetchall()]

    async def claim_one_time_prekey(self, device_id: str) -> OneTimePrekeyRow | None:
        # One statement that picks and deletes; PostgreSQL runs the same shape with
        # `... ORDER BY key_id LIMIT 1 FOR UPDATE SKIP LOCKED` in the sub-select.
        r = await _one(
            self._c,
            "DELETE FROM one_time_prekeys WHERE device_id = ? AND key_id = ("
            " SELECT key_id FROM one_time_prekeys WHERE device_id = ?"
            " ORDER BY key_id LIMIT 1)"
            " RETURNING key_id, public_key",
            (device_id, device_id))
        return None if r is None else OneTimePrekeyRow(r["key_id"], bytes(r["public_key"]))

    async def add_event(self, topic: str, key: str, payload: Message, event_id: str) -> None:
        await outbox.add_event(self._c, topic, key, payload, event_id=event_id)


class SqliteAuthStore:
    def __init__(self, db: SqliteDatabase) -> None:
        self.db = db

    @classmethod
    async def open(cls, path: pathlib.Path) -> SqliteAuthStore:
        return cls(await SqliteDatabase.open(path, migrations=[MIGRATIONS]))

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[SqliteTx]:
        async with self.db.transaction() as conn:
            yield SqliteTx(conn)

    async def get_user(self, user_id: str) -> UserRow | None:
        return rows.user(await self.db.fetchone(f"SELECT {rows.USER_COLS} FROM users WHERE id = ?",
                                            (user_id,)))

    async def get_user_by_username(self, username: str) -> UserRow | None:
        return rows.user(await self.db.fetchone(
            f"SELECT {rows.USER_COLS} FROM users WHERE username = ?", (username,)))

    async def get_device(self, device_id: str) -> DeviceRow | None:
        return rows.device(await self.db.fetchone(
            f"SELECT {rows.DEVICE_COLS} FROM devices WHERE id = ?", (device_id,)))

    async def get_refresh_token(self, token_hash: bytes) -> RefreshTokenRow | None:
        return rows.refresh(await self.db.fetchone(
            f"SELECT {rows.REFRESH_COLS} FROM refresh_tokens WHERE token_hash = ?", (token_hash,)))

    async def list_devices(self, user_id: str, *, after: DevicePage | None, limit: int,
                           include_revoked: bool) -> list[DeviceRow]:
        sql = f"SELECT {rows.DEVICE_COLS} FROM devices WHERE user_id = ?"
        params: list = [user_id]
        if not include_revoked:
            sql += " AND revoke_time IS NULL"
        if after is not None:
            sql += " AND (create_time, id) > (?, ?)"
            params += [after.create_time, after.device_id]
        sql += " ORDER BY create_time, id LIMIT ?"
        params.append(limit)
        return [rows.device(r) for r in await self.db.fetchall(sql, params)]

    async def count_one_time_prekeys(self, device_id: str) -> int:
        r = await self.db.fetchone("SELECT count(*) FROM one_time_prekeys WHERE device_id = ?",
                                   (device_id,))
        return int(r[0])

    async def active_devices(self, user_ids: Sequence[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        ids = list(dict.fromkeys(user_ids))
        for i in range(0, len(ids), 500):  # stay under SQLite's bound-parameter limit
            chunk = ids[i:i + 500]
            marks = ",".join("?" * len(chunk))
            for r in await self.db.fetchall(f"SELECT id FROM users WHERE id IN ({marks})",
                                            chunk):
                out[r["id"]] = []
            for r in await self.db.fetchall(
                    f"SELECT user_id, id FROM devices WHERE user_id IN ({marks})"
                    " AND revoke_time IS NULL ORDER BY user_id, create_time, id", chunk):
                out[r["user_id"]].append(r["id"])
        return out

    async def revoked_devices_since(self, since: float) -> list[DeviceRow]:
        return [rows.device(r) for r in await self.db.fetchall(
            f"SELECT {rows.DEVICE_COLS} FROM devices WHERE revoke_time >= ?", (since,))]

    async def close(self) -> None:
        await self.db.close()
