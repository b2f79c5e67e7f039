-- The user registry: import, sync to Spark, enrollment, deletion, and what the CLI shows.

-- Import ------------------------------------------------------------------------------------
-- A file is COPYed into the staged_* tables (migration 0003), checked set-wise, then merged in
-- batches of users. `row_no` is the CSV line or the JSON element a record came from.

-- name: try_import_lock
SELECT pg_try_advisory_lock(%(key)s) AS locked;

-- name: release_import_lock
SELECT pg_advisory_unlock(%(key)s) AS released;

-- name: import_deleted_users
SELECT i.user_id, u.deleted_at, count(*) AS rows, min(i.row_no) AS first_row
FROM staged_users i
JOIN users u USING (user_id)
WHERE u.deleted_at IS NOT NULL
GROUP BY i.user_id, u.deleted_at
ORDER BY min(i.row_no);

-- name: import_drop_deleted_users
WITH gone AS (
    SELECT user_id FROM users
    WHERE deleted_at IS NOT NULL AND user_id IN (SELECT user_id FROM staged_users)
),
dropped_users AS (
    DELETE FROM staged_users s USING gone g WHERE s.user_id = g.user_id RETURNING 1
),
dropped_locations AS (
    DELETE FROM staged_locations s USING gone g WHERE s.user_id = g.user_id RETURNING 1
),
dropped_resources AS (
    DELETE FROM staged_resources s USING gone g WHERE s.user_id = g.user_id RETURNING 1
)
SELECT (SELECT count(*) FROM dropped_users) AS rows;

-- name: import_check_consent
WITH stated AS (
    SELECT DISTINCT ON (user_id) user_id, row_no, consented
    FROM staged_users
    WHERE consented IS NOT NULL
    ORDER BY user_id, row_no
)
INSERT INTO staged_row_errors (row_no, message)
SELECT i.row_no, format('user %s: consented=%s contradicts row %s', i.user_id, i.consented::text,
                        s.row_no)
FROM staged_users i
JOIN stated s USING (user_id)
WHERE i.consented IS NOT NULL AND i.consented <> s.consented;

-- name: import_check_location_owner
WITH first AS (
    SELECT DISTINCT ON (location_id) location_id, user_id, row_no
    FROM staged_locations
    ORDER BY location_id, row_no
)
INSERT INTO staged_row_errors (row_no, message)
SELECT l.row_no, format('location %s: row %s gives it to user %s, this row to user %s',
                        l.location_id, f.row_no, f.user_id, l.user_id)
FROM staged_locations l
JOIN first f USING (location_id)
WHERE l.user_id <> f.user_id;

-- name: import_check_location_attributes
WITH first AS (
    SELECT DISTINCT ON (location_id)
           location_id, row_no, location_type, meter_point_ids, latitude, longitude
    FROM staged_locations
    WHERE describes
    ORDER BY location_id, row_no
)
INSERT INTO staged_row_errors (row_no, message)
SELECT l.row_no, format('location %s: described differently in row %s', l.location_id,
                        f.row_no)
FROM staged_locations l
JOIN first f USING (location_id)
WHERE l.describes
  AND (l.location_type, l.meter_point_ids, l.latitude, l.longitude)
      IS DISTINCT FROM (f.location_type, f.meter_point_ids, f.latitude, f.longitude);

-- name: import_check_location_registry_owner
INSERT INTO staged_row_errors (row_no, message)
SELECT l.row_no, format('location %s belongs to user %s; a location cannot move to another user',
                        l.location_id, x.user_id)
FROM staged_locations l
JOIN locations x USING (location_id)
WHERE x.user_id <> l.user_id;

-- name: import_check_resources
WITH first AS (
    SELECT DISTINCT ON (resource_id)
           resource_id, row_no, user_id, location_id, resource_type, meter_point_id
    FROM staged_resources
    ORDER BY resource_id, row_no
)
INSERT INTO staged_row_errors (row_no, message)
SELECT r.row_no, format('resource %s: described differently in row %s', r.resource_id,
                        f.row_no)
FROM staged_resources r
JOIN first f USING (resource_id)
WHERE (r.user_id, r.location_id, r.resource_type, r.meter_point_id)
      IS DISTINCT FROM (f.user_id, f.location_id, f.resource_type, f.meter_point_id);

-- name: import_check_resource_registry_owner
INSERT INTO staged_row_errors (row_no, message)
SELECT r.row_no, format('resource %s belongs to user %s; a resource cannot move to another user',
                        r.resource_id, x.user_id)
FROM staged_resources r
JOIN resources x USING (resource_id)
WHERE x.user_id <> r.user_id;

-- name: import_check_resource_meter_point
-- A resource's meterPointId must be one of its location's MPIDs (as this file describes the
-- location, else as the registry has it) where the location has any: Spark would not credit
-- it (reports leave such a payload out), so it is refused here and fixed at the source.
WITH described AS (
    SELECT DISTINCT ON (location_id) location_id, meter_point_ids
    FROM staged_locations
    WHERE describes
    ORDER BY location_id, row_no
)
INSERT INTO staged_row_errors (row_no, message)
SELECT r.row_no, format('resource %s: meterPointId %s is not one of the meter point ids of '
                        'location %s (%s)', r.resource_id, r.meter_point_id, r.location_id,
                        array_to_string(m.ids, ', '))
FROM staged_resources r
CROSS JOIN LATERAL (
    SELECT coalesce(
               (SELECT d.meter_point_ids FROM described d WHERE d.location_id = r.location_id),
               (SELECT x.meter_point_ids FROM locations x WHERE x.location_id = r.location_id))
           AS ids
) m
WHERE r.meter_point_id IS NOT NULL
  AND r.location_id IS NOT NULL
  AND cardinality(m.ids) > 0
  AND NOT (r.meter_point_id = ANY (m.ids));

-- name: import_drop_error_rows
-- A bad row is left out whole: its user, location and resource records alike.
WITH dropped_users AS (
    DELETE FROM staged_users WHERE row_no IN (SELECT row_no FROM staged_row_errors) RETURNING 1
),
dropped_locations AS (
    DELETE FROM staged_locations WHERE row_no IN (SELECT row_no FROM staged_row_errors)
    RETURNING 1
),
dropped_resources AS (
    DELETE FROM staged_resources WHERE row_no IN (SELECT row_no FROM staged_row_errors)
    RETURNING 1
)
SELECT (SELECT count(*) FROM dropped_users) AS rows;

-- name: import_plan_batches
-- A user's consent is what its first row stating one says (the check above removed rows
-- that contradict it); NULL when no row states it.
INSERT INTO staged_user_batches (user_id, batch_no, consented)
SELECT user_id,
       (row_number() OVER (ORDER BY user_id) - 1) / %(batch_size)s,
       (array_agg(consented ORDER BY row_no) FILTER (WHERE consented IS NOT NULL))[1]
FROM staged_users
GROUP BY user_id;

-- name: import_totals
SELECT (SELECT count(*) FROM staged_user_batches) AS users,
       (SELECT count(DISTINCT location_id) FROM staged_locations) AS locations,
       (SELECT count(DISTINCT resource_id) FROM staged_resources) AS resources;

-- name: import_batch_bounds
-- Each batch is a range of user ids, so its statements read the staging tables by index.
SELECT batch_no, min(user_id) AS first_user, max(user_id) AS last_user
FROM staged_user_batches
GROUP BY batch_no
ORDER BY batch_no;

-- name: import_upsert_stated_users
-- Users whose consent the file states. Consent is not something Spark holds, so it leaves
-- synced_at alone. Returns what the sync and enrollment need to know.
INSERT INTO users AS u (user_id, consented)
SELECT user_id, consented
FROM staged_user_batches
WHERE user_id BETWEEN %(first_user)s AND %(last_user)s AND consented IS NOT NULL
ON CONFLICT (user_id) DO UPDATE
SET consented = EXCLUDED.consented, known_locally = true, updated_at = now()
WHERE u.deleted_at IS NULL
  AND (NOT u.known_locally OR u.consented <> EXCLUDED.consented)
RETURNING u.user_id, (u.xmax = 0) AS inserted, u.consented, u.eligible, u.enrolled;

-- name: import_upsert_unstated_users
-- Users whose consent the file leaves out: new ones do not consent, known ones keep theirs.
INSERT INTO users AS u (user_id, consented)
SELECT user_id, false
FROM staged_user_batches
WHERE user_id BETWEEN %(first_user)s AND %(last_user)s AND consented IS NULL
ON CONFLICT (user_id) DO UPDATE
SET known_locally = true, updated_at = now()
WHERE u.deleted_at IS NULL AND NOT u.known_locally
RETURNING u.user_id, (u.xmax = 0) AS inserted, u.consented, u.eligible, u.enrolled;

-- name: import_upsert_locations
-- Only a real change touches a row, and a change means Spark must hear of it again.
WITH upserted AS (
    INSERT INTO locations AS l (
        location_id, user_id, location_type, meter_point_ids, latitude, longitude
    )
    SELECT DISTINCT ON (i.location_id)
           i.location_id, i.user_id, i.location_type, i.meter_point_ids, i.latitude,
           i.longitude
    FROM staged_locations i
    WHERE i.user_id BETWEEN %(first_user)s AND %(last_user)s AND i.describes
    ORDER BY i.location_id, i.row_no
    ON CONFLICT (location_id) DO UPDATE
    SET location_type = EXCLUDED.location_type,
        meter_point_ids = EXCLUDED.meter_point_ids,
        latitude = EXCLUDED.latitude,
        longitude = EXCLUDED.longitude,
        synced_at = NULL,
        sync_error = NULL,
        updated_at = now()
    WHERE l.user_id = EXCLUDED.user_id
      AND (l.location_type, l.meter_point_ids, l.latitude, l.longitude)
          IS DISTINCT FROM (EXCLUDED.location_type, EXCLUDED.meter_point_ids,
                            EXCLUDED.latitude, EXCLUDED.longitude)
    RETURNING (xmax = 0) AS inserted
)
SELECT count(*) FILTER (WHERE inserted) AS inserted,
       count(*) FILTER (WHERE NOT inserted) AS updated
FROM upserted;

-- name: import_insert_bare_locations
-- Locations only named by resource rows: created if new, otherwise left as they are.
WITH inserted AS (
    INSERT INTO locations (location_id, user_id)
    SELECT DISTINCT i.location_id, i.user_id
    FROM staged_locations i
    WHERE i.user_id BETWEEN %(first_user)s AND %(last_user)s
      AND NOT i.describes
      AND NOT EXISTS (
          SELECT 1 FROM staged_locations d WHERE d.location_id = i.location_id AND d.describes
      )
    ON CONFLICT (location_id) DO NOTHING
    RETURNING 1
)
SELECT count(*) AS inserted FROM inserted;

-- name: import_upsert_resources
WITH upserted AS (
    INSERT INTO resources AS r (
        resource_id, user_id, location_id, resource_type, meter_point_id
    )
    SELECT DISTINCT ON (i.resource_id)
           i.resource_id, i.user_id, i.location_id, i.resource_type, i.meter_point_id
    FROM staged_resources i
    WHERE i.user_id BETWEEN %(first_user)s AND %(last_user)s
    ORDER BY i.resource_id, i.row_no
    ON CONFLICT (resource_id) DO UPDATE
    SET location_id = EXCLUDED.location_id,
        resource_type = EXCLUDED.resource_type,
        meter_point_id = EXCLUDED.meter_point_id,
        synced_at = NULL,
        sync_error = NULL,
        updated_at = now()
    WHERE r.user_id = EXCLUDED.user_id
      AND (r.location_id, r.resource_type, r.meter_point_id)
          IS DISTINCT FROM (EXCLUDED.location_id, EXCLUDED.resource_type,
                            EXCLUDED.meter_point_id)
    RETURNING (xmax = 0) AS inserted
)
SELECT count(*) FILTER (WHERE inserted) AS inserted,
       count(*) FILTER (WHERE NOT inserted) AS updated
FROM upserted;

-- name: import_locations_without_mpid
SELECT l.location_id, l.user_id, count(*) OVER () AS total
FROM locations l
WHERE l.location_id IN (SELECT location_id FROM staged_locations)
  AND cardinality(l.meter_point_ids) = 0
ORDER BY l.location_id COLLATE "C"
LIMIT %(limit)s;

-- name: import_error_rows
SELECT row_no, message, count(*) OVER () AS total
FROM staged_row_errors
ORDER BY row_no, message
LIMIT %(limit)s;

-- Sync to Spark -----------------------------------------------------------------------------
-- `updated_at` is each row's version: a row is marked synced only if nothing changed it
-- while its push was in flight; otherwise the next sync pushes the newer version.

-- name: anything_to_push
SELECT EXISTS (
           SELECT 1 FROM users
           WHERE synced_at IS NULL AND sync_error IS NULL AND deleted_at IS NULL
             AND known_locally)
       OR EXISTS (
           SELECT 1 FROM locations l JOIN users u USING (user_id)
           WHERE l.synced_at IS NULL AND l.sync_error IS NULL AND u.deleted_at IS NULL)
       OR EXISTS (
           SELECT 1 FROM resources r JOIN users u USING (user_id)
           WHERE r.synced_at IS NULL AND r.sync_error IS NULL AND u.deleted_at IS NULL)
       AS pending;

-- name: clear_sync_errors
WITH cleared_users AS (
    UPDATE users SET sync_error = NULL
    WHERE sync_error IS NOT NULL AND synced_at IS NULL RETURNING 1
),
cleared_locations AS (
    UPDATE locations SET sync_error = NULL
    WHERE sync_error IS NOT NULL AND synced_at IS NULL RETURNING 1
),
cleared_resources AS (
    UPDATE resources SET sync_error = NULL
    WHERE sync_error IS NOT NULL AND synced_at IS NULL RETURNING 1
)
SELECT (SELECT count(*) FROM cleared_users) + (SELECT count(*) FROM cleared_locations)
       + (SELECT count(*) FROM cleared_resources) AS cleared;

-- name: users_to_push
SELECT user_id, updated_at
FROM users
WHERE synced_at IS NULL AND sync_error IS NULL AND deleted_at IS NULL AND known_locally
  AND user_id > %(after)s
ORDER BY user_id
LIMIT %(limit)s;

-- name: locations_to_push
-- Only for users Spark has; a user whose push failed keeps its locations waiting.
SELECT l.location_id, l.user_id, l.location_type, l.meter_point_ids, l.latitude, l.longitude,
       l.updated_at
FROM locations l
JOIN users u USING (user_id)
WHERE l.synced_at IS NULL AND l.sync_error IS NULL
  AND u.synced_at IS NOT NULL AND u.deleted_at IS NULL
  AND l.location_id > %(after)s
ORDER BY l.location_id
LIMIT %(limit)s;

-- name: resources_to_push
SELECT r.resource_id, r.user_id, r.location_id, r.resource_type, r.meter_point_id,
       r.updated_at,
       l.location_type, l.meter_point_ids, l.latitude, l.longitude
FROM resources r
JOIN users u ON u.user_id = r.user_id
LEFT JOIN locations l ON l.location_id = r.location_id
WHERE r.synced_at IS NULL AND r.sync_error IS NULL
  AND u.synced_at IS NOT NULL AND u.deleted_at IS NULL
  AND (r.location_id IS NULL OR l.synced_at IS NOT NULL)
  AND r.resource_id > %(after)s
ORDER BY r.resource_id
LIMIT %(limit)s;

-- name: mark_users_synced
UPDATE users u
SET synced_at = now(), sync_error = NULL
FROM unnest(%(ids)s::text[], %(versions)s::timestamptz[]) AS v(id, version)
WHERE u.user_id = v.id AND u.updated_at = v.version AND u.synced_at IS NULL;

-- name: mark_users_sync_failed
UPDATE users u
SET sync_error = v.error
FROM unnest(%(ids)s::text[], %(versions)s::timestamptz[], %(errors)s::text[])
     AS v(id, version, error)
WHERE u.user_id = v.id AND u.updated_at = v.version AND u.synced_at IS NULL;

-- name: mark_locations_synced
UPDATE locations l
SET synced_at = now(), sync_error = NULL
FROM unnest(%(ids)s::text[], %(versions)s::timestamptz[]) AS v(id, version)
WHERE l.location_id = v.id AND l.updated_at = v.version AND l.synced_at IS NULL;

-- name: mark_locations_sync_failed
UPDATE locations l
SET sync_error = v.error
FROM unnest(%(ids)s::text[], %(versions)s::timestamptz[], %(errors)s::text[])
     AS v(id, version, error)
WHERE l.location_id = v.id AND l.updated_at = v.version AND l.synced_at IS NULL;

-- name: mark_resources_synced
UPDATE resources r
SET synced_at = now(), sync_error = NULL
FROM unnest(%(ids)s::text[], %(versions)s::timestamptz[]) AS v(id, version)
WHERE r.resource_id = v.id AND r.updated_at = v.version AND r.synced_at IS NULL;

-- name: mark_resources_sync_failed
UPDATE resources r
SET sync_error = v.error
FROM unnest(%(ids)s::text[], %(versions)s::timestamptz[], %(errors)s::text[])
     AS v(id, version, error)
WHERE r.resource_id = v.id AND r.updated_at = v.version AND r.synced_at IS NULL;

-- name: try_sync_lock
SELECT pg_try_advisory_lock(%(key)s) AS locked;

-- name: release_sync_lock
SELECT pg_advisory_unlock(%(key)s) AS released;

-- Enrollment --------------------------------------------------------------------------------

-- name: users_to_auto_enroll
SELECT user_id
FROM users
WHERE user_id = ANY(%(user_ids)s)
  AND eligible AND consented AND NOT enrolled
  AND deleted_at IS NULL AND delete_after_month IS NULL
ORDER BY user_id;

-- name: mark_user_enrolled
UPDATE users
SET enrolled = true, enrollment_id = %(enrollment_id)s, enrolled_at = %(enrolled_at)s,
    enrollment_error = NULL
WHERE user_id = %(user_id)s;

-- name: mark_user_unenrolled
UPDATE users
SET enrolled = false, enrollment_id = NULL, enrolled_at = NULL, enrollment_error = NULL
WHERE user_id = %(user_id)s;

-- name: mark_user_enrollment_failed
UPDATE users SET enrollment_error = %(error)s WHERE user_id = %(user_id)s;

-- Deletion ----------------------------------------------------------------------------------

-- name: schedule_user_deletion
UPDATE users
SET delete_after_month = %(month)s
WHERE user_id = %(user_id)s AND deleted_at IS NULL
RETURNING delete_after_month;

-- name: cancel_user_deletion
UPDATE users
SET delete_after_month = NULL, deletion_error = NULL
WHERE user_id = %(user_id)s AND deleted_at IS NULL AND delete_after_month IS NOT NULL
RETURNING user_id;

-- name: mark_user_deleted
UPDATE users
SET deleted_at = %(now)s, deletion_error = NULL
WHERE user_id = %(user_id)s AND deleted_at IS NULL
RETURNING deleted_at;

-- name: mark_user_deletion_failed
UPDATE users SET deletion_error = %(error)s WHERE user_id = %(user_id)s;

-- name: users_due_for_deletion
-- Scheduled for a month that has ended in local time (`current_month` is the local month now).
SELECT user_id, delete_after_month
FROM users
WHERE delete_after_month IS NOT NULL AND deleted_at IS NULL
  AND delete_after_month < %(current_month)s
ORDER BY delete_after_month, user_id;

-- Reading the registry ----------------------------------------------------------------------

-- name: list_users
-- Byte order (COLLATE "C") so the order is the same as any other program's sort of the ids.
SELECT user_id, consented, known_locally, eligible, enrolled, synced_at, sync_error,
       delete_after_month, deleted_at
FROM users
WHERE (NOT %(eligible)s OR eligible)
  AND (NOT %(enrolled)s OR enrolled)
  AND (NOT %(pending_deletion)s OR (delete_after_month IS NOT NULL AND deleted_at IS NULL))
  AND (%(include_deleted)s OR deleted_at IS NULL)
ORDER BY user_id COLLATE "C";

-- name: get_user
SELECT user_id, consented, known_locally, eligible, eligible_changed_at, enrolled,
       enrollment_id, enrolled_at, enrollment_error, synced_at, sync_error, delete_after_month,
       deleted_at, deletion_error, created_at, updated_at
FROM users
WHERE user_id = %(user_id)s;

-- name: user_locations
SELECT location_id, location_type, meter_point_ids, latitude, longitude, synced_at, sync_error
FROM locations
WHERE user_id = %(user_id)s
ORDER BY location_id COLLATE "C";

-- name: user_resources
SELECT resource_id, location_id, resource_type, meter_point_id, synced_at, sync_error
FROM resources
WHERE user_id = %(user_id)s
ORDER BY location_id COLLATE "C" NULLS LAST, resource_id COLLATE "C";

-- name: user_eligibility_transitions
SELECT became_eligible, at, reason, event_id, reconcile_id
FROM eligibility_transitions
WHERE user_id = %(user_id)s
ORDER BY at, id;

-- name: user_eligibility_hints
SELECT h.event_id, h.change, h.reconcile_id, e.event_created_at
FROM eligibility_hints h
JOIN events e USING (event_id)
WHERE h.user_id = %(user_id)s
ORDER BY e.event_created_at, h.event_id;

-- name: locations_with_meter
SELECT location_id, user_id
FROM locations
WHERE %(meter_point_id)s = ANY(meter_point_ids)
ORDER BY location_id COLLATE "C";
