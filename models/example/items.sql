-- Items the example service offers.
CREATE TABLE items (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL,
    price_cents bigint NOT NULL DEFAULT 0,
    tags text[] NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT items_name_key UNIQUE (name),
    CONSTRAINT items_name_not_blank CHECK (btrim(name) <> ''),
    CONSTRAINT items_price_not_negative CHECK (price_cents >= 0)
);

COMMENT ON TABLE items IS 'Items the example service offers';

-- Keeps updated_at true whoever updates the row.
CREATE FUNCTION touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

CREATE TRIGGER items_touch_updated_at
    BEFORE UPDATE ON items
    FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
