-- Reports: each report's month and deadline in its price area's zone (worker/reports/zones.py),
-- and the targets an event's report leaves out, with the reason.

-- The zone of the report's month (plan_reports sets it from the curve's price area; reports
-- planned before this migration were planned in SPARK_TIMEZONE, which a migration cannot read,
-- and keep its default, Europe/Oslo), and the instants its month ends: in that zone
-- (month_end; the deadline is month_end + SPARK_REPORT_GRACE) and in UTC for the month the
-- first period falls in there (utc_month_end). Spark does not say which one it counts in, so
-- the sweeps aim at the earlier of the two.
SET LOCAL statement_timeout = 0;
ALTER TABLE reports
    ADD COLUMN zone text NOT NULL DEFAULT 'Europe/Oslo',
    ADD COLUMN month_end timestamptz NOT NULL
        GENERATED ALWAYS AS ((month + interval '1 month')::timestamp AT TIME ZONE zone) STORED,
    ADD COLUMN utc_month_end timestamptz NOT NULL
        GENERATED ALWAYS AS (
            (date_trunc('month', first_period_start AT TIME ZONE 'UTC') + interval '1 month')
                AT TIME ZONE 'UTC'
        ) STORED;

-- Targets of an event that its report does not carry, and why:
--   no_readings: nothing read by the time the report was built (no energy to report);
--   user_deleted: the target's user was deleted at Spark, which would refuse the payload;
--   meter_point_not_at_location: the resource's meterPointId is not one of its location's;
--   refused_by_spark: Spark refused the report naming this target (set aside; `detail` has
--   Spark's message), the rest of the report was sent again without it.
CREATE TABLE report_exclusions (
    event_id            text NOT NULL REFERENCES price_curves (event_id),
    resource_id         text NOT NULL,
    location_id         text NOT NULL,
    reason              text NOT NULL CHECK (reason IN (
        'no_readings', 'user_deleted', 'meter_point_not_at_location', 'refused_by_spark')),
    detail              text,
    recorded_at         timestamptz NOT NULL,
    PRIMARY KEY (event_id, resource_id, location_id)
);
