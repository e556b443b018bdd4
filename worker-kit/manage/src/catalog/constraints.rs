//! Table constraints declared on the table itself (not cloned to a partition).

use tokio_postgres::Client;

use super::{Catalog, Constraint, USER_SCHEMA, not_extension_member, qname};

pub(super) async fn read(client: &Client, cat: &mut Catalog) -> anyhow::Result<()> {
    let q = |sql: String| async move { client.query(&sql, &[]).await };
    let rel_filter = format!(
        "{USER_SCHEMA} AND {}",
        not_extension_member("pg_class", "c.oid")
    );
    for r in q(format!(
            "SELECT {}, quote_ident(con.conname), con.contype::text, pg_get_constraintdef(con.oid, true) \
             FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p') AND con.conparentid = 0 AND con.conislocal AND {rel_filter}",
            qname()
        ))
        .await?
        {
            let kind: String = r.get(2);
            cat.constraints.insert(
                (r.get(0), r.get(1)),
                Constraint {
                    kind: kind.chars().next().unwrap_or('?'),
                    definition: r.get(3),
                },
            );
        }
    Ok(())
}
