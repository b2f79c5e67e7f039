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
       l.first_period_start, l.last_period_end, l.target_count, e.status AS event_status
FROM lpc_events AS l
JOIN events AS e USING (event_id)
ORDER BY l.received_at DESC, l.event_id
LIMIT %(limit)s;

-- name: get_lpc_event
SELECT l.event_id, l.kind, e.notification_type, l.event_created_at, l.received_at,
       l.first_period_start, l.last_period_end, l.target_count, e.status AS event_status
FROM lpc_events AS l
JOIN events AS e USING (event_id)
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
