-- Reports: the ledger of energy-usage reports (one row per report), built set-wise from the
-- readings and the price curves, sent through an outbox.
--
-- Times: %(now)s is the caller's "now" (tests move it); %(tz)s is SPARK_TIMEZONE. A report's
-- month is the month of its price area's zone (`zone`, worker/reports/zones.py; SPARK_TIMEZONE
-- for an unknown area), and its deadline is the end of that month plus %(grace)s:
--     month_end + %(grace)s
-- Spark does not say whether it counts months in the area's zone or in UTC, so the sweeps aim
-- at the earlier of the two ends (the "aim"):
--     least(month_end, utc_month_end) + %(grace)s
-- The month's final sweeps send what is still pending %(final_margin)s before the aim.

-- name: plan_reports
-- One pending report for every curve with periods and targets that has none yet. Curves
-- whose month ended before last month are history (a first backfill of old events) and get
-- none.
INSERT INTO reports (
    event_id, month, zone, first_period_start, last_period_end, created_at, updated_at
)
SELECT c.event_id, m.month, z.zone, c.first_period_start, c.last_period_end, %(now)s, %(now)s
FROM price_curves c
CROSS JOIN LATERAL (
    SELECT coalesce(
               (SELECT a.zone
                FROM unnest(%(area_prefixes)s::text[], %(area_zones)s::text[]) AS a(prefix, zone)
                WHERE starts_with(upper(c.price_area), a.prefix)
                LIMIT 1),
               %(tz)s::text) AS zone
) z
CROSS JOIN LATERAL (
    SELECT date_trunc('month', c.first_period_start AT TIME ZONE z.zone)::date AS month
) m
WHERE c.first_period_start IS NOT NULL
  AND c.target_count > 0
  AND c.first_period_start >= (date_trunc('month', %(now)s AT TIME ZONE %(tz)s)
                               - interval '1 month') AT TIME ZONE %(tz)s
  AND NOT EXISTS (SELECT 1 FROM reports r WHERE r.event_id = c.event_id AND r.kind = 'energy')
ORDER BY c.first_period_start, c.event_id
ON CONFLICT (kind, event_id, part) DO NOTHING
RETURNING id, event_id;

-- name: plan_lpc_energy_reports
-- One pending energy report for every resource or location LPC event with caps that has none
-- yet; history is cut as in plan_reports. An LPC event names no price area, so its month is
-- counted in the zone of the price area of the latest curve that targeted one of its
-- resources (a location event's: a resource of our registry at one of its locations), and in
-- SPARK_TIMEZONE when no curve did.
INSERT INTO reports (
    kind, event_id, month, zone, first_period_start, last_period_end, created_at, updated_at
)
SELECT 'lpc_energy', e.event_id, m.month, z.zone, e.first_period_start, e.last_period_end,
       %(now)s, %(now)s
FROM lpc_events e
LEFT JOIN LATERAL (
    SELECT c.price_area
    FROM price_curve_targets pt
    JOIN price_curves c ON c.event_id = pt.event_id
    WHERE pt.resource_id IN (
              SELECT t.resource_id
              FROM lpc_targets t
              WHERE t.event_id = e.event_id AND t.resource_id IS NOT NULL
              UNION
              SELECT res.resource_id
              FROM lpc_targets t
              JOIN resources res ON res.location_id = t.location_id
              WHERE t.event_id = e.event_id AND t.resource_id IS NULL)
    ORDER BY c.event_created_at DESC, c.event_id DESC
    LIMIT 1
) area ON true
CROSS JOIN LATERAL (
    SELECT coalesce(
               (SELECT a.zone
                FROM unnest(%(area_prefixes)s::text[], %(area_zones)s::text[]) AS a(prefix, zone)
                WHERE starts_with(upper(area.price_area), a.prefix)
                LIMIT 1),
               %(tz)s::text) AS zone
) z
CROSS JOIN LATERAL (
    SELECT date_trunc('month', e.first_period_start AT TIME ZONE z.zone)::date AS month
) m
WHERE e.kind IN ('resource', 'location')
  AND e.first_period_start IS NOT NULL
  AND e.target_count > 0
  AND e.first_period_start >= (date_trunc('month', %(now)s AT TIME ZONE %(tz)s)
                               - interval '1 month') AT TIME ZONE %(tz)s
  AND NOT EXISTS (
      SELECT 1 FROM reports r WHERE r.event_id = e.event_id AND r.kind = 'lpc_energy')
ORDER BY e.first_period_start, e.event_id
ON CONFLICT (kind, event_id, part) DO NOTHING
RETURNING id, event_id;

-- name: expire_report_leases
-- Reports left 'sending' by a worker that died: the attempt may have reached Spark or not.
-- They go back to 'retrying' with the attempt counted as ambiguous.
WITH stale AS (
    UPDATE reports
    SET status = 'retrying',
        lease_until = NULL,
        next_attempt_at = %(now)s,
        ambiguous_attempts = ambiguous_attempts + 1,
        last_error = 'attempt ' || attempts || ' stopped before its outcome was recorded '
                     '(its worker is gone); it may have reached Spark',
        updated_at = %(now)s
    WHERE status = 'sending' AND lease_until < %(now)s
    RETURNING id, event_id, part, attempts
), closed AS (
    UPDATE report_attempts a
    SET outcome = 'unknown', finished_at = %(now)s,
        error = 'no outcome recorded: the worker stopped while sending'
    FROM stale s
    WHERE a.report_id = s.id AND a.attempt = s.attempts AND a.outcome IS NULL
    RETURNING a.report_id
)
SELECT id, event_id, part, attempts FROM stale ORDER BY id;

-- name: miss_overdue_reports
UPDATE reports r
SET status = 'missed', missed_at = %(now)s, next_attempt_at = NULL, updated_at = %(now)s
WHERE r.status IN ('pending', 'due', 'retrying', 'rejected')
  AND %(now)s >= r.month_end + %(grace)s
RETURNING r.id;

-- name: claim_missed_alerts
-- Each missed report is alerted once, however many sweeps run at once.
UPDATE reports
SET alerted_at = %(now)s
WHERE status = 'missed' AND alerted_at IS NULL
RETURNING id, event_id, part, parts, month, zone, attempts, last_error, rejection,
          month_end + %(grace)s AS deadline;

-- name: promote_due_reports
-- Pending reports whose event has ended and settled (%(settle)s) become due the day after,
-- whatever the readings: as soon as every target's readings reach the end of the last period
-- ('complete'), or once %(max_wait)s has passed since the event's end ('max_wait'; targets
-- with no readings are then left out). What is still pending %(final_margin)s before the aim
-- of its month is due then, whatever the readings ('final'): the last day's events wait for a
-- day-late meter until then, not longer.
--
-- A price curve's report is covered when each target's resource has readings to the end. An
-- LPC event's (kind lpc_energy) when each target's readings do, as its build reads them
-- (worker/reports/lpc_energy.py): a resource target's resource; a location target's own
-- meter (readings under the location's id), or else every resource of our registry behind its
-- meter point (none known: not covered, so it waits for %(max_wait)s).
WITH candidates AS (
    SELECT r.id, r.kind, r.event_id, r.last_period_end,
           least(r.month_end, r.utc_month_end) + %(grace)s - %(final_margin)s::interval AS final_from
    FROM reports r
    WHERE r.status = 'pending' AND r.last_period_end <= %(now)s
      AND r.kind IN ('energy', 'lpc_energy')
), ready AS (
    SELECT c.id,
           CASE WHEN covered.all_covered THEN 'complete'
                WHEN %(now)s >= c.last_period_end + %(max_wait)s::interval THEN 'max_wait'
                ELSE 'final' END AS reason
    FROM candidates c
    CROSS JOIN LATERAL (
        SELECT CASE c.kind
            WHEN 'energy' THEN NOT EXISTS (
                   SELECT 1
                   FROM price_curve_targets t
                   LEFT JOIN consumption_coverage cv ON cv.resource_id = t.resource_id
                   WHERE t.event_id = c.event_id
                     AND (cv.data_until IS NULL OR cv.data_until < c.last_period_end))
            ELSE NOT EXISTS (
                   SELECT 1
                   FROM lpc_targets t
                   LEFT JOIN consumption_coverage own
                     ON own.resource_id = coalesce(t.resource_id, t.location_id)
                   WHERE t.event_id = c.event_id
                     AND NOT coalesce(own.data_until >= c.last_period_end, false)
                     AND (t.resource_id IS NOT NULL
                          OR NOT EXISTS (
                                 SELECT 1 FROM resources res
                                 LEFT JOIN locations loc ON loc.location_id = t.location_id
                                 WHERE res.location_id = t.location_id
                                   AND coalesce(res.meter_point_id, loc.meter_point_ids[1],
                                                t.meter_point_id) = t.meter_point_id)
                          OR EXISTS (
                                 SELECT 1 FROM resources res
                                 LEFT JOIN locations loc ON loc.location_id = t.location_id
                                 LEFT JOIN consumption_coverage cv
                                   ON cv.resource_id = res.resource_id
                                 WHERE res.location_id = t.location_id
                                   AND coalesce(res.meter_point_id, loc.meter_point_ids[1],
                                                t.meter_point_id) = t.meter_point_id
                                   AND (cv.data_until IS NULL
                                        OR cv.data_until < c.last_period_end))))
        END AS all_covered
    ) covered
    WHERE %(now)s >= c.final_from
       OR (%(now)s >= c.last_period_end + %(settle)s
           AND (covered.all_covered OR %(now)s >= c.last_period_end + %(max_wait)s::interval))
)
UPDATE reports r
SET status = 'due', due_reason = ready.reason, due_at = %(now)s, next_attempt_at = %(now)s,
    updated_at = %(now)s
FROM ready
WHERE r.id = ready.id AND r.status = 'pending'
RETURNING r.id;

-- name: next_report_attempt_at
-- When the next due or retrying report can go, for the task that waits for it.
SELECT min(next_attempt_at) AS next_attempt_at
FROM reports
WHERE status IN ('due', 'retrying');

-- name: claim_report
-- The next report to send (or the given one, or the given event's next), locked against
-- every other sender, and
-- leased: a lease that runs out means the sender died mid-send (expire_report_leases).
WITH next AS (
    SELECT id
    FROM reports
    WHERE status IN ('due', 'retrying')
      AND next_attempt_at <= %(now)s
      AND kind = ANY (%(kinds)s::text[])
      AND (%(report_id)s::bigint IS NULL OR id = %(report_id)s::bigint)
      AND (%(event_id)s::text IS NULL OR event_id = %(event_id)s::text)
      -- A report without a month (an acknowledgement) has no deadline to miss.
      AND (month_end IS NULL OR %(now)s < month_end + %(grace)s)
    ORDER BY month, next_attempt_at, id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
UPDATE reports r
SET status = 'sending', attempts = r.attempts + 1, lease_until = %(lease_until)s,
    updated_at = %(now)s
FROM next
WHERE r.id = next.id
RETURNING r.id, r.kind, r.event_id, r.part, r.parts, r.month, r.attempts, r.ambiguous_attempts,
          r.body IS NOT NULL AS built;

-- name: start_report_attempt
INSERT INTO report_attempts (report_id, attempt, started_at)
VALUES (%(id)s, %(attempt)s, %(now)s)
ON CONFLICT (report_id, attempt) DO NOTHING;

-- name: report_to_send
SELECT id, event_id, part, parts, attempts, body, idempotency_key, payload_count
FROM reports
WHERE id = %(id)s;

-- name: report_window
-- What building a report needs to know about its curve: the span readings may overlap it in,
-- and its periods in order (a period's slot is its place in this order, from 1).
SELECT c.event_id, c.first_period_start, c.last_period_end, c.resolution, c.target_count,
       c.first_period_start - b.longest_reading AS earliest_start,
       array_agg(p.period_start ORDER BY p.period_start) AS period_starts,
       array_agg(p.spark_timestamp ORDER BY p.period_start) AS spark_timestamps
FROM price_curves c
CROSS JOIN consumption_bounds b
JOIN price_curve_periods p ON p.event_id = c.event_id
WHERE c.event_id = %(event_id)s
GROUP BY c.event_id, c.first_period_start, c.last_period_end, c.resolution, c.target_count,
         b.longest_reading;

-- name: forget_recomputed_exclusions
-- Before a build: what the last build left out is found again by this one (a fix in the
-- registry or new readings show); what Spark refused stays set aside.
DELETE FROM report_exclusions WHERE event_id = %(event_id)s AND reason <> 'refused_by_spark';

-- name: leave_out_unacceptable_targets
-- Before a build: targets Spark cannot accept are left out, with the reason. Their user was
-- deleted at Spark (the resource's or the location's), or the resource's meterPointId is not
-- one of its location's MPIDs where the location has any (import and sync refuse such a
-- resource; this catches what was stored before; a location without MPIDs is Spark's
-- MissingMpidOnLocation, fixed by adding one, so the payload goes). Targets the registry does not know are sent: Spark may know them.
INSERT INTO report_exclusions (event_id, resource_id, location_id, reason, detail, recorded_at)
SELECT t.event_id, t.resource_id, t.location_id,
       CASE WHEN coalesce(ru.deleted_at, lu.deleted_at) IS NOT NULL THEN 'user_deleted'
            ELSE 'meter_point_not_at_location' END,
       CASE WHEN coalesce(ru.deleted_at, lu.deleted_at) IS NOT NULL
            THEN 'user ' || coalesce(ru.user_id, lu.user_id) || ' was deleted at Spark'
            ELSE 'meterPointId ' || res.meter_point_id || ' is not one of location '
                 || loc.location_id || '''s MPIDs ('
                 || coalesce(nullif(array_to_string(loc.meter_point_ids, ', '), ''), 'none')
                 || ')' END,
       %(now)s
FROM price_curve_targets t
LEFT JOIN resources res ON res.resource_id = t.resource_id
LEFT JOIN users ru ON ru.user_id = res.user_id
LEFT JOIN locations loc ON loc.location_id = t.location_id
LEFT JOIN users lu ON lu.user_id = loc.user_id
WHERE t.event_id = %(event_id)s
  AND (ru.deleted_at IS NOT NULL
       OR lu.deleted_at IS NOT NULL
       OR (res.meter_point_id IS NOT NULL AND cardinality(loc.meter_point_ids) > 0
           AND NOT (res.meter_point_id = ANY (loc.meter_point_ids))))
ON CONFLICT (event_id, resource_id, location_id) DO NOTHING;

-- name: record_targets_without_readings
-- After a build: the targets it has no payload for because their readings stop short of the
-- event's end are left out (no energy to report), with how far their readings reach. A
-- target whose readings cover the event and show no energy is not left out: it used none.
INSERT INTO report_exclusions (event_id, resource_id, location_id, reason, detail, recorded_at)
SELECT t.event_id, t.resource_id, t.location_id, 'no_readings',
       CASE WHEN cv.data_until IS NULL THEN 'no readings at all'
            ELSE 'readings only until '
                 || to_char(cv.data_until AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI"Z"') END,
       %(now)s
FROM price_curve_targets t
LEFT JOIN consumption_coverage cv ON cv.resource_id = t.resource_id
WHERE t.event_id = %(event_id)s
  AND (cv.data_until IS NULL OR cv.data_until < %(last_period_end)s)
  AND NOT EXISTS (
      SELECT 1 FROM report_payloads p
      WHERE p.event_id = t.event_id
        AND p.resource_id = t.resource_id
        AND p.location_id = t.location_id)
ON CONFLICT (event_id, resource_id, location_id) DO NOTHING;

-- name: report_shares
-- The pro rata split: for each distinct span of the readings that may overlap the curve, the
-- share of it that falls in each period it overlaps. Spans repeat across resources (hourly
-- and 15-minute values), so this is small, and the build's split of 2.4 million readings
-- (worker/reports/builder.py) is a hash join with it.
SELECT s.start_at, s.end_at, p.slot,
       extract(epoch FROM least(s.end_at, p.period_end) - greatest(s.start_at, p.period_start))
           / extract(epoch FROM s.end_at - s.start_at) AS share
FROM (
    SELECT DISTINCT start_at, end_at
    FROM readings
    WHERE start_at > %(earliest_start)s
      AND start_at < %(last_period_end)s
      AND end_at > %(first_period_start)s
) AS s
JOIN (
    SELECT period_start, period_end, row_number() OVER (ORDER BY period_start) AS slot
    FROM price_curve_periods
    WHERE event_id = %(event_id)s
) AS p
  ON s.start_at < p.period_end AND p.period_start < s.end_at;

-- name: mark_report_empty
-- Built, and no target used energy in the curve's periods: there is nothing to send.
UPDATE reports
SET status = 'empty', attempts = attempts - 1, built_at = %(now)s, payload_count = 0,
    point_count = 0, total_kwh = 0, lease_until = NULL, next_attempt_at = NULL,
    updated_at = %(now)s
WHERE id = %(id)s AND status = 'sending'
RETURNING id;

-- name: record_report_accepted
-- Spark took it. Also when the attempt had been given up as ambiguous meanwhile: the report
-- is then known to be at Spark and is not sent again. A later attempt still in flight keeps
-- its lease (its answer, a duplicate, is recorded too).
UPDATE reports
SET status = 'sent', spark_report_id = %(spark_report_id)s,
    spark_created_at = %(spark_created_at)s, sent_at = %(now)s, lease_until = NULL,
    next_attempt_at = NULL, last_error = NULL, updated_at = %(now)s
WHERE id = %(id)s
  AND status <> 'sent'
  AND (status <> 'sending' OR attempts = %(attempt)s)
RETURNING id;

-- name: record_report_retry
UPDATE reports
SET status = 'retrying', next_attempt_at = %(next_attempt_at)s, last_error = %(error)s,
    lease_until = NULL,
    ambiguous_attempts = ambiguous_attempts + CASE WHEN %(ambiguous)s THEN 1 ELSE 0 END,
    updated_at = %(now)s
WHERE id = %(id)s AND status = 'sending' AND attempts = %(attempt)s
RETURNING id;

-- name: record_report_rejected
UPDATE reports
SET status = 'rejected', rejected_status = %(http_status)s, rejection = %(message)s,
    last_error = %(error)s, lease_until = NULL, next_attempt_at = NULL, updated_at = %(now)s
WHERE id = %(id)s AND status = 'sending' AND attempts = %(attempt)s
RETURNING id;

-- name: finish_report_attempt
UPDATE report_attempts
SET finished_at = %(now)s, outcome = %(outcome)s, http_status = %(http_status)s,
    error = %(error)s, response = %(response)s, spark_report_id = %(spark_report_id)s,
    retry_after_seconds = %(retry_after)s
WHERE report_id = %(id)s AND attempt = %(attempt)s;

-- name: event_report_states
-- The event's energy report (a price curve's, or an LPC event's after the event).
SELECT id, kind, part, parts, status, body IS NOT NULL AS built, attempts, ambiguous_attempts
FROM reports
WHERE event_id = %(event_id)s AND kind <> 'lpc_ack'
ORDER BY part;

-- name: make_event_reports_due
-- `reports send --event`: now, whatever the readings say.
UPDATE reports
SET status = 'due', due_reason = coalesce(due_reason, 'manual'), due_at = coalesce(due_at, %(now)s),
    next_attempt_at = %(now)s, updated_at = %(now)s
WHERE event_id = %(event_id)s AND kind <> 'lpc_ack'
  AND status IN ('pending', 'due', 'retrying', 'rejected')
RETURNING id, part;

-- name: reset_event_reports
-- Back to one report to be built again (a rejected report none of whose parts reached Spark):
-- its payloads and further parts go, part 1 is due without a body.
WITH dropped_payloads AS (
    DELETE FROM report_payloads WHERE event_id = %(event_id)s RETURNING 1
), dropped_parts AS (
    DELETE FROM reports
    WHERE event_id = %(event_id)s AND kind <> 'lpc_ack' AND part > 1
    RETURNING 1
)
UPDATE reports
SET parts = 1, body = NULL, built_at = NULL, payload_count = NULL, point_count = NULL,
    total_kwh = NULL, idempotency_key = NULL, status = 'due',
    due_reason = coalesce(due_reason, 'manual'), due_at = coalesce(due_at, %(now)s),
    next_attempt_at = %(now)s, rejected_status = NULL, rejection = NULL, updated_at = %(now)s
WHERE event_id = %(event_id)s AND kind <> 'lpc_ack' AND part = 1
RETURNING id, (SELECT count(*) FROM dropped_parts) AS dropped_parts;

-- name: take_spark_slot
-- The next free slot in the shared schedule of Spark calls (real time, not the callers' "now"),
-- unless it is more than max_wait ahead: then no row, and the slot stays free.
INSERT INTO spark_rate_limit (name, next_slot)
VALUES ('spark', clock_timestamp() + %(interval)s)
ON CONFLICT (name) DO UPDATE
SET next_slot = greatest(spark_rate_limit.next_slot, clock_timestamp()) + %(interval)s
WHERE spark_rate_limit.next_slot <= clock_timestamp() + %(max_wait)s
RETURNING next_slot - %(interval)s AS slot, clock_timestamp() AS now;

-- name: next_spark_slot
-- How far ahead the next free slot of the shared schedule is.
SELECT next_slot - clock_timestamp() AS ahead FROM spark_rate_limit WHERE name = 'spark';

-- name: list_reports
SELECT r.id, r.kind, r.event_id, r.part, r.parts, r.month, r.status, r.due_reason, r.due_at,
       r.first_period_start, r.last_period_end, r.payload_count, r.point_count, r.total_kwh,
       r.attempts, r.ambiguous_attempts, r.next_attempt_at, r.last_error, r.spark_report_id,
       r.spark_created_at, r.sent_at, r.rejected_status, r.rejection, r.missed_at, r.alerted_at,
       r.zone, r.month_end + %(grace)s AS deadline,
       least(r.month_end, r.utc_month_end) + %(grace)s AS aim,
       (SELECT count(*) FROM report_attempts a
        WHERE a.report_id = r.id AND a.outcome = 'accepted') AS accepted_attempts,
       (SELECT count(*) FROM late_readings l WHERE l.event_id = r.event_id) AS late_readings
FROM reports r
WHERE (%(status)s::text IS NULL OR r.status = %(status)s)
  AND (%(month)s::date IS NULL OR r.month = %(month)s)
  AND (%(event_id)s::text IS NULL OR r.event_id = %(event_id)s)
  -- Energy reports: acknowledgements are shown by `lpc show`.
  AND r.kind <> 'lpc_ack'
ORDER BY r.month, r.first_period_start, r.event_id, r.part
LIMIT %(limit)s;

-- name: event_report_bodies
SELECT id, part, body, idempotency_key, built_at
FROM reports
WHERE event_id = %(event_id)s AND kind <> 'lpc_ack'
ORDER BY part;

-- name: list_report_attempts
SELECT report_id, attempt, started_at, finished_at, outcome, http_status, error, response,
       spark_report_id, retry_after_seconds
FROM report_attempts
WHERE report_id = ANY (%(report_ids)s)
ORDER BY report_id, attempt;

-- name: late_readings_of_event
SELECT resource_id, location_id, start_at, end_at, kwh, kwh_in_event, change, batch_id,
       recorded_at
FROM late_readings
WHERE event_id = %(event_id)s
ORDER BY recorded_at, id
LIMIT %(limit)s;

-- name: late_readings_summary
SELECT count(*) AS readings, coalesce(sum(kwh_in_event), 0) AS kwh_in_event,
       min(recorded_at) AS first_recorded_at, max(recorded_at) AS last_recorded_at
FROM late_readings
WHERE event_id = %(event_id)s;

-- name: report_deadlines
-- Per month and zone with something not yet final: counts per status, the deadline (the end
-- of the month in the zone, plus the grace), the aim (the earlier of that and the end of the
-- UTC month, plus the grace), when the final sweeps start, the reports still waiting for
-- readings (ended, not due yet) and the targets left out and set aside.
SELECT r.month, r.zone,
       min(r.month_end) + %(grace)s AS deadline,
       min(least(r.month_end, r.utc_month_end)) + %(grace)s AS aim,
       min(least(r.month_end, r.utc_month_end)) + %(grace)s - %(final_margin)s::interval
           AS final_sweeps_from,
       count(*) FILTER (WHERE r.status = 'pending') AS pending,
       count(*) FILTER (WHERE r.status = 'pending' AND r.last_period_end <= %(now)s) AS waiting,
       count(*) FILTER (WHERE r.status = 'due') AS due,
       count(*) FILTER (WHERE r.status = 'sending') AS sending,
       count(*) FILTER (WHERE r.status = 'retrying') AS retrying,
       count(*) FILTER (WHERE r.status = 'rejected') AS rejected,
       count(*) FILTER (WHERE r.status = 'sent') AS sent,
       count(*) FILTER (WHERE r.status = 'missed') AS missed,
       count(*) FILTER (WHERE r.status = 'empty') AS empty,
       coalesce(sum(x.left_out) FILTER (WHERE r.part = 1), 0) AS left_out,
       coalesce(sum(x.set_aside) FILTER (WHERE r.part = 1), 0) AS set_aside
FROM reports r
LEFT JOIN LATERAL (
    SELECT count(*) FILTER (WHERE e.reason <> 'refused_by_spark') AS left_out,
           count(*) FILTER (WHERE e.reason = 'refused_by_spark') AS set_aside
    FROM report_exclusions e
    WHERE e.event_id = r.event_id
) x ON true
WHERE r.kind <> 'lpc_ack'
  AND (r.month >= date_trunc('month', %(now)s AT TIME ZONE %(tz)s)::date - interval '1 month'
       OR r.status IN ('pending', 'due', 'sending', 'retrying', 'rejected'))
GROUP BY r.month, r.zone
ORDER BY r.month, r.zone;

-- name: month_report_exclusions
-- The targets a month's reports left out or set aside, and why, for `reports deadlines` and
-- `reports list`.
SELECT r.month, e.event_id, e.resource_id, e.location_id, e.reason, e.detail, e.recorded_at
FROM report_exclusions e
JOIN reports r ON r.event_id = e.event_id AND r.part = 1
WHERE (%(month)s::date IS NULL OR r.month = %(month)s)
ORDER BY r.month, e.event_id, e.resource_id, e.location_id
LIMIT %(limit)s;

-- name: month_reports_waiting
-- Reports that have ended and wait for readings, with the targets whose readings do not reach
-- the end of the event yet (what holds each one). An LPC event's targets (kind lpc_energy) are
-- held as promote_due_reports counts them covered, and named resource@location, or for a
-- location target meterPoint@location.
SELECT *
FROM (
    SELECT r.month, r.event_id, r.last_period_end,
           r.last_period_end + %(max_wait)s::interval AS due_by,
           count(*) FILTER (WHERE cv.data_until IS NULL OR cv.data_until < r.last_period_end)
               AS holding_count,
           -- The first few by name: an event may have 100,000 targets.
           (array_agg(t.resource_id || '@' || t.location_id ORDER BY t.resource_id, t.location_id)
               FILTER (WHERE cv.data_until IS NULL OR cv.data_until < r.last_period_end))[1:%(shown)s]
               AS holding
    FROM reports r
    JOIN price_curve_targets t ON t.event_id = r.event_id
    LEFT JOIN consumption_coverage cv ON cv.resource_id = t.resource_id
    WHERE r.kind = 'energy' AND r.status = 'pending' AND r.last_period_end <= %(now)s
      AND (%(month)s::date IS NULL OR r.month = %(month)s)
    GROUP BY r.month, r.event_id, r.last_period_end
    UNION ALL
    SELECT r.month, r.event_id, r.last_period_end,
           r.last_period_end + %(max_wait)s::interval AS due_by,
           count(*) FILTER (WHERE NOT h.covered) AS holding_count,
           (array_agg(coalesce(t.resource_id, t.meter_point_id) || '@' || t.location_id
                      ORDER BY t.target_no)
               FILTER (WHERE NOT h.covered))[1:%(shown)s] AS holding
    FROM reports r
    JOIN lpc_targets t ON t.event_id = r.event_id
    CROSS JOIN LATERAL (
        SELECT coalesce(own.data_until >= r.last_period_end, false)
               OR (t.resource_id IS NULL
                   AND EXISTS (
                       SELECT 1 FROM resources res
                       LEFT JOIN locations loc ON loc.location_id = t.location_id
                       WHERE res.location_id = t.location_id
                         AND coalesce(res.meter_point_id, loc.meter_point_ids[1],
                                      t.meter_point_id) = t.meter_point_id)
                   AND NOT EXISTS (
                       SELECT 1 FROM resources res
                       LEFT JOIN locations loc ON loc.location_id = t.location_id
                       LEFT JOIN consumption_coverage cv ON cv.resource_id = res.resource_id
                       WHERE res.location_id = t.location_id
                         AND coalesce(res.meter_point_id, loc.meter_point_ids[1],
                                      t.meter_point_id) = t.meter_point_id
                         AND (cv.data_until IS NULL OR cv.data_until < r.last_period_end)))
               AS covered
        FROM (SELECT 1) AS one
        LEFT JOIN consumption_coverage own
          ON own.resource_id = coalesce(t.resource_id, t.location_id)
    ) h
    WHERE r.kind = 'lpc_energy' AND r.status = 'pending' AND r.last_period_end <= %(now)s
      AND (%(month)s::date IS NULL OR r.month = %(month)s)
    GROUP BY r.month, r.event_id, r.last_period_end
) AS waiting
ORDER BY month, last_period_end, event_id
LIMIT %(limit)s;

-- name: users_due_for_compensation
-- Users with a sent report this month whose compensation was not fetched since
-- %(fetched_before)s: a resource's user, or its location's.
SELECT DISTINCT coalesce(res.user_id, loc.user_id) AS user_id
FROM reports r
JOIN report_payloads p ON p.event_id = r.event_id AND p.part = r.part
LEFT JOIN resources res ON res.resource_id = p.resource_id
LEFT JOIN locations loc ON loc.location_id = p.location_id
WHERE r.month = %(month)s
  AND r.status = 'sent'
  AND coalesce(res.user_id, loc.user_id) IS NOT NULL
  AND NOT EXISTS (
      SELECT 1 FROM compensation_fetches f
      WHERE f.user_id = coalesce(res.user_id, loc.user_id)
        AND f.month = %(month)s
        AND f.fetched_at >= %(fetched_before)s)
ORDER BY 1
LIMIT %(limit)s;

-- name: replace_compensations
-- A user's compensation for a month as Spark just gave it, replacing what was fetched before.
WITH dropped AS (
    DELETE FROM compensations WHERE user_id = %(user_id)s AND month = %(month)s RETURNING 1
), added AS (
    INSERT INTO compensations (
        user_id, month, location_id, meter_point_ids, active_amount, blocked_amount,
        currency, problems, fetched_at
    )
    SELECT %(user_id)s, %(month)s, c.location_id, c.meter_point_ids, c.active_amount,
           c.blocked_amount, c.currency, c.problems, %(now)s
    FROM jsonb_to_recordset(%(locations)s::jsonb) AS c(
        location_id text, meter_point_ids text[], active_amount double precision,
        blocked_amount double precision, currency text, problems jsonb)
    RETURNING 1
)
INSERT INTO compensation_fetches (user_id, month, fetched_at, error)
VALUES (%(user_id)s, %(month)s, %(now)s, NULL)
ON CONFLICT (user_id, month) DO UPDATE
SET fetched_at = EXCLUDED.fetched_at, error = NULL
RETURNING (SELECT count(*) FROM added) AS locations, (SELECT count(*) FROM dropped) AS replaced;

-- name: record_compensation_error
INSERT INTO compensation_fetches (user_id, month, fetched_at, error)
VALUES (%(user_id)s, %(month)s, %(now)s, %(error)s)
ON CONFLICT (user_id, month) DO UPDATE
SET fetched_at = EXCLUDED.fetched_at, error = EXCLUDED.error;

-- name: list_compensations
SELECT c.user_id, c.month, c.location_id, c.meter_point_ids, c.active_amount,
       c.blocked_amount, c.currency, c.problems, c.fetched_at
FROM compensations c
WHERE c.month = %(month)s
  AND (%(user_id)s::text IS NULL OR c.user_id = %(user_id)s)
ORDER BY c.user_id, c.location_id;

-- name: list_compensation_errors
SELECT user_id, month, fetched_at, error
FROM compensation_fetches
WHERE month = %(month)s AND error IS NOT NULL
ORDER BY user_id;

-- name: month_reports_of_user
-- For deleting a user: the kWh its sent reports of a month carried, and its reports of that
-- month not final yet (not built: a pending curve naming one of its resources; built: a
-- part with one of its payloads).
WITH mine AS (
    SELECT resource_id FROM resources WHERE user_id = %(user_id)s
), month_reports AS (
    SELECT * FROM reports WHERE month = %(month)s
)
SELECT
    (SELECT coalesce(sum(p.kwh), 0)
     FROM month_reports r
     JOIN report_payloads p ON p.event_id = r.event_id AND p.part = r.part
     JOIN mine m ON m.resource_id = p.resource_id
     WHERE r.status = 'sent') AS kwh,
    (SELECT count(*)
     FROM month_reports r
     WHERE r.status IN ('pending', 'due', 'sending', 'retrying', 'rejected')
       AND CASE
               WHEN r.body IS NULL THEN EXISTS (
                   SELECT 1 FROM price_curve_targets t JOIN mine m USING (resource_id)
                   WHERE t.event_id = r.event_id)
               ELSE EXISTS (
                   SELECT 1 FROM report_payloads p JOIN mine m USING (resource_id)
                   WHERE p.event_id = r.event_id AND p.part = r.part)
           END) AS pending;

-- name: reports_waiting_for_readings
-- Whether a pending report (or a curve or LPC event not planned yet) has ended and settled, so
-- that new readings may complete it: then storing readings is followed by a sweep.
SELECT EXISTS (
           SELECT 1 FROM reports
           WHERE status = 'pending' AND last_period_end + %(settle)s <= %(now)s)
       OR EXISTS (
           SELECT 1 FROM price_curves c
           WHERE c.target_count > 0
             AND c.last_period_end + %(settle)s <= %(now)s
             AND c.last_period_end > %(now)s - interval '62 days'
             AND NOT EXISTS (SELECT 1 FROM reports r WHERE r.event_id = c.event_id))
       OR EXISTS (
           SELECT 1 FROM lpc_events e
           WHERE e.kind IN ('resource', 'location')
             AND e.last_period_end + %(settle)s <= %(now)s
             AND e.last_period_end > %(now)s - interval '62 days'
             AND NOT EXISTS (
                 SELECT 1 FROM reports r
                 WHERE r.event_id = e.event_id AND r.kind = 'lpc_energy'))
       AS waiting;

-- name: set_local_setting
-- A planner or memory setting for the rest of this transaction only.
SELECT set_config(%(name)s, %(value)s, true);

-- name: event_report_exclusions
-- The targets an event's report left out or set aside, and why (`reports show`).
SELECT event_id, resource_id, location_id, reason, detail, recorded_at
FROM report_exclusions
WHERE event_id = %(event_id)s
ORDER BY resource_id, location_id;

-- name: event_report_timing
-- `reports send --event`: the event's deadline, and its periods that have not ended by
-- %(now)s (whose energy is not known yet).
SELECT r.month, r.zone, r.month_end + %(grace)s AS deadline, r.last_period_end,
       CASE r.kind
           WHEN 'energy' THEN
               array(SELECT p.period_start
                     FROM price_curve_periods p
                     WHERE p.event_id = r.event_id AND p.period_end > %(now)s
                     ORDER BY p.period_start)
           ELSE
               -- An LPC event's periods: its targets' caps (each target its own resolution).
               array(SELECT DISTINCT c.period_start
                     FROM lpc_caps c
                     WHERE c.event_id = r.event_id AND c.period_end > %(now)s
                     ORDER BY c.period_start)
       END AS unknown_periods
FROM reports r
WHERE r.event_id = %(event_id)s AND r.kind <> 'lpc_ack' AND r.part = 1;

-- name: miss_event_reports
-- `reports send --event` past the deadline: the event's open reports are missed now (the
-- sweep alerts them once, as any other).
UPDATE reports
SET status = 'missed', missed_at = %(now)s, next_attempt_at = NULL, updated_at = %(now)s
WHERE event_id = %(event_id)s AND kind <> 'lpc_ack'
  AND status IN ('pending', 'due', 'retrying', 'rejected')
RETURNING id, part;

-- name: user_month_deadline
-- For deleting a user after a month: the month's last deadline that concerns the user, the
-- end of the month in each zone its reports were in (its price areas), in SPARK_TIMEZONE
-- (%(tz)s) and in UTC, whichever comes last, plus %(grace)s. Before it, Spark may still be
-- counting the month, and a user deleted then is not compensated for it.
WITH mine AS (
    SELECT resource_id FROM resources WHERE user_id = %(user_id)s
)
SELECT greatest(
           (%(month)s::date + interval '1 month')::timestamp AT TIME ZONE 'UTC',
           (%(month)s::date + interval '1 month')::timestamp AT TIME ZONE %(tz)s::text,
           (SELECT max(r.month_end)
            FROM reports r
            WHERE r.month = %(month)s::date
              AND EXISTS (
                  SELECT 1 FROM price_curve_targets t JOIN mine m USING (resource_id)
                  WHERE t.event_id = r.event_id))
       ) + %(grace)s::interval AS deadline;

-- name: report_part_payloads
-- The targets one report carries, to find those Spark's refusal names.
SELECT resource_id, location_id
FROM report_payloads
WHERE event_id = %(event_id)s AND part = %(part)s
ORDER BY resource_id, location_id;

-- name: set_aside_payloads
-- Spark refused a report (4xx: nothing reached it) naming some of its payloads: those are set
-- aside with Spark's answer, and the rest (%(body)s, NULL when nothing is left) is due again
-- now, under an idempotency key of its own.
WITH named AS (
    SELECT *
    FROM unnest(%(resource_ids)s::text[], %(location_ids)s::text[]) AS n(resource_id, location_id)
), recorded AS (
    INSERT INTO report_exclusions (event_id, resource_id, location_id, reason, detail, recorded_at)
    SELECT %(event_id)s, resource_id, location_id, 'refused_by_spark', %(message)s, %(now)s
    FROM named
    ON CONFLICT (event_id, resource_id, location_id) DO UPDATE
    SET reason = EXCLUDED.reason, detail = EXCLUDED.detail, recorded_at = EXCLUDED.recorded_at
    RETURNING 1
), dropped AS (
    DELETE FROM report_payloads p
    USING named n
    WHERE p.event_id = %(event_id)s
      AND p.part = %(part)s
      AND p.resource_id = n.resource_id
      AND p.location_id = n.location_id
    RETURNING p.kwh, p.points
)
UPDATE reports r
SET status = CASE WHEN %(body)s::text IS NULL THEN 'empty' ELSE 'due' END,
    body = %(body)s::text,
    idempotency_key = r.event_id || '/' || r.part || '/' || md5(coalesce(%(body)s::text, '')),
    payload_count = r.payload_count - (SELECT count(*) FROM dropped),
    point_count = r.point_count - (SELECT coalesce(sum(points), 0) FROM dropped),
    total_kwh = r.total_kwh - (SELECT coalesce(sum(kwh), 0) FROM dropped),
    next_attempt_at = CASE WHEN %(body)s::text IS NULL THEN NULL ELSE %(now)s END,
    lease_until = NULL,
    last_error = 'set aside ' || (SELECT count(*) FROM recorded) || ' payload(s) Spark refused',
    updated_at = %(now)s
WHERE r.id = %(id)s AND r.status = 'sending' AND r.attempts = %(attempt)s
RETURNING r.id, r.status;

-- name: readings_after_sent_body
-- Late readings the consumption side did not record: readings of the event's targets in its
-- periods stored after the body that was sent was built, which late_readings does not hold.
-- They came while the report was rejected (late data is not recorded then, since a rejected
-- report is usually built again) and it was then sent again as it was (part of it may have
-- reached Spark), so they are in no body Spark has.
SELECT rd.resource_id, rd.location_id, rd.start_at, rd.end_at, rd.kwh,
       kwh_in_span(rd.kwh, rd.start_at, rd.end_at, c.first_period_start, c.last_period_end)
           AS kwh_in_event,
       'new' AS change, rd.batch_id, rd.received_at AS recorded_at
FROM price_curves c
CROSS JOIN LATERAL (
    SELECT min(built_at) AS built_at
    FROM reports
    WHERE event_id = c.event_id AND status = 'sent'
) b
JOIN price_curve_targets t ON t.event_id = c.event_id
JOIN readings rd
  ON rd.resource_id = t.resource_id
 AND (rd.location_id IS NULL OR rd.location_id = t.location_id)
 AND rd.start_at < c.last_period_end
 AND c.first_period_start < rd.end_at
WHERE c.event_id = %(event_id)s
  AND rd.received_at > b.built_at
  AND NOT EXISTS (
      SELECT 1 FROM late_readings l
      WHERE l.event_id = c.event_id
        AND l.resource_id = rd.resource_id
        AND l.start_at = rd.start_at
        AND l.end_at = rd.end_at
        AND l.batch_id = rd.batch_id)
ORDER BY rd.received_at, rd.resource_id, rd.start_at
LIMIT %(limit)s;

-- name: correction_candidates
-- SPARK_REPORT_CORRECTIONS=replace: sent one-part reports before their deadline whose late
-- readings have settled (the last came %(settle)s ago or more) and came after the latest
-- revision was built, with that revision's kWh.
SELECT r.event_id, lr.last_recorded,
       coalesce(prev.revision, 1) AS revision,
       coalesce(prev.sent_kwh, r.total_kwh) AS current_kwh
FROM reports r
CROSS JOIN LATERAL (
    SELECT max(l.recorded_at) AS last_recorded
    FROM late_readings l
    WHERE l.event_id = r.event_id
) lr
LEFT JOIN LATERAL (
    SELECT c.revision, c.status, c.late_until,
           (SELECT s.total_kwh FROM report_corrections s
            WHERE s.event_id = r.event_id AND s.status = 'sent'
            ORDER BY s.revision DESC LIMIT 1) AS sent_kwh
    FROM report_corrections c
    WHERE c.event_id = r.event_id
    ORDER BY c.revision DESC
    LIMIT 1
) prev ON true
WHERE r.kind = 'energy' AND r.status = 'sent' AND r.part = 1 AND r.parts = 1
  AND %(now)s < r.month_end + %(grace)s
  AND lr.last_recorded IS NOT NULL
  AND lr.last_recorded + %(settle)s <= %(now)s
  AND (prev.revision IS NULL OR (prev.status <> 'due' AND prev.late_until < lr.last_recorded))
ORDER BY r.event_id
LIMIT %(limit)s;

-- name: add_report_correction
INSERT INTO report_corrections (
    event_id, revision, status, body, idempotency_key, total_kwh, previous_kwh, late_until,
    built_at
)
VALUES (%(event_id)s::text, %(revision)s::integer, %(status)s::text, %(body)s::text,
        %(event_id)s::text || '/r' || %(revision)s::integer || '/' || md5(%(body)s::text),
        %(kwh)s,
        %(previous_kwh)s, %(late_until)s, %(now)s)
ON CONFLICT (event_id, revision) DO NOTHING
RETURNING event_id, revision, status;

-- name: miss_overdue_corrections
UPDATE report_corrections c
SET status = 'missed'
FROM reports r
WHERE c.status = 'due' AND r.event_id = c.event_id AND r.part = 1
  AND %(now)s >= r.month_end + %(grace)s
RETURNING c.event_id, c.revision;

-- name: due_corrections
SELECT event_id, revision, body, idempotency_key, attempts
FROM report_corrections
WHERE status = 'due'
ORDER BY built_at, event_id
LIMIT %(limit)s;

-- name: record_correction_attempt
UPDATE report_corrections
SET status = %(status)s, attempts = attempts + 1, last_error = %(error)s,
    response = %(response)s, spark_report_id = %(spark_report_id)s,
    sent_at = CASE WHEN %(status)s = 'sent' THEN %(now)s ELSE sent_at END
WHERE event_id = %(event_id)s AND revision = %(revision)s AND status = 'due'
RETURNING event_id;

-- name: event_report_corrections
SELECT revision, status, total_kwh, previous_kwh, late_until, built_at, attempts, last_error,
       response, spark_report_id, sent_at, idempotency_key
FROM report_corrections
WHERE event_id = %(event_id)s
ORDER BY revision;

-- name: lpc_energy_points
-- The energy of each target of an LPC event in each of its periods (its caps' periods, in the
-- target's own resolution), from the readings, pro rata where a reading spans more than a
-- period; rounded to the Wh's thousandth, and only where it is above 0.
--   A resource target: its resource's readings that name its location, or no location when
--   the event names the resource at one location only (the price curves' rule).
--   A location target: the location's own meter where it has readings in the period (readings
--   whose resourceId is the location's id: the reading names the location alone); else the
--   sum of the readings of the resources at the location (as the reading names it, or as our
--   registry has it) behind the target's meter point. A resource without a meter point, and
--   the location's own meter, count for the location's first meter point.
WITH targets AS (
    SELECT t.target_no, t.resource_id, t.location_id, t.meter_point_id,
           count(*) OVER (PARTITION BY t.resource_id) = 1 AS only_location
    FROM lpc_targets t
    WHERE t.event_id = %(event_id)s
), periods AS (
    SELECT t.*, c.period_start, c.period_end, c.spark_timestamp
    FROM targets t
    JOIN lpc_caps c ON c.event_id = %(event_id)s AND c.target_no = t.target_no
), span AS (
    SELECT min(p.period_start) - b.longest_reading AS earliest_start,
           min(p.period_start) AS first_start, max(p.period_end) AS last_end
    FROM periods p
    CROSS JOIN consumption_bounds b
    GROUP BY b.longest_reading
), nearby AS (
    -- The readings that may count for a target: in the event's span (a range of the BRIN
    -- index on start_at), of its resources, its locations' own meters, the resources our
    -- registry has at its locations, or naming one of its locations. Filtered here, in one
    -- pass, so that the joins with the periods below are small.
    SELECT r.resource_id, r.location_id, r.start_at, r.end_at, r.kwh
    FROM readings r
    CROSS JOIN span
    WHERE r.start_at > span.earliest_start
      AND r.start_at < span.last_end
      AND r.end_at > span.first_start
      AND (r.resource_id IN (SELECT coalesce(resource_id, location_id) FROM targets)
           OR r.location_id IN (SELECT location_id FROM targets WHERE resource_id IS NULL)
           OR r.resource_id IN (
                  SELECT res.resource_id
                  FROM resources res
                  JOIN targets t ON t.location_id = res.location_id AND t.resource_id IS NULL))
), resource_sums AS (
    SELECT p.target_no, p.period_start,
           sum(kwh_in_span(r.kwh, r.start_at, r.end_at, p.period_start, p.period_end)) AS kwh
    FROM periods p
    JOIN nearby r
      ON r.resource_id = p.resource_id
     AND (r.location_id = p.location_id OR (r.location_id IS NULL AND p.only_location))
     AND r.start_at < p.period_end
     AND r.end_at > p.period_start
    WHERE p.resource_id IS NOT NULL
    GROUP BY p.target_no, p.period_start
), location_sums AS (
    SELECT p.target_no, p.period_start,
           sum(kwh_in_span(r.kwh, r.start_at, r.end_at, p.period_start, p.period_end))
               FILTER (WHERE r.resource_id = p.location_id) AS own_kwh,
           sum(kwh_in_span(r.kwh, r.start_at, r.end_at, p.period_start, p.period_end))
               FILTER (WHERE r.resource_id <> p.location_id) AS resources_kwh
    FROM periods p
    JOIN nearby r ON r.start_at < p.period_end AND r.end_at > p.period_start
    LEFT JOIN resources res ON res.resource_id = r.resource_id
    LEFT JOIN locations loc ON loc.location_id = p.location_id
    WHERE p.resource_id IS NULL
      AND (
          -- The location's own meter, for its first meter point (a reading that names the
          -- location alone cannot say which of several it is).
          (r.resource_id = p.location_id AND coalesce(r.location_id, p.location_id) = p.location_id
           AND coalesce(loc.meter_point_ids[1], p.meter_point_id) = p.meter_point_id)
          -- A resource at the location, behind the target's meter point.
          OR (r.resource_id <> p.location_id
              AND coalesce(r.location_id, res.location_id) = p.location_id
              AND coalesce(res.meter_point_id, loc.meter_point_ids[1], p.meter_point_id)
                  = p.meter_point_id))
    GROUP BY p.target_no, p.period_start
), energy AS (
    SELECT target_no, period_start, kwh FROM resource_sums
    UNION ALL
    SELECT target_no, period_start, coalesce(own_kwh, resources_kwh) FROM location_sums
)
SELECT p.target_no, p.resource_id, p.location_id, p.meter_point_id, t.resolution,
       p.period_start, p.spark_timestamp,
       round(e.kwh::numeric, 6)::double precision AS kwh
FROM periods p
JOIN energy e ON e.target_no = p.target_no AND e.period_start = p.period_start
JOIN lpc_targets t ON t.event_id = %(event_id)s AND t.target_no = p.target_no
WHERE round(e.kwh::numeric, 6) > 0
ORDER BY p.target_no, p.period_start;

-- name: write_lpc_energy_report
-- The built body of an LPC event's energy report, on its claimed row.
UPDATE reports
SET body = %(body)s, built_at = %(now)s, payload_count = %(payloads)s,
    point_count = %(points)s, total_kwh = %(kwh)s,
    idempotency_key = 'lpc-energy/' || event_id || '/' || md5(%(body)s::text),
    updated_at = %(now)s
WHERE id = %(id)s AND kind = 'lpc_energy' AND status = 'sending'
RETURNING id;
