-- Auth service schema (PostgreSQL), in schema "auth". Same shape as the SQLite schema:
-- times are epoch seconds (double precision, so rows round-trip exactly); usernames are
-- lower-case and unique. Ids compare byte-wise (COLLATE "C"), as in SQLite, so keyset
-- pagination orders the same on both.

CREATE TABLE users (
    id            TEXT COLLATE "C" PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL DEFAULT '',
    password_hash TEXT NOT NULL,
    create_time   DOUBLE PRECISION NOT NULL
);

-- One row per logged-in installation. The signed prekey lives on the row (one at a time);
-- identity_key is set once and kept after revocation so it is never re-used.
CREATE TABLE devices (
    id                        TEXT COLLATE "C" PRIMARY KEY,
    user_id                   TEXT COLLATE "C" NOT NULL REFERENCES users(id),
    display_name              TEXT NOT NULL DEFAULT '',
    create_time               DOUBLE PRECISION NOT NULL,
    last_seen_time            DOUBLE PRECISION NOT NULL,
    revoke_time               DOUBLE PRECISION,
    revoke_reason             TEXT NOT NULL DEFAULT '',
    identity_key              BYTEA,
    signed_prekey_id          BIGINT,  -- uint32 in the contract
    signed_prekey_public      BYTEA,
    signed_prekey_signature   BYTEA,
    signed_prekey_create_time DOUBLE PRECISION
);
CREATE INDEX devices_by_user ON devices (user_id, create_time, id);
CREATE INDEX devices_by_revoke_time ON devices (revoke_time) WHERE revoke_time IS NOT NULL;

-- Refresh tokens, stored only as SHA-256 hashes. The family is the device's session.
CREATE TABLE refresh_tokens (
    token_hash  BYTEA PRIMARY KEY,
    device_id   TEXT COLLATE "C" NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    user_id     TEXT COLLATE "C" NOT NULL,
    create_time DOUBLE PRECISION NOT NULL,
    expire_time DOUBLE PRECISION NOT NULL,
    used_time   DOUBLE PRECISION
);
CREATE INDEX refresh_tokens_by_device ON refresh_tokens (device_id, expire_time);

-- Unclaimed one-time prekeys; a claim deletes the row it hands out. The primary key is also
-- the claim order (lowest key_id first).
CREATE TABLE one_time_prekeys (
    device_id   TEXT COLLATE "C" NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    key_id      BIGINT NOT NULL,  -- uint32 in the contract
    public_key  BYTEA  NOT NULL,
    create_time DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (device_id, key_id)
);
