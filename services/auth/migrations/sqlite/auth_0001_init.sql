-- Auth service schema (SQLite). Times are epoch seconds (REAL); usernames lower-case.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL DEFAULT '',
    password_hash TEXT NOT NULL,
    create_time   REAL NOT NULL
);

-- One row per logged-in installation. The signed prekey lives on the row (one at a time);
-- identity_key is set once and kept after revocation so it is never re-used.
CREATE TABLE devices (
    id                        TEXT PRIMARY KEY,
    user_id                   TEXT NOT NULL REFERENCES users(id),
    display_name              TEXT NOT NULL DEFAULT '',
    create_time               REAL NOT NULL,
    last_seen_time            REAL NOT NULL,
    revoke_time               REAL,
    revoke_reason             TEXT NOT NULL DEFAULT '',
    identity_key              BLOB,
    signed_prekey_id          INTEGER,
    signed_prekey_public      BLOB,
    signed_prekey_signature   BLOB,
    signed_prekey_create_time REAL
);
CREATE INDEX devices_by_user ON devices (user_id, create_time, id);
CREATE INDEX devices_by_revoke_time ON devices (revoke_time) WHERE revoke_time IS NOT NULL;

-- Refresh tokens, stored only as SHA-256 hashes. The family is the device's session.
CREATE TABLE refresh_tokens (
    token_hash  BLOB PRIMARY KEY,
    device_id   TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    user_id     TEXT NOT NULL,
    create_time REAL NOT NULL,
    expire_time REAL NOT NULL,
    used_time   REAL
);
CREATE INDEX refresh_tokens_by_device ON refresh_tokens (device_id, expire_time);

-- Unclaimed one-time prekeys; a claim deletes the row it hands out.
CREATE TABLE one_time_prekeys (
    device_id   TEXT    NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    key_id      INTEGER NOT NULL,
    public_key  BLOB    NOT NULL,
    create_time REAL    NOT NULL,
    PRIMARY KEY (device_id, key_id)
) WITHOUT ROWID;
