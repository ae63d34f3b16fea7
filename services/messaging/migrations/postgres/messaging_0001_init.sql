-- Messaging schema (PostgreSQL), in schema "messaging". The same tables as the SQLite
-- schema (docs/messaging.md "Data model"): times are epoch seconds (double precision, so
-- rows round-trip exactly as the store's floats), ids are UUID strings compared byte-wise
-- (COLLATE "C", as in SQLite: keyset pages order the same on both backends).
--
-- Counters are columns, never SEQUENCEs: a conversation's last_sequence and a device
-- inbox's last_seq are bumped inside the transaction that uses them, under the row's lock,
-- so values are gapless and commit-ordered (services/messaging/postgres.py).
--
-- messages and envelopes are partitioned by month on create_time (seed §6.1); the
-- partitions are created ahead by services/runtime/partitions.py (PartitionMaintainer,
-- started by app.py). Rows that point at a message (inbox entries, message_ids) carry its
-- create_time, so their joins prune to one partition.

-- Updated on every send (last_sequence, last_activity_time): fillfactor leaves room on the
-- page for HOT updates (no indexed column changes).
CREATE TABLE conversations (
    id                 TEXT COLLATE "C" PRIMARY KEY,
    type               SMALLINT         NOT NULL CHECK (type IN (1, 2)),  -- 1 direct, 2 group
    group_id           TEXT COLLATE "C" NOT NULL DEFAULT '',
    direct_key         TEXT COLLATE "C" UNIQUE,      -- "<user>:<user>" sorted; NULL for groups
    message_ttl_s      DOUBLE PRECISION,
    create_time        DOUBLE PRECISION NOT NULL,
    update_time        DOUBLE PRECISION NOT NULL,
    last_sequence      BIGINT           NOT NULL DEFAULT 0,
    last_activity_time DOUBLE PRECISION NOT NULL,
    closed             BOOLEAN          NOT NULL DEFAULT FALSE,
    version            BIGINT           NOT NULL DEFAULT 1,
    settings_version   BIGINT           NOT NULL DEFAULT 1
) WITH (fillfactor = 80);

-- Current members, with the user's read position (shared by the user's devices).
CREATE TABLE members (
    conversation_id TEXT COLLATE "C" NOT NULL REFERENCES conversations(id),
    user_id         TEXT COLLATE "C" NOT NULL,
    joined_sequence BIGINT           NOT NULL,
    admin           BOOLEAN          NOT NULL DEFAULT FALSE,
    read_sequence   BIGINT           NOT NULL DEFAULT 0,
    read_time       DOUBLE PRECISION,
    PRIMARY KEY (conversation_id, user_id)
) WITH (fillfactor = 90);
CREATE INDEX members_by_user ON members (user_id, conversation_id);

-- Group membership changes already applied (ApplyGroupMembershipChange is idempotent: the
-- primary key decides which of two concurrent applications of one change_id applies it).
CREATE TABLE group_changes (
    change_id       TEXT COLLATE "C" PRIMARY KEY,
    conversation_id TEXT COLLATE "C" NOT NULL,
    sequence        BIGINT           NOT NULL,
    apply_time      DOUBLE PRECISION NOT NULL
);

-- Message ids are client-made and globally unique (the idempotency key of SendMessage). A
-- partitioned table's unique keys must contain the partition key, so `messages` cannot
-- enforce that alone: this small unpartitioned table does (its primary key decides between
-- concurrent retries of one id), written in the same transaction as the message, and it is
-- how a lookup by id (GetMessage, DeleteMessage, the idempotency check) finds the message's
-- partition.
CREATE TABLE message_ids (
    id              TEXT COLLATE "C" PRIMARY KEY,
    conversation_id TEXT COLLATE "C" NOT NULL,
    sequence        BIGINT           NOT NULL,
    create_time     DOUBLE PRECISION NOT NULL
);

-- Every conversation entry: client messages and SystemEvents. A tombstone has delete_time
-- set and its ciphertext (sender_key_ciphertext, envelopes) erased; content_hash stays.
--
-- The primary key is the seed's covering "conversation + time" index, ordered the way
-- Zynk orders a conversation: by sequence (commit order), with create_time (the partition
-- key, which PostgreSQL requires in every unique key) after it. History pages are ranges of
-- it; the INCLUDE columns let MarkRead find the senders of a range from the index alone.
CREATE TABLE messages (
    conversation_id       TEXT COLLATE "C" NOT NULL,
    sequence              BIGINT           NOT NULL,
    create_time           DOUBLE PRECISION NOT NULL,
    id                    TEXT COLLATE "C" NOT NULL,
    kind                  SMALLINT         NOT NULL,  -- 1 pairwise, 2 sender key, 3 system
    sender_user           TEXT COLLATE "C" NOT NULL DEFAULT '',
    sender_device         TEXT COLLATE "C" NOT NULL DEFAULT '',
    expire_time           DOUBLE PRECISION,
    delete_time           DOUBLE PRECISION,
    content_hash          BYTEA            NOT NULL DEFAULT '\x',
    sender_key_ciphertext BYTEA,
    system_event          BYTEA,
    envelope_count        INTEGER          NOT NULL DEFAULT 0,
    ciphertext_bytes      INTEGER          NOT NULL DEFAULT 0,
    PRIMARY KEY (conversation_id, sequence, create_time) INCLUDE (sender_user, kind)
) PARTITION BY RANGE (create_time);
-- The seed's sender index: a user's messages (account erasure, export). SystemEvents have
-- no sender and stay out of it.
CREATE INDEX messages_by_sender ON messages (sender_user, create_time)
    WHERE sender_user <> '';
-- Disappearing messages still holding ciphertext, by expiry (the sweeper's scan).
CREATE INDEX messages_expiring ON messages (expire_time)
    WHERE expire_time IS NOT NULL AND delete_time IS NULL;

-- Pairwise ciphertext, one row per recipient device, in its message's partition.
CREATE TABLE envelopes (
    conversation_id   TEXT COLLATE "C" NOT NULL,
    sequence          BIGINT           NOT NULL,
    device_id         TEXT COLLATE "C" NOT NULL,
    create_time       DOUBLE PRECISION NOT NULL,
    user_id           TEXT COLLATE "C" NOT NULL,
    type              SMALLINT         NOT NULL,
    ciphertext        BYTEA            NOT NULL,
    ciphertext_sha256 BYTEA            NOT NULL,
    PRIMARY KEY (conversation_id, sequence, device_id, create_time)
) PARTITION BY RANGE (create_time);

-- Per recipient user of a client message, from its first delivery or read on: when it was
-- first delivered to one of the user's devices and when the user's read position passed it.
CREATE TABLE receipts (
    conversation_id TEXT COLLATE "C" NOT NULL,
    sequence        BIGINT           NOT NULL,
    user_id         TEXT COLLATE "C" NOT NULL,
    deliver_time    DOUBLE PRECISION,
    read_time       DOUBLE PRECISION,
    PRIMARY KEY (conversation_id, sequence, user_id)
);

-- One row per device inbox: its sequence counter (last_seq), acknowledged position and
-- number of queued entries. A revoked device's inbox stays (so its seqs are never reused)
-- but receives nothing more. Updated on every send and acknowledgement: room for HOT.
CREATE TABLE inboxes (
    device_id TEXT COLLATE "C" PRIMARY KEY,
    user_id   TEXT COLLATE "C" NOT NULL,
    last_seq  BIGINT           NOT NULL DEFAULT 0,
    acked_seq BIGINT           NOT NULL DEFAULT 0,
    pending   BIGINT           NOT NULL DEFAULT 0,
    revoked   BOOLEAN          NOT NULL DEFAULT FALSE
) WITH (fillfactor = 70);
CREATE INDEX inboxes_by_user ON inboxes (user_id);

-- The offline queue: entries not yet acknowledged, per device in seq order (an entry exists
-- exactly while it is undelivered: acknowledging deletes it). MESSAGE entries point at the
-- stored message, with its create_time (message_time) so the join prunes partitions;
-- receipts and read positions carry their small serialized event.
CREATE TABLE inbox (
    device_id       TEXT COLLATE "C" NOT NULL,
    seq             BIGINT           NOT NULL,
    kind            SMALLINT         NOT NULL,       -- 1 message, 2 receipt, 3 read state
    conversation_id TEXT COLLATE "C" NOT NULL,
    message_id      TEXT COLLATE "C",                -- kind 1: the message,
    message_seq     BIGINT,                          --   its sequence
    message_time    DOUBLE PRECISION,                --   and its create_time
    sender_user     TEXT COLLATE "C" NOT NULL DEFAULT '',
    payload         BYTEA,
    create_time     DOUBLE PRECISION NOT NULL,       -- when it was queued
    PRIMARY KEY (device_id, seq)
);
-- The seed's "undelivered" index: undelivered messages (not receipts) across all devices,
-- oldest first, for jobs that act on queues nobody drains (reminder pushes, abandoned
-- devices). Per device, the primary key already is the undelivered list.
CREATE INDEX inbox_undelivered ON inbox (create_time) WHERE kind = 1;
