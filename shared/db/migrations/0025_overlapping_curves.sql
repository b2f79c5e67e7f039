-- The one definition of the curves that overlap a curve in time, older and newer: the
-- supersession rule (a newer curve's periods replace an older one's for the targets both
-- name) and `curves show` start from it. A single-SELECT SQL function, STABLE: PostgreSQL
-- inlines it into each query, so a caller's `WHERE newer` reaches the join as if written there.
CREATE FUNCTION overlapping_curves(curve_event_id text)
RETURNS TABLE (event_id text, event_created_at timestamptz, target_count integer, newer boolean)
LANGUAGE sql STABLE
AS $$
    SELECT o.event_id, o.event_created_at, o.target_count,
           (o.event_created_at, o.event_id) > (c.event_created_at, c.event_id)
    FROM price_curves c
    JOIN price_curves o
      ON o.event_id <> c.event_id
     AND o.first_period_start < c.last_period_end
     AND c.first_period_start < o.last_period_end
    WHERE c.event_id = curve_event_id
$$;
