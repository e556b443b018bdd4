//! Tables and their columns: created, altered column by column, dropped; row-level security.

use super::{Phases, alter_columns, inherit, rls, step};
use crate::catalog::{Catalog, Table};
use crate::plan::Hazard;

pub(super) fn diff(from: &Catalog, to: &Catalog, p: &mut Phases) {
    for (name, t) in &to.tables {
        match from.tables.get(name) {
            None => {
                p.object(
                    format!("table {name}"),
                    step(inherit::create(name, t), None),
                );
                rls(p, name, &Table::default(), t);
            }
            Some(old) => {
                if let Some(u) = inherit::relink(name, old, t, p) {
                    p.unsupported.push(u);
                }
                inherit::keep_columns_made_local(name, old, t, p);
                if !inherit::columns_follow_parent(old, t) {
                    alter_columns(p, from, name, old, t);
                }
                rls(p, name, old, t);
            }
        }
    }
    // Defaults taken off for a re-made function, unless the column's own change already
    // sets them again.
    for (table, column) in &p.redefault {
        let col = |c: &Catalog| {
            c.tables
                .get(table)
                .and_then(|t| t.columns.iter().find(|x| &x.name == column))
                .cloned()
        };
        if let (Some(old), Some(new)) = (col(from), col(to))
            && let Some(d) = &new.default
            && old.default == new.default
            && old.data_type == new.data_type
        {
            p.columns.push(step(
                format!("ALTER TABLE {table} ALTER COLUMN {column} SET DEFAULT {d}"),
                None,
            ));
        }
    }
    for t in p.dropped_tables.clone() {
        let s = step(format!("DROP TABLE {t}"), Some(Hazard::DataLoss));
        if to.views.contains_key(&t) {
            // Its name goes to a view: it goes before views are made, and the views that
            // read it are made again (reading the new view).
            for user in super::dependents(&from.depends, &format!("table {t}")) {
                if let Some(view) = user.strip_prefix("view ") {
                    p.remake_views.insert(view.to_owned());
                }
            }
            p.detach.push(s);
        } else {
            p.drop_last(Some(format!("table {t}")), s);
        }
        p.reshaped.insert(t);
    }
}
