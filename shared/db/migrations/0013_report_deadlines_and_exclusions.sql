-- Reports: each report's month and deadline in its price area's zone (worker/reports/zones.py),
-- and the targets an event's report leaves out, with the reason.

-- The zone of the report's month, and the instants its month ends: in that zone (month_end;
-- the deadline is month_end + SPARK_REPORT_GRACE) and in UTC (utc_month_end). Spark does not
-- say which one it counts in, so the sweeps aim at the earlier of the two.
ALTER TABLE reports
    ADD COLUMN zone text,
    ADD COLUMN month_end timestamptz,
    ADD COLUMN utc_month_end timestamptz;

-- Reports planned before this migration were planned in SPARK_TIMEZONE, which a migration
-- cannot read: they keep their month, in its default zone (Europe/Oslo).
UPDATE reports
SET zone = 'Europe/Oslo',
    month_end = (month + interval '1 month')::timestamp AT TIME ZONE 'Europe/Oslo',
    utc_month_end = (date_trunc('month', first_period_start AT TIME ZONE 'UTC')
                     + interval '1 month') AT TIME ZONE 'UTC';

ALTER TABLE reports
    ALTER COLUMN zone SET NOT NULL,
    ALTER COLUMN month_end SET NOT NULL,
    ALTER COLUMN utc_month_end SET NOT NULL;

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
