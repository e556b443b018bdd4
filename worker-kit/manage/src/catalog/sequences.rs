//! Sequences, except those identity columns make.

use tokio_postgres::Client;

use super::{Catalog, Sequence, USER_SCHEMA, not_extension_member, qname};

pub(super) async fn read(client: &Client, cat: &mut Catalog) -> anyhow::Result<()> {
    let q = |sql: String| async move { client.query(&sql, &[]).await };
    for r in q(format!(
            "SELECT {}, format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement, s.seqmin, s.seqmax, s.seqcache, s.seqcycle, \
                    (SELECT quote_ident(tn.nspname) || '.' || quote_ident(tc.relname) || '.' || quote_ident(a.attname) \
                     FROM pg_depend d JOIN pg_class tc ON tc.oid = d.refobjid JOIN pg_namespace tn ON tn.oid = tc.relnamespace \
                     JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid \
                     WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'a' LIMIT 1) \
             FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE {USER_SCHEMA} AND {} \
               AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'i')",
            qname(),
            not_extension_member("pg_class", "c.oid")
        ))
        .await?
        {
            cat.sequences.insert(
                r.get(0),
                Sequence {
                    data_type: r.get(1),
                    start: r.get(2),
                    increment: r.get(3),
                    min: r.get(4),
                    max: r.get(5),
                    cache: r.get(6),
                    cycle: r.get(7),
                    owned_by: r.get(8),
                },
            );
        }
    Ok(())
}
