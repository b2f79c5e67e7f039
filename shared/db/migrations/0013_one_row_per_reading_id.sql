-- A readingId stands for one reading of one resource: at most one stored row per
-- (resource_id, reading_id). Until now only a reading sent again in a later chunk moved its
-- old span; the same readingId twice in one file, request or batch (a charging session's
-- partial span, then its final one) left both rows, and reports counted the energy twice.
--
-- Rows that break the rule already: the last stored one stays (latest received_at; within
-- one batch the longer, later span, which is the session's final one). The others go, and
-- count as late data ('moved') where a report for their span was built already, so that
-- `reports show` names the energy a sent report may have counted twice.
--
-- A partial unique index rather than a UNIQUE constraint: readings without a readingId (most
-- meter data) are then not in it, so it costs them nothing, as the index it replaces did.
SET LOCAL statement_timeout = 0;

WITH ranked AS (
    SELECT ctid AS row_ctid,
           row_number() OVER (
               PARTITION BY resource_id, reading_id
               ORDER BY received_at DESC, end_at DESC, start_at DESC
           ) AS place
    FROM readings
    WHERE reading_id IS NOT NULL
), superseded AS (
    DELETE FROM readings r
    USING ranked k
    WHERE r.ctid = k.row_ctid AND k.place > 1
    RETURNING r.resource_id, r.location_id, r.start_at, r.end_at, r.kwh, r.batch_id
)
INSERT INTO late_readings (
    event_id, resource_id, location_id, start_at, end_at, kwh, kwh_in_event, change,
    batch_id, recorded_at
)
SELECT c.event_id, s.resource_id, s.location_id, s.start_at, s.end_at, s.kwh,
       kwh_in_span(s.kwh, s.start_at, s.end_at, c.first_period_start, c.last_period_end),
       'moved', s.batch_id, now()
FROM superseded s
JOIN price_curve_targets t
  ON t.resource_id = s.resource_id
 AND (s.location_id IS NULL OR t.location_id = s.location_id)
JOIN price_curves c
  ON c.event_id = t.event_id
 AND c.first_period_start < s.end_at
 AND s.start_at < c.last_period_end
WHERE EXISTS (
    SELECT 1 FROM reports rp
    WHERE rp.event_id = c.event_id AND rp.built_at IS NOT NULL AND rp.status <> 'rejected'
);

DROP INDEX readings_reading_id_idx;
CREATE UNIQUE INDEX readings_reading_id_key ON readings (resource_id, reading_id)
    WHERE reading_id IS NOT NULL;
