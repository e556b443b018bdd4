//! Constraints: foreign keys go after every table exists; changed ones are re-made. On an
//! existing table, foreign keys and CHECKs are added `NOT VALID` (a moment's lock, no scan)
//! and validated in a later step (a scan that lets writes go on); one left `NOT VALID` by
//! an interrupted migration is validated, never dropped and re-added.

use super::{Phases, step};
use crate::catalog::{Catalog, Constraint};
use crate::plan::Hazard;

/// What the server prints after the definition of a constraint not validated yet.
const NOT_VALID: &str = " NOT VALID";

/// Whether `current` is `wanted` added but not validated yet.
fn only_unvalidated(current: &Constraint, wanted: &Constraint) -> bool {
    current.kind == wanted.kind
        && current.definition.strip_suffix(NOT_VALID) == Some(wanted.definition.as_str())
}

pub(super) fn diff(from: &Catalog, to: &Catalog, p: &mut Phases) {
    for (key @ (table, cname), c) in &from.constraints {
        if p.dropped_tables.contains(table) {
            continue;
        }
        let wanted = to.constraints.get(key);
        if wanted == Some(c) || wanted.is_some_and(|w| only_unvalidated(c, w)) {
            continue;
        }
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

    for (key @ (table, cname), c) in &to.constraints {
        // A detached partition keeps what it had from its partitioned table.
        let kept = super::detached(from, to, table) && from.cloned_constraints.contains(key);
        let current = from.constraints.get(key);
        if current == Some(c) || kept {
            continue;
        }
        let validate = step(
            format!("ALTER TABLE {table} VALIDATE CONSTRAINT {cname}"),
            None,
        );
        if current.is_some_and(|cur| only_unvalidated(cur, c)) {
            p.validate.push(validate);
            continue;
        }
        let existed = from.tables.contains_key(table);
        // A constraint the model itself declares NOT VALID stays so.
        let online = p.online
            && existed
            && matches!(c.kind, 'f' | 'c')
            && !c.definition.ends_with(NOT_VALID);
        let s = if online {
            step(
                format!(
                    "ALTER TABLE {table} ADD CONSTRAINT {cname} {}{NOT_VALID}",
                    c.definition
                ),
                None,
            )
        } else {
            step(
                format!(
                    "ALTER TABLE {table} ADD CONSTRAINT {cname} {}",
                    c.definition
                ),
                existed.then_some(Hazard::Lock),
            )
        };
        if c.kind == 'f' {
            p.fks.push(s)
        } else {
            p.constraints.push(s)
        }
        if online {
            p.validate.push(validate);
        }
    }
}
