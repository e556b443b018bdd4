//! Enums: created, values appended (before the transaction, as PostgreSQL requires), and
//! with values removed or reordered, re-created: the old type renamed, the new one made,
//! columns and their defaults moved over with a cast through text, the old type dropped.
//! That plan is data loss (rows holding a removed value make it fail), so `sync` runs it
//! only with `--unsafe`.

use super::{Phases, lit, step};
use crate::catalog::Catalog;
use crate::plan::{Hazard, Step};
use crate::target::digest;

/// Whether `new` keeps `old`'s labels in order (so only ADD VALUE is needed).
pub(super) fn is_subsequence(old: &[String], new: &[String]) -> bool {
    let mut it = new.iter();
    old.iter().all(|o| it.any(|n| n == o))
}

fn create(name: &str, labels: &[String]) -> String {
    format!(
        "CREATE TYPE {name} AS ENUM ({})",
        labels.iter().map(|l| lit(l)).collect::<Vec<_>>().join(", ")
    )
}

pub(super) fn diff(from: &Catalog, to: &Catalog, p: &mut Phases) {
    for (name, labels) in &to.enums {
        match from.enums.get(name) {
            None => p.object(format!("type {name}"), step(create(name, labels), None)),
            Some(old) if old == labels => {}
            Some(old) if is_subsequence(old, labels) => append(name, old, labels, p),
            Some(old) => recreate(from, to, name, old, labels, p),
        }
    }
    for name in from.enums.keys().filter(|n| !to.enums.contains_key(*n)) {
        p.drop_last(
            Some(format!("type {name}")),
            step(format!("DROP TYPE {name}"), Some(Hazard::Drop)),
        );
    }
}

fn append(name: &str, old: &[String], labels: &[String], p: &mut Phases) {
    for (i, l) in labels.iter().enumerate() {
        if old.contains(l) {
            continue;
        }
        let place = if i == 0 {
            format!("BEFORE {}", lit(&labels[1]))
        } else {
            format!("AFTER {}", lit(&labels[i - 1]))
        };
        p.outside.push(Step {
            sql: format!("ALTER TYPE {name} ADD VALUE {} {place}", lit(l)),
            outside_transaction: true,
            ..Step::default()
        });
    }
}

/// `schema.name` (each part quoted as needed) split at the dot between them.
fn schema_of(qualified: &str) -> &str {
    let mut quoted = false;
    for (i, ch) in qualified.char_indices() {
        match ch {
            '"' => quoted = !quoted,
            '.' if !quoted => return &qualified[..i],
            _ => {}
        }
    }
    ""
}

fn recreate(
    from: &Catalog,
    to: &Catalog,
    name: &str,
    old: &[String],
    labels: &[String],
    p: &mut Phases,
) {
    let key = format!("type {name}");
    // Only table columns (and the views over them) can be moved over here.
    let blockers: Vec<&String> = from
        .depends
        .iter()
        .filter(|(user, needs)| {
            needs.contains(&key)
                && !user.starts_with("table ")
                && !user.starts_with("view ")
                && !user.starts_with("default ")
        })
        .map(|(user, _)| user)
        .collect();
    if !blockers.is_empty() {
        p.unsupported.push(format!(
            "enum {name} loses or reorders values ({} to {}) and is used by {}: re-create it by hand",
            old.join(", "),
            labels.join(", "),
            blockers.iter().map(|b| b.as_str()).collect::<Vec<_>>().join(", ")
        ));
        return;
    }
    let renamed = format!("manage_old_{}", &digest(name.as_bytes())[..12]);
    let old_name = format!("{}.{renamed}", schema_of(name));
    p.drop_defaults.push(step(
        format!("ALTER TYPE {name} RENAME TO {renamed}"),
        Some(Hazard::DataLoss),
    ));
    p.object(key, step(create(name, labels), None));
    p.recomment.insert(format!("TYPE {name}"));
    for (table, t) in &from.tables {
        for c in &t.columns {
            let array = format!("{name}[]");
            let cast = if c.data_type == *name {
                format!("{}::text::{name}", c.name)
            } else if c.data_type == array {
                format!("{}::text[]::{array}", c.name)
            } else {
                continue;
            };
            p.reshaped.insert(table.clone());
            p.remake.under_type_change(from, table, &c.name);
            p.remake
                .under_type_change(from, table, super::remake::bare_name(name));
            if c.default.is_some() {
                p.drop_defaults.push(step(
                    format!("ALTER TABLE {table} ALTER COLUMN {} DROP DEFAULT", c.name),
                    None,
                ));
            }
            p.columns.push(step(
                format!(
                    "ALTER TABLE {table} ALTER COLUMN {} TYPE {} USING {cast}",
                    c.name, c.data_type
                ),
                Some(Hazard::DataLoss),
            ));
            let new_default = to
                .tables
                .get(table)
                .and_then(|t| t.columns.iter().find(|x| x.name == c.name))
                .and_then(|x| x.default.clone());
            if let Some(d) = new_default {
                p.columns.push(step(
                    format!(
                        "ALTER TABLE {table} ALTER COLUMN {} SET DEFAULT {d}",
                        c.name
                    ),
                    None,
                ));
            }
        }
    }
    for (view, needs) in &from.depends {
        if let Some(v) = view.strip_prefix("view ")
            && needs.contains(&format!("type {name}"))
        {
            p.remake_views.insert(v.to_owned());
        }
    }
    p.drop_last(
        None,
        step(format!("DROP TYPE {old_name}"), Some(Hazard::DataLoss)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_appends_are_detected() {
        let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        assert!(is_subsequence(&s(&["a", "b"]), &s(&["a", "b", "c"])));
        assert!(is_subsequence(&s(&["a", "c"]), &s(&["a", "b", "c"])));
        assert!(!is_subsequence(&s(&["a", "b"]), &s(&["b", "a"])));
        assert!(!is_subsequence(&s(&["a", "b"]), &s(&["a"])));
    }

    #[test]
    fn schema_of_a_quoted_name() {
        assert_eq!(schema_of("public.mood"), "public");
        assert_eq!(schema_of("\"a.b\".mood"), "\"a.b\"");
    }
}
