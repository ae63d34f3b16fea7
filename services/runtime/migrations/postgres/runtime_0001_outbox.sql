-- Transactional outbox (PostgreSQL): events are written in the same transaction as the
-- state change they describe and relayed to the bus afterwards, so a crash never loses one.
-- Lives in each service's schema, beside the tables it describes.
CREATE TABLE outbox (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id   TEXT        NOT NULL UNIQUE,
    topic      TEXT        NOT NULL,
    key        TEXT        NOT NULL,
    type_name  TEXT        NOT NULL,
    payload    BYTEA       NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Events a consumer has handled, so redelivery (at-least-once) has no second effect.
CREATE TABLE processed_events (
    consumer   TEXT        NOT NULL,
    event_id   TEXT        NOT NULL,
    handled_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
CREATE INDEX processed_events_by_time ON processed_events (handled_at);
