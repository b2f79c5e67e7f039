-- Limitation of power consumption: events, targets and caps.

-- name: insert_lpc_event
INSERT INTO lpc_events (
    event_id, kind, event_created_at, received_at, first_period_start, last_period_end,
    target_count
)
VALUES (
    %(event_id)s, %(kind)s, %(event_created_at)s, %(received_at)s, %(first_period_start)s,
    %(last_period_end)s, %(target_count)s
)
ON CONFLICT (event_id) DO NOTHING
RETURNING event_id;

-- name: insert_lpc_targets
INSERT INTO lpc_targets (
    event_id, target_no, resource_id, location_id, meter_point_id, resolution
)
SELECT %(event_id)s, t.target_no, t.resource_id, t.location_id, t.meter_point_id, t.resolution
FROM unnest(
    %(target_nos)s::integer[], %(resource_ids)s::text[], %(location_ids)s::text[],
    %(meter_point_ids)s::text[], %(resolutions)s::interval[]
) AS t (target_no, resource_id, location_id, meter_point_id, resolution);

-- name: insert_lpc_caps
INSERT INTO lpc_caps (event_id, target_no, period_start, period_end, spark_timestamp, max_kw)
SELECT %(event_id)s, c.target_no, c.period_start, c.period_end, c.spark_timestamp, c.max_kw
FROM unnest(
    %(target_nos)s::integer[], %(starts)s::timestamptz[], %(ends)s::timestamptz[],
    %(timestamps)s::text[], %(max_kws)s::double precision[]
) AS c (target_no, period_start, period_end, spark_timestamp, max_kw);

-- name: list_lpc_events
SELECT l.event_id, l.kind, e.notification_type, l.event_created_at, l.received_at,
       l.first_period_start, l.last_period_end, l.target_count, e.status AS event_status,
       a.status AS ack_status
FROM lpc_events AS l
JOIN events AS e USING (event_id)
LEFT JOIN reports AS a ON a.kind = 'lpc_ack' AND a.event_id = l.event_id
ORDER BY l.received_at DESC, l.event_id
LIMIT %(limit)s;

-- name: get_lpc_event
SELECT l.event_id, l.kind, e.notification_type, l.event_created_at, l.received_at,
       l.first_period_start, l.last_period_end, l.target_count, e.status AS event_status,
       a.status AS ack_status
FROM lpc_events AS l
JOIN events AS e USING (event_id)
LEFT JOIN reports AS a ON a.kind = 'lpc_ack' AND a.event_id = l.event_id
WHERE l.event_id = %(event_id)s;

-- name: list_lpc_targets
-- `known`: whether our registry has the target (lpc_target_registry); an unknown one is not
-- dispatched and is declined. `control_*`: its dispatch to the control system, if any.
SELECT t.target_no, t.resource_id, t.location_id, t.meter_point_id, t.resolution, t.known,
       d.status AS control_status, d.attempts AS control_attempts, d.reason AS control_reason,
       d.dispatcher AS control_dispatcher, d.sent_at AS control_sent_at,
       d.next_attempt_at AS control_next_attempt_at, d.updated_at AS control_updated_at
FROM lpc_target_registry AS t
LEFT JOIN lpc_dispatches AS d USING (event_id, target_no)
WHERE t.event_id = %(event_id)s
ORDER BY t.target_no;

-- name: list_lpc_caps
SELECT target_no, period_start, period_end, spark_timestamp, max_kw
FROM lpc_caps
WHERE event_id = %(event_id)s
ORDER BY target_no, period_start;

-- Acknowledgements: reports of kind 'lpc_ack' in the reports ledger, one per resource or
-- location event. Claimed, attempted, recorded and taken back from dead senders by the
-- ledger's own queries (claim_report with kinds ['lpc_ack'], start_report_attempt,
-- report_to_send, finish_report_attempt, record_report_*, expire_report_leases); these are
-- what is an acknowledgement's own: when it is due, its body, its alert.

-- name: insert_lpc_ack
-- In the event's transaction: due at send_at (just before due_by, the latest Spark should
-- have it); sooner once every target has the control system's answer
-- (make_answered_lpc_acks_due). None when planned before.
INSERT INTO reports (kind, event_id, status, due_by, next_attempt_at, created_at, updated_at)
VALUES ('lpc_ack', %(event_id)s, 'due', %(due_by)s, %(send_at)s, %(now)s, %(now)s)
ON CONFLICT (kind, event_id, part) DO NOTHING
RETURNING id;

-- name: make_answered_lpc_acks_due
-- The acknowledgements of these events, not built yet, whose every dispatched target has an
-- answer (or that have none to wait for): due now rather than at send_at.
UPDATE reports a
SET next_attempt_at = %(now)s, updated_at = %(now)s
WHERE a.kind = 'lpc_ack'
  AND a.event_id = ANY (%(event_ids)s::text[])
  AND a.status = 'due'
  AND a.body IS NULL
  AND a.next_attempt_at > %(now)s
  AND NOT EXISTS (
      SELECT 1 FROM lpc_dispatches d
      WHERE d.event_id = a.event_id AND d.status IN ('pending', 'sending')
  )
RETURNING a.event_id;

-- name: lpc_ack_event_kind
-- `late`: the event came when its first period had begun; its acknowledgement did not wait.
SELECT kind, coalesce(first_period_start <= received_at, false) AS late
FROM lpc_events
WHERE event_id = %(event_id)s;

-- name: build_lpc_ack
UPDATE reports
SET body = %(body)s, built_at = %(now)s, idempotency_key = %(idempotency_key)s,
    payload_count = 1, updated_at = %(now)s
WHERE id = %(id)s AND kind = 'lpc_ack';

-- name: claim_lpc_ack_alerts
-- Acknowledgements not accepted within %(alert_after)s of their event's arrival, each once.
UPDATE reports a
SET alerted_at = %(now)s, updated_at = %(now)s
FROM lpc_events e
WHERE e.event_id = a.event_id
  AND a.kind = 'lpc_ack'
  AND a.status <> 'sent'
  AND a.alerted_at IS NULL
  AND e.received_at + %(alert_after)s::interval <= %(now)s
RETURNING a.event_id, a.status, a.attempts, e.received_at,
          coalesce(a.rejection, a.last_error) AS last_error;

-- name: next_lpc_ack_attempt_at
SELECT min(next_attempt_at) AS next_attempt_at
FROM reports
WHERE kind = 'lpc_ack' AND status IN ('due', 'retrying');

-- name: get_lpc_ack
SELECT id, event_id, status, due_by, next_attempt_at, attempts, ambiguous_attempts, last_error,
       spark_report_id, sent_at, rejected_status, rejection, alerted_at, body
FROM reports
WHERE kind = 'lpc_ack' AND event_id = %(event_id)s;

-- name: list_lpc_ack_attempts
SELECT t.attempt, t.started_at, t.finished_at, t.outcome, t.http_status, t.error,
       t.spark_report_id, t.retry_after_seconds
FROM report_attempts AS t
JOIN reports AS r ON r.id = t.report_id
WHERE r.kind = 'lpc_ack' AND r.event_id = %(event_id)s
ORDER BY t.attempt;

-- Caps to the control system (lpc_dispatches): the dispatch runs of worker/curves/dispatch.py
-- claim and record these as they do curve_dispatches.

-- name: insert_lpc_dispatches
-- In the event's transaction, with its acknowledgement: one plan per target our registry
-- knows, due now. The others are not dispatched; the acknowledgement declines them.
INSERT INTO lpc_dispatches (event_id, target_no, status, next_attempt_at, updated_at)
SELECT event_id, target_no, 'pending', %(now)s, %(now)s
FROM lpc_target_registry
WHERE event_id = %(event_id)s AND known
ON CONFLICT (event_id, target_no) DO NOTHING;

-- name: claim_due_lpc_dispatches
-- As claim_due_dispatches: pending plans whose time has come, and 'sending' ones whose
-- attempt outlived its lease. Oldest first: an acknowledgement waits on them.
WITH due AS (
    SELECT event_id, target_no
    FROM lpc_dispatches
    WHERE status IN ('pending', 'sending')
      AND next_attempt_at <= %(now)s
    ORDER BY next_attempt_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE lpc_dispatches d
SET status = 'sending',
    attempts = d.attempts + 1,
    next_attempt_at = %(lease_until)s,
    dispatcher = %(dispatcher)s,
    updated_at = %(now)s
FROM due
WHERE d.event_id = due.event_id
  AND d.target_no = due.target_no
RETURNING d.event_id, d.target_no, d.revision, d.attempts, d.sent_revision;

-- name: lpc_plans
-- What the claimed plans carry: their event, target and resolution, and every cap.
SELECT e.event_id, e.kind, e.event_created_at, t.target_no, t.resource_id, t.location_id,
       t.meter_point_id, t.resolution,
       array_agg(c.period_start ORDER BY c.period_start) AS starts,
       array_agg(c.period_end ORDER BY c.period_start) AS ends,
       array_agg(c.spark_timestamp ORDER BY c.period_start) AS timestamps,
       array_agg(c.max_kw ORDER BY c.period_start) AS max_kws
FROM unnest(%(event_ids)s::text[], %(target_nos)s::integer[]) AS w(event_id, target_no)
JOIN lpc_events AS e ON e.event_id = w.event_id
JOIN lpc_targets AS t ON t.event_id = w.event_id AND t.target_no = w.target_no
LEFT JOIN lpc_caps AS c ON c.event_id = t.event_id AND c.target_no = t.target_no
GROUP BY e.event_id, e.kind, e.event_created_at, t.target_no, t.resource_id, t.location_id,
         t.meter_point_id, t.resolution;

-- name: finish_lpc_dispatches
-- As finish_dispatches. Only a claimed ('sending') row is recorded: one the acknowledgement
-- declined meanwhile keeps its 'failed'.
UPDATE lpc_dispatches d
SET status = o.status,
    reason = o.reason,
    next_attempt_at = o.next_attempt_at,
    sent_at = CASE WHEN o.status = 'sent' THEN %(now)s ELSE d.sent_at END,
    sent_revision = CASE WHEN o.status = 'sent' THEN d.revision ELSE d.sent_revision END,
    updated_at = %(now)s
FROM unnest(%(event_ids)s::text[], %(target_nos)s::integer[], %(revisions)s::integer[],
            %(statuses)s::text[], %(reasons)s::text[], %(next_attempts)s::timestamptz[])
     AS o(event_id, target_no, revision, status, reason, next_attempt_at)
WHERE d.event_id = o.event_id
  AND d.target_no = o.target_no
  AND d.revision = o.revision
  AND d.status = 'sending';

-- name: next_lpc_dispatch_due
SELECT min(next_attempt_at) AS due_at
FROM lpc_dispatches
WHERE status IN ('pending', 'sending');

-- name: decline_unanswered_lpc_dispatches
-- When an event's acknowledgement is built at its deadline: plans still waiting for a retry
-- have had their time; they are declined in it, and not sent afterwards.
UPDATE lpc_dispatches
SET status = 'failed',
    reason = coalesce(reason || '; ', '') || 'no answer when the acknowledgement was due: declined',
    updated_at = %(now)s
WHERE event_id = %(event_id)s
  AND status = 'pending'
RETURNING target_no;

-- name: redispatch_failed_lpc
-- An operator's retry: failed plans of an LPC event get a fresh set of attempts.
UPDATE lpc_dispatches
SET status = 'pending', attempts = 0, next_attempt_at = %(now)s, updated_at = %(now)s
WHERE event_id = %(event_id)s
  AND status = 'failed';
