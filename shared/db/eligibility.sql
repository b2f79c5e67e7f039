-- Named queries of the eligibility domain: reconcile requests and hints from events, claiming
-- and finishing reconciles. The comparison itself works on temporary tables and lives in
-- worker/eligibility/comparison.py.

-- name: insert_pending_reconcile
-- At most one pending reconcile exists (a partial unique index); a second request finds it
-- with join_pending_reconcile instead.
INSERT INTO eligibility_reconciles (trigger, requested_at, due_at)
VALUES (%(trigger)s, %(now)s, %(due_at)s)
ON CONFLICT DO NOTHING
RETURNING id, due_at;

-- name: join_pending_reconcile
-- The row lock taken here lasts until the caller commits, so the reconcile cannot be claimed,
-- and Spark read, before what the caller wrote with it (an event's hints) is visible.
UPDATE eligibility_reconciles
SET due_at = least(due_at, %(due_at)s)
WHERE status = 'pending'
RETURNING id, due_at;

-- name: insert_eligibility_hints
-- A replayed event moves its hints to the reconcile that now runs for it.
INSERT INTO eligibility_hints (event_id, user_id, change, reconcile_id)
SELECT %(event_id)s, hint.user_id, hint.change, %(reconcile_id)s
FROM unnest(%(user_ids)s::text[], %(changes)s::text[]) AS hint (user_id, change)
ON CONFLICT (event_id, user_id, change) DO UPDATE SET reconcile_id = EXCLUDED.reconcile_id;

-- name: list_claimable_reconciles
-- Running rows are candidates too: only the caller that gets the reconcile's advisory lock
-- can claim one, and it gets it only when the attempt running it has died.
SELECT id
FROM eligibility_reconciles
WHERE (status = 'pending' AND due_at <= %(now)s) OR status = 'running'
ORDER BY id;

-- name: try_lock_reconcile
-- Held for the life of an attempt, on the attempt's own connection: a crashed worker's
-- connection closes and frees it, which is what marks its reconcile as abandoned.
SELECT pg_try_advisory_lock(%(lock_class)s, %(id)s::integer) AS locked;

-- name: claim_reconcile
-- The caller holds the reconcile's advisory lock, so a row still 'running' here was left by
-- an attempt that died (its lock went with its connection).
UPDATE eligibility_reconciles
SET status = 'running', started_at = %(now)s, attempts = attempts + 1
WHERE id = %(id)s
  AND attempts < %(max_attempts)s
  AND ((status = 'pending' AND due_at <= %(now)s) OR status = 'running')
RETURNING id, trigger, attempts, started_at;

-- name: give_up_reconcile
-- An abandoned reconcile that has used up its attempts.
UPDATE eligibility_reconciles
SET status = 'failed', finished_at = %(now)s,
    error = coalesce(error || '; ', '') || 'gave up after ' || attempts || ' attempts'
WHERE id = %(id)s AND status = 'running' AND attempts >= %(max_attempts)s
RETURNING id;

-- name: lock_reconcile_apply
-- One reconcile applies at a time: each compares the whole table with what it read.
SELECT pg_advisory_xact_lock(%(lock_class)s, 0);

-- name: newer_applied_reconcile
-- A reconcile that read Spark later than this one and has already applied what it read.
SELECT id
FROM eligibility_reconciles
WHERE status = 'done' AND spark_eligible IS NOT NULL AND started_at > %(started_at)s
ORDER BY started_at DESC
LIMIT 1;

-- name: finish_reconcile
UPDATE eligibility_reconciles
SET status = 'done', finished_at = %(now)s, spark_eligible = %(spark_eligible)s,
    became_eligible = %(became_eligible)s, lost_eligibility = %(lost_eligibility)s,
    unknown_users = %(unknown_users)s, error = %(note)s
WHERE id = %(id)s;

-- name: lock_pending_reconcile
SELECT id FROM eligibility_reconciles WHERE status = 'pending' FOR UPDATE;

-- name: retry_reconcile_later
UPDATE eligibility_reconciles
SET status = 'pending', due_at = %(due_at)s, error = %(error)s
WHERE id = %(id)s;

-- name: fail_reconcile
UPDATE eligibility_reconciles
SET status = 'failed', finished_at = %(now)s, error = %(error)s
WHERE id = %(id)s;

-- name: move_hints
-- A failed reconcile hands the events it was for to the pending one.
UPDATE eligibility_hints SET reconcile_id = %(to_id)s WHERE reconcile_id = %(from_id)s;

-- name: list_reconciles
SELECT id, trigger, status, requested_at, due_at, started_at, finished_at, attempts,
       spark_eligible, became_eligible, lost_eligibility, unknown_users, error,
       (SELECT count(*) FROM eligibility_hints h WHERE h.reconcile_id = r.id) AS hints
FROM eligibility_reconciles r
ORDER BY id DESC
LIMIT %(limit)s;
