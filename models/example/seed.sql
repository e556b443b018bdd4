-- The Python seed's example tables, so that a caller of the seed's `db` and
-- `example-items` routes finds what it expects in the Rust service too.

-- The seed's model without queries of its own.
CREATE TABLE simple (
    _id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    string text,
    integer integer,
    json jsonb
);

-- The seed's example model; `example-items` reads it by `string`.
CREATE TABLE example_item (
    _id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    string text,
    integer integer,
    json jsonb
);

CREATE INDEX example_item_string_idx ON example_item (string);
