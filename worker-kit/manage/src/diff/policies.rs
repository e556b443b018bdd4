//! Row-level security policies: re-made when they change; one removed for good weakens
//! access control.

use super::{Phases, step};
use crate::catalog::Catalog;
use crate::plan::Hazard;

pub(super) fn diff(from: &Catalog, to: &Catalog, p: &mut Phases) {
    for (key @ (table, name), def) in &from.policies {
        let remade = p.remake.policies.contains(key);
        if !p.dropped_tables.contains(table) && (to.policies.get(key) != Some(def) || remade) {
            // Re-made in the same transaction when it changes; gone for good, it takes away
            // the access rule it enforced.
            let hazard = if to.policies.contains_key(key) {
                Hazard::Drop
            } else {
                Hazard::Security
            };
            p.drop_triggers
                .push(step(format!("DROP POLICY {name} ON {table}"), Some(hazard)));
        }
    }
    for (key, def) in &to.policies {
        if from.policies.get(key) != Some(def) || p.remake.policies.contains(key) {
            p.policies.push(step(def.clone(), None));
        }
    }
}
