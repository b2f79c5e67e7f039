-- Operations: marks of the last time something happened, and what `spark-partner status`
-- and `spark-partner serve-metrics` read. Every query here only reads, except `mark`.

-- name: mark
-- A mark never moves back: a late writer with an older time leaves the newer one.
INSERT INTO ops_marks (name, at, detail)
VALUES (%(name)s, coalesce(%(at)s::timestamptz, now()), %(detail)s::jsonb)
ON CONFLICT (name) DO UPDATE
    SET at = greatest(ops_marks.at, EXCLUDED.at),
        detail = CASE WHEN EXCLUDED.at >= ops_marks.at THEN EXCLUDED.detail
                      ELSE ops_marks.detail END;

-- name: ops_marks
SELECT name, at, detail FROM ops_marks ORDER BY name;
