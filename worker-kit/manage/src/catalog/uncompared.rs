//! Object kinds a model may create that manage does not read: counted, so `diff` and `sync`
//! say they were not compared instead of reporting a schema "in sync" that is not.

use tokio_postgres::Client;

use super::{Catalog, USER_SCHEMA, grants::COLUMN_GRANTS_ON, statistics::ON_TABLES};

pub(super) async fn read(client: &Client, cat: &mut Catalog) -> anyhow::Result<()> {
    let sql = format!(
        "SELECT 'aggregates', count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
           WHERE p.prokind = 'a' AND {USER_SCHEMA} \
           AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e') \
         UNION ALL SELECT 'statistics objects on materialized views', count(*) FROM pg_statistic_ext s \
           JOIN pg_class c ON c.oid = s.stxrelid \
           JOIN pg_namespace n ON n.oid = s.stxnamespace WHERE NOT {ON_TABLES} AND {USER_SCHEMA} \
         UNION ALL SELECT 'publications', count(*) FROM pg_publication \
         UNION ALL SELECT 'rules', count(*) FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class \
           JOIN pg_namespace n ON n.oid = c.relnamespace WHERE r.rulename <> '_RETURN' AND {USER_SCHEMA} \
         UNION ALL SELECT 'default privileges', count(*) FROM pg_default_acl \
         UNION ALL SELECT 'column grants on views', count(*) FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
           JOIN pg_namespace n ON n.oid = c.relnamespace \
           WHERE a.attacl IS NOT NULL AND a.attnum > 0 AND NOT a.attisdropped AND NOT {COLUMN_GRANTS_ON} AND {USER_SCHEMA}"
    );
    for r in client.query(&sql, &[]).await? {
        let (kind, n): (String, i64) = (r.get(0), r.get(1));
        if n > 0 {
            cat.not_compared.push(format!("{kind} ({n})"));
        }
    }
    Ok(())
}
