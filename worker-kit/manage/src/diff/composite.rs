//! Composite types: created, dropped, and altered attribute by attribute.

use super::{Phases, TypeChange, step};
use crate::catalog::{Attribute, Catalog};
use crate::plan::Hazard;

fn attribute_def(a: &Attribute) -> String {
    match &a.collation {
        Some(c) => format!("{} {} COLLATE {c}", a.name, a.data_type),
        None => format!("{} {}", a.name, a.data_type),
    }
}

pub(super) fn diff(from: &Catalog, to: &Catalog, p: &mut Phases) {
    for (name, attrs) in &to.composites {
        let key = format!("type {name}");
        let Some(old) = from.composites.get(name) else {
            let list: Vec<String> = attrs.iter().map(attribute_def).collect();
            p.object(
                key,
                step(format!("CREATE TYPE {name} AS ({})", list.join(", ")), None),
            );
            continue;
        };
        let find = |list: &[Attribute], n: &str| list.iter().find(|a| a.name == n).cloned();
        for a in old {
            if find(attrs, &a.name).is_none() {
                p.object(
                    key.clone(),
                    step(
                        format!("ALTER TYPE {name} DROP ATTRIBUTE {}", a.name),
                        Some(Hazard::DataLoss),
                    ),
                );
            }
        }
        for a in attrs {
            match find(old, &a.name) {
                None => p.object(
                    key.clone(),
                    step(
                        format!("ALTER TYPE {name} ADD ATTRIBUTE {}", attribute_def(a)),
                        None,
                    ),
                ),
                Some(o) if o != *a => {
                    let hazard = match TypeChange::of(&o.data_type, &a.data_type) {
                        TypeChange::Metadata | TypeChange::Widening => Hazard::Rewrite,
                        _ => Hazard::DataLoss,
                    };
                    let coll = a
                        .collation
                        .as_ref()
                        .map(|c| format!(" COLLATE {c}"))
                        .unwrap_or_default();
                    p.object(
                        key.clone(),
                        step(
                            format!(
                                "ALTER TYPE {name} ALTER ATTRIBUTE {} TYPE {}{coll}",
                                a.name, a.data_type
                            ),
                            Some(hazard),
                        ),
                    );
                }
                Some(_) => {}
            }
        }
    }
    for name in from.composites.keys() {
        if !to.composites.contains_key(name) {
            p.drop_last(
                Some(format!("type {name}")),
                step(format!("DROP TYPE {name}"), Some(Hazard::Drop)),
            );
        }
    }
}
