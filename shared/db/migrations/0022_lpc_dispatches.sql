-- LPC caps to the control system: one dispatch decision per target our registry knows, sent
-- by the same dispatch runs as price-curve plans (worker/curves/dispatch.py), with the same
-- states, retries and leases as curve_dispatches. The control system's answer decides the
-- target's acknowledgement: 'sent' (it accepted the cap) is acknowledged; 'failed' (refused,
-- failed after the retries, or unanswered when the acknowledgement was due) is declined.
CREATE TABLE lpc_dispatches (
    event_id            text NOT NULL,
    target_no           integer NOT NULL,
    status              text NOT NULL CHECK (status IN ('pending', 'sending', 'sent', 'failed')),
    -- As in curve_dispatches; an LPC event is never superseded, so it stays 1 for now.
    revision            integer NOT NULL DEFAULT 1,
    attempts            integer NOT NULL DEFAULT 0,
    -- 'pending': when to try; 'sending': when the attempt counts as lost (its worker died).
    next_attempt_at     timestamptz NOT NULL,
    -- Why it failed, or (while retrying) what the last attempt hit.
    reason              text,
    dispatcher          text,
    sent_revision       integer,
    sent_at             timestamptz,
    updated_at          timestamptz NOT NULL,
    PRIMARY KEY (event_id, target_no),
    FOREIGN KEY (event_id, target_no) REFERENCES lpc_targets (event_id, target_no)
);

CREATE INDEX lpc_dispatches_due_idx ON lpc_dispatches (next_attempt_at)
    WHERE status IN ('pending', 'sending');

-- Whether our registry knows each target, in one place for the dispatch, the acknowledgement
-- and `lpc show`. A resource target: the resource at that location. A location target: the
-- location with that meter point. A deleted user's are not ours any more.
CREATE VIEW lpc_target_registry AS
SELECT t.event_id, t.target_no, t.resource_id, t.location_id, t.meter_point_id, t.resolution,
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
FROM lpc_targets AS t;
