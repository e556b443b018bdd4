//! Row-level security policies, as `CREATE POLICY` statements.

use tokio_postgres::Client;

use super::{Catalog, USER_SCHEMA, not_extension_member, qname};

pub(super) async fn read(client: &Client, cat: &mut Catalog) -> anyhow::Result<()> {
    let q = |sql: String| async move { client.query(&sql, &[]).await };
    let rel_filter = format!(
        "{USER_SCHEMA} AND {}",
        not_extension_member("pg_class", "c.oid")
    );
    for r in q(format!(
            "SELECT {}, quote_ident(p.polname), \
                    'CREATE POLICY ' || quote_ident(p.polname) || ' ON ' || {} \
                    || ' AS ' || CASE WHEN p.polpermissive THEN 'PERMISSIVE' ELSE 'RESTRICTIVE' END \
                    || ' FOR ' || CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE' WHEN 'd' THEN 'DELETE' ELSE 'ALL' END \
                    || ' TO ' || coalesce((SELECT string_agg(CASE WHEN r = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(r)) END, ', ' ORDER BY 1) FROM unnest(p.polroles) r), 'PUBLIC') \
                    || coalesce(' USING (' || pg_get_expr(p.polqual, p.polrelid) || ')', '') \
                    || coalesce(' WITH CHECK (' || pg_get_expr(p.polwithcheck, p.polrelid) || ')', '') \
             FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE {rel_filter}",
            qname(),
            qname()
        ))
        .await?
        {
            cat.policies.insert((r.get(0), r.get(1)), r.get(2));
        }
    Ok(())
}
