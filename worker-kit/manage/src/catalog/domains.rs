//! Domains: base type, NOT NULL, default, named CHECKs.

use tokio_postgres::Client;

use super::{Catalog, Domain, USER_SCHEMA, not_extension_member};

pub(super) async fn read(client: &Client, cat: &mut Catalog) -> anyhow::Result<()> {
    let q = |sql: String| async move { client.query(&sql, &[]).await };
    for r in q(format!(
            "SELECT quote_ident(n.nspname) || '.' || quote_ident(t.typname), format_type(t.typbasetype, t.typtypmod), \
                    t.typnotnull, t.typdefault, \
                    coalesce((SELECT array_agg(quote_ident(con.conname) ORDER BY con.conname) FROM pg_constraint con WHERE con.contypid = t.oid), '{{}}'), \
                    coalesce((SELECT array_agg(pg_get_constraintdef(con.oid, true) ORDER BY con.conname) FROM pg_constraint con WHERE con.contypid = t.oid), '{{}}') \
             FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
             WHERE t.typtype = 'd' AND {USER_SCHEMA} AND {}",
            not_extension_member("pg_type", "t.oid")
        ))
        .await?
        {
            let names: Vec<String> = r.get(4);
            let defs: Vec<String> = r.get(5);
            cat.domains.insert(
                r.get(0),
                Domain {
                    base: r.get(1),
                    not_null: r.get(2),
                    default: r.get(3),
                    checks: names.into_iter().zip(defs).collect(),
                },
            );
        }
    Ok(())
}
