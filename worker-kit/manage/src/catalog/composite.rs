//! Composite types (`CREATE TYPE x AS (...)`).

use tokio_postgres::Client;

use super::{COLLATION_NAME, Catalog, USER_SCHEMA, not_extension_member};

/// An attribute of a composite type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Attribute {
    pub(crate) name: String,
    pub(crate) data_type: String,
    pub(crate) collation: Option<String>,
}

/// Reads every composite type that is not a table's row type.
pub(super) async fn read(client: &Client, cat: &mut Catalog) -> anyhow::Result<()> {
    let sql = format!(
        "SELECT quote_ident(n.nspname) || '.' || quote_ident(t.typname), \
                quote_ident(a.attname), format_type(a.atttypid, a.atttypmod), \
                CASE WHEN a.attcollation <> at.typcollation THEN {COLLATION_NAME} END \
         FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
         JOIN pg_class c ON c.oid = t.typrelid AND c.relkind = 'c' \
         LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
         LEFT JOIN pg_type at ON at.oid = a.atttypid \
         LEFT JOIN pg_collation co ON co.oid = a.attcollation \
         LEFT JOIN pg_namespace con ON con.oid = co.collnamespace \
         WHERE t.typtype = 'c' AND {USER_SCHEMA} AND {} \
         ORDER BY 1, a.attnum",
        not_extension_member("pg_type", "t.oid")
    );
    for r in client.query(&sql, &[]).await? {
        let attrs = cat.composites.entry(r.get(0)).or_default();
        if let Some(name) = r.get::<_, Option<String>>(1) {
            attrs.push(Attribute {
                name,
                data_type: r.get(2),
                collation: r.get(3),
            });
        }
    }
    Ok(())
}
