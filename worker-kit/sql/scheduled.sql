-- worker-kit's scheduled messages (worker-kit/sql/scheduled.sql; copy it into
-- models/<service>/ unchanged). QueuePublisher::send_at and tx.schedule insert a work
-- message here with the time it is due; the ScheduledRelay publishes it to its route when
-- due and deletes the row in the same transaction, so a row here is a message still
-- pending (cancelling deletes it).
CREATE TABLE worker_kit_scheduled (
    id uuid PRIMARY KEY,
    route text NOT NULL,
    body bytea NOT NULL,
    content_encoding text,
    traceparent text,
    due_at timestamptz NOT NULL,
    scheduled_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- What the relay reads: the earliest due first.
CREATE INDEX worker_kit_scheduled_due_at ON worker_kit_scheduled (due_at);
