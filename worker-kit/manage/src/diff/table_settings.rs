//! A table's settings that are not columns: storage parameters (`fillfactor`,
//! `autovacuum_*`, the TOAST table's `toast.*`) and `REPLICA IDENTITY`. Neither rewrites
//! the table: each is one short `ALTER TABLE` under the table's lock.

use std::collections::BTreeMap;

use super::{Phases, lit, step};
use crate::catalog::{Catalog, Table};

/// `fillfactor=70` → (`fillfactor`, `70`).
fn options(t: &Table) -> BTreeMap<&str, &str> {
    t.options
        .iter()
        .map(|o| o.split_once('=').unwrap_or((o.as_str(), "")))
        .collect()
}

/// `ALTER TABLE ... SET (...)` / `RESET (...)` for the storage parameters of `name` (`old`
/// as it is, the default table for a new one).
fn storage(p: &mut Phases, name: &str, old: &Table, new: &Table) {
    let (was, want) = (options(old), options(new));
    let set: Vec<String> = want
        .iter()
        .filter(|(k, v)| was.get(*k) != Some(*v))
        .map(|(k, v)| format!("{k} = {}", lit(v)))
        .collect();
    let reset: Vec<&str> = was
        .keys()
        .filter(|k| !want.contains_key(*k))
        .copied()
        .collect();
    if !reset.is_empty() {
        p.columns.push(step(
            format!("ALTER TABLE {name} RESET ({})", reset.join(", ")),
            None,
        ));
    }
    if !set.is_empty() {
        p.columns.push(step(
            format!("ALTER TABLE {name} SET ({})", set.join(", ")),
            None,
        ));
    }
}

/// The replica identity as the catalog has it; a table never altered has `DEFAULT`.
fn identity(t: &Table) -> &str {
    if t.replica_identity.is_empty() {
        "DEFAULT"
    } else {
        &t.replica_identity
    }
}

/// `ALTER TABLE ... REPLICA IDENTITY ...` when it differs, or when it names an index the
/// plan makes again (the new index is not the replica identity until told so). Set once
/// indexes and constraints are in place.
fn replica_identity(
    p: &mut Phases,
    from: &Catalog,
    to: &Catalog,
    name: &str,
    old: &Table,
    new: &Table,
) {
    let want = identity(new);
    let index_remade = want.strip_prefix("USING INDEX ").is_some_and(|index| {
        let qualified = format!("{}{index}", super::indexes::schema_prefix(name));
        let key = (name.to_owned(), index.to_owned());
        from.indexes.get(&qualified) != to.indexes.get(&qualified)
            || from.invalid_indexes.contains(&qualified)
            || p.remake.indexes.contains(&qualified)
            || from.constraints.get(&key) != to.constraints.get(&key)
            || p.remake.constraints.contains(&key)
    });
    if identity(old) != want || index_remade {
        p.replica.push(step(
            format!("ALTER TABLE {name} REPLICA IDENTITY {want}"),
            None,
        ));
    }
}

pub(super) fn diff(from: &Catalog, to: &Catalog, p: &mut Phases) {
    let none = Table::default();
    for (name, t) in &to.tables {
        let old = from.tables.get(name).unwrap_or(&none);
        storage(p, name, old, t);
        replica_identity(p, from, to, name, old, t);
    }
}
