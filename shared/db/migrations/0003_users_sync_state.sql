-- What the registry's Spark calls left behind, and indexes for "what is left to push".

-- Why the last enrollment or deletion attempt at Spark failed, for operators (`users show`);
-- cleared by the next success.
ALTER TABLE users ADD COLUMN enrollment_error text;
ALTER TABLE users ADD COLUMN deletion_error text;

-- The sync pushes only the partner's own users; users Spark listed first (known_locally false)
-- already exist there. A row with a sync_error waits for a change or `users sync --retry-errors`
-- rather than failing again every few minutes.
CREATE INDEX users_to_push_idx ON users (user_id)
    WHERE synced_at IS NULL AND sync_error IS NULL AND deleted_at IS NULL AND known_locally;
CREATE INDEX locations_to_push_idx ON locations (location_id)
    WHERE synced_at IS NULL AND sync_error IS NULL;
CREATE INDEX resources_to_push_idx ON resources (resource_id)
    WHERE synced_at IS NULL AND sync_error IS NULL;

-- The month-end deletion sweep looks only at scheduled, not yet deleted users.
CREATE INDEX users_pending_deletion_idx ON users (delete_after_month)
    WHERE delete_after_month IS NOT NULL AND deleted_at IS NULL;

-- Staging for `spark-partner users import`: a file is COPYed here row by row, checked
-- set-wise, merged into the registry in batches, and the tables are emptied again. One import
-- runs at a time (an advisory lock); nothing here outlives it. Unlogged like temporary tables,
-- but visible to the schema checks of the named queries. `row_no` is the CSV line or JSON
-- element a record came from.
CREATE UNLOGGED TABLE staged_users (
    row_no integer NOT NULL,
    user_id text NOT NULL,
    consented boolean
);
CREATE INDEX staged_users_idx ON staged_users (user_id, row_no);

CREATE UNLOGGED TABLE staged_locations (
    row_no integer NOT NULL,
    user_id text NOT NULL,
    location_id text NOT NULL,
    -- false when the row only names the location (to attach a resource to it)
    describes boolean NOT NULL,
    location_type text NOT NULL,
    meter_point_ids text[] NOT NULL,
    latitude double precision,
    longitude double precision
);
CREATE INDEX staged_locations_idx ON staged_locations (location_id, row_no);
CREATE INDEX staged_locations_user_idx ON staged_locations (user_id);

CREATE UNLOGGED TABLE staged_resources (
    row_no integer NOT NULL,
    user_id text NOT NULL,
    location_id text,
    resource_id text NOT NULL,
    resource_type text NOT NULL,
    meter_point_id text
);
CREATE INDEX staged_resources_idx ON staged_resources (resource_id, row_no);
CREATE INDEX staged_resources_user_idx ON staged_resources (user_id);

CREATE UNLOGGED TABLE staged_row_errors (
    row_no integer NOT NULL,
    message text NOT NULL
);

-- The users of the file, numbered into merge batches.
CREATE UNLOGGED TABLE staged_user_batches (
    user_id text PRIMARY KEY,
    batch_no integer NOT NULL,
    consented boolean
);
