-- Group service schema (SQLite). Times are epoch seconds (REAL); ids are UUID strings.

-- `revision` is bumped on every change to what a Group resource shows (settings, owner,
-- member count); the etag is derived from it.
CREATE TABLE groups (
    id            TEXT    PRIMARY KEY,
    display_name  TEXT    NOT NULL,
    description   TEXT    NOT NULL DEFAULT '',
    discoverable  INTEGER NOT NULL DEFAULT 0,
    owner_id      TEXT    NOT NULL,
    create_time   REAL    NOT NULL,
    update_time   REAL    NOT NULL,
    revision      INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX groups_by_owner ON groups (owner_id);

-- `seq` orders memberships by when they began: "longest-standing" for succession, the
-- keyset of ListMembers (ascending) and of ListGroups (descending, most recent join first).
-- role: 1 OWNER, 2 ADMIN, 3 MEMBER (the proto's numbers).
CREATE TABLE members (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    group_id   TEXT    NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    user_id    TEXT    NOT NULL,
    role       INTEGER NOT NULL CHECK (role IN (1, 2, 3)),
    added_by   TEXT    NOT NULL DEFAULT '',
    invite_id  TEXT    NOT NULL DEFAULT '',
    join_time  REAL    NOT NULL,
    UNIQUE (group_id, user_id)
);
CREATE INDEX members_by_user ON members (user_id, seq);
-- At most one owner per group, whatever the code does.
CREATE UNIQUE INDEX members_one_owner ON members (group_id) WHERE role = 1;

-- Invite links; the token itself is never stored, only its SHA-256. Revoking deletes the
-- row; expired and used-up rows stay a while (purged later) so a holder is told why.
CREATE TABLE invites (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT    NOT NULL UNIQUE,
    group_id    TEXT    NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    token_hash  BLOB    NOT NULL UNIQUE,
    creator_id  TEXT    NOT NULL,
    create_time REAL    NOT NULL,
    expire_time REAL    NOT NULL,
    max_uses    INTEGER NOT NULL,
    use_count   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX invites_by_group ON invites (group_id, seq);

-- Membership changes not yet accepted by messaging (ApplyGroupMembershipChange), written
-- in the same transaction as the change. No foreign key: a deleted group's last change
-- must outlive the group. Relayed per group in `seq` order, deleted once accepted.
CREATE TABLE pending_changes (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    change_id   TEXT    NOT NULL UNIQUE,
    group_id    TEXT    NOT NULL,
    request     BLOB    NOT NULL,
    create_time REAL    NOT NULL
);
CREATE INDEX pending_changes_by_group ON pending_changes (group_id, seq);

-- Which relay instance may send a group's pending changes right now, so replicas sharing
-- one database never send one group's changes out of order.
CREATE TABLE relay_leases (
    group_id    TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    expire_time REAL NOT NULL
);
