-- The catalog's read model of the example service's items, kept in step by its events.
-- A deleted item stays as a tombstone, so that a late event cannot bring it back.
CREATE TABLE catalog_items (
    id bigint PRIMARY KEY,
    name text NOT NULL,
    price_cents bigint NOT NULL,
    tags text[] NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    deleted boolean NOT NULL DEFAULT false,
    -- The x-outbox-seq of the event that wrote this row: older events are ignored.
    seq bigint NOT NULL,
    search tsvector NOT NULL
);

-- Text search over name and tags.
CREATE INDEX catalog_items_search ON catalog_items USING gin (search);

-- The newest x-outbox-seq applied (max(seq)), read before each event: an event numbered
-- further beyond it than CATALOG_MAX_SEQ_JUMP is parked, not applied.
CREATE INDEX catalog_items_seq ON catalog_items (seq);

-- How far the read model has come, in 16 rows: an event adds to the row its id picks, so
-- concurrent applies do not queue for one row's lock (each would hold it until its commit is
-- flushed). Rows are written by the first event applied to them (manage makes tables, not
-- rows); the totals are the sum and the latest over the rows.
CREATE TABLE catalog_progress (
    shard smallint PRIMARY KEY,
    last_event_at timestamptz,
    applied bigint NOT NULL DEFAULT 0,
    CONSTRAINT catalog_progress_shard CHECK (shard BETWEEN 0 AND 15)
);

