//! Grants: what is granted on the desired side and not on the current one is granted,
//! what is no longer granted is revoked. Objects re-made by the plan (views, functions
//! dropped and created again) lose their grants, so theirs are granted again. Column
//! privileges (`GRANT SELECT (email) ON t`) are keyed `COLUMN t.c`; a column dropped and
//! added again (a generated column whose expression changes) gets its privileges again.

use std::collections::BTreeSet;

use super::{Phases, step};
use crate::catalog::{Catalog, Privileges};

fn list(privs: &Privileges, grantable: bool) -> Vec<&str> {
    privs
        .iter()
        .filter(|(_, g)| *g == grantable)
        .map(|(p, _)| p.as_str())
        .collect()
}

/// `schema.table.column` → (`schema.table`, `column`), the column as `quote_ident` prints
/// it (a quoted name may hold dots and doubled quotes).
pub(super) fn split_last_ident(qualified: &str) -> Option<(&str, &str)> {
    let bytes = qualified.as_bytes();
    let start = if qualified.ends_with('"') && qualified.len() > 1 {
        let mut i = bytes.len() - 2;
        loop {
            if bytes[i] == b'"' {
                if i > 0 && bytes[i - 1] == b'"' {
                    i = i.checked_sub(2)?;
                    continue;
                }
                break i;
            }
            i = i.checked_sub(1)?;
        }
    } else {
        qualified.rfind('.')? + 1
    };
    let table = qualified[..start].strip_suffix('.')?;
    Some((table, &qualified[start..]))
}

/// The privileges and the object of a `GRANT`/`REVOKE` for a grant key: `SELECT, UPDATE`
/// on `TABLE t`, or `SELECT (c), UPDATE (c)` on `TABLE t` for a column's.
fn privileges_on<'a>(object: &'a str, names: &[&str]) -> (String, std::borrow::Cow<'a, str>) {
    if let Some((table, column)) = object.strip_prefix("COLUMN ").and_then(split_last_ident) {
        let privs: Vec<String> = names.iter().map(|n| format!("{n} ({column})")).collect();
        (privs.join(", "), format!("TABLE {table}").into())
    } else {
        (names.join(", "), object.into())
    }
}

/// Whether the object a grant key names exists in `cat`.
fn exists(object: &str, cat: &Catalog) -> bool {
    let (kind, name) = object.split_once(' ').unwrap_or((object, ""));
    match kind {
        "COLUMN" => split_last_ident(name).is_some_and(|(table, column)| {
            cat.tables
                .get(table)
                .is_some_and(|t| t.columns.iter().any(|c| c.name == column))
        }),
        "TABLE" => cat.tables.contains_key(name) || cat.views.contains_key(name),
        "SEQUENCE" => cat.sequences.contains_key(name),
        "SCHEMA" => cat.schemas.contains(name),
        "FUNCTION" | "PROCEDURE" => cat.functions.contains_key(name),
        _ => false,
    }
}

pub(super) fn diff(from: &Catalog, to: &Catalog, p: &mut Phases) {
    // Objects (as grant keys name them) the plan drops and creates again.
    let mut remade: BTreeSet<String> = p.remade.clone();
    for name in p
        .views_created
        .iter()
        .filter(|n| from.views.contains_key(*n))
    {
        remade.insert(format!("TABLE {name}"));
    }
    // A re-made table's columns come back without their privileges.
    let table_remade = |object: &str, remade: &BTreeSet<String>| {
        object
            .strip_prefix("COLUMN ")
            .and_then(split_last_ident)
            .is_some_and(|(table, _)| {
                p.dropped_tables.contains(table) || remade.contains(&format!("TABLE {table}"))
            })
    };
    let none = Privileges::new();
    for (key @ (object, grantee), privs) in &from.grants {
        if !exists(object, to) || remade.contains(object) || table_remade(object, &remade) {
            continue;
        }
        let want = to.grants.get(key).unwrap_or(&none);
        let gone: Privileges = privs.difference(want).cloned().collect();
        // A privilege that stays, without (or with) its grant option, is revoked and
        // granted again below.
        let names: Vec<&str> = gone.iter().map(|(n, _)| n.as_str()).collect();
        if !names.is_empty() {
            let (privs, on) = privileges_on(object, &names);
            p.grants
                .push(step(format!("REVOKE {privs} ON {on} FROM {grantee}"), None));
        }
    }
    for (key @ (object, grantee), privs) in &to.grants {
        let had =
            if remade.contains(object) || table_remade(object, &remade) || !exists(object, from) {
                &none
            } else {
                from.grants.get(key).unwrap_or(&none)
            };
        let new: Privileges = privs.difference(had).cloned().collect();
        for grantable in [false, true] {
            let names = list(&new, grantable);
            if !names.is_empty() {
                let option = if grantable { " WITH GRANT OPTION" } else { "" };
                let (privs, on) = privileges_on(object, &names);
                p.grants.push(step(
                    format!("GRANT {privs} ON {on} TO {grantee}{option}"),
                    None,
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::split_last_ident;

    #[test]
    fn a_qualified_column_splits_at_its_last_identifier() {
        assert_eq!(split_last_ident("public.t.c"), Some(("public.t", "c")));
        assert_eq!(
            split_last_ident(r#"public."a.b"."x.""y""#),
            Some((r#"public."a.b""#, r#""x.""y""#))
        );
        assert_eq!(split_last_ident("c"), None);
    }
}
