//! Extended statistics objects (`CREATE STATISTICS`) on tables: what the planner knows of
//! columns that go together. Lost, plans that relied on them change without a trace.

use tokio_postgres::Client;

use super::{Catalog, USER_SCHEMA, not_extension_member, qname};

/// The relation kinds whose statistics objects are compared (tables); those on
/// materialized views and foreign tables stay in the "not compared" list.
pub(super) const ON_TABLES: &str = "c.relkind IN ('r', 'p')";

pub(super) async fn read(client: &Client, cat: &mut Catalog) -> anyhow::Result<()> {
    let sql = format!(
        "SELECT quote_ident(sn.nspname) || '.' || quote_ident(s.stxname), {}, \
                pg_get_statisticsobjdef(s.oid), coalesce(s.stxstattarget::int, -1) \
         FROM pg_statistic_ext s JOIN pg_namespace sn ON sn.oid = s.stxnamespace \
         JOIN pg_class c ON c.oid = s.stxrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE {ON_TABLES} AND {USER_SCHEMA} AND {}",
        qname(),
        not_extension_member("pg_statistic_ext", "s.oid"),
    );
    for r in client.query(&sql, &[]).await? {
        cat.statistics
            .insert(r.get(0), (r.get(1), r.get(2), r.get(3)));
    }
    Ok(())
}
