-- LPC acknowledgements: one report per resource or location LPC event, an outbox of its own
-- beside `reports` (whose rows belong to price curves and their monthly deadlines), sent by
-- the same sender (worker/reports/sender.py: one POST per attempt, backoff, lost answers
-- resent with the same idempotency key).
--
--   due -> sending -> sent
--            |-> retrying (5xx, 429, timeouts, an answer that never came) -> sending
--            |-> rejected (4xx: Spark's message)
CREATE TABLE lpc_acks (
    event_id            text PRIMARY KEY REFERENCES lpc_events (event_id),
    status              text NOT NULL DEFAULT 'due' CHECK (status IN (
        'due', 'sending', 'sent', 'retrying', 'rejected')),
    -- The latest it is to be sent: the event's arrival plus SPARK_LPC_ACK_WITHIN.
    due_by              timestamptz NOT NULL,
    next_attempt_at     timestamptz,
    -- Built at the first attempt and kept for every retry, so a resend is the same report.
    body                text,
    built_at            timestamptz,
    idempotency_key     text,
    acknowledged        integer,
    declined            integer,
    attempts            integer NOT NULL DEFAULT 0,
    ambiguous_attempts  integer NOT NULL DEFAULT 0,
    lease_until         timestamptz,
    last_error          text,
    spark_report_id     text,
    spark_created_at    timestamptz,
    sent_at             timestamptz,
    rejected_status     integer,
    rejection           text,
    -- When the alert "not accepted within 15 minutes" was logged (once).
    alerted_at          timestamptz,
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL
);

CREATE INDEX lpc_acks_open_idx ON lpc_acks (status, next_attempt_at)
    WHERE status IN ('due', 'sending', 'retrying', 'rejected');

-- Every attempt to send an acknowledgement, with Spark's answer (outcomes as report_attempts).
CREATE TABLE lpc_ack_attempts (
    event_id            text NOT NULL REFERENCES lpc_acks (event_id),
    attempt             integer NOT NULL,
    started_at          timestamptz NOT NULL,
    finished_at         timestamptz,
    outcome             text CHECK (outcome IN ('accepted', 'rejected', 'failed', 'unknown')),
    http_status         integer,
    error               text,
    response            text,
    spark_report_id     text,
    PRIMARY KEY (event_id, attempt)
);
