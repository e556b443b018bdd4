//! Tables' links to other tables: declarative partitioning (partitioned tables, partitions
//! created, attached, detached, re-bounded), `INHERITS` parents added and removed, and
//! `LOGGED`/`UNLOGGED`.

use super::{Phases, column_def, step};
use crate::catalog::{Column, Table};
use crate::plan::Hazard;

/// `CREATE TABLE` for a table that does not exist yet.
pub(super) fn create(name: &str, t: &Table) -> String {
    let unlogged = if t.unlogged { "UNLOGGED " } else { "" };
    let mut sql = match &t.partition_of {
        // A partition's columns are its partitioned table's.
        Some((parent, bound)) => {
            format!("CREATE {unlogged}TABLE {name} PARTITION OF {parent} {bound}")
        }
        None => {
            let cols = t
                .columns
                .iter()
                .filter(|c| c.local || t.parents.is_empty())
                .map(|c| format!("    {}", column_def(c)))
                .collect::<Vec<_>>()
                .join(",\n");
            let mut sql = format!("CREATE {unlogged}TABLE {name} (\n{cols}\n)");
            if !t.parents.is_empty() {
                sql.push_str(&format!(" INHERITS ({})", t.parents.join(", ")));
            }
            sql
        }
    };
    if let Some(key) = &t.partition_by {
        sql.push_str(&format!(" PARTITION BY {key}"));
    }
    sql
}

/// Whether the column changes of `old` → `new` are left to the parent (partitions follow
/// their partitioned table; inherited columns follow the parent they come from).
pub(super) fn columns_follow_parent(old: &Table, new: &Table) -> bool {
    old.partition_of.is_some() && new.partition_of.is_some()
}

/// Whether column `c` (of the new or the old side) is the parent's to change: inherited,
/// through a link that exists on both sides.
pub(super) fn inherited_on_both_sides(c: &Column, old: &Table, new: &Table) -> bool {
    !c.local && old.parents.iter().any(|p| new.parents.contains(p))
}

/// Detaches and attaches partitions, adds and removes parents, switches persistence.
/// Returns a difference no statement expresses, if any.
pub(super) fn relink(name: &str, old: &Table, new: &Table, p: &mut Phases) -> Option<String> {
    if old.partition_by != new.partition_by {
        return Some(format!(
            "table {name} changes its partitioning ({} to {}): create the new table, move the rows, swap the names",
            old.partition_by.as_deref().unwrap_or("none"),
            new.partition_by.as_deref().unwrap_or("none"),
        ));
    }
    if old.partition_of != new.partition_of {
        if let Some((parent, _)) = &old.partition_of {
            p.detach.push(step(
                format!("ALTER TABLE {parent} DETACH PARTITION {name}"),
                Some(Hazard::Lock),
            ));
        }
        if let Some((parent, bound)) = &new.partition_of {
            p.attach.push(step(
                format!("ALTER TABLE {parent} ATTACH PARTITION {name} {bound}"),
                Some(Hazard::Lock),
            ));
        }
    }
    for parent in old.parents.iter().filter(|x| !new.parents.contains(x)) {
        p.detach.push(step(
            format!("ALTER TABLE {name} NO INHERIT {parent}"),
            None,
        ));
    }
    for parent in new.parents.iter().filter(|x| !old.parents.contains(x)) {
        p.attach.push(step(
            format!("ALTER TABLE {name} INHERIT {parent}"),
            Some(Hazard::Lock),
        ));
    }
    if old.unlogged != new.unlogged {
        let to = if new.unlogged { "UNLOGGED" } else { "LOGGED" };
        p.columns.push(step(
            format!("ALTER TABLE {name} SET {to}"),
            Some(Hazard::Rewrite),
        ));
    }
    None
}

/// Inherited columns that become the child's own (declared on it, the parent giving them
/// up): without this, the parent's `DROP COLUMN` would take the child's column and its
/// values with it. Leaving the parent marks every inherited column local, and inheriting
/// again keeps them so; both take a moment's lock.
pub(super) fn keep_columns_made_local(name: &str, old: &Table, new: &Table, p: &mut Phases) {
    let made_local = new.columns.iter().any(|c| {
        c.local
            && old
                .columns
                .iter()
                .any(|o| o.name == c.name && !o.local && o.data_type == c.data_type)
    });
    if !made_local {
        return;
    }
    for parent in old.parents.iter().filter(|x| new.parents.contains(x)) {
        p.detach.push(step(
            format!("ALTER TABLE {name} NO INHERIT {parent}"),
            None,
        ));
        p.detach
            .push(step(format!("ALTER TABLE {name} INHERIT {parent}"), None));
    }
}
