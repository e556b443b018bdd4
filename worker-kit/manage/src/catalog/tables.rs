//! Tables (ordinary, partitioned and partitions) and their columns.

use tokio_postgres::Client;

use super::{COLLATION_NAME, Catalog, Column, Table, USER_SCHEMA, not_extension_member, qname};

pub(super) async fn read(client: &Client, cat: &mut Catalog) -> anyhow::Result<()> {
    let q = |sql: String| async move { client.query(&sql, &[]).await };
    let rel_filter = format!(
        "{USER_SCHEMA} AND {}",
        not_extension_member("pg_class", "c.oid")
    );
    for r in q(format!(
        "SELECT {}, c.relrowsecurity, c.relforcerowsecurity, c.relpersistence = 'u', \
                    CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END, \
                    CASE WHEN c.relispartition THEN pg_get_expr(c.relpartbound, c.oid) END, \
                    ARRAY(SELECT o FROM unnest(c.reloptions) o \
                          UNION ALL SELECT 'toast.' || o FROM pg_class tc, unnest(tc.reloptions) o \
                          WHERE tc.oid = c.reltoastrelid ORDER BY 1), \
                    CASE c.relreplident WHEN 'f' THEN 'FULL' WHEN 'n' THEN 'NOTHING' \
                         WHEN 'i' THEN coalesce((SELECT 'USING INDEX ' || quote_ident(ic.relname) \
                             FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid \
                             WHERE i.indrelid = c.oid AND i.indisreplident), 'NOTHING') \
                         ELSE 'DEFAULT' END \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p') AND {rel_filter}",
        qname()
    ))
    .await?
    {
        cat.tables.insert(
            r.get(0),
            Table {
                columns: Vec::new(),
                rls: r.get(1),
                force_rls: r.get(2),
                unlogged: r.get(3),
                partition_by: r.get(4),
                // The parent comes from pg_inherits, below.
                partition_of: r
                    .get::<_, Option<String>>(5)
                    .map(|bound| (String::new(), bound)),
                parents: Vec::new(),
                options: r.get(6),
                replica_identity: r.get(7),
            },
        );
    }
    for r in q(format!(
            "SELECT {}, quote_ident(a.attname), format_type(a.atttypid, a.atttypmod), a.attnotnull, \
                    CASE WHEN a.attgenerated = '' THEN pg_get_expr(ad.adbin, ad.adrelid) END, \
                    a.attidentity::text, \
                    CASE WHEN a.attgenerated <> '' THEN pg_get_expr(ad.adbin, ad.adrelid) END, \
                    CASE WHEN a.attcollation <> t.typcollation THEN {COLLATION_NAME} END, \
                    a.attislocal \
             FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_type t ON t.oid = a.atttypid \
             LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum \
             LEFT JOIN pg_collation co ON co.oid = a.attcollation \
             LEFT JOIN pg_namespace con ON con.oid = co.collnamespace \
             WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p') AND {rel_filter} \
             ORDER BY 1, a.attnum",
            qname()
        ))
        .await?
        {
            let table: String = r.get(0);
            if let Some(t) = cat.tables.get_mut(&table) {
                t.columns.push(Column {
                    name: r.get(1),
                    data_type: r.get(2),
                    not_null: r.get(3),
                    default: r.get(4),
                    identity: r.get(5),
                    generated: r.get(6),
                    collation: r.get(7),
                    local: r.get(8),
                });
            }
        }
    Ok(())
}
