-- claim_report takes the sendable report first in (month, next_attempt_at, id) order. Through
-- reports_open_idx it read every due report and sorted them for each claim: at a month end
-- of 10,000 due reports, 10,000 rows a claim (bench.sweep). In this index's order it reads
-- from the first and stops at the first it may claim.
CREATE INDEX reports_claim_idx ON reports (month, next_attempt_at, id)
    WHERE status IN ('due', 'retrying');
