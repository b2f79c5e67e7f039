-- Limitation of power consumption (LPC): what each ResourceLPCRequested, LocationLPCRequested
-- and LPCReservationCreated asked for, kept per target and period.

CREATE TABLE lpc_events (
    event_id            text PRIMARY KEY REFERENCES events (event_id),
    -- 'resource' (ResourceLPCRequested), 'location' (LocationLPCRequested) or 'reservation'
    -- (LPCReservationCreated: stored and shown, not acted on).
    kind                text NOT NULL CHECK (kind IN ('resource', 'location', 'reservation')),
    event_created_at    timestamptz,
    -- When we stored it: the acknowledgement's deadline counts from here.
    received_at         timestamptz NOT NULL,
    first_period_start  timestamptz,
    last_period_end     timestamptz,
    target_count        integer NOT NULL,
    stored_at           timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX lpc_events_received_idx ON lpc_events (received_at);

-- One row per target, in the payload's order. A resource target names its resource; a
-- location target (and a reservation's) has none. Each target carries its own resolution.
CREATE TABLE lpc_targets (
    event_id            text NOT NULL REFERENCES lpc_events (event_id),
    target_no           integer NOT NULL,
    resource_id         text,
    location_id         text NOT NULL,
    meter_point_id      text NOT NULL,
    resolution          interval NOT NULL CHECK (resolution > interval '0'),
    PRIMARY KEY (event_id, target_no),
    UNIQUE NULLS NOT DISTINCT (event_id, resource_id, location_id, meter_point_id)
);

-- The cap of one target over [period_start, period_end): an instantaneous maximum, not an
-- average. spark_timestamp is the point's timestamp as Spark wrote it.
CREATE TABLE lpc_caps (
    event_id            text NOT NULL,
    target_no           integer NOT NULL,
    period_start        timestamptz NOT NULL,
    period_end          timestamptz NOT NULL,
    spark_timestamp     text NOT NULL,
    max_kw              double precision NOT NULL CHECK (max_kw >= 0),
    PRIMARY KEY (event_id, target_no, period_start),
    FOREIGN KEY (event_id, target_no) REFERENCES lpc_targets (event_id, target_no),
    CHECK (period_end > period_start)
);
