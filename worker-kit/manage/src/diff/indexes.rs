//! Indexes (those of re-made materialized views come back after the views).

use super::{Phases, step};
use crate::catalog::Catalog;
use crate::plan::Hazard;

pub(super) fn diff(from: &Catalog, to: &Catalog, p: &mut Phases) {
    for (name, (table, def)) in &from.indexes {
        let gone_with_table = p.dropped_tables.contains(table) || p.views_remade.contains(table);
        if !gone_with_table && to.indexes.get(name).map(|(_, d)| d) != Some(def) {
            p.drop_indexes
                .push(step(format!("DROP INDEX {name}"), Some(Hazard::Drop)));
        }
    }
    for (name, (table, def)) in &to.indexes {
        let on_remade_view = p.views_created.contains(table);
        let kept = super::detached(from, to, table) && from.cloned_indexes.contains(name);
        if on_remade_view || (from.indexes.get(name).map(|(_, d)| d) != Some(def) && !kept) {
            // The server prints a partitioned table's index `ON ONLY` (its partitions'
            // indexes listed apart); created, it must cover the partitions too.
            let s = step(
                def.replacen(" ON ONLY ", " ON ", 1),
                from.tables.contains_key(table).then_some(Hazard::Lock),
            );
            if to.views.contains_key(table) {
                p.view_indexes.push(s)
            } else {
                p.indexes.push(s)
            }
        }
    }
}
