-- Transactional outbox: events are written in the same transaction as the state change
-- they describe and relayed to the bus afterwards, so a crash never loses one.
CREATE TABLE outbox (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id   TEXT    NOT NULL UNIQUE,
    topic      TEXT    NOT NULL,
    key        TEXT    NOT NULL,
    type_name  TEXT    NOT NULL,
    payload    BLOB    NOT NULL,
    created_at REAL    NOT NULL
);

-- Events a consumer has handled, so redelivery (at-least-once) has no second effect.
CREATE TABLE processed_events (
    consumer   TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    handled_at REAL NOT NULL,
    PRIMARY KEY (consumer, event_id)
);
