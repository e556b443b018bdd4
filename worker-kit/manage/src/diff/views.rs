//! Views and materialized views: re-made when they change, or when anything they read is
//! re-made or reshaped; dropped dependents first and created dependencies first.

use std::collections::BTreeSet;

use super::{Phases, lit, step, topo, view_keyword};
use crate::catalog::Catalog;
use crate::plan::Hazard;

pub(super) fn diff(from: &Catalog, to: &Catalog, p: &mut Phases) {
    let mut remake: BTreeSet<String> = from
        .views
        .iter()
        .filter(|(n, v)| to.views.get(*n) != Some(*v) || p.remake_views.contains(*n))
        .map(|(n, _)| n.clone())
        .collect();
    loop {
        let before = remake.len();
        for (name, v) in &from.views {
            if v.depends_on
                .iter()
                .any(|d| remake.contains(d) || p.reshaped.contains(d))
            {
                remake.insert(name.clone());
            }
        }
        if remake.len() == before {
            break;
        }
    }
    for name in topo(&from.views, &remake).into_iter().rev() {
        let v = &from.views[&name];
        p.drop_views.push(step(
            format!("DROP {} {name}", view_keyword(v)),
            Some(Hazard::Drop),
        ));
    }
    let create: BTreeSet<String> = to
        .views
        .keys()
        .filter(|n| remake.contains(*n) || !from.views.contains_key(*n))
        .cloned()
        .collect();
    for name in topo(&to.views, &create) {
        let v = &to.views[&name];
        let with = if v.options.is_empty() {
            String::new()
        } else {
            format!(" WITH ({})", v.options.join(", "))
        };
        p.views.push(step(
            format!(
                "CREATE {} {name}{with} AS\n{}",
                view_keyword(v),
                v.definition
            ),
            None,
        ));
        // Re-made views lose their comments.
        let key = format!("{} {name}", view_keyword(v));
        if let (Some(c), true) = (to.comments.get(&key), from.views.contains_key(&name)) {
            p.comments
                .push(step(format!("COMMENT ON {key} IS {}", lit(c)), None));
        }
    }

    p.views_created = create;
    p.views_remade = remake;
}
