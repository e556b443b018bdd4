//! Grants: what is granted on the desired side and not on the current one is granted,
//! what is no longer granted is revoked. Objects re-made by the plan (views, functions
//! dropped and created again) lose their grants, so theirs are granted again.

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

/// Whether the object a grant key names exists in `cat`.
fn exists(object: &str, cat: &Catalog) -> bool {
    let (kind, name) = object.split_once(' ').unwrap_or((object, ""));
    match kind {
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
    let none = Privileges::new();
    for (key @ (object, grantee), privs) in &from.grants {
        if !exists(object, to) || remade.contains(object) {
            continue;
        }
        let want = to.grants.get(key).unwrap_or(&none);
        let gone: Privileges = privs.difference(want).cloned().collect();
        // A privilege that stays, without (or with) its grant option, is revoked and
        // granted again below.
        let names: Vec<&str> = gone.iter().map(|(n, _)| n.as_str()).collect();
        if !names.is_empty() {
            p.grants.push(step(
                format!("REVOKE {} ON {object} FROM {grantee}", names.join(", ")),
                None,
            ));
        }
    }
    for (key @ (object, grantee), privs) in &to.grants {
        let had = if remade.contains(object) || !exists(object, from) {
            &none
        } else {
            from.grants.get(key).unwrap_or(&none)
        };
        let new: Privileges = privs.difference(had).cloned().collect();
        for grantable in [false, true] {
            let names = list(&new, grantable);
            if !names.is_empty() {
                let option = if grantable { " WITH GRANT OPTION" } else { "" };
                p.grants.push(step(
                    format!(
                        "GRANT {} ON {object} TO {grantee}{option}",
                        names.join(", ")
                    ),
                    None,
                ));
            }
        }
    }
}
