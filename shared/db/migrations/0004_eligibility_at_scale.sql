-- The eligibility reconcile compares up to millions of users with Spark's list in one
-- transaction; these changes keep that set-wise and cheap.

-- A foreign key checks every inserted row with a per-row trigger that also locks the row it
-- points at: inserting a million transitions took 12 s with the three checks, 3 s without.
-- Transitions are written only by the reconcile, in the statement that derives them from the
-- users, events and reconcile rows they name, under its apply lock, so the checks could never
-- fail. The cascade from users stays, as one statement-level trigger.
ALTER TABLE eligibility_transitions
    DROP CONSTRAINT eligibility_transitions_user_id_fkey,
    DROP CONSTRAINT eligibility_transitions_event_id_fkey,
    DROP CONSTRAINT eligibility_transitions_reconcile_id_fkey;

CREATE FUNCTION delete_eligibility_transitions_of_deleted_users() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM eligibility_transitions t USING deleted_users d WHERE t.user_id = d.user_id;
    RETURN NULL;
END
$$;

CREATE TRIGGER users_delete_eligibility_transitions
    AFTER DELETE ON users
    REFERENCING OLD TABLE AS deleted_users
    FOR EACH STATEMENT EXECUTE FUNCTION delete_eligibility_transitions_of_deleted_users();

-- The reconcile reads the hints of the events it runs for.
CREATE INDEX eligibility_hints_reconcile_idx ON eligibility_hints (reconcile_id, change);
