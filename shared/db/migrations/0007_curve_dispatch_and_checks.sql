-- What each target of a price curve was told, and the daily check for tomorrow's curve.

-- One decision per (curve, target). The plan itself is not stored here: it is computed from
-- the curve tables each time it is sent, so it always reflects supersession, and it can never
-- be lost while the curve is kept. This row holds the state of its delivery.
CREATE TABLE curve_dispatches (
    event_id            text NOT NULL REFERENCES price_curves (event_id),
    resource_id         text NOT NULL,
    location_id         text NOT NULL,
    status              text NOT NULL
        CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'skipped')),
    -- Bumped when a newer curve changes this target's plan: the plan is sent again, and the
    -- result of an attempt that sent an older revision is ignored.
    revision            integer NOT NULL DEFAULT 1,
    -- Attempts at the current revision.
    attempts            integer NOT NULL DEFAULT 0,
    -- 'pending': when to try; 'sending': when the attempt counts as lost (its worker died)
    -- and may be claimed again.
    next_attempt_at     timestamptz NOT NULL,
    -- Why it failed, was skipped, or (while retrying) what the last attempt hit.
    reason              text,
    dispatcher          text,
    sent_revision       integer,
    sent_at             timestamptz,
    updated_at          timestamptz NOT NULL,
    PRIMARY KEY (event_id, resource_id, location_id)
);

CREATE INDEX curve_dispatches_due_idx ON curve_dispatches (next_attempt_at)
    WHERE status IN ('pending', 'sending');

-- The daily check: one row per local day whose curve is awaited (tomorrow, at check time).
CREATE TABLE curve_checks (
    curve_date          date PRIMARY KEY,
    -- 'open' while still looking; then 'present' (every expected area has one, or, with no
    -- expectations, some curve came), 'missing' (alerted), or 'none' (nothing expected, none
    -- came).
    status              text NOT NULL DEFAULT 'open'
        CHECK (status IN ('open', 'present', 'missing', 'none')),
    expected_areas      text[] NOT NULL,
    present_areas       text[] NOT NULL DEFAULT '{}',
    missing_areas       text[] NOT NULL DEFAULT '{}',
    curve_event_ids     text[] NOT NULL DEFAULT '{}',
    runs                integer NOT NULL DEFAULT 0,
    -- A run in progress holds the check until then; a crashed run's claim simply expires.
    claimed_until       timestamptz,
    backfill_enqueued   integer,
    backfill_error      text,
    first_run_at        timestamptz,
    last_run_at         timestamptz,
    finished_at         timestamptz
);
