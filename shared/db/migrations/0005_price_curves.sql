-- Price curves: what each PriceCurveCreated asked for, kept whole for audit, and what our
-- control system was told to do about it.

CREATE TABLE price_curves (
    event_id            text PRIMARY KEY REFERENCES events (event_id),
    -- Orders curves: a later curve supersedes an earlier one for the same target and period.
    event_created_at    timestamptz NOT NULL,
    price_area          text NOT NULL,
    currency            text,
    energy_unit         text,
    resolution          interval NOT NULL,
    -- The local day (SPARK_TIMEZONE) of the first period: the day the curve is for.
    local_date          date,
    first_period_start  timestamptz,
    last_period_end     timestamptz,
    target_count        integer NOT NULL,
    stored_at           timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX price_curves_local_date_idx ON price_curves (local_date, event_created_at);

-- One row per point: the period [period_start, period_end) with its delta against spot.
-- Spark's timestamps are not always on the hour; each point keeps its own.
CREATE TABLE price_curve_periods (
    event_id            text NOT NULL REFERENCES price_curves (event_id),
    period_start        timestamptz NOT NULL,
    period_end          timestamptz NOT NULL,
    -- The timestamp exactly as Spark wrote it: reports must repeat the event's own.
    spark_timestamp     text NOT NULL,
    price               double precision NOT NULL,
    PRIMARY KEY (event_id, period_start),
    CHECK (period_end > period_start)
);

-- A curve names up to ~100,000 {resourceId, locationId} pairs; stored with COPY.
CREATE TABLE price_curve_targets (
    event_id            text NOT NULL REFERENCES price_curves (event_id),
    resource_id         text NOT NULL,
    location_id         text NOT NULL,
    PRIMARY KEY (event_id, resource_id, location_id)
);

CREATE INDEX price_curve_targets_target_idx ON price_curve_targets (resource_id, location_id);
