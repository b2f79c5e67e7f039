-- Report kinds: the reports ledger holds every report we owe Spark, not only the energy-usage
-- reports that answer price curves. Each row says which kind it is:
--
--   energy      EnergyUsage payloads answering a price curve (all rows before this
--               migration). Month deadline, parts, exclusions, late readings, corrections.
--   lpc_energy  the energy report after a resource or location LPC event: EnergyUsage or
--               LocationEnergyUsage payloads in the event's own periods and resolution. The
--               same month deadline and due rules as `energy` (settle, max wait, final
--               sweeps); its zone is the price area's of the latest curve that targeted one of
--               its resources, else SPARK_TIMEZONE (LPC events name no price area). One part;
--               no payload rows, exclusions, late readings or corrections.
--   lpc_ack     (rows come with migration 0024) an LPC event's acknowledgement. It has no month
--               deadline (month, first_period_start and last_period_end may be NULL, so
--               month_end and utc_month_end are NULL and every month-based statement passes it
--               by), a `due_by` minutes after its event arrived (the latest it may go, not a
--               point where it is given up), one part, no corrections.
--
-- An LPC event has both an lpc_energy and an lpc_ack row under its event id: a report is
-- identified by (kind, event_id, part), and event_id now references the events it answers
-- through `events` (a price curve's and an LPC event's rows are both there).
SET LOCAL statement_timeout = 0;

ALTER TABLE reports
    ADD COLUMN kind text NOT NULL DEFAULT 'energy'
        CHECK (kind IN ('energy', 'lpc_energy', 'lpc_ack')),
    -- lpc_ack only: the latest it is to be sent.
    ADD COLUMN due_by timestamptz,
    DROP CONSTRAINT reports_event_id_fkey,
    ADD CONSTRAINT reports_event_id_fkey FOREIGN KEY (event_id) REFERENCES events (event_id),
    DROP CONSTRAINT reports_event_id_part_key,
    ADD CONSTRAINT reports_kind_event_id_part_key UNIQUE (kind, event_id, part),
    ALTER COLUMN month DROP NOT NULL,
    ALTER COLUMN first_period_start DROP NOT NULL,
    ALTER COLUMN last_period_end DROP NOT NULL,
    ALTER COLUMN month_end DROP NOT NULL,
    ALTER COLUMN utc_month_end DROP NOT NULL,
    ADD CONSTRAINT reports_kind_shape CHECK (
        CASE kind
            WHEN 'lpc_ack' THEN month IS NULL AND due_by IS NOT NULL AND part = 1 AND parts = 1
            WHEN 'lpc_energy' THEN month IS NOT NULL AND first_period_start IS NOT NULL
                AND last_period_end IS NOT NULL AND due_by IS NULL AND parts = 1
            ELSE month IS NOT NULL AND first_period_start IS NOT NULL
                AND last_period_end IS NOT NULL AND due_by IS NULL
        END);

-- The sweeps look up an event's report of one kind.
CREATE INDEX reports_kind_event_idx ON reports (event_id, kind);
