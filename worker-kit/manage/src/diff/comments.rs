//! Comments on tables, views, columns, functions, schemas, types and domains.

use super::{Phases, lit, step};
use crate::catalog::Catalog;

pub(super) fn diff(from: &Catalog, to: &Catalog, p: &mut Phases) {
    for (key, text) in &to.comments {
        if from.comments.get(key) != Some(text) || remade(key, p) {
            p.comments
                .push(step(format!("COMMENT ON {key} IS {}", lit(text)), None));
        }
    }
    for key in from.comments.keys() {
        if !to.comments.contains_key(key) && object_survives(key, to) {
            p.comments
                .push(step(format!("COMMENT ON {key} IS NULL"), None));
        }
    }
}

/// Whether the object a comment key names is dropped and made again by the plan: its
/// comment goes with it.
fn remade(key: &str, p: &Phases) -> bool {
    let (kind, name) = key.split_once(' ').unwrap_or((key, ""));
    match kind {
        "FUNCTION" | "PROCEDURE" => p.remade.contains(key),
        // A re-made view's own comment comes back with it (see `views`).
        "VIEW" | "MATERIALIZED" => false,
        "COLUMN" => {
            p.recomment.contains(key)
                || name
                    .rsplit_once('.')
                    .is_some_and(|(view, _)| p.views_created.contains(view))
        }
        _ => p.recomment.contains(key),
    }
}

/// Whether the object a comment key names still exists in `to` (no `IS NULL` for objects
/// that are dropped anyway).
fn object_survives(key: &str, to: &Catalog) -> bool {
    let (kind, name) = key.split_once(' ').unwrap_or((key, ""));
    match kind {
        "TABLE" => to.tables.contains_key(name),
        "VIEW" | "MATERIALIZED" => to.views.contains_key(name.trim_start_matches("VIEW ")),
        "COLUMN" => name.rsplit_once('.').is_some_and(|(t, c)| {
            to.tables
                .get(t)
                .is_some_and(|t| t.columns.iter().any(|x| x.name == c))
        }),
        "FUNCTION" | "PROCEDURE" => to.functions.contains_key(name),
        "SCHEMA" => to.schemas.contains(name),
        "TYPE" => to.enums.contains_key(name) || to.composites.contains_key(name),
        "DOMAIN" => to.domains.contains_key(name),
        _ => false,
    }
}
