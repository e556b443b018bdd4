//! Triggers (on tables and views): re-made when they change, and with a re-made view.

use super::{Phases, step};
use crate::catalog::Catalog;
use crate::plan::Hazard;

pub(super) fn diff(from: &Catalog, to: &Catalog, p: &mut Phases) {
    for (key @ (table, name), def) in &from.triggers {
        let remade = p.remake.triggers.contains(key);
        if !p.dropped_tables.contains(table) && (to.triggers.get(key) != Some(def) || remade) {
            p.drop_triggers.push(step(
                format!("DROP TRIGGER {name} ON {table}"),
                Some(Hazard::Drop),
            ));
        }
    }
    // A re-made view comes back without its (INSTEAD OF) triggers.
    for (key @ (table, _), def) in &to.triggers {
        let view_remade = p.views_created.contains(table) && from.views.contains_key(table);
        if from.triggers.get(key) != Some(def) || view_remade || p.remake.triggers.contains(key) {
            p.triggers.push(step(def.clone(), None));
        }
    }
}
