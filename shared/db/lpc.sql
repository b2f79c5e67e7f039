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
LEFT JOIN lpc_acks AS a USING (event_id)
ORDER BY l.received_at DESC, l.event_id
LIMIT %(limit)s;

-- name: get_lpc_event
SELECT l.event_id, l.kind, e.notification_type, l.event_created_at, l.received_at,
       l.first_period_start, l.last_period_end, l.target_count, e.status AS event_status,
       a.status AS ack_status
FROM lpc_events AS l
JOIN events AS e USING (event_id)
LEFT JOIN lpc_acks AS a USING (event_id)
WHERE l.event_id = %(event_id)s;

-- name: list_lpc_targets
-- `known`: whether our registry has the target, which an acknowledgement must decline if not.
-- A resource target: the resource at that location. A location target: the location with
-- that meter point. A deleted user's are not ours any more.
SELECT t.target_no, t.resource_id, t.location_id, t.meter_point_id, t.resolution,
       CASE
           WHEN t.resource_id IS NOT NULL THEN EXISTS (
               SELECT 1 FROM resources r JOIN users u USING (user_id)
               WHERE r.resource_id = t.resource_id AND r.location_id = t.location_id
                 AND u.deleted_at IS NULL
           )
           ELSE EXISTS (
               SELECT 1 FROM locations l JOIN users u USING (user_id)
               WHERE l.location_id = t.location_id AND t.meter_point_id = ANY (l.meter_point_ids)
                 AND u.deleted_at IS NULL
           )
       END AS known
FROM lpc_targets AS t
WHERE t.event_id = %(event_id)s
ORDER BY t.target_no;

-- name: list_lpc_caps
SELECT target_no, period_start, period_end, spark_timestamp, max_kw
FROM lpc_caps
WHERE event_id = %(event_id)s
ORDER BY target_no, period_start;

-- Acknowledgements (lpc_acks): the outbox of one report per resource or location event.

-- name: insert_lpc_ack
-- In the event's transaction: due at once (the registry decides it), due_by at the latest.
INSERT INTO lpc_acks (event_id, due_by, next_attempt_at, created_at, updated_at)
VALUES (%(event_id)s, %(due_by)s, %(now)s, %(now)s, %(now)s)
ON CONFLICT (event_id) DO NOTHING;

-- name: claim_lpc_ack
-- The next acknowledgement to send (or the given event's), locked against every other
-- sender, and leased: a lease that runs out means the sender died mid-send.
WITH next AS (
    SELECT event_id
    FROM lpc_acks
    WHERE status IN ('due', 'retrying')
      AND next_attempt_at <= %(now)s
      AND (%(event_id)s::text IS NULL OR event_id = %(event_id)s::text)
    ORDER BY next_attempt_at, event_id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
UPDATE lpc_acks a
SET status = 'sending', attempts = a.attempts + 1, lease_until = %(lease_until)s,
    updated_at = %(now)s
FROM next
WHERE a.event_id = next.event_id
RETURNING a.event_id, a.attempts, a.body IS NOT NULL AS built;

-- name: lpc_ack_event_kind
SELECT kind FROM lpc_events WHERE event_id = %(event_id)s;

-- name: build_lpc_ack
UPDATE lpc_acks
SET body = %(body)s, built_at = %(now)s, idempotency_key = %(idempotency_key)s,
    acknowledged = %(acknowledged)s, declined = %(declined)s, updated_at = %(now)s
WHERE event_id = %(event_id)s;

-- name: start_lpc_ack_attempt
INSERT INTO lpc_ack_attempts (event_id, attempt, started_at)
VALUES (%(event_id)s, %(attempt)s, %(now)s)
ON CONFLICT (event_id, attempt) DO NOTHING;

-- name: lpc_ack_to_send
SELECT event_id, attempts, body, idempotency_key
FROM lpc_acks
WHERE event_id = %(event_id)s;

-- name: finish_lpc_ack_attempt
UPDATE lpc_ack_attempts
SET finished_at = %(now)s, outcome = %(outcome)s, http_status = %(http_status)s,
    error = %(error)s, response = %(response)s, spark_report_id = %(spark_report_id)s
WHERE event_id = %(event_id)s AND attempt = %(attempt)s;

-- name: record_lpc_ack_accepted
-- Spark took it; also when the attempt had been given up as ambiguous meanwhile.
UPDATE lpc_acks
SET status = 'sent', spark_report_id = %(spark_report_id)s,
    spark_created_at = %(spark_created_at)s, sent_at = %(now)s, lease_until = NULL,
    next_attempt_at = NULL, last_error = NULL, updated_at = %(now)s
WHERE event_id = %(event_id)s
  AND status <> 'sent'
  AND (status <> 'sending' OR attempts = %(attempt)s)
RETURNING event_id;

-- name: record_lpc_ack_retry
UPDATE lpc_acks
SET status = 'retrying', next_attempt_at = %(next_attempt_at)s, last_error = %(error)s,
    lease_until = NULL,
    ambiguous_attempts = ambiguous_attempts + CASE WHEN %(ambiguous)s THEN 1 ELSE 0 END,
    updated_at = %(now)s
WHERE event_id = %(event_id)s AND status = 'sending' AND attempts = %(attempt)s
RETURNING event_id;

-- name: record_lpc_ack_rejected
UPDATE lpc_acks
SET status = 'rejected', rejected_status = %(http_status)s, rejection = %(message)s,
    last_error = %(error)s, lease_until = NULL, next_attempt_at = NULL, updated_at = %(now)s
WHERE event_id = %(event_id)s AND status = 'sending' AND attempts = %(attempt)s
RETURNING event_id;

-- name: expire_lpc_ack_leases
-- A sender that died mid-send: its attempt is ambiguous, and the acknowledgement is sent
-- again at once with the same body and key.
UPDATE lpc_acks
SET status = 'retrying', next_attempt_at = %(now)s, lease_until = NULL,
    ambiguous_attempts = ambiguous_attempts + 1,
    last_error = 'the attempt was cut off mid-send (lease expired)', updated_at = %(now)s
WHERE status = 'sending' AND lease_until < %(now)s
RETURNING event_id, attempts;

-- name: claim_lpc_ack_alerts
-- Acknowledgements not accepted within %(alert_after)s of their event's arrival, each once.
UPDATE lpc_acks a
SET alerted_at = %(now)s, updated_at = %(now)s
FROM lpc_events e
WHERE e.event_id = a.event_id
  AND a.status <> 'sent'
  AND a.alerted_at IS NULL
  AND e.received_at + %(alert_after)s::interval <= %(now)s
RETURNING a.event_id, a.status, a.attempts, e.received_at,
          coalesce(a.rejection, a.last_error) AS last_error;

-- name: next_lpc_ack_attempt_at
SELECT min(next_attempt_at) AS next_attempt_at
FROM lpc_acks
WHERE status IN ('due', 'retrying');

-- name: get_lpc_ack
SELECT event_id, status, due_by, next_attempt_at, acknowledged, declined, attempts,
       ambiguous_attempts, last_error, spark_report_id, sent_at, rejected_status, rejection,
       alerted_at, body
FROM lpc_acks
WHERE event_id = %(event_id)s;

-- name: list_lpc_ack_attempts
SELECT attempt, started_at, finished_at, outcome, http_status, error, spark_report_id
FROM lpc_ack_attempts
WHERE event_id = %(event_id)s
ORDER BY attempt;
