//! Functions and procedures. One whose result type or kind changes is dropped and re-made:
//! what uses it goes first (column defaults come back after it, views are re-made).

use super::remake::bare_name;
use super::{Phases, dependents, split_column, step};
use crate::catalog::Catalog;
use crate::plan::Hazard;

pub(super) fn diff(from: &Catalog, to: &Catalog, p: &mut Phases) {
    for (sig, f) in &to.functions {
        let key = format!("function {sig}");
        match from.functions.get(sig) {
            None => {
                p.object(key, step(f.definition.clone(), None));
                p.lax_bodies = true;
            }
            Some(old) if old.definition == f.definition => {}
            Some(old) => {
                if old.result != f.result || old.kind != f.kind {
                    for user in dependents(&from.depends, &key) {
                        if let Some(table) = user.strip_prefix("table ") {
                            // Its CHECKs, indexes, policies and triggers that call it.
                            p.remake.calling(from, table, bare_name(sig));
                        } else if let Some(view) = user.strip_prefix("view ") {
                            p.remake_views.insert(view.to_owned());
                        } else if let Some(col) = user.strip_prefix("default ")
                            && let Some((table, column)) = split_column(col, from)
                        {
                            p.drop_defaults.push(step(
                                format!("ALTER TABLE {table} ALTER COLUMN {column} DROP DEFAULT"),
                                None,
                            ));
                            p.redefault.insert((table, column));
                        }
                    }
                    p.drop_functions
                        .push(step(format!("DROP {} {sig}", old.kind), Some(Hazard::Drop)));
                    p.remade.insert(format!("{} {sig}", f.kind));
                }
                p.object(key, step(f.definition.clone(), None));
                p.lax_bodies = true;
            }
        }
    }
    for (sig, f) in &from.functions {
        if !to.functions.contains_key(sig) {
            p.drop_last(
                Some(format!("function {sig}")),
                step(format!("DROP {} {sig}", f.kind), Some(Hazard::Drop)),
            );
        }
    }
}
