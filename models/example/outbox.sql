-- worker-kit's transactional outbox (worker-kit/sql/outbox.sql; copy it into
-- models/<service>/ unchanged). A handler inserts events here in the transaction that
-- makes the change; the relay publishes committed rows in id order and marks them sent.
CREATE TABLE worker_kit_outbox (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id uuid NOT NULL,
    routing_key text NOT NULL,
    aggregate_id text NOT NULL,
    payload jsonb NOT NULL,
    occurred_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    sent_at timestamptz,
    CONSTRAINT worker_kit_outbox_event_id_key UNIQUE (event_id)
);

-- What the relay reads: the pending rows, in order.
CREATE INDEX worker_kit_outbox_pending ON worker_kit_outbox (id) WHERE sent_at IS NULL;

-- What pruning reads: sent rows by age.
CREATE INDEX worker_kit_outbox_sent_at ON worker_kit_outbox (sent_at) WHERE sent_at IS NOT NULL;
