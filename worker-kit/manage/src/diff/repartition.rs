//! A table switched between plain and partitioned (or partitioned by another key):
//! PostgreSQL cannot turn one into the other, so the table is dropped and created again,
//! with everything on it (constraints, indexes, triggers, policies, grants, comments,
//! statistics). That loses its rows: the drop is tagged `data loss`, and `sync` refuses it
//! on a table with rows even with `--unsafe` ([`crate::Plan::remade_tables`]); the way
//! with rows is by hand: create the new table, move the rows, swap the names. A table
//! something else stands on (a view, a foreign key from another table, its partitions, a
//! sequence it owns) is not re-made: the difference is reported as needing a hand-written
//! migration.

use super::{Phases, dependents, step};
use crate::catalog::Catalog;
use crate::plan::Hazard;

/// Tables of `from` whose partitioning differs in `to`.
fn switched(from: &Catalog, to: &Catalog) -> Vec<String> {
    from.tables
        .iter()
        .filter(|(name, t)| {
            to.tables
                .get(*name)
                .is_some_and(|n| n.partition_by != t.partition_by)
        })
        .map(|(name, _)| name.clone())
        .collect()
}

/// Whether nothing outside `table` itself depends on it.
fn stands_alone(from: &Catalog, table: &str) -> bool {
    let key = format!("table {table}");
    let own_partitions = from
        .tables
        .values()
        .any(|t| t.partition_of.as_ref().is_some_and(|(p, _)| p == table));
    let owned_sequence = from.sequences.values().any(|s| {
        s.owned_by
            .as_deref()
            .is_some_and(|o| o.starts_with(&format!("{table}.")))
    });
    let referenced = from.constraints.iter().any(|((t, _), c)| {
        t != table && c.kind == 'f' && c.definition.contains(&format!("REFERENCES {table}("))
    });
    !own_partitions
        && !owned_sequence
        && !referenced
        && dependents(&from.depends, &key).all(|user| user == &key)
}

/// `from` without the tables to re-make and what stands on them, so the plan creates them
/// as new; the drops go into `p`. Returns the catalog to diff from.
pub(super) fn prepare(from: &Catalog, to: &Catalog, p: &mut Phases) -> Catalog {
    let mut out = from.clone();
    for table in switched(from, to) {
        if !stands_alone(from, &table) {
            continue; // `inherit::relink` reports it.
        }
        p.detach
            .push(step(format!("DROP TABLE {table}"), Some(Hazard::DataLoss)));
        p.remade_tables.push(table.clone());
        out.tables.remove(&table);
        out.constraints.retain(|(t, _), _| t != &table);
        out.indexes.retain(|_, (t, _)| t != &table);
        out.invalid_indexes
            .retain(|i| from.indexes.contains_key(i) && out.indexes.contains_key(i));
        out.triggers.retain(|(t, _), _| t != &table);
        out.policies.retain(|(t, _), _| t != &table);
        out.statistics.retain(|_, (t, _, _)| t != &table);
        let on_table = |key: &str| {
            key == format!("TABLE {table}")
                || key
                    .strip_prefix("COLUMN ")
                    .and_then(super::grants::split_last_ident)
                    .is_some_and(|(t, _)| t == table)
        };
        out.grants.retain(|(object, _), _| !on_table(object));
        out.comments.retain(|key, _| !on_table(key));
        out.depends.remove(&format!("table {table}"));
    }
    out
}
