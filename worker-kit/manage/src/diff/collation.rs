//! Collations: created before what uses them, dropped after; a changed one is re-made.

use super::{Phases, step};
use crate::catalog::Catalog;
use crate::plan::Hazard;

pub(super) fn diff(from: &Catalog, to: &Catalog, p: &mut Phases) {
    for (name, options) in &to.collations {
        if from.collations.get(name) == Some(options) {
            continue;
        }
        if from.collations.contains_key(name) {
            p.drop_functions
                .push(step(format!("DROP COLLATION {name}"), Some(Hazard::Drop)));
        }
        p.object(
            format!("collation {name}"),
            step(format!("CREATE COLLATION {name} {options}"), None),
        );
    }
    for name in from.collations.keys() {
        if !to.collations.contains_key(name) {
            p.drop_last(
                Some(format!("collation {name}")),
                step(format!("DROP COLLATION {name}"), Some(Hazard::Drop)),
            );
        }
    }
}
