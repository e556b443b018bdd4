-- Notes the __SERVICE__ service stores (its route __SERVICE__.notes.add).
CREATE TABLE notes (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    text text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT notes_text_not_blank CHECK (btrim(text) <> '')
);

COMMENT ON TABLE notes IS 'Notes the __SERVICE__ service stores';
