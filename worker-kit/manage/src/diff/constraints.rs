//! Constraints: foreign keys go after every table exists; changed ones are re-made. On an
//! existing table, foreign keys and CHECKs are added `NOT VALID` (a moment's lock, no scan)
//! and validated in a later step (a scan that lets writes go on); one left `NOT VALID` by
//! an interrupted migration is validated, never dropped and re-added.

use super::{Phases, step};
use crate::catalog::{Catalog, Constraint};
use crate::plan::{Hazard, Step};

/// What the server prints after the definition of a constraint not validated yet.
const NOT_VALID: &str = " NOT VALID";

/// Whether `current` is `wanted` added but not validated yet.
fn only_unvalidated(current: &Constraint, wanted: &Constraint) -> bool {
    current.kind == wanted.kind
        && current.definition.strip_suffix(NOT_VALID) == Some(wanted.definition.as_str())
}

/// `(a, b)`: one parenthesized list of plain column names.
fn column_list(s: &str) -> bool {
    s.starts_with('(') && s.ends_with(')') && s.matches('(').count() == 1
}

/// A PRIMARY KEY or UNIQUE constraint's definition as the unique index that can carry it:
/// `[NULLS NOT DISTINCT ](a, b)[ INCLUDE (c)]` → `(a, b)[ INCLUDE (c)][ NULLS NOT
/// DISTINCT]`, which `ADD CONSTRAINT ... USING INDEX` turns back into the same constraint.
/// `None` for what an index cannot say the same way (expressions, `WITH (...)`,
/// `DEFERRABLE`, a tablespace).
fn index_columns(rest: &str) -> Option<String> {
    let (nulls, rest) = match rest.strip_prefix("NULLS NOT DISTINCT ") {
        Some(r) => (" NULLS NOT DISTINCT", r),
        None => ("", rest),
    };
    let (keys, include) = match rest.split_once(" INCLUDE ") {
        Some((k, i)) => (k, Some(i)),
        None => (rest, None),
    };
    if !column_list(keys) || include.is_some_and(|i| !column_list(i)) {
        return None;
    }
    let include = include.map(|i| format!(" INCLUDE {i}")).unwrap_or_default();
    Some(format!("{keys}{include}{nulls}"))
}

/// A PRIMARY KEY or UNIQUE constraint added to an existing plain table without blocking
/// its writes: its unique index built `CONCURRENTLY`, then the constraint added `USING
/// INDEX` (a moment's lock). Column lists, with `INCLUDE` and `NULLS NOT DISTINCT`;
/// others are added as they are.
fn unique_through_index(
    from: &Catalog,
    table: &str,
    cname: &str,
    c: &Constraint,
) -> Option<Vec<Step>> {
    let (keyword, rest) = match c.kind {
        'p' => ("PRIMARY KEY", c.definition.strip_prefix("PRIMARY KEY ")?),
        'u' => ("UNIQUE", c.definition.strip_prefix("UNIQUE ")?),
        _ => return None,
    };
    let columns = index_columns(rest)?;
    let partitioned = from
        .tables
        .get(table)
        .is_none_or(|t| t.partition_by.is_some());
    if partitioned {
        return None;
    }
    let index = format!("{}{cname}", super::indexes::schema_prefix(table));
    Some(vec![
        Step {
            outside_transaction: true,
            locks: Some(table.to_owned()),
            undo_failed: Some(format!("DROP INDEX CONCURRENTLY IF EXISTS {index}")),
            ..step(
                format!(
                    "CREATE UNIQUE INDEX CONCURRENTLY {cname} ON {table} USING btree {columns}"
                ),
                None,
            )
        },
        step(
            format!("ALTER TABLE {table} ADD CONSTRAINT {cname} {keyword} USING INDEX {cname}"),
            None,
        ),
    ])
}

pub(super) fn diff(from: &Catalog, to: &Catalog, p: &mut Phases) {
    let kept = |p: &Phases, key: &(String, String), c: &Constraint| {
        let wanted = to.constraints.get(key);
        !p.remake.constraints.contains(key)
            && (wanted == Some(c) || wanted.is_some_and(|w| only_unvalidated(c, w)))
    };
    // A PRIMARY KEY or UNIQUE constraint does not go while a foreign key stands on its
    // index: those foreign keys go first and come back after it.
    for (key @ (table, _), c) in &from.constraints {
        if matches!(c.kind, 'p' | 'u') && !p.dropped_tables.contains(table) && !kept(p, key, c) {
            p.remake.referencing(from, table);
        }
    }
    for (key @ (table, cname), c) in &from.constraints {
        if p.dropped_tables.contains(table) || kept(p, key, c) {
            continue;
        }
        let s = step(
            format!("ALTER TABLE {table} DROP CONSTRAINT {cname}"),
            Some(Hazard::Drop),
        );
        if c.kind == 'f' {
            p.drop_fks.push(s)
        } else {
            p.drop_constraints.push(s)
        }
    }

    for (key @ (table, cname), c) in &to.constraints {
        // A detached partition keeps what it had from its partitioned table.
        let kept = super::detached(from, to, table) && from.cloned_constraints.contains(key);
        let remade = p.remake.constraints.contains(key);
        let current = from.constraints.get(key).filter(|_| !remade);
        if current == Some(c) || kept {
            continue;
        }
        let validate = step(
            format!("ALTER TABLE {table} VALIDATE CONSTRAINT {cname}"),
            None,
        );
        if current.is_some_and(|cur| only_unvalidated(cur, c)) {
            p.validate.push(validate);
            continue;
        }
        let existed = from.tables.contains_key(table);
        if p.online
            && existed
            && !p.reshaped.contains(table)
            && let Some(steps) = unique_through_index(from, table, cname, c)
        {
            p.constraints.extend(steps);
            continue;
        }
        // A constraint the model itself declares NOT VALID stays so.
        let online = p.online
            && existed
            && matches!(c.kind, 'f' | 'c')
            && !c.definition.ends_with(NOT_VALID);
        let s = if online {
            step(
                format!(
                    "ALTER TABLE {table} ADD CONSTRAINT {cname} {}{NOT_VALID}",
                    c.definition
                ),
                None,
            )
        } else {
            step(
                format!(
                    "ALTER TABLE {table} ADD CONSTRAINT {cname} {}",
                    c.definition
                ),
                existed.then_some(Hazard::Lock),
            )
        };
        if c.kind == 'f' {
            p.fks.push(s)
        } else {
            p.constraints.push(s)
        }
        if online {
            p.validate.push(validate);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::index_columns;

    #[test]
    fn a_unique_constraint_reads_as_its_index() {
        assert_eq!(index_columns("(a, b)").as_deref(), Some("(a, b)"));
        assert_eq!(
            index_columns("(a) INCLUDE (b, c)").as_deref(),
            Some("(a) INCLUDE (b, c)")
        );
        assert_eq!(
            index_columns("NULLS NOT DISTINCT (a) INCLUDE (b)").as_deref(),
            Some("(a) INCLUDE (b) NULLS NOT DISTINCT")
        );
        assert_eq!(index_columns("(a) DEFERRABLE"), None);
        assert_eq!(index_columns("(a) WITH (fillfactor='70')"), None);
    }
}
