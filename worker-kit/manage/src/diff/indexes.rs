//! Indexes (those of re-made materialized views come back after the views). On an
//! existing table that is not partitioned, indexes are built and dropped `CONCURRENTLY`
//! (outside any transaction, writes going on meanwhile); a changed one is replaced without
//! a moment without it (the old one renamed, the new one built, the old one dropped); an
//! invalid one (left by an interrupted concurrent build) is drift, and rebuilt. On an
//! existing partitioned table, a new index is built `CONCURRENTLY` on each partition, then
//! made on the partitioned table alone (`ON ONLY`, no build) and the partitions' indexes
//! attached to it.

use super::{Phases, step};
use crate::catalog::Catalog;
use crate::plan::{Hazard, Step};

/// `CREATE [UNIQUE] INDEX name ...` → `CREATE [UNIQUE] INDEX CONCURRENTLY name ...`.
fn concurrently(def: &str) -> String {
    def.replacen(" INDEX ", " INDEX CONCURRENTLY ", 1)
}

/// `schema.name` → `schema.` (the schema an index's sibling lives in).
pub(super) fn schema_prefix(qualified: &str) -> &str {
    let mut quoted = false;
    for (i, ch) in qualified.char_indices() {
        match ch {
            '"' => quoted = !quoted,
            '.' if !quoted => return &qualified[..=i],
            _ => {}
        }
    }
    ""
}

/// A build of `def` (the index `name` on `table`) outside a transaction; a failed build's
/// invalid index is dropped.
fn build_concurrently(name: &str, table: &str, def: &str) -> Step {
    Step {
        outside_transaction: true,
        locks: Some(table.to_owned()),
        undo_failed: Some(format!("DROP INDEX CONCURRENTLY IF EXISTS {name}")),
        ..step(concurrently(def), None)
    }
}

fn drop_concurrently(name: &str, table: &str) -> Step {
    Step {
        outside_transaction: true,
        locks: Some(table.to_owned()),
        ..step(
            format!("DROP INDEX CONCURRENTLY IF EXISTS {name}"),
            Some(Hazard::Drop),
        )
    }
}

/// The partitions of `table` when an index can be built on each of them concurrently and
/// attached: the table is partitioned, exists, keeps the same partitions, and none of
/// them is partitioned in turn (a partitioned partition cannot be built `CONCURRENTLY`).
fn leaf_partitions(from: &Catalog, to: &Catalog, p: &Phases, table: &str) -> Option<Vec<String>> {
    let partitioned = |c: &Catalog| {
        c.tables
            .get(table)
            .is_some_and(|t| t.partition_by.is_some())
    };
    if !p.online || !partitioned(from) || !partitioned(to) || p.reshaped.contains(table) {
        return None;
    }
    let partitions = |c: &Catalog| -> Vec<(String, bool)> {
        c.tables
            .iter()
            .filter(|(_, t)| {
                t.partition_of
                    .as_ref()
                    .is_some_and(|(parent, _)| parent == table)
            })
            .map(|(n, t)| (n.clone(), t.partition_by.is_some()))
            .collect()
    };
    let (now, then) = (partitions(from), partitions(to));
    let leaves = !now.is_empty() && now == then && now.iter().all(|(_, sub)| !sub);
    leaves.then(|| now.into_iter().map(|(n, _)| n).collect())
}

/// The index `name` (`CREATE [UNIQUE] INDEX name ON ONLY table ...` as the server prints
/// it) made on a partitioned table without blocking writes: built `CONCURRENTLY` on each
/// partition, made on the partitioned table alone, then each partition's attached.
fn partitioned_online(
    name: &str,
    table: &str,
    def: &str,
    partitions: &[String],
) -> Option<Vec<Step>> {
    let bare = &name[schema_prefix(name).len()..];
    let (head, tail) = def.split_once(&format!(" ON ONLY {table} "))?;
    let create = head.strip_suffix(bare)?.trim_end();
    let mut builds = Vec::new();
    let mut attaches = Vec::new();
    for part in partitions {
        let short: String = bare.trim_matches('"').chars().take(40).collect();
        let own = crate::target::ident(&format!(
            "{short}_{}",
            &crate::target::digest(part.as_bytes())[..12]
        ));
        let qualified = format!("{}{own}", schema_prefix(part));
        builds.push(build_concurrently(
            &qualified,
            part,
            &format!("{create} {own} ON {part} {tail}"),
        ));
        attaches.push(Step {
            locks: Some(table.to_owned()),
            ..step(
                format!("ALTER INDEX {name} ATTACH PARTITION {qualified}"),
                None,
            )
        });
    }
    builds.push(Step {
        locks: Some(table.to_owned()),
        ..step(def, None)
    });
    builds.extend(attaches);
    Some(builds)
}

pub(super) fn diff(from: &Catalog, to: &Catalog, p: &mut Phases) {
    // Only plain tables take CONCURRENTLY; one whose columns change is locked anyway.
    let online_on = |p: &Phases, table: &str| {
        p.online
            && from
                .tables
                .get(table)
                .is_some_and(|t| t.partition_by.is_none())
            && to
                .tables
                .get(table)
                .is_some_and(|t| t.partition_by.is_none())
            && !p.reshaped.contains(table)
    };
    let changed = |name: &String, def: &String| {
        to.indexes.get(name).map(|(_, d)| d) != Some(def)
            || from.invalid_indexes.contains(name)
            || p.remake.indexes.contains(name)
    };
    let mut replaced = Vec::new();
    for (name, (table, def)) in &from.indexes {
        let gone_with_table = p.dropped_tables.contains(table) || p.views_remade.contains(table);
        if gone_with_table || !changed(name, def) {
            continue;
        }
        let stays = to.indexes.contains_key(name);
        // One made again for what it reads must be gone before that changes.
        let in_the_way = p.remake.indexes.contains(name);
        if online_on(p, table) && stays && !from.invalid_indexes.contains(name) && !in_the_way {
            // Renamed aside, so the new one can be built under its name while the old one
            // still serves queries; dropped once the new one is valid.
            let aside = crate::target::ident(&format!(
                "manage_old_{}",
                &crate::target::digest(name.as_bytes())[..16]
            ));
            p.drop_indexes.push(Step {
                locks: Some(table.clone()),
                ..step(format!("ALTER INDEX {name} RENAME TO {aside}"), None)
            });
            replaced.push((table.clone(), format!("{}{aside}", schema_prefix(name))));
        } else if online_on(p, table) {
            p.drop_indexes.push(drop_concurrently(name, table));
        } else {
            p.drop_indexes
                .push(step(format!("DROP INDEX {name}"), Some(Hazard::Drop)));
        }
    }
    for (name, (table, def)) in &to.indexes {
        let on_remade_view = p.views_created.contains(table);
        let kept = super::detached(from, to, table) && from.cloned_indexes.contains(name);
        let differs = from.indexes.get(name).is_none_or(|(_, d)| d != def)
            || from.invalid_indexes.contains(name)
            || p.remake.indexes.contains(name);
        let online_partitioned = (differs && !kept && !on_remade_view)
            .then(|| leaf_partitions(from, to, p, table))
            .flatten()
            .and_then(|parts| partitioned_online(name, table, def, &parts));
        if let Some(steps) = online_partitioned {
            p.indexes.extend(steps);
        } else if on_remade_view || (differs && !kept) {
            // The server prints a partitioned table's index `ON ONLY` (its partitions'
            // indexes listed apart); created, it must cover the partitions too.
            let def = def.replacen(" ON ONLY ", " ON ", 1);
            let s = if online_on(p, table) && !on_remade_view {
                build_concurrently(name, table, &def)
            } else {
                step(def, from.tables.contains_key(table).then_some(Hazard::Lock))
            };
            if to.views.contains_key(table) {
                p.view_indexes.push(s)
            } else {
                p.indexes.push(s)
            }
        }
    }
    for (table, aside) in replaced {
        p.indexes.push(drop_concurrently(&aside, &table));
    }
}
