-- Group service schema (PostgreSQL), in schema "group". The same tables as the SQLite
-- schema: times are epoch seconds (double precision, so rows round-trip exactly); ids are
-- UUID strings compared byte-wise (COLLATE "C"), as in SQLite.
--
-- The `seq` columns are identities with the default CACHE 1, so every session draws from
-- one increasing sequence: a group's rows, written under the group's row lock, get their
-- seqs in commit order (the relay's per-group order relies on it for pending_changes).

-- `revision` is bumped on every change to what a Group resource shows (settings, owner,
-- member count); the etag is derived from it.
CREATE TABLE groups (
    id            TEXT COLLATE "C" PRIMARY KEY,
    display_name  TEXT             NOT NULL,
    description   TEXT             NOT NULL DEFAULT '',
    discoverable  BOOLEAN          NOT NULL DEFAULT FALSE,
    owner_id      TEXT COLLATE "C" NOT NULL,
    create_time   DOUBLE PRECISION NOT NULL,
    update_time   DOUBLE PRECISION NOT NULL,
    revision      BIGINT           NOT NULL DEFAULT 1
);
CREATE INDEX groups_by_owner ON groups (owner_id);

-- `seq` orders memberships by when they began: "longest-standing" for succession, the
-- keyset of ListMembers (ascending) and of ListGroups (descending, most recent join first).
-- role: 1 OWNER, 2 ADMIN, 3 MEMBER (the proto's numbers).
CREATE TABLE members (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    group_id   TEXT COLLATE "C" NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    user_id    TEXT COLLATE "C" NOT NULL,
    role       SMALLINT         NOT NULL CHECK (role IN (1, 2, 3)),
    added_by   TEXT COLLATE "C" NOT NULL DEFAULT '',
    invite_id  TEXT COLLATE "C" NOT NULL DEFAULT '',
    join_time  DOUBLE PRECISION NOT NULL,
    UNIQUE (group_id, user_id)
);
CREATE INDEX members_by_user ON members (user_id, seq);
CREATE INDEX members_by_group ON members (group_id, seq);
-- At most one owner per group, whatever the code does.
CREATE UNIQUE INDEX members_one_owner ON members (group_id) WHERE role = 1;

-- Invite links; the token itself is never stored, only its SHA-256. Revoking deletes the
-- row; expired and used-up rows stay a while (purged later) so a holder is told why.
CREATE TABLE invites (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id          TEXT COLLATE "C" NOT NULL UNIQUE,
    group_id    TEXT COLLATE "C" NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    token_hash  BYTEA            NOT NULL UNIQUE,
    creator_id  TEXT COLLATE "C" NOT NULL,
    create_time DOUBLE PRECISION NOT NULL,
    expire_time DOUBLE PRECISION NOT NULL,
    max_uses    INTEGER          NOT NULL,
    use_count   INTEGER          NOT NULL DEFAULT 0
);
CREATE INDEX invites_by_group ON invites (group_id, seq);

-- Membership changes not yet accepted by messaging (ApplyGroupMembershipChange), written
-- in the same transaction as the change. No foreign key: a deleted group's last change
-- must outlive the group. Relayed per group in `seq` order, deleted once accepted.
CREATE TABLE pending_changes (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    change_id   TEXT COLLATE "C" NOT NULL UNIQUE,
    group_id    TEXT COLLATE "C" NOT NULL,
    request     BYTEA            NOT NULL,
    create_time DOUBLE PRECISION NOT NULL
);
CREATE INDEX pending_changes_by_group ON pending_changes (group_id, seq);

-- Which relay instance may send a group's pending changes right now, so replicas sharing
-- one database never send one group's changes out of order.
CREATE TABLE relay_leases (
    group_id    TEXT COLLATE "C" PRIMARY KEY,
    holder      TEXT             NOT NULL,
    expire_time DOUBLE PRECISION NOT NULL
);
