//! Extended statistics objects (`CREATE STATISTICS`): created, dropped, and made again when
//! their definition changes or their table's columns change shape (`ANALYZE` fills them
//! again). `CREATE STATISTICS` takes SHARE UPDATE EXCLUSIVE, which lets writes go on.

use super::{Phases, step};
use crate::catalog::Catalog;
use crate::plan::{Hazard, Step};

pub(super) fn diff(from: &Catalog, to: &Catalog, p: &mut Phases) {
    let remade = |name: &String, table: &String, def: &String| {
        to.statistics.get(name).map(|(_, d, _)| d) != Some(def) || p.reshaped.contains(table)
    };
    let mut drops = Vec::new();
    for (name, (table, def, _)) in &from.statistics {
        if p.dropped_tables.contains(table) || !remade(name, table, def) {
            continue;
        }
        let gone = !to.statistics.contains_key(name);
        drops.push(Step {
            locks: Some(table.clone()),
            ..step(
                format!("DROP STATISTICS IF EXISTS {name}"),
                gone.then_some(Hazard::Drop),
            )
        });
    }
    p.drop_indexes.extend(drops);
    for (name, (table, def, target)) in &to.statistics {
        let existing = from.tables.contains_key(table).then(|| table.clone());
        let had = from.statistics.get(name);
        let create = had.is_none_or(|(t, d, _)| remade(name, t, d));
        if create {
            p.indexes.push(Step {
                locks: existing.clone(),
                ..step(def.clone(), None)
            });
        }
        let had_target = if create { -1 } else { had.map_or(-1, |h| h.2) };
        if *target != had_target {
            p.indexes.push(Step {
                locks: existing,
                ..step(
                    format!("ALTER STATISTICS {name} SET STATISTICS {target}"),
                    None,
                )
            });
        }
    }
}
