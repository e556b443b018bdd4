//! Collations (`CREATE COLLATION`), as objects of their own.

use tokio_postgres::Client;

use super::{Catalog, USER_SCHEMA, not_extension_member};

/// Reads each collation as the options of its `CREATE COLLATION`. The ICU locale's column
/// is read through `to_jsonb`, as it is named differently across server versions
/// (`colliculocale`, then `colllocale`).
pub(super) async fn read(client: &Client, cat: &mut Catalog) -> anyhow::Result<()> {
    let sql = format!(
        "SELECT quote_ident(n.nspname) || '.' || quote_ident(co.collname), \
                CASE co.collprovider WHEN 'i' THEN 'icu' WHEN 'c' THEN 'libc' ELSE 'builtin' END, \
                coalesce(to_jsonb(co) ->> 'colllocale', to_jsonb(co) ->> 'colliculocale'), \
                co.collcollate, co.collctype, co.collisdeterministic \
         FROM pg_collation co JOIN pg_namespace n ON n.oid = co.collnamespace \
         WHERE {USER_SCHEMA} AND {}",
        not_extension_member("pg_collation", "co.oid")
    );
    for r in client.query(&sql, &[]).await? {
        let provider: String = r.get(1);
        let lit = |v: Option<String>| format!("'{}'", v.unwrap_or_default().replace('\'', "''"));
        let mut options = format!("provider = {provider}");
        if provider == "libc" {
            options.push_str(&format!(
                ", lc_collate = {}, lc_ctype = {}",
                lit(r.get(3)),
                lit(r.get(4))
            ));
        } else {
            options.push_str(&format!(", locale = {}", lit(r.get(2))));
        }
        if !r.get::<_, bool>(5) {
            options.push_str(", deterministic = false");
        }
        cat.collations.insert(r.get(0), format!("({options})"));
    }
    Ok(())
}
