-- Readings arrive in time order: every meter's values for one hour, then the next hour. With
-- the key led by the resource, each of those rows went to a different place of the index;
-- led by the start, they go to its end, a page at a time. The key is the same set of
-- columns, so the identity of a reading does not change. That index also finds a day's
-- readings for a report, which the BRIN index did.
--
-- Rebuilding the key takes about a second per two million readings, and holds `readings`
-- locked meanwhile: imports and reports wait (the ingress keeps accepting readings). The
-- connection's one-minute statement timeout is lifted for it, so that a large table does
-- not stop the upgrade.
SET LOCAL statement_timeout = 0;
SET LOCAL maintenance_work_mem = '256MB';
ALTER TABLE readings DROP CONSTRAINT readings_pkey;
ALTER TABLE readings ADD PRIMARY KEY (start_at, resource_id, end_at);
DROP INDEX readings_start_brin;
