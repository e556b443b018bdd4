//! Schemas and extensions.

use tokio_postgres::Client;

use super::{Catalog, USER_SCHEMA, not_extension_member};

pub(super) async fn read(client: &Client, cat: &mut Catalog) -> anyhow::Result<()> {
    let q = |sql: String| async move { client.query(&sql, &[]).await };
    for r in q(format!(
        "SELECT quote_ident(n.nspname) FROM pg_namespace n WHERE {USER_SCHEMA} AND {}",
        not_extension_member("pg_namespace", "n.oid")
    ))
    .await?
    {
        cat.schemas.insert(r.get(0));
    }

    for r in q(
        "SELECT quote_ident(e.extname), quote_ident(n.nspname) FROM pg_extension e \
                    JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname <> 'plpgsql'"
            .into(),
    )
    .await?
    {
        cat.extensions.insert(r.get(0), r.get(1));
    }
    Ok(())
}
