//! Partitions and `INHERITS` parents (`pg_inherits`).

use tokio_postgres::Client;

use super::{Catalog, USER_SCHEMA};

/// Fills in each table's partitioned table or inheritance parents, and makes a child
/// depend on its parent (pg_depend records that link as automatic, which the ordering
/// of creates and drops leaves out).
pub(super) async fn read(client: &Client, cat: &mut Catalog) -> anyhow::Result<()> {
    let sql = format!(
        "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname), \
                quote_ident(pn.nspname) || '.' || quote_ident(p.relname), c.relispartition \
         FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace pn ON pn.oid = p.relnamespace \
         WHERE c.relkind IN ('r', 'p') AND {USER_SCHEMA} \
         ORDER BY 1, i.inhseqno"
    );
    for r in client.query(&sql, &[]).await? {
        let (child, parent, partition): (String, String, bool) = (r.get(0), r.get(1), r.get(2));
        let Some(t) = cat.tables.get_mut(&child) else {
            continue;
        };
        match (&mut t.partition_of, partition) {
            (Some((of, _)), true) => *of = parent.clone(),
            _ => t.parents.push(parent.clone()),
        }
        cat.depends
            .entry(format!("table {child}"))
            .or_default()
            .insert(format!("table {parent}"));
    }
    Ok(())
}

/// The constraints and indexes partitions have from their partitioned table: left out of
/// the comparison, but a detached partition keeps them as its own.
pub(super) async fn read_cloned(client: &Client, cat: &mut Catalog) -> anyhow::Result<()> {
    let sql = format!(
        "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname), quote_ident(con.conname) \
         FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relispartition AND (con.conparentid <> 0 OR NOT con.conislocal) AND {USER_SCHEMA}"
    );
    for r in client.query(&sql, &[]).await? {
        cat.cloned_constraints.insert((r.get(0), r.get(1)));
    }
    let sql = format!(
        "SELECT quote_ident(n.nspname) || '.' || quote_ident(ic.relname) \
         FROM pg_class ic JOIN pg_namespace n ON n.oid = ic.relnamespace \
         WHERE ic.relkind = 'i' AND ic.relispartition AND {USER_SCHEMA}"
    );
    for r in client.query(&sql, &[]).await? {
        cat.cloned_indexes.insert(r.get(0));
    }
    Ok(())
}
