//! Functions and procedures, as `pg_get_functiondef` prints them.

use tokio_postgres::Client;

use super::{Catalog, Function, USER_SCHEMA, not_extension_member};

pub(super) async fn read(client: &Client, cat: &mut Catalog) -> anyhow::Result<()> {
    let q = |sql: String| async move { client.query(&sql, &[]).await };
    for r in q(format!(
            "SELECT quote_ident(n.nspname) || '.' || quote_ident(p.proname) || '(' || pg_get_function_identity_arguments(p.oid) || ')', \
                    pg_get_functiondef(p.oid), p.prokind::text, coalesce(pg_get_function_result(p.oid), '') \
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
             WHERE p.prokind IN ('f', 'p') AND {USER_SCHEMA} AND {}",
            not_extension_member("pg_proc", "p.oid")
        ))
        .await?
        {
            let kind: String = r.get(2);
            let def: String = r.get(1);
            cat.functions.insert(
                r.get(0),
                Function {
                    definition: def.trim_end().to_owned(),
                    kind: if kind == "p" { "PROCEDURE" } else { "FUNCTION" },
                    result: r.get(3),
                },
            );
        }
    Ok(())
}
