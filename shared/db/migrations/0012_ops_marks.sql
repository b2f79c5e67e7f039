-- Operations. `ops_marks` holds the time of the last "something happened" that no other table
-- records, by name (e.g. `delivery_log_check`), with an optional detail (counts) for `status`
-- and the metrics. One row per name: a mark only moves forward in time.
CREATE TABLE ops_marks (
    name    text PRIMARY KEY,
    at      timestamptz NOT NULL,
    detail  jsonb
);

-- "When did the last webhook arrive?" for `status` and the metrics, read at every scrape:
-- the newest webhook delivery, found from the end of this index instead of a scan.
CREATE INDEX event_deliveries_webhook_received_idx
    ON event_deliveries (received_at) WHERE source = 'webhook';

-- The other questions asked at every scrape, each answered from a small index: events stored
-- in the last 24 hours, conflicting deliveries, failed plans.
CREATE INDEX events_stored_at_idx ON events (stored_at);
CREATE INDEX event_deliveries_conflict_idx ON event_deliveries (received_at) WHERE conflict;
CREATE INDEX curve_dispatches_failed_idx ON curve_dispatches (event_id) WHERE status = 'failed';
