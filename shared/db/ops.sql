-- Operations: marks of the last time something happened, and what `spark-partner status`
-- and `spark-partner serve-metrics` read. Every query here only reads, except `mark` and
-- `count_mark`.

-- name: mark
-- A mark never moves back: a late writer with an older time leaves the newer one.
INSERT INTO ops_marks (name, at, detail)
VALUES (%(name)s, coalesce(%(at)s::timestamptz, now()), %(detail)s::jsonb)
ON CONFLICT (name) DO UPDATE
    SET at = greatest(ops_marks.at, EXCLUDED.at),
        detail = CASE WHEN EXCLUDED.at >= ops_marks.at THEN EXCLUDED.detail
                      ELSE ops_marks.detail END;

-- name: count_mark
-- One more of something counted in a mark: the detail given, plus `total`, one more than the
-- previous mark's. Returns the new total.
INSERT INTO ops_marks (name, at, detail)
VALUES (%(name)s, now(), %(detail)s::jsonb || jsonb_build_object('total', 1))
ON CONFLICT (name) DO UPDATE
    SET at = greatest(ops_marks.at, EXCLUDED.at),
        detail = EXCLUDED.detail || jsonb_build_object(
            'total', coalesce((ops_marks.detail ->> 'total')::bigint, 0) + 1)
RETURNING (detail ->> 'total')::bigint AS total;

-- name: ops_marks
SELECT name, at, detail FROM ops_marks ORDER BY name;

-- name: ops_last_webhook
SELECT max(received_at) AS at FROM event_deliveries WHERE source = 'webhook';

-- name: ops_last_backfill
SELECT started_at, finished_at, error, enqueued
FROM backfill_runs ORDER BY id DESC LIMIT 1;

-- name: ops_events_by_status
-- Events stored since %(since)s, per status.
SELECT status, count(*) AS n FROM events WHERE stored_at >= %(since)s GROUP BY status;

-- name: ops_dead_letters
SELECT count(*) FILTER (WHERE replayed_at IS NULL) AS open, count(*) AS total
FROM dead_letters;

-- name: ops_delivery_conflicts
SELECT count(*) AS n FROM event_deliveries WHERE conflict AND received_at >= %(since)s;

-- name: ops_users
SELECT count(*) FILTER (WHERE eligible) AS eligible,
       count(*) FILTER (WHERE enrolled) AS enrolled
FROM users WHERE deleted_at IS NULL;

-- name: ops_last_reconcile
-- The newest finished reconcile, and the oldest one still waiting past its due time.
SELECT (SELECT row_to_json(r) FROM (
            SELECT status, trigger, finished_at, error FROM eligibility_reconciles
            WHERE status IN ('done', 'failed') ORDER BY finished_at DESC NULLS LAST LIMIT 1
        ) r) AS last,
       (SELECT min(due_at) FROM eligibility_reconciles
        WHERE status IN ('pending', 'running')) AS oldest_waiting_due_at;

-- name: ops_curves_for_day
-- Curves for the local day %(day)s, and that day's check.
SELECT (SELECT coalesce(array_agg(DISTINCT price_area ORDER BY price_area), '{}')
        FROM price_curves WHERE local_date = %(day)s::date) AS areas,
       (SELECT max(stored_at) FROM price_curves) AS last_curve_at,
       c.status AS check_status, c.missing_areas
FROM (SELECT 1) one
LEFT JOIN curve_checks c ON c.curve_date = %(day)s::date;

-- name: ops_failed_plans
-- Failed plans of curves still in force (their last period not over).
SELECT count(*) AS n, count(DISTINCT d.event_id) AS curves
FROM curve_dispatches d
JOIN price_curves c ON c.event_id = d.event_id
WHERE d.status = 'failed' AND c.last_period_end > %(now)s;

-- name: ops_compensation_problems
-- Locations whose compensation for the local month of %(now)s Spark reports problems with.
SELECT count(*) AS n, count(DISTINCT user_id) AS users
FROM compensations
WHERE month = date_trunc('month', %(now)s AT TIME ZONE %(tz)s)::date
  AND problems <> '[]'::jsonb;

-- name: ops_lpc_unacknowledged
-- Resource and location LPC events of the last week whose acknowledgement Spark has not
-- accepted (its 'lpc_ack' report is not 'sent'); a reservation is not acted on and does not
-- count.
SELECT count(*) AS n, min(l.received_at) AS oldest
FROM lpc_events AS l
LEFT JOIN reports AS a ON a.kind = 'lpc_ack' AND a.event_id = l.event_id
WHERE l.kind IN ('resource', 'location')
  AND l.received_at > %(now)s::timestamptz - interval '7 days'
  AND a.status IS DISTINCT FROM 'sent';
