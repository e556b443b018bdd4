-- Named queries of the example service (not schema: `manage` skips queries.sql files).
-- The service turns each block into a typed method with #[worker_kit::db::queries].

-- name: search_items
-- Items whose name contains $1 (case-insensitive), in id order, at most $2.
SELECT id, name, price_cents, tags, created_at, updated_at
FROM items
WHERE name ILIKE '%' || $1 || '%'
ORDER BY id
LIMIT $2;

-- name: count_items^
SELECT count(*) FROM items;

-- name: orders_for_item
SELECT id, idempotency_key, item_id, quantity, created_at
FROM orders
WHERE item_id = $1
ORDER BY created_at, id;

-- name: tag_item!
-- Adds tag $2 to item $1 unless it already has it.
UPDATE items SET tags = array_append(tags, $2)
WHERE id = $1 AND NOT ($2 = ANY (tags));
