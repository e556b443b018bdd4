//! Constraints: foreign keys go after every table exists; changed ones are re-made.

use super::{Phases, step};
use crate::catalog::Catalog;
use crate::plan::Hazard;

pub(super) fn diff(from: &Catalog, to: &Catalog, p: &mut Phases) {
    for (key @ (table, cname), c) in &from.constraints {
        if p.dropped_tables.contains(table) {
            continue;
        }
        if to.constraints.get(key) != Some(c) {
            let s = step(
                format!("ALTER TABLE {table} DROP CONSTRAINT {cname}"),
                Some(Hazard::Drop),
            );
            if c.kind == 'f' {
                p.drop_fks.push(s)
            } else {
                p.drop_constraints.push(s)
            }
        }
    }

    for (key @ (table, cname), c) in &to.constraints {
        // A detached partition keeps what it had from its partitioned table.
        let kept = super::detached(from, to, table) && from.cloned_constraints.contains(key);
        if from.constraints.get(key) != Some(c) && !kept {
            let existed = from.tables.contains_key(table);
            let s = step(
                format!(
                    "ALTER TABLE {table} ADD CONSTRAINT {cname} {}",
                    c.definition
                ),
                existed.then_some(Hazard::Lock),
            );
            if c.kind == 'f' {
                p.fks.push(s)
            } else {
                p.constraints.push(s)
            }
        }
    }
}
