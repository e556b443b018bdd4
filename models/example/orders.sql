-- Orders, created idempotently: a client-supplied key makes a retried create return the
-- order the first attempt made.
CREATE TABLE orders (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    idempotency_key text NOT NULL,
    item_id bigint NOT NULL REFERENCES items (id),
    quantity integer NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT orders_idempotency_key_key UNIQUE (idempotency_key),
    CONSTRAINT orders_quantity_positive CHECK (quantity > 0)
);

CREATE INDEX orders_item_id_idx ON orders (item_id);
