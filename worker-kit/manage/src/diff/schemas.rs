//! Schemas and extensions: created first, dropped last.

use super::{Phases, step};
use crate::catalog::Catalog;
use crate::plan::Hazard;

pub(super) fn diff(from: &Catalog, to: &Catalog, p: &mut Phases) {
    for s in to.schemas.difference(&from.schemas) {
        p.schemas.push(step(format!("CREATE SCHEMA {s}"), None));
    }
    for (name, schema) in &to.extensions {
        if from.extensions.get(name) != Some(schema) {
            if from.extensions.contains_key(name) {
                p.extensions.push(step(
                    format!("ALTER EXTENSION {name} SET SCHEMA {schema}"),
                    None,
                ));
            } else {
                p.extensions.push(step(
                    format!("CREATE EXTENSION IF NOT EXISTS {name} WITH SCHEMA {schema}"),
                    None,
                ));
            }
        }
    }

    for name in from
        .extensions
        .keys()
        .filter(|n| !to.extensions.contains_key(*n))
    {
        p.drop_last(
            None,
            step(format!("DROP EXTENSION {name}"), Some(Hazard::Drop)),
        );
    }
    for s in from.schemas.difference(&to.schemas) {
        p.drop_last(
            None,
            step(format!("DROP SCHEMA {s}"), Some(Hazard::DataLoss)),
        );
    }
}
