-- Consumption: batches of readings, checked and merged set-wise. Each chunk's good readings
-- end up in the session's temporary table `incoming_readings`, by one of two ways
-- (worker/consumption/store.py):
--   - new readings of a plain file: COPYed there as they are, then a plain INSERT into
--     `readings`, whose constraints are the row rules (insert_incoming_readings);
--   - anything else: COPYed into `staged_readings` as text, checked row by row with a reason
--     for each bad one (check_staged_readings), old spans of re-sent readingIds given up
--     (move_resent_readings), then merged (merge_incoming_readings).
-- What follows reads them there: coverage, the longest reading and late data
-- (account_incoming_readings).
--
-- A reading is [start, end) with the kWh a resource used in it. Its identity is (resource,
-- start, end): sent again, it replaces the stored reading. A readingId stands for one
-- reading of a resource (readings_reading_id_key): sent again with another span, it replaces
-- its old span, and within a chunk its last row wins. Energy is split into a curve's periods
-- pro rata by overlap when a report is built (worker/reports/builder.py).

-- name: open_consumption_batch
-- Nothing when the batch is known: a redelivered task or a retried import finds it here.
INSERT INTO consumption_batches (batch_id, source, received_at)
VALUES (%(batch_id)s, %(source)s, %(received_at)s)
ON CONFLICT (batch_id) DO NOTHING
RETURNING batch_id;

-- name: get_consumption_batch
SELECT batch_id, source, received_at, stored_at, readings, inserted, replaced, unchanged,
       rejected, late, errors
FROM consumption_batches
WHERE batch_id = %(batch_id)s;

-- name: add_to_consumption_batch
-- Counts of one more chunk; the first rejected rows are kept (up to %(max_errors)s).
UPDATE consumption_batches
SET readings = readings + %(readings)s,
    inserted = inserted + %(inserted)s,
    replaced = replaced + %(replaced)s,
    unchanged = unchanged + %(unchanged)s,
    rejected = rejected + %(rejected)s,
    late = late + %(late)s,
    errors = CASE
        WHEN jsonb_array_length(errors) >= %(max_errors)s THEN errors
        ELSE (SELECT coalesce(jsonb_agg(e), '[]')
              FROM (SELECT e FROM jsonb_array_elements(errors || %(errors)s::jsonb) AS e
                    LIMIT %(max_errors)s) AS first)
    END,
    stored_at = %(stored_at)s
WHERE batch_id = %(batch_id)s;

-- name: move_resent_readings
-- Before the chunk is merged: a reading whose readingId comes again with another span loses
-- its old span, so that one row per (resource, readingId) stays (readings_reading_id_key).
-- The old span goes, and counts as late data where a report for it was built already; unless
-- a row of the chunk stores that span again, which then replaces it (the old row only gives
-- up the readingId here, so that the new span may take it).
WITH latest AS (
    -- One row per readingId of a resource: the chunk's check kept each one's last row.
    SELECT resource_id, reading_id, start_at, end_at
    FROM incoming_readings
    WHERE reading_id IS NOT NULL
), stale AS (
    SELECT r.start_at, r.resource_id, r.end_at,
           EXISTS (
               SELECT 1 FROM incoming_readings same
               WHERE same.resource_id = r.resource_id
                 AND same.start_at = r.start_at
                 AND same.end_at = r.end_at
           ) AS stored_again
    FROM readings r
    JOIN latest s ON r.resource_id = s.resource_id AND r.reading_id = s.reading_id
    WHERE (r.start_at, r.end_at) <> (s.start_at, s.end_at)
), released AS (
    UPDATE readings r
    SET reading_id = NULL
    FROM stale s
    WHERE s.stored_again
      AND (r.start_at, r.resource_id, r.end_at) = (s.start_at, s.resource_id, s.end_at)
    RETURNING 1
), moved AS (
    DELETE FROM readings r
    USING stale s
    WHERE NOT s.stored_again
      AND (r.start_at, r.resource_id, r.end_at) = (s.start_at, s.resource_id, s.end_at)
    RETURNING r.resource_id, r.location_id, r.start_at, r.end_at, r.kwh
), late AS (
    INSERT INTO late_readings (
        event_id, resource_id, location_id, start_at, end_at, kwh, kwh_in_event, change,
        batch_id, recorded_at
    )
    SELECT c.event_id, m.resource_id, m.location_id, m.start_at, m.end_at, m.kwh,
           kwh_in_span(m.kwh, m.start_at, m.end_at, c.first_period_start, c.last_period_end),
           'moved', %(batch_id)s, %(now)s
    FROM moved m
    JOIN price_curve_targets t
      ON t.resource_id = m.resource_id
     AND (m.location_id IS NULL OR t.location_id = m.location_id)
    JOIN price_curves c
      ON c.event_id = t.event_id
     AND c.first_period_start < m.end_at
     AND m.start_at < c.last_period_end
    WHERE EXISTS (
        SELECT 1 FROM reports rp
        WHERE rp.event_id = c.event_id AND rp.built_at IS NOT NULL AND rp.status <> 'rejected'
    )
    RETURNING 1
)
SELECT (SELECT count(*) FROM moved) AS moved, (SELECT count(*) FROM released) AS released,
       (SELECT count(*) FROM late) AS late;

-- name: create_incoming_readings
-- A chunk's good readings, whichever way they came in; emptied at commit. Of the rows of one
-- readingId only the chunk's last is here. `wins`: the row is stored (the chunk's last for
-- its span). `change` is what storing it did: 'new', 'changed', or NULL when the stored one
-- was the same or the row did not win.
CREATE TEMPORARY TABLE IF NOT EXISTS incoming_readings (
    resource_id         text NOT NULL,
    location_id         text,
    start_at            timestamptz NOT NULL,
    end_at              timestamptz NOT NULL,
    kwh                 double precision NOT NULL,
    reading_id          text,
    wins                boolean NOT NULL DEFAULT true,
    change              text DEFAULT 'new'
) ON COMMIT DELETE ROWS;

-- name: insert_incoming_readings
-- New readings COPYed into `incoming_readings` straight from a file, in one INSERT. It fails
-- when a row breaks a rule (the constraints of `readings`), is stored already, or is sent
-- twice in the chunk (the key, or its readingId: readings_reading_id_key): the caller then
-- takes the chunk the checked way.
INSERT INTO readings (
    resource_id, start_at, end_at, location_id, kwh, reading_id, batch_id, received_at
)
SELECT resource_id, start_at, end_at, location_id, kwh, reading_id, %(batch_id)s, %(now)s
FROM incoming_readings;

-- name: check_staged_readings
-- The chunk's rows, checked; the good ones go to `incoming_readings`, the bad ones are
-- returned with why and their place in the batch (1 for its first row; places are only
-- worked out when a row is bad):
--   1. each row checked (the rules of shared/readings.py). Each cast is guarded by the
--      checks before it; a value they cannot catch (February 30th, 1e999) makes the
--      statement fail, and the caller then checks the rows one by one;
--   2. the last row of a readingId wins: the earlier ones are left out (a charging session's
--      partial span, then its final one);
--   3. of the rest, the last row for a span wins (`wins`); the others stay for their
--      readingId, which may move a stored span (move_resent_readings).
WITH cast_rows AS (
    SELECT row_no, resource_id, nullif(location_id, '') AS location_id,
           nullif(reading_id, '') AS reading_id, start_at AS start_text, end_at AS end_text,
           kwh AS kwh_text,
           -- time_spelling, kwh_spelling: shared/readings.py's TIME_SPELLING and
           -- KWH_SPELLING, anchored.
           CASE WHEN start_at ~ %(time_spelling)s THEN start_at::timestamptz END AS start_at,
           CASE WHEN end_at ~ %(time_spelling)s THEN end_at::timestamptz END AS end_at,
           CASE WHEN kwh ~ %(kwh_spelling)s THEN kwh::double precision END AS kwh
    FROM staged_readings
    WHERE batch_token = %(token)s
    -- A fence: the casts are computed once per row, not again wherever a check names them.
    OFFSET 0
), checked AS (
    SELECT *,
           CASE
               WHEN coalesce(resource_id, '') = '' THEN 'resourceId is required'
               WHEN octet_length(resource_id) > 200 THEN 'resourceId is longer than 200 bytes'
               WHEN octet_length(location_id) > 200 THEN 'locationId is longer than 200 bytes'
               WHEN octet_length(reading_id) > 200 THEN 'readingId is longer than 200 bytes'
               WHEN coalesce(start_text, '') = '' THEN 'start is required'
               WHEN start_at IS NULL
                   THEN 'start must be an ISO 8601 date and time with Z or a ±hh:mm offset'
               WHEN coalesce(end_text, '') = '' THEN 'end is required'
               WHEN end_at IS NULL
                   THEN 'end must be an ISO 8601 date and time with Z or a ±hh:mm offset'
               WHEN coalesce(kwh_text, '') = '' THEN 'kWh is required'
               WHEN kwh IS NULL THEN 'kWh must be a number'
               WHEN end_at <= start_at THEN 'end must be after start'
               WHEN end_at - start_at > interval '31 days'
                   THEN 'a reading may span at most 31 days'
               WHEN NOT (kwh >= 0 AND kwh < 'Infinity'::double precision)
                   THEN 'kWh must be a finite number, 0 or more'
           END AS error
    FROM cast_rows
), latest AS (
    -- Rows without a readingId are each their own partition (row_no), so all of them stay.
    SELECT *
    FROM (
        SELECT row_no, resource_id, location_id, start_at, end_at, kwh, reading_id,
               row_number() OVER (
                   PARTITION BY resource_id, reading_id,
                                CASE WHEN reading_id IS NULL THEN row_no END
                   ORDER BY row_no DESC
               ) = 1 AS last_of_id
        FROM checked
        WHERE error IS NULL
    ) AS numbered
    WHERE last_of_id
), incoming AS (
    -- The window sorts the rows by key, so they reach the merge in that order, which the
    -- index takes much faster than scattered inserts.
    INSERT INTO incoming_readings (
        resource_id, location_id, start_at, end_at, kwh, reading_id, wins, change
    )
    SELECT resource_id, location_id, start_at, end_at, kwh, reading_id,
           row_number() OVER (PARTITION BY start_at, resource_id, end_at ORDER BY row_no DESC)
               = 1,
           NULL
    FROM latest
    RETURNING reading_id
), bad AS (
    SELECT row_no, error FROM checked WHERE error IS NOT NULL
), placed AS (
    SELECT row_no, row_number() OVER (ORDER BY row_no) AS place
    FROM staged_readings
    WHERE batch_token = %(token)s AND EXISTS (SELECT 1 FROM bad)
)
SELECT (SELECT count(*) FROM checked) AS rows,
       (SELECT count(*) FROM bad) AS rejected,
       (SELECT count(reading_id) FROM incoming) AS with_reading_id,
       (SELECT coalesce(json_agg(json_build_object('place', p.place, 'error', b.error)
                                 ORDER BY p.place), '[]')
        FROM bad b JOIN placed p ON p.row_no = b.row_no) AS errors;

-- name: merge_incoming_readings
-- The chunk's winning rows into `readings`: inserted, or replacing the stored reading when
-- they differ from it; `incoming_readings` then says what storing each one did.
WITH merged AS (
    INSERT INTO readings (
        resource_id, start_at, end_at, location_id, kwh, reading_id, batch_id, received_at
    )
    SELECT resource_id, start_at, end_at, location_id, kwh, reading_id, %(batch_id)s, %(now)s
    FROM incoming_readings
    WHERE wins
    ON CONFLICT (start_at, resource_id, end_at) DO UPDATE
    SET location_id = EXCLUDED.location_id,
        kwh = EXCLUDED.kwh,
        reading_id = EXCLUDED.reading_id,
        batch_id = EXCLUDED.batch_id,
        received_at = EXCLUDED.received_at
    WHERE (readings.location_id, readings.kwh, readings.reading_id)
          IS DISTINCT FROM (EXCLUDED.location_id, EXCLUDED.kwh, EXCLUDED.reading_id)
    RETURNING start_at, resource_id, end_at, (xmax = 0) AS inserted
), marked AS (
    UPDATE incoming_readings i
    SET change = CASE WHEN m.inserted THEN 'new' ELSE 'changed' END
    FROM merged m
    WHERE i.wins
      AND (i.start_at, i.resource_id, i.end_at) = (m.start_at, m.resource_id, m.end_at)
    RETURNING 1
)
SELECT count(*) FILTER (WHERE inserted) AS inserted,
       count(*) FILTER (WHERE NOT inserted) AS replaced
FROM merged;

-- name: account_incoming_readings
-- What the chunk's readings change beyond `readings`: the coverage per resource, the longest
-- reading, and late data: a reading new or changed in the span of a curve whose report was
-- built already.
WITH coverage AS (
    INSERT INTO consumption_coverage (resource_id, data_until, updated_at)
    SELECT resource_id, max(end_at), %(now)s
    FROM incoming_readings
    GROUP BY resource_id
    ORDER BY resource_id
    ON CONFLICT (resource_id) DO UPDATE
    SET data_until = EXCLUDED.data_until, updated_at = EXCLUDED.updated_at
    WHERE consumption_coverage.data_until < EXCLUDED.data_until
    RETURNING 1
), longest AS (
    UPDATE consumption_bounds b
    SET longest_reading = s.longest
    FROM (SELECT max(end_at - start_at) AS longest FROM incoming_readings) AS s
    WHERE s.longest > b.longest_reading
    RETURNING 1
), built AS (
    -- Curves overlapping the chunk whose report was built: usually none, so the join with
    -- the chunk's rows below is skipped.
    SELECT c.event_id, c.first_period_start, c.last_period_end
    FROM price_curves c
    WHERE c.first_period_start
              < (SELECT max(end_at) FROM incoming_readings WHERE change IS NOT NULL)
      AND c.last_period_end
              > (SELECT min(start_at) FROM incoming_readings WHERE change IS NOT NULL)
      AND EXISTS (
          SELECT 1 FROM reports rp
          WHERE rp.event_id = c.event_id AND rp.built_at IS NOT NULL AND rp.status <> 'rejected'
      )
), late AS (
    INSERT INTO late_readings (
        event_id, resource_id, location_id, start_at, end_at, kwh, kwh_in_event, change,
        batch_id, recorded_at
    )
    SELECT b.event_id, m.resource_id, m.location_id, m.start_at, m.end_at, m.kwh,
           kwh_in_span(m.kwh, m.start_at, m.end_at, b.first_period_start, b.last_period_end),
           m.change, %(batch_id)s, %(now)s
    FROM built b
    JOIN price_curve_targets t ON t.event_id = b.event_id
    JOIN incoming_readings m
      ON m.resource_id = t.resource_id
     AND (m.location_id IS NULL OR m.location_id = t.location_id)
     AND m.start_at < b.last_period_end
     AND b.first_period_start < m.end_at
    -- Checked once: without a built report nothing here reads the chunk's rows again.
    WHERE EXISTS (SELECT 1 FROM built) AND m.change IS NOT NULL
    RETURNING 1
)
SELECT (SELECT count(*) FROM late) AS late;

-- name: clear_incoming_readings
-- Empty already unless the caller's transaction was open before the chunk's (then the
-- chunk's commit is a savepoint's, and ON COMMIT DELETE ROWS has not run).
DELETE FROM incoming_readings;

-- name: clear_staged_readings
DELETE FROM staged_readings WHERE batch_token = %(token)s;

-- name: list_consumption_batches
SELECT batch_id, source, received_at, stored_at, readings, inserted, replaced, unchanged,
       rejected, late
FROM consumption_batches
ORDER BY received_at DESC
LIMIT %(limit)s;

-- name: set_batch_token
-- The staging rows' batch_token for the rest of this transaction (the column's default).
SELECT set_config('spark_partner.batch_token', %(token)s, true);
