//! What each object needs, from `pg_depend`.

use tokio_postgres::Client;

use super::{Catalog, USER_SCHEMA};

pub(super) async fn read(client: &Client, cat: &mut Catalog) -> anyhow::Result<()> {
    let q = |sql: String| async move { client.query(&sql, &[]).await };
    for r in q(depends_query()).await? {
        let (from, to): (String, String) = (r.get(0), r.get(1));
        // A default counts for its table too.
        if let Some(col) = from.strip_prefix("default ")
            && let Some((table, _)) = col.rsplit_once('.')
        {
            cat.depends
                .entry(format!("table {table}"))
                .or_default()
                .insert(to.clone());
        }
        cat.depends.entry(from).or_default().insert(to);
    }
    Ok(())
}

/// `(dependent, referenced)` object keys from `pg_depend` (normal dependencies only:
/// automatic and internal ones are what `OWNED BY`, identity and row types make).
fn depends_query() -> String {
    let rel = "quote_ident(n.nspname) || '.' || quote_ident(c.relname)";
    format!(
        "WITH obj(classid, objid, key) AS ( \
           SELECT 'pg_class'::regclass, c.oid, \
                  CASE WHEN c.relkind IN ('r', 'p') THEN 'table ' WHEN c.relkind IN ('v', 'm') THEN 'view ' \
                       WHEN c.relkind = 'S' THEN 'sequence ' ELSE 'type ' END || {rel} \
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
           WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'c') AND {USER_SCHEMA} \
           UNION ALL \
           SELECT 'pg_proc'::regclass, p.oid, 'function ' || quote_ident(n.nspname) || '.' || quote_ident(p.proname) \
                  || '(' || pg_get_function_identity_arguments(p.oid) || ')' \
           FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE {USER_SCHEMA} \
           UNION ALL \
           SELECT 'pg_collation'::regclass, co.oid, 'collation ' || quote_ident(n.nspname) || '.' || quote_ident(co.collname) \
           FROM pg_collation co JOIN pg_namespace n ON n.oid = co.collnamespace WHERE {USER_SCHEMA} \
           UNION ALL \
           SELECT 'pg_type'::regclass, t.oid, CASE t.typtype WHEN 'd' THEN 'domain ' ELSE 'type ' END \
                  || quote_ident(n.nspname) || '.' || quote_ident(t.typname) \
           FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
           WHERE t.typtype IN ('e', 'd') AND {USER_SCHEMA} \
         ), owner(classid, objid, key) AS ( \
           SELECT classid, objid, key FROM obj \
           UNION ALL SELECT 'pg_type'::regclass, t.oid, o.key FROM pg_type t \
             JOIN obj o ON o.classid = 'pg_class'::regclass AND o.objid = t.typrelid \
           UNION ALL SELECT 'pg_type'::regclass, t.oid, o.key FROM pg_type t \
             JOIN obj o ON o.classid = 'pg_type'::regclass AND o.objid = t.typelem WHERE t.typcategory = 'A' \
           UNION ALL SELECT 'pg_rewrite'::regclass, r.oid, o.key FROM pg_rewrite r \
             JOIN obj o ON o.classid = 'pg_class'::regclass AND o.objid = r.ev_class \
           UNION ALL SELECT 'pg_attrdef'::regclass, d.oid, 'default ' || substr(o.key, 7) || '.' || quote_ident(a.attname) \
             FROM pg_attrdef d JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum \
             JOIN obj o ON o.classid = 'pg_class'::regclass AND o.objid = d.adrelid \
           UNION ALL SELECT 'pg_trigger'::regclass, t.oid, o.key FROM pg_trigger t \
             JOIN obj o ON o.classid = 'pg_class'::regclass AND o.objid = t.tgrelid \
           UNION ALL SELECT 'pg_policy'::regclass, p.oid, o.key FROM pg_policy p \
             JOIN obj o ON o.classid = 'pg_class'::regclass AND o.objid = p.polrelid \
           UNION ALL SELECT 'pg_constraint'::regclass, con.oid, o.key FROM pg_constraint con \
             JOIN obj o ON (o.classid = 'pg_class'::regclass AND o.objid = con.conrelid) \
                        OR (o.classid = 'pg_type'::regclass AND o.objid = con.contypid) \
           UNION ALL SELECT 'pg_class'::regclass, i.indexrelid, o.key FROM pg_index i \
             JOIN obj o ON o.classid = 'pg_class'::regclass AND o.objid = i.indrelid \
         ) \
         SELECT DISTINCT a.key, b.key FROM pg_depend d \
         JOIN owner a ON a.classid = d.classid AND a.objid = d.objid \
         JOIN owner b ON b.classid = d.refclassid AND b.objid = d.refobjid \
         WHERE d.deptype = 'n' AND a.key <> b.key"
    )
}
