-- The inbox: one row per Spark event, keyed by Spark's eventId. The primary key is the
-- deduplication: a repeated delivery can only add a delivery row, never a second event.
CREATE TABLE events (
    event_id            text PRIMARY KEY,
    notification_type   text NOT NULL,
    payload_type        text,
    event_created_at    timestamptz,
    payload             jsonb NOT NULL,
    -- Exactly the bytes of the first delivery, so a signature or parsing question can be
    -- answered later from what Spark really sent.
    raw_body            bytea NOT NULL,
    status              text NOT NULL DEFAULT 'received'
        CHECK (status IN ('received', 'processed', 'unhandled', 'failed')),
    error               text,
    first_received_at   timestamptz NOT NULL,
    last_received_at    timestamptz NOT NULL,
    first_source        text NOT NULL CHECK (first_source IN ('webhook', 'poll')),
    processed_at        timestamptz,
    conflicts           integer NOT NULL DEFAULT 0,
    stored_at           timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX events_type_idx ON events (notification_type, event_created_at DESC);
CREATE INDEX events_status_idx ON events (status) WHERE status <> 'processed';

-- Every delivery of an event, webhook or poll. delivery_id is the Celery task id given at the
-- ingress, so a redelivered task message records its delivery once.
CREATE TABLE event_deliveries (
    delivery_id         text PRIMARY KEY,
    event_id            text NOT NULL REFERENCES events (event_id),
    notification_id     text,
    source              text NOT NULL CHECK (source IN ('webhook', 'poll')),
    received_at         timestamptz NOT NULL,
    body_sha256         bytea NOT NULL,
    -- The body differs from the stored event's: Spark changed an event in place, or
    -- something is wrong upstream. Kept for an operator to look at.
    conflict            boolean NOT NULL DEFAULT false,
    stored_at           timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX event_deliveries_event_idx ON event_deliveries (event_id, received_at);

-- Signed but unusable bodies (not JSON, nested too deep, not an envelope). Nothing Spark
-- signed is dropped: an operator can replay a dead letter after a fix.
CREATE TABLE dead_letters (
    id                  bigserial PRIMARY KEY,
    body_sha256         bytea NOT NULL UNIQUE,
    raw_body            bytea NOT NULL,
    reason              text NOT NULL,
    source              text NOT NULL CHECK (source IN ('webhook', 'poll')),
    first_received_at   timestamptz NOT NULL,
    last_received_at    timestamptz NOT NULL,
    deliveries          integer NOT NULL DEFAULT 1,
    replayed_at         timestamptz,
    replay_result       text
);

-- Progress of the /events backfill, for operators: when it last ran and what it found.
CREATE TABLE backfill_runs (
    id                  bigserial PRIMARY KEY,
    started_at          timestamptz NOT NULL DEFAULT now(),
    finished_at         timestamptz,
    pages               integer NOT NULL DEFAULT 0,
    seen                integer NOT NULL DEFAULT 0,
    enqueued            integer NOT NULL DEFAULT 0,
    error               text
);
