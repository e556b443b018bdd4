//! Enums and their labels, in order.

use tokio_postgres::Client;

use super::{Catalog, USER_SCHEMA, not_extension_member};

pub(super) async fn read(client: &Client, cat: &mut Catalog) -> anyhow::Result<()> {
    let q = |sql: String| async move { client.query(&sql, &[]).await };
    for r in q(format!(
            "SELECT quote_ident(n.nspname) || '.' || quote_ident(t.typname), \
                    array_agg(e.enumlabel::text ORDER BY e.enumsortorder) \
             FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid JOIN pg_namespace n ON n.oid = t.typnamespace \
             WHERE {USER_SCHEMA} AND {} GROUP BY 1",
            not_extension_member("pg_type", "t.oid")
        ))
        .await?
        {
            cat.enums.insert(r.get(0), r.get(1));
        }
    Ok(())
}
