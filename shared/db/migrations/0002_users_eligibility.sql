-- The partner's registry of users, their locations and resources, as synced to Spark, and
-- Spark's verdict on their eligibility with the history of every change.

CREATE TABLE users (
    user_id             text PRIMARY KEY,
    -- Consent to take part, as the partner's own systems recorded it; SPARK_AUTO_ENROLL=consented
    -- enrolls exactly these users when they become eligible.
    consented           boolean NOT NULL DEFAULT false,
    -- false: Spark listed the user (e.g. created in Spark by other means) before our
    -- registry knew of it.
    known_locally       boolean NOT NULL DEFAULT true,
    eligible            boolean NOT NULL DEFAULT false,
    eligible_changed_at timestamptz,
    enrolled            boolean NOT NULL DEFAULT false,
    enrollment_id       text,
    enrolled_at         timestamptz,
    -- Registry → Spark: synced_at is NULL while there is something to push.
    synced_at           timestamptz,
    sync_error          text,
    -- Deletion: requested now, or scheduled for right after the month's final reports.
    delete_after_month  date CHECK (delete_after_month = date_trunc('month', delete_after_month)),
    deleted_at          timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX users_eligible_idx ON users (user_id) WHERE eligible;
CREATE INDEX users_unsynced_idx ON users (user_id) WHERE synced_at IS NULL AND deleted_at IS NULL;

CREATE TABLE locations (
    location_id         text PRIMARY KEY,
    user_id             text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    location_type       text NOT NULL DEFAULT 'Unknown'
        CHECK (location_type IN ('Unknown', 'Residential', 'Commercial', 'Other')),
    meter_point_ids     text[] NOT NULL DEFAULT '{}',
    latitude            double precision CHECK (latitude BETWEEN -90 AND 90),
    longitude           double precision CHECK (longitude BETWEEN -180 AND 180),
    synced_at           timestamptz,
    sync_error          text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CHECK ((latitude IS NULL) = (longitude IS NULL))
);

CREATE INDEX locations_user_idx ON locations (user_id);

CREATE TABLE resources (
    resource_id         text PRIMARY KEY,
    user_id             text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    -- NULL for vehicles, which Spark registers on the user, not on a location.
    location_id         text REFERENCES locations (location_id) ON DELETE CASCADE,
    resource_type       text NOT NULL CHECK (resource_type IN (
        'Generic', 'Vehicle', 'Charger', 'HotWaterTank', 'HVAC', 'SolarInverter')),
    meter_point_id      text,
    synced_at           timestamptz,
    sync_error          text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CHECK (location_id IS NOT NULL OR resource_type = 'Vehicle')
);

CREATE INDEX resources_user_idx ON resources (user_id);
CREATE INDEX resources_location_idx ON resources (location_id);

-- A full comparison of Spark's /users/eligible with our state. Event-triggered requests
-- collapse into the one pending row (the partial unique index), so a burst of eligibility
-- events causes one reconcile.
CREATE TABLE eligibility_reconciles (
    id                  bigserial PRIMARY KEY,
    trigger             text NOT NULL CHECK (trigger IN ('event', 'daily', 'manual')),
    status              text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'running', 'done', 'failed')),
    requested_at        timestamptz NOT NULL DEFAULT now(),
    due_at              timestamptz NOT NULL DEFAULT now(),
    started_at          timestamptz,
    finished_at         timestamptz,
    attempts            integer NOT NULL DEFAULT 0,
    spark_eligible      integer,
    became_eligible     integer,
    lost_eligibility    integer,
    unknown_users       integer,
    error               text
);

CREATE UNIQUE INDEX eligibility_reconciles_one_pending_idx
    ON eligibility_reconciles ((true)) WHERE status = 'pending';

-- What each UserEligibilityUpdated said: hints, not truth (Spark has not always announced
-- removals); the reconcile decides.
CREATE TABLE eligibility_hints (
    event_id            text NOT NULL REFERENCES events (event_id),
    user_id             text NOT NULL,
    change              text NOT NULL CHECK (change IN ('added', 'removed')),
    reconcile_id        bigint REFERENCES eligibility_reconciles (id),
    PRIMARY KEY (event_id, user_id, change)
);

CREATE INDEX eligibility_hints_user_idx ON eligibility_hints (user_id);

CREATE TABLE eligibility_transitions (
    id                  bigserial PRIMARY KEY,
    user_id             text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    became_eligible     boolean NOT NULL,
    at                  timestamptz NOT NULL DEFAULT now(),
    -- 'event': an eligibility event announced it; 'reconcile': only the comparison found it.
    reason              text NOT NULL CHECK (reason IN ('event', 'reconcile')),
    event_id            text REFERENCES events (event_id),
    reconcile_id        bigint NOT NULL REFERENCES eligibility_reconciles (id)
);

CREATE INDEX eligibility_transitions_user_idx ON eligibility_transitions (user_id, at);
