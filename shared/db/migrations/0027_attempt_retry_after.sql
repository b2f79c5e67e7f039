-- The Retry-After that Spark sent with an attempt's answer (a 429 or a 503), in seconds, as
-- the sender read it: the next attempt waited at least this long. Kept so that `reports show`
-- and `lpc show` can say why a retry came when it did.
ALTER TABLE report_attempts ADD COLUMN retry_after_seconds double precision
    CHECK (retry_after_seconds >= 0);
