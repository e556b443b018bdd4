//! Triggers on tables and views (internal ones and partitions' clones aside).

use tokio_postgres::Client;

use super::{Catalog, USER_SCHEMA, not_extension_member, qname};

pub(super) async fn read(client: &Client, cat: &mut Catalog) -> anyhow::Result<()> {
    let q = |sql: String| async move { client.query(&sql, &[]).await };
    let rel_filter = format!(
        "{USER_SCHEMA} AND {}",
        not_extension_member("pg_class", "c.oid")
    );
    for r in q(format!(
            "SELECT {}, quote_ident(t.tgname), pg_get_triggerdef(t.oid, true) \
             FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE NOT t.tgisinternal AND t.tgparentid = 0 AND {rel_filter}",
            qname()
        ))
        .await?
        {
            cat.triggers.insert((r.get(0), r.get(1)), r.get(2));
        }
    Ok(())
}
