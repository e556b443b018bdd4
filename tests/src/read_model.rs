//! The example service's write model next to catalog's read model, for the tests that check
//! the two are kept in step.

use stubs::example::items::Item;

use crate::pg::TestDb;

const COLUMNS: &str = "SELECT id, name, price_cents, tags, created_at, updated_at FROM";

fn to_items(rows: &[tokio_postgres::Row]) -> Vec<Item> {
    rows.iter()
        .map(|r| Item {
            id: r.get(0),
            name: r.get(1),
            price_cents: r.get(2),
            tags: r.get(3),
            created_at: r.get(4),
            updated_at: r.get(5),
        })
        .collect()
}

/// The write model's items (example's `items`) and the read model's live items
/// (catalog's `catalog_items` not deleted), in id order.
///
/// # Panics
///
/// When either database cannot be read.
pub async fn items(write: &TestDb, read: &TestDb) -> (Vec<Item>, Vec<Item>) {
    let w = write
        .client()
        .await
        .query(&format!("{COLUMNS} items ORDER BY id"), &[])
        .await
        .expect("read the write model");
    let r = read
        .client()
        .await
        .query(
            &format!("{COLUMNS} catalog_items WHERE NOT deleted ORDER BY id"),
            &[],
        )
        .await
        .expect("read the read model");
    (to_items(&w), to_items(&r))
}
