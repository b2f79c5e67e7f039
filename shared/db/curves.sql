-- Price curves: storing them, supersession, dispatch decisions and the daily check.
--
-- Supersession: a period of curve E for a target is superseded when a later curve (ordered by
-- event_created_at, then event_id) for the same target has a period overlapping it. Periods
-- are compared by overlap, not by equal starts, because Spark's timestamps are not always on
-- the hour; the whole period of E is then superseded. Arrival order never matters.

-- name: insert_price_curve
-- Nothing when the curve is already stored (a replay of a processed event).
INSERT INTO price_curves (
    event_id, event_created_at, price_area, currency, energy_unit, resolution, local_date,
    first_period_start, last_period_end, target_count
) VALUES (
    %(event_id)s, %(event_created_at)s, %(price_area)s, %(currency)s, %(energy_unit)s,
    %(resolution)s, %(local_date)s, %(first_period_start)s, %(last_period_end)s,
    %(target_count)s
)
ON CONFLICT (event_id) DO NOTHING
RETURNING event_id;

-- name: insert_price_curve_periods
INSERT INTO price_curve_periods (event_id, period_start, period_end, spark_timestamp, price)
SELECT %(event_id)s, period_start, period_end, spark_timestamp, price
FROM unnest(%(starts)s::timestamptz[], %(ends)s::timestamptz[], %(timestamps)s::text[],
            %(prices)s::double precision[])
     AS p(period_start, period_end, spark_timestamp, price);

-- name: insert_curve_dispatches
-- One decision per target of a newly stored curve.
INSERT INTO curve_dispatches (
    event_id, resource_id, location_id, status, next_attempt_at, reason, updated_at
)
SELECT event_id, resource_id, location_id, %(status)s, %(now)s, %(reason)s, %(now)s
FROM price_curve_targets
WHERE event_id = %(event_id)s;

-- name: redispatch_older_curves
-- Curve %(event_id)s has just been stored: every older curve with a period it overlaps has a
-- changed plan for the targets both name. Those decisions go back to pending with a new
-- revision, whatever their state; an attempt in flight for the old revision is ignored when
-- it reports back. Returns the count per older curve.
WITH older AS (
    SELECT o.event_id
    FROM overlapping_curves(%(event_id)s) o
    WHERE NOT o.newer
      AND EXISTS (
        SELECT 1
        FROM price_curve_periods op
        JOIN price_curve_periods cp
          ON cp.event_id = %(event_id)s
         AND op.period_start < cp.period_end
         AND cp.period_start < op.period_end
        WHERE op.event_id = o.event_id
    )
), bumped AS (
    UPDATE curve_dispatches d
    SET revision = d.revision + 1,
        status = 'pending',
        attempts = 0,
        next_attempt_at = %(now)s,
        reason = NULL,
        updated_at = %(now)s
    FROM older, price_curve_targets t
    WHERE d.event_id = older.event_id
      AND t.event_id = %(event_id)s
      AND d.resource_id = t.resource_id
      AND d.location_id = t.location_id
    RETURNING d.event_id
)
SELECT event_id, count(*) AS targets FROM bumped GROUP BY event_id ORDER BY event_id;

-- name: get_price_curve
SELECT event_id, event_created_at, price_area, currency, energy_unit, resolution, local_date,
       first_period_start, last_period_end, target_count, stored_at
FROM price_curves
WHERE event_id = %(event_id)s;

-- name: list_price_curve_periods
SELECT period_start, period_end, spark_timestamp, price
FROM price_curve_periods
WHERE event_id = %(event_id)s
ORDER BY period_start;

-- name: price_curve_targets_page
-- The targets of a curve in (resource_id, location_id) order, after the given one (keyset).
SELECT resource_id, location_id
FROM price_curve_targets
WHERE event_id = %(event_id)s
  AND (%(after_resource_id)s::text IS NULL
       OR (resource_id, location_id) > (%(after_resource_id)s, %(after_location_id)s))
ORDER BY resource_id, location_id
LIMIT %(limit)s;

-- name: superseded_periods_for_targets
-- For the given targets of curve %(event_id)s (parallel arrays): each of its periods that a
-- later curve for the same target covers, with the latest such curve and that curve's delta
-- there (its earliest overlapping period's, when its periods are not aligned with these).
-- Targets and periods not listed are in force as the curve says.
WITH later AS MATERIALIZED (
    SELECT event_id, event_created_at FROM overlapping_curves(%(event_id)s) WHERE newer
), covered AS MATERIALIZED (
    -- Per later curve: which of this curve's periods it covers, and its delta there.
    SELECT DISTINCT ON (l.event_id, p.period_start)
           l.event_id, l.event_created_at, p.period_start, lp.price
    FROM later l
    JOIN price_curve_periods lp ON lp.event_id = l.event_id
    JOIN price_curve_periods p
      ON p.event_id = %(event_id)s
     AND p.period_start < lp.period_end
     AND lp.period_start < p.period_end
    ORDER BY l.event_id, p.period_start, lp.period_start
), named AS (
    -- Which later curves name each target: a primary-key lookup per (target, later curve).
    -- As a plain join the planner would rather read every curve that ever named the target,
    -- through the (resource, location) index.
    SELECT w.resource_id, w.location_id, l.event_id
    FROM unnest(%(resource_ids)s::text[], %(location_ids)s::text[]) AS w(resource_id, location_id)
    CROSS JOIN later l
    WHERE (SELECT true
           FROM price_curve_targets lt
           WHERE lt.event_id = l.event_id
             AND lt.resource_id = w.resource_id
             AND lt.location_id = w.location_id
           LIMIT 1)
)
SELECT DISTINCT ON (n.resource_id, n.location_id, cv.period_start)
       n.resource_id, n.location_id, cv.period_start,
       cv.event_id AS superseded_by, cv.price AS superseding_price
FROM named n
JOIN covered cv ON cv.event_id = n.event_id
ORDER BY n.resource_id, n.location_id, cv.period_start,
         cv.event_created_at DESC, cv.event_id DESC;

-- name: effective_periods_for_event
-- What curve %(event_id)s still asks of each of its targets after supersession: one row per
-- (target, period) that no later curve for the same target covers, ordered by target and
-- period. A target whose every period is superseded has no row. The reports' source.
WITH covered AS MATERIALIZED (
    -- Per later curve whose periods overlap this one's: the starts of this curve's periods
    -- it covers whole (its own periods, which never overlap each other, add up to all of
    -- the period). A period a later curve covers only in part stays with this curve: else
    -- its uncovered minutes would be reported by neither. A handful of rows.
    SELECT w.event_id, array_agg(w.period_start) AS starts
    FROM (
        SELECT l.event_id, p.period_start
        FROM overlapping_curves(%(event_id)s) l
        JOIN price_curve_periods lp ON lp.event_id = l.event_id
        JOIN price_curve_periods p
          ON p.event_id = %(event_id)s
         AND p.period_start < lp.period_end
         AND lp.period_start < p.period_end
        WHERE l.newer
        GROUP BY l.event_id, p.period_start, p.period_end
        HAVING sum(least(lp.period_end, p.period_end) - greatest(lp.period_start, p.period_start))
               >= p.period_end - p.period_start
    ) AS w
    GROUP BY w.event_id
)
SELECT t.resource_id, t.location_id, p.period_start, p.period_end, p.spark_timestamp, p.price
FROM price_curve_targets t
-- Once per target: the starts later curves naming it have taken (NULL when none did), with a
-- primary-key lookup per later curve (see superseded_periods_for_targets).
CROSS JOIN LATERAL (
    SELECT array_agg(s.start) AS starts
    FROM covered cv
    CROSS JOIN unnest(cv.starts) AS s(start)
    WHERE (SELECT true
           FROM price_curve_targets lt
           WHERE lt.event_id = cv.event_id
             AND lt.resource_id = t.resource_id
             AND lt.location_id = t.location_id
           LIMIT 1)
) taken
JOIN price_curve_periods p ON p.event_id = t.event_id
WHERE t.event_id = %(event_id)s
  AND (taken.starts IS NULL OR p.period_start <> ALL (taken.starts))
ORDER BY t.resource_id, t.location_id, p.period_start;

-- name: has_newer_curve
-- Whether a later curve that overlaps curve %(event_id)s in time names one of its targets:
-- only then is part of it superseded (effective_periods_for_event). Many curves may overlap
-- in time without sharing a target (bench.sweep: 10,000 curves of two targets each for the
-- same two hours), so the targets are compared, from the smaller side. A curve of fewer than
-- 1,000 targets looks each up among the curves naming it (the (resource, location) index, a
-- few rows a target: its curves over time), and checks those by primary key; a large curve
-- looks the later curves' targets up in its own primary key. Only the branch taken runs.
SELECT CASE
    WHEN (SELECT target_count FROM price_curves WHERE event_id = %(event_id)s) < 1000 THEN EXISTS (
        SELECT
        FROM price_curve_targets t
        JOIN price_curve_targets o
          ON o.resource_id = t.resource_id
         AND o.location_id = t.location_id
        WHERE t.event_id = %(event_id)s
          AND o.event_id IN (SELECT event_id FROM overlapping_curves(%(event_id)s) WHERE newer))
    ELSE EXISTS (
        SELECT
        FROM overlapping_curves(%(event_id)s) l
        JOIN price_curve_targets o ON o.event_id = l.event_id
        JOIN price_curve_targets t
          ON t.event_id = %(event_id)s
         AND t.resource_id = o.resource_id
         AND t.location_id = o.location_id
        WHERE l.newer)
END AS newer;

-- name: curves_around
-- The curves whose periods overlap curve %(event_id)s's, older and newer, for `curves show`.
SELECT o.event_id, o.event_created_at, other.price_area, o.target_count, o.newer
FROM overlapping_curves(%(event_id)s) o
JOIN price_curves other ON other.event_id = o.event_id
ORDER BY o.event_created_at, o.event_id;

-- name: try_dispatch_lock
-- One dispatch run at a time: a hanging control system then holds one worker process, not all.
-- A session lock, not a transaction's: an open transaction would keep the dead index entries
-- of every decision already sent alive, and each claim would scan them all again.
SELECT pg_try_advisory_lock(%(key)s) AS locked;

-- name: release_dispatch_lock
SELECT pg_advisory_unlock(%(key)s) AS released;

-- name: claim_due_dispatches
-- Claims up to %(limit)s due decisions: pending ones whose time has come, and 'sending' ones
-- whose attempt outlived its lease (the worker died). The lease becomes next_attempt_at.
WITH due AS (
    SELECT event_id, resource_id, location_id
    FROM curve_dispatches
    WHERE status IN ('pending', 'sending')
      AND next_attempt_at <= %(now)s
    -- No ORDER BY: a run claims until nothing is due, so the order does not matter, and
    -- sorting every due row for each batch would cost more than sending the batch.
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE curve_dispatches d
SET status = 'sending',
    attempts = d.attempts + 1,
    next_attempt_at = %(lease_until)s,
    dispatcher = %(dispatcher)s,
    updated_at = %(now)s
FROM due
WHERE d.event_id = due.event_id
  AND d.resource_id = due.resource_id
  AND d.location_id = due.location_id
RETURNING d.event_id, d.resource_id, d.location_id, d.revision, d.attempts, d.sent_revision;

-- name: finish_dispatches
-- Records the outcome of claimed decisions; one whose revision moved on meanwhile is left
-- alone (a newer plan is waiting to be sent). Only the run holding the dispatch lock claims,
-- so a claimed row is this run's until it records it.
UPDATE curve_dispatches d
SET status = o.status,
    reason = o.reason,
    next_attempt_at = o.next_attempt_at,
    sent_at = CASE WHEN o.status = 'sent' THEN %(now)s ELSE d.sent_at END,
    sent_revision = CASE WHEN o.status = 'sent' THEN d.revision ELSE d.sent_revision END,
    updated_at = %(now)s
FROM unnest(%(event_ids)s::text[], %(resource_ids)s::text[], %(location_ids)s::text[],
            %(revisions)s::integer[], %(statuses)s::text[], %(reasons)s::text[],
            %(next_attempts)s::timestamptz[])
     AS o(event_id, resource_id, location_id, revision, status, reason, next_attempt_at)
WHERE d.event_id = o.event_id
  AND d.resource_id = o.resource_id
  AND d.location_id = o.location_id
  AND d.revision = o.revision;

-- name: next_dispatch_due
SELECT min(next_attempt_at) AS due_at
FROM curve_dispatches
WHERE status IN ('pending', 'sending');

-- name: redispatch_failed
-- An operator's retry: failed decisions of a curve get a fresh set of attempts.
UPDATE curve_dispatches
SET status = 'pending', attempts = 0, next_attempt_at = %(now)s, updated_at = %(now)s
WHERE event_id = %(event_id)s
  AND status = 'failed';

-- name: dispatch_decisions_for_targets
SELECT d.resource_id, d.location_id, d.status, d.revision, d.attempts, d.next_attempt_at,
       d.reason, d.dispatcher, d.sent_revision, d.sent_at, d.updated_at
FROM curve_dispatches d
JOIN unnest(%(resource_ids)s::text[], %(location_ids)s::text[]) AS w(resource_id, location_id)
  ON d.resource_id = w.resource_id AND d.location_id = w.location_id
WHERE d.event_id = %(event_id)s;

-- name: dispatch_status_counts
SELECT event_id, status, count(*) AS decisions
FROM curve_dispatches
WHERE event_id = ANY(%(event_ids)s)
GROUP BY event_id, status;

-- name: list_price_curves
SELECT event_id, event_created_at, price_area, currency, energy_unit, resolution, local_date,
       first_period_start, last_period_end, target_count, stored_at,
       (SELECT count(*) FROM price_curve_periods p WHERE p.event_id = c.event_id) AS periods
FROM price_curves c
WHERE (%(local_date)s::date IS NULL OR local_date = %(local_date)s)
  AND (%(price_area)s::text IS NULL OR price_area = %(price_area)s)
ORDER BY local_date DESC NULLS LAST, event_created_at DESC, event_id
LIMIT %(limit)s;

-- name: curves_for_date
-- The stored curves for one local day, per price area: what the daily check looks for.
SELECT price_area, array_agg(event_id ORDER BY event_created_at, event_id) AS event_ids
FROM price_curves
WHERE local_date = %(curve_date)s
GROUP BY price_area
ORDER BY price_area;

-- name: open_curve_check
INSERT INTO curve_checks (curve_date, expected_areas)
VALUES (%(curve_date)s, %(expected_areas)s)
ON CONFLICT (curve_date) DO NOTHING;

-- name: claim_curve_check
-- Nothing when the check is finished, or another run holds it.
UPDATE curve_checks
SET claimed_until = %(lease_until)s,
    runs = runs + 1,
    expected_areas = %(expected_areas)s,
    first_run_at = coalesce(first_run_at, %(now)s),
    last_run_at = %(now)s
WHERE curve_date = %(curve_date)s
  AND status = 'open'
  AND (claimed_until IS NULL OR claimed_until <= %(now)s)
RETURNING curve_date, runs;

-- name: record_curve_check
UPDATE curve_checks
SET status = %(status)s::text,
    present_areas = %(present_areas)s,
    missing_areas = %(missing_areas)s,
    curve_event_ids = %(curve_event_ids)s,
    backfill_enqueued = %(backfill_enqueued)s,
    backfill_error = %(backfill_error)s,
    claimed_until = NULL,
    finished_at = CASE WHEN %(status)s::text <> 'open' THEN %(now)s::timestamptz END
WHERE curve_date = %(curve_date)s;

-- name: list_curve_checks
SELECT curve_date, status, expected_areas, present_areas, missing_areas, curve_event_ids, runs,
       backfill_enqueued, backfill_error, first_run_at, last_run_at, finished_at
FROM curve_checks
ORDER BY curve_date DESC
LIMIT %(limit)s;
