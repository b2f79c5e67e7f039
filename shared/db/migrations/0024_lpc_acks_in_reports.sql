-- LPC acknowledgements move onto the reports ledger as reports of kind 'lpc_ack' (migration
-- 0023): one row per resource or location event, with the ledger's states, attempts
-- (report_attempts), leases and lease expiry. Their own outbox, lpc_acks and
-- lpc_ack_attempts (migration 0021), duplicated that state machine and goes, its rows moved.
SET LOCAL statement_timeout = 0;

INSERT INTO reports (
    kind, event_id, part, parts, status, due_by, next_attempt_at, body, built_at,
    idempotency_key, payload_count, attempts, ambiguous_attempts, lease_until, last_error,
    spark_report_id, spark_created_at, sent_at, rejected_status, rejection, alerted_at,
    created_at, updated_at
)
SELECT 'lpc_ack', event_id, 1, 1, status, due_by, next_attempt_at, body, built_at,
       -- An acknowledgement's body is one payload.
       idempotency_key, CASE WHEN body IS NULL THEN NULL ELSE 1 END, attempts,
       ambiguous_attempts, lease_until, last_error, spark_report_id, spark_created_at, sent_at, rejected_status, rejection,
       alerted_at, created_at, updated_at
FROM lpc_acks;

INSERT INTO report_attempts (
    report_id, attempt, started_at, finished_at, outcome, http_status, error, response,
    spark_report_id
)
SELECT r.id, a.attempt, a.started_at, a.finished_at, a.outcome, a.http_status, a.error,
       a.response, a.spark_report_id
FROM lpc_ack_attempts AS a
JOIN reports AS r ON r.kind = 'lpc_ack' AND r.event_id = a.event_id;

DROP TABLE lpc_ack_attempts;
DROP TABLE lpc_acks;
