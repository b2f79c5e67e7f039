-- A report body of 10,000 payloads is about 16 MB of JSON. pglz took 1.8 s to compress one
-- curve's bodies (100,000 targets) as they were written; lz4 takes a quarter of that, for
-- a few percent more space. Servers built without lz4 keep pglz.
DO $$
BEGIN
    ALTER TABLE reports ALTER COLUMN body SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'lz4 is not available: report bodies stay compressed with pglz';
END
$$;
