-- Corrected reports (SPARK_REPORT_CORRECTIONS=replace): a full report of an event sent again,
-- as a new revision, once late readings changed its kWh by more than
-- SPARK_REPORT_CORRECTION_MIN_KWH. Revision 1 is the event's report in `reports`.
CREATE TABLE report_corrections (
    event_id            text NOT NULL REFERENCES price_curves (event_id),
    revision            integer NOT NULL CHECK (revision >= 2),
    -- due: to send; sent: Spark took it; rejected: Spark refused it (4xx); missed: not sent
    -- by the deadline; below_minimum: built, but the change was too small to send.
    status              text NOT NULL CHECK (status IN (
        'due', 'sent', 'rejected', 'missed', 'below_minimum')),
    body                text NOT NULL,
    idempotency_key     text NOT NULL,
    total_kwh           double precision NOT NULL,
    previous_kwh        double precision NOT NULL,
    -- The last late reading (late_readings.recorded_at) this revision includes.
    late_until          timestamptz NOT NULL,
    built_at            timestamptz NOT NULL,
    attempts            integer NOT NULL DEFAULT 0,
    last_error          text,
    response            text,
    spark_report_id     text,
    sent_at             timestamptz,
    PRIMARY KEY (event_id, revision)
);
