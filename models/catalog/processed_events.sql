-- worker-kit's record of the events a subscriber has applied (worker-kit/sql/
-- processed_events.sql; copy it into models/<service>/ unchanged). A handler inserts the
-- event's id in the transaction that applies it, so a redelivered event changes nothing.
CREATE TABLE worker_kit_processed_events (
    subscription text NOT NULL,
    event_id uuid NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT worker_kit_processed_events_pkey PRIMARY KEY (subscription, event_id)
);
