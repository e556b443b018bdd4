//! Comments on tables, views, columns, functions, schemas, types and domains.

use tokio_postgres::Client;

use super::{Catalog, USER_SCHEMA, not_extension_member, qname};

pub(super) async fn read(client: &Client, cat: &mut Catalog) -> anyhow::Result<()> {
    let q = |sql: String| async move { client.query(&sql, &[]).await };
    let rel_filter = format!(
        "{USER_SCHEMA} AND {}",
        not_extension_member("pg_class", "c.oid")
    );
    for r in q(format!(
            "SELECT CASE c.relkind WHEN 'v' THEN 'VIEW ' WHEN 'm' THEN 'MATERIALIZED VIEW ' ELSE 'TABLE ' END || {}, d.description \
             FROM pg_description d JOIN pg_class c ON c.oid = d.objoid AND d.classoid = 'pg_class'::regclass AND d.objsubid = 0 \
             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p', 'v', 'm') AND {rel_filter} \
             UNION ALL \
             SELECT 'COLUMN ' || {} || '.' || quote_ident(a.attname), d.description \
             FROM pg_description d JOIN pg_class c ON c.oid = d.objoid AND d.classoid = 'pg_class'::regclass \
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = d.objsubid \
             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE d.objsubid > 0 AND {rel_filter} \
             UNION ALL \
             SELECT CASE p.prokind WHEN 'p' THEN 'PROCEDURE ' ELSE 'FUNCTION ' END || quote_ident(n.nspname) || '.' || quote_ident(p.proname) || '(' || pg_get_function_identity_arguments(p.oid) || ')', d.description \
             FROM pg_description d JOIN pg_proc p ON p.oid = d.objoid AND d.classoid = 'pg_proc'::regclass \
             JOIN pg_namespace n ON n.oid = p.pronamespace WHERE {USER_SCHEMA} \
             UNION ALL \
             SELECT 'SCHEMA ' || quote_ident(n.nspname), d.description \
             FROM pg_description d JOIN pg_namespace n ON n.oid = d.objoid AND d.classoid = 'pg_namespace'::regclass \
             WHERE {USER_SCHEMA} AND n.nspname <> 'public' \
             UNION ALL \
             SELECT CASE t.typtype WHEN 'd' THEN 'DOMAIN ' ELSE 'TYPE ' END || quote_ident(n.nspname) || '.' || quote_ident(t.typname), d.description \
             FROM pg_description d JOIN pg_type t ON t.oid = d.objoid AND d.classoid = 'pg_type'::regclass \
             JOIN pg_namespace n ON n.oid = t.typnamespace WHERE {USER_SCHEMA}",
            qname(),
            qname()
        ))
        .await?
        {
            cat.comments.insert(r.get(0), r.get(1));
        }
    Ok(())
}
