//! Views and materialized views, with the relations they read.

use tokio_postgres::Client;

use super::{Catalog, USER_SCHEMA, View, not_extension_member, qname};

pub(super) async fn read(client: &Client, cat: &mut Catalog) -> anyhow::Result<()> {
    let q = |sql: String| async move { client.query(&sql, &[]).await };
    let rel_filter = format!(
        "{USER_SCHEMA} AND {}",
        not_extension_member("pg_class", "c.oid")
    );
    for r in q(format!(
            "SELECT {}, c.relkind = 'm', pg_get_viewdef(c.oid, true), \
                    coalesce((SELECT array_agg(DISTINCT quote_ident(dn.nspname) || '.' || quote_ident(dc.relname)) \
                     FROM pg_rewrite rw JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = rw.oid \
                     JOIN pg_class dc ON dc.oid = d.refobjid AND d.refclassid = 'pg_class'::regclass \
                     JOIN pg_namespace dn ON dn.oid = dc.relnamespace \
                     WHERE rw.ev_class = c.oid AND d.refobjid <> c.oid), '{{}}'), \
                    coalesce((SELECT array_agg(o ORDER BY o) FROM unnest(c.reloptions) o), '{{}}') \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('v', 'm') AND {rel_filter}",
            qname()
        ))
        .await?
        {
            let def: String = r.get(2);
            let deps: Vec<String> = r.get(3);
            cat.views.insert(
                r.get(0),
                View {
                    materialized: r.get(1),
                    definition: def.trim().trim_end_matches(';').trim_end().to_owned(),
                    options: r.get(4),
                    depends_on: deps.into_iter().collect(),
                },
            );
        }
    Ok(())
}
