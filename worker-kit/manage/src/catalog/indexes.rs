//! Indexes that no constraint owns, partitions' copies aside.

use tokio_postgres::Client;

use super::{Catalog, USER_SCHEMA, not_extension_member, qname};

pub(super) async fn read(client: &Client, cat: &mut Catalog) -> anyhow::Result<()> {
    let q = |sql: String| async move { client.query(&sql, &[]).await };
    let rel_filter = format!(
        "{USER_SCHEMA} AND {}",
        not_extension_member("pg_class", "c.oid")
    );
    for r in q(format!(
            "SELECT quote_ident(n.nspname) || '.' || quote_ident(ic.relname), {}, pg_get_indexdef(i.indexrelid), i.indisvalid \
             FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_class c ON c.oid = i.indrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE {rel_filter} AND NOT EXISTS (SELECT 1 FROM pg_constraint con WHERE con.conindid = i.indexrelid AND con.contype IN ('p', 'u', 'x')) \
               AND NOT ic.relispartition",
            qname()
        ))
        .await?
        {
            let name: String = r.get(0);
            if !r.get::<_, bool>(3) {
                cat.invalid_indexes.insert(name.clone());
            }
            cat.indexes.insert(name, (r.get(1), r.get(2)));
        }
    Ok(())
}
