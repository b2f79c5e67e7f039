"""The SQL of the comparison, which works on temporary tables of the reconcile's transaction.

They are temporary (not unlogged tables of the schema) so that no lock is needed beyond the
session: a TRUNCATE of a shared table would wait for every open `pg_dump`. Statements naming
them cannot be checked against the migrated schema the way the named queries are (there is no
such table outside the transaction), so they live here; the reconcile's tests run every one.
"""

from __future__ import annotations

from typing import LiteralString

# Spark's list, what comparing it with users found, and whom that flipped. No indexes: filled
# once, read by hash joins; ANALYZE gives the planner the real sizes of the two large ones,
# which a CTE would not.
CREATE_TABLES: LiteralString = """
CREATE TEMPORARY TABLE spark_eligible (user_id text NOT NULL) ON COMMIT DROP;
CREATE TEMPORARY TABLE eligibility_changes (
    user_id text NOT NULL,
    change  text NOT NULL
) ON COMMIT DROP;
CREATE TEMPORARY TABLE eligibility_flipped (
    user_id         text NOT NULL,
    became_eligible boolean NOT NULL,
    enroll          boolean NOT NULL
) ON COMMIT DROP
"""

COPY_SPARK_ELIGIBLE: LiteralString = "COPY spark_eligible (user_id) FROM STDIN"

ANALYZE_SPARK_ELIGIBLE: LiteralString = "ANALYZE spark_eligible"

ANALYZE_CHANGES: LiteralString = "ANALYZE eligibility_changes"

# For FLIP_CHANGES only, when the changes are few: join by nested loops over the key's
# index. The planner prices an index lookup as a read from disk, so it would scan a million
# users to change a few thousand; the users table is in memory. The rest of the apply joins
# sets of changes with each other, which nested loops would make quadratic.
LOOK_UP_EACH_CHANGE: LiteralString = (
    "SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off"
)
# Back to the values in force before LOOK_UP_EACH_CHANGE, for the rest of the transaction.
PLAN_FREELY: LiteralString = (
    "SET LOCAL enable_hashjoin TO DEFAULT; SET LOCAL enable_mergejoin TO DEFAULT"
)

# The whole comparison in one pass over both sets (a full join):
#   lost:    eligible here, not listed by Spark (whether or not an event said so);
#   became:  listed by Spark, held here as not eligible (deleted users stay as they are);
#   unknown: listed by Spark, not known here at all (created in Spark by other means).
FIND_CHANGES: LiteralString = """
INSERT INTO eligibility_changes (user_id, change)
SELECT coalesce(s.user_id, u.user_id),
       CASE WHEN u.user_id IS NULL THEN 'unknown'
            WHEN s.user_id IS NULL THEN 'lost'
            ELSE 'became' END
FROM spark_eligible s
FULL JOIN users u ON u.user_id = s.user_id
WHERE u.user_id IS NULL
   OR (s.user_id IS NULL AND u.eligible)
   OR (s.user_id IS NOT NULL AND NOT u.eligible AND u.deleted_at IS NULL)
"""

# Our users who lost or gained eligibility, in both directions in one UPDATE (one pass,
# not one per direction). The conditions are repeated, so a row changed since the
# comparison is checked again.
FLIP_CHANGES: LiteralString = """
WITH flipped AS (
    UPDATE users u
    SET eligible = (c.change = 'became'), eligible_changed_at = %(now)s, updated_at = %(now)s
    FROM eligibility_changes c
    WHERE u.user_id = c.user_id
      AND ((c.change = 'lost' AND u.eligible)
           OR (c.change = 'became' AND NOT u.eligible AND u.deleted_at IS NULL))
    RETURNING u.user_id, u.eligible AS became_eligible,
              u.known_locally AND u.consented AND NOT u.enrolled AS enroll
)
INSERT INTO eligibility_flipped (user_id, became_eligible, enroll)
SELECT user_id, became_eligible, enroll FROM flipped
"""

# Unknown users are added, eligible and marked as not known locally; Spark has them already,
# so nothing is left to push. Each change is a transition, with reason 'event' when an event
# linked to this reconcile announced it. Returns the counts, and (when auto_enroll) the users
# to enroll: our own, consenting, not enrolled, just became eligible.
APPLY_CHANGES: LiteralString = """
WITH lost AS (
    SELECT user_id FROM eligibility_flipped WHERE NOT became_eligible
), became AS (
    SELECT user_id, enroll FROM eligibility_flipped WHERE became_eligible
), unknown AS (
    -- Sorted input keeps the index inserts cheap.
    INSERT INTO users (
        user_id, known_locally, eligible, eligible_changed_at, synced_at, created_at, updated_at
    )
    SELECT user_id, false, true, %(now)s, %(now)s, %(now)s, %(now)s
    FROM eligibility_changes
    WHERE change = 'unknown'
    ORDER BY user_id
    RETURNING user_id
), changed AS (
    SELECT user_id, false AS became_eligible FROM lost
    UNION ALL
    SELECT user_id, true FROM became
    UNION ALL
    SELECT user_id, true FROM unknown
), announced AS (
    SELECT DISTINCT ON (h.user_id, h.change) h.user_id, h.change = 'added' AS became_eligible,
           h.event_id
    FROM eligibility_hints h
    JOIN events e ON e.event_id = h.event_id
    WHERE h.reconcile_id = %(reconcile_id)s
    ORDER BY h.user_id, h.change, e.event_created_at DESC NULLS LAST, h.event_id
), recorded AS (
    INSERT INTO eligibility_transitions (
        user_id, became_eligible, at, reason, event_id, reconcile_id
    )
    SELECT c.user_id, c.became_eligible, %(now)s,
           CASE WHEN a.event_id IS NULL THEN 'reconcile' ELSE 'event' END,
           a.event_id, %(reconcile_id)s
    FROM changed c
    LEFT JOIN announced a
        ON a.user_id = c.user_id AND a.became_eligible = c.became_eligible
)
SELECT
    (SELECT count(*) FROM lost) AS lost_eligibility,
    (SELECT count(*) FROM became) AS became_known,
    (SELECT count(*) FROM unknown) AS unknown_users,
    coalesce(
        (SELECT array_agg(user_id ORDER BY user_id) FROM became WHERE enroll AND %(auto_enroll)s),
        '{}'
    ) AS to_enroll
"""
