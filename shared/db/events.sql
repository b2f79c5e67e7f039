-- Named queries: `-- name: verb_noun` starts each one. Parameters are psycopg named
-- placeholders. Loaded by shared/db/queries.py, with every other *.sql file here.

-- name: insert_event
-- Returns a row only when the event is new: that is what decides whether handlers run.
INSERT INTO events (
    event_id, notification_type, payload_type, event_created_at, payload, raw_body,
    first_received_at, last_received_at, first_source
) VALUES (
    %(event_id)s, %(notification_type)s, %(payload_type)s, %(event_created_at)s, %(payload)s,
    %(raw_body)s, %(received_at)s, %(received_at)s, %(source)s
)
ON CONFLICT (event_id) DO NOTHING
RETURNING event_id;

-- name: compare_event
-- Does a repeat delivery carry something other than what we stored first?
SELECT (payload IS DISTINCT FROM %(payload)s::jsonb
        OR notification_type IS DISTINCT FROM %(notification_type)s) AS conflict
FROM events
WHERE event_id = %(event_id)s;

-- name: touch_event
UPDATE events
SET last_received_at = greatest(last_received_at, %(received_at)s),
    conflicts = conflicts + CASE WHEN %(conflict)s THEN 1 ELSE 0 END
WHERE event_id = %(event_id)s;

-- name: insert_delivery
INSERT INTO event_deliveries (
    delivery_id, event_id, notification_id, source, received_at, body_sha256, conflict
) VALUES (
    %(delivery_id)s, %(event_id)s, %(notification_id)s, %(source)s, %(received_at)s,
    %(body_sha256)s, %(conflict)s
)
ON CONFLICT (delivery_id) DO NOTHING
RETURNING delivery_id;

-- name: get_event_for_update
SELECT event_id, notification_type, payload_type, event_created_at, payload, status
FROM events
WHERE event_id = %(event_id)s
FOR UPDATE;

-- name: mark_event
UPDATE events
SET status = %(status)s,
    error = %(error)s,
    processed_at = CASE WHEN %(status)s = 'processed' THEN now() ELSE processed_at END
WHERE event_id = %(event_id)s;

-- name: upsert_dead_letter
INSERT INTO dead_letters (
    body_sha256, raw_body, reason, source, first_received_at, last_received_at
) VALUES (
    %(body_sha256)s, %(raw_body)s, %(reason)s, %(source)s, %(received_at)s, %(received_at)s
)
ON CONFLICT (body_sha256) DO UPDATE
SET deliveries = dead_letters.deliveries + 1,
    last_received_at = greatest(dead_letters.last_received_at, EXCLUDED.last_received_at)
RETURNING id;

-- name: get_dead_letter
SELECT id, raw_body, reason, source, first_received_at, last_received_at, deliveries,
       replayed_at, replay_result
FROM dead_letters
WHERE id = %(id)s;

-- name: list_dead_letters
SELECT id, reason, source, first_received_at, last_received_at, deliveries, replayed_at,
       replay_result, length(raw_body) AS size
FROM dead_letters
ORDER BY id DESC
LIMIT %(limit)s;

-- name: mark_dead_letter_replayed
UPDATE dead_letters
SET replayed_at = now(), replay_result = %(result)s
WHERE id = %(id)s;

-- name: known_event_ids
-- Which of the given ids the inbox already holds (the backfill's stop condition).
SELECT event_id FROM events WHERE event_id = ANY(%(event_ids)s);

-- name: list_events
SELECT e.event_id, e.notification_type, e.status, e.first_source, e.first_received_at,
       e.last_received_at, e.event_created_at, e.conflicts,
       (SELECT count(*) FROM event_deliveries d WHERE d.event_id = e.event_id) AS deliveries
FROM events e
WHERE (%(notification_type)s::text IS NULL OR e.notification_type = %(notification_type)s)
  AND (%(status)s::text IS NULL OR e.status = %(status)s)
ORDER BY e.first_received_at DESC, e.event_id
LIMIT %(limit)s;

-- name: get_event
SELECT event_id, notification_type, payload_type, event_created_at, payload, status, error,
       first_source, first_received_at, last_received_at, processed_at, conflicts,
       convert_from(raw_body, 'UTF8') AS raw_body
FROM events
WHERE event_id = %(event_id)s;

-- name: list_deliveries
SELECT delivery_id, notification_id, source, received_at, conflict, encode(body_sha256, 'hex') AS body_sha256
FROM event_deliveries
WHERE event_id = %(event_id)s
ORDER BY received_at, delivery_id;

-- name: start_backfill_run
INSERT INTO backfill_runs DEFAULT VALUES RETURNING id;

-- name: finish_backfill_run
UPDATE backfill_runs
SET finished_at = now(), pages = %(pages)s, seen = %(seen)s, enqueued = %(enqueued)s,
    error = %(error)s
WHERE id = %(id)s;
