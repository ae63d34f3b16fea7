-- Messaging schema (SQLite). Times are epoch seconds (REAL); ids are UUID strings.
-- The PostgreSQL plan (seed §6.1) maps table for table; see docs/messaging.md.

-- One row per conversation. last_sequence is the conversation's sequence counter: the
-- transaction that appends an entry bumps it, so sequences are gapless and commit-ordered.
-- version moves with every change of members/roles/settings/state (optimistic concurrency
-- for writers that decided on a cached copy); settings_version is the etag.
CREATE TABLE conversations (
    id                 TEXT PRIMARY KEY,
    type               INTEGER NOT NULL,            -- 1 direct, 2 group
    group_id           TEXT    NOT NULL DEFAULT '',
    direct_key         TEXT    UNIQUE,              -- "<user>:<user>" sorted; NULL for groups
    message_ttl_s      REAL,
    create_time        REAL    NOT NULL,
    update_time        REAL    NOT NULL,
    last_sequence      INTEGER NOT NULL DEFAULT 0,
    last_activity_time REAL    NOT NULL,
    closed             INTEGER NOT NULL DEFAULT 0,
    version            INTEGER NOT NULL DEFAULT 1,
    settings_version   INTEGER NOT NULL DEFAULT 1
);

-- Current members, with the user's read position (shared by the user's devices).
CREATE TABLE members (
    conversation_id TEXT    NOT NULL REFERENCES conversations(id),
    user_id         TEXT    NOT NULL,
    joined_sequence INTEGER NOT NULL,
    admin           INTEGER NOT NULL DEFAULT 0,
    read_sequence   INTEGER NOT NULL DEFAULT 0,
    read_time       REAL,
    PRIMARY KEY (conversation_id, user_id)
) WITHOUT ROWID;
CREATE INDEX members_by_user ON members (user_id, conversation_id);

-- Group membership changes already applied (ApplyGroupMembershipChange is idempotent).
CREATE TABLE group_changes (
    change_id       TEXT    PRIMARY KEY,
    conversation_id TEXT    NOT NULL,
    sequence        INTEGER NOT NULL,
    apply_time      REAL    NOT NULL
) WITHOUT ROWID;

-- Every conversation entry: client messages and SystemEvents, clustered by conversation
-- and sequence (history reads are ranges of it). A tombstone has delete_time set and its
-- ciphertext (sender_key_ciphertext, envelopes) erased. content_hash stays: it is a
-- commitment, not content, and lets a retried send of a deleted message be recognised.
-- Message ids are client-made and globally unique (the idempotency key).
CREATE TABLE messages (
    conversation_id       TEXT    NOT NULL,
    sequence              INTEGER NOT NULL,
    id                    TEXT    NOT NULL UNIQUE,
    kind                  INTEGER NOT NULL,         -- 1 pairwise, 2 sender key, 3 system
    sender_user           TEXT    NOT NULL DEFAULT '',
    sender_device         TEXT    NOT NULL DEFAULT '',
    create_time           REAL    NOT NULL,
    expire_time           REAL,
    delete_time           REAL,
    content_hash          BLOB    NOT NULL DEFAULT x'',
    sender_key_ciphertext BLOB,
    system_event          BLOB,
    envelope_count        INTEGER NOT NULL DEFAULT 0,
    ciphertext_bytes      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (conversation_id, sequence)
) WITHOUT ROWID;
-- No sender index here: no query filters by sender yet and, measured, it costs ~15% of the
-- write path (one more random page per message). The PostgreSQL plan lists it
-- (docs/messaging.md); add it here together with the first query that needs it.
CREATE INDEX messages_expiring ON messages (expire_time)
    WHERE expire_time IS NOT NULL AND delete_time IS NULL;

-- Pairwise ciphertext, one row per recipient device, beside its message's key.
CREATE TABLE envelopes (
    conversation_id   TEXT    NOT NULL,
    sequence          INTEGER NOT NULL,
    device_id         TEXT    NOT NULL,
    user_id           TEXT    NOT NULL,
    type              INTEGER NOT NULL,
    ciphertext        BLOB    NOT NULL,
    ciphertext_sha256 BLOB    NOT NULL,
    PRIMARY KEY (conversation_id, sequence, device_id)
) WITHOUT ROWID;

-- Per recipient user of a client message, from its first delivery or read on: when it was
-- first delivered to one of the user's devices and when the user's read position passed it.
CREATE TABLE receipts (
    conversation_id TEXT    NOT NULL,
    sequence        INTEGER NOT NULL,
    user_id         TEXT    NOT NULL,
    deliver_time    REAL,
    read_time       REAL,
    PRIMARY KEY (conversation_id, sequence, user_id)
) WITHOUT ROWID;

-- One row per device inbox: its sequence counter (last_seq), acknowledged position and
-- number of queued entries. A revoked device's inbox stays (so its seqs are never reused)
-- but receives nothing more.
CREATE TABLE inboxes (
    device_id TEXT    PRIMARY KEY,
    user_id   TEXT    NOT NULL,
    last_seq  INTEGER NOT NULL DEFAULT 0,
    acked_seq INTEGER NOT NULL DEFAULT 0,
    pending   INTEGER NOT NULL DEFAULT 0,
    revoked   INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX inboxes_by_user ON inboxes (user_id);

-- The offline queue: entries not yet acknowledged, per device in seq order. MESSAGE entries
-- point at the stored message (so erasing a message erases every queued copy); receipts and
-- read positions carry their small serialized event.
CREATE TABLE inbox (
    device_id       TEXT    NOT NULL,
    seq             INTEGER NOT NULL,
    kind            INTEGER NOT NULL,               -- 1 message, 2 receipt, 3 read state
    conversation_id TEXT    NOT NULL,
    message_id      TEXT,                           -- kind 1: the message,
    message_seq     INTEGER,                        --   and its sequence
    sender_user     TEXT    NOT NULL DEFAULT '',
    payload         BLOB,
    create_time     REAL    NOT NULL,
    PRIMARY KEY (device_id, seq)
) WITHOUT ROWID;
