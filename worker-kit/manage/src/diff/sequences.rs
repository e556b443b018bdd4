//! Sequences (those not made by identity columns): options and `OWNED BY`.

use super::{Phases, sequence_options, step};
use crate::catalog::{Catalog, Sequence};
use crate::plan::Hazard;

pub(super) fn diff(from: &Catalog, to: &Catalog, p: &mut Phases) {
    for (name, s) in &to.sequences {
        match from.sequences.get(name) {
            None => p.object(
                format!("sequence {name}"),
                step(
                    format!("CREATE SEQUENCE {name} {}", sequence_options(s)),
                    None,
                ),
            ),
            Some(old) => {
                let old_opts = Sequence {
                    owned_by: None,
                    ..old.clone()
                };
                let new_opts = Sequence {
                    owned_by: None,
                    ..s.clone()
                };
                if old_opts != new_opts {
                    p.object(
                        format!("sequence {name}"),
                        step(
                            format!("ALTER SEQUENCE {name} {}", sequence_options(s)),
                            None,
                        ),
                    );
                }
            }
        }
        let before = from.sequences.get(name).map(|o| o.owned_by.as_ref());
        if let Some(owner) = &s.owned_by
            && before != Some(Some(owner))
        {
            p.owned_by.push(step(
                format!("ALTER SEQUENCE {name} OWNED BY {owner}"),
                None,
            ));
        } else if s.owned_by.is_none() && before.is_some_and(|o| o.is_some()) {
            p.owned_by
                .push(step(format!("ALTER SEQUENCE {name} OWNED BY NONE"), None));
        }
    }

    for (name, s) in &from.sequences {
        if !to.sequences.contains_key(name) {
            let owned_by_dropped_table = s.owned_by.as_ref().is_some_and(|o| {
                p.dropped_tables
                    .iter()
                    .any(|t| o.starts_with(&format!("{t}.")))
            });
            // A serial column's sequence goes with the column.
            let owned_by_dropped_column = s.owned_by.as_ref().is_some_and(|o| {
                super::split_column(o, from).is_some_and(|(table, column)| {
                    to.tables
                        .get(&table)
                        .is_some_and(|t| t.columns.iter().all(|c| c.name != column))
                })
            });
            if !owned_by_dropped_table && !owned_by_dropped_column {
                p.drop_last(
                    Some(format!("sequence {name}")),
                    step(format!("DROP SEQUENCE {name}"), Some(Hazard::DataLoss)),
                );
            }
        }
    }
}
