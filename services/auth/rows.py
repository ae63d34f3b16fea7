"""Row <-> dataclass mapping shared by the SQL adapters (sqlite.py, postgres.py): both
schemas have the same columns, and aiosqlite and asyncpg rows are both read by name."""

from __future__ import annotations

from services.auth.store import DeviceRow, RefreshTokenRow, SignedPrekeyRow, UserRow

USER_COLS = "id, username, display_name, password_hash, create_time"
DEVICE_COLS = ("id, user_id, display_name, create_time, last_seen_time, revoke_time, "
               "revoke_reason, identity_key, signed_prekey_id, signed_prekey_public, "
               "signed_prekey_signature, signed_prekey_create_time")
REFRESH_COLS = "token_hash, device_id, user_id, create_time, expire_time, used_time"


def user(r) -> UserRow | None:
    if r is None:
        return None
    return UserRow(r["id"], r["username"], r["display_name"], r["password_hash"],
                   r["create_time"])


def device(r) -> DeviceRow | None:
    if r is None:
        return None
    spk = None
    if r["signed_prekey_public"] is not None:
        spk = SignedPrekeyRow(r["signed_prekey_id"], bytes(r["signed_prekey_public"]),
                              bytes(r["signed_prekey_signature"]),
                              r["signed_prekey_create_time"])
    ik = r["identity_key"]
    return DeviceRow(r["id"], r["user_id"], r["display_name"], r["create_time"],
                     r["last_seen_time"], r["revoke_time"], r["revoke_reason"],
                     None if ik is None else bytes(ik), spk)


def refresh(r) -> RefreshTokenRow | None:
    if r is None:
        return None
    return RefreshTokenRow(bytes(r["token_hash"]), r["device_id"], r["user_id"],
                           r["create_time"], r["expire_time"], r["used_time"])
