//! Turning two catalogs into an ordered plan.
//!
//! Statements are grouped in phases that respect PostgreSQL's dependencies: what depends on
//! something that changes is dropped first (triggers, policies, views — dependents before
//! what they read, using `pg_depend` — foreign keys, constraints, indexes), then schemas,
//! extensions and types are created, then functions, tables and columns, constraints,
//! indexes, foreign keys (after every table, so tables may reference each other), views
//! (in dependency order), triggers, policies and comments; data-losing drops come last.

mod collation;
mod composite;
mod enums;
mod grants;
mod inherit;

use std::collections::{BTreeMap, BTreeSet};

use crate::catalog::{Catalog, Column, Domain, Sequence, Table, View};
use crate::plan::{Hazard, Plan, Step};

fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[derive(Default)]
struct Phases {
    outside: Vec<Step>,
    drop_triggers: Vec<Step>,
    drop_views: Vec<Step>,
    drop_fks: Vec<Step>,
    drop_constraints: Vec<Step>,
    drop_indexes: Vec<Step>,
    drop_defaults: Vec<Step>,
    /// Partitions detached and parents removed, before columns change.
    detach: Vec<Step>,
    drop_functions: Vec<Step>,
    schemas: Vec<Step>,
    extensions: Vec<Step>,
    /// Types, domains, sequences, functions and tables, each with its object key: created
    /// in `pg_depend` order.
    objects: Vec<(String, Step)>,
    columns: Vec<Step>,
    constraints: Vec<Step>,
    indexes: Vec<Step>,
    fks: Vec<Step>,
    /// Partitions attached and parents added, once the columns match.
    attach: Vec<Step>,
    owned_by: Vec<Step>,
    views: Vec<Step>,
    view_indexes: Vec<Step>,
    triggers: Vec<Step>,
    policies: Vec<Step>,
    grants: Vec<Step>,
    comments: Vec<Step>,
    /// What no longer exists, with its object key: dropped in `pg_depend` order
    /// (dependents first); those without a key (extensions, schemas) last.
    final_drops: Vec<(Option<String>, Step)>,
    /// Tables whose columns change shape (views reading them are re-made).
    reshaped: BTreeSet<String>,
    /// Views re-made because something they use is re-made.
    remake_views: BTreeSet<String>,
    /// Objects dropped and created again, as grant keys name them (`TABLE x`,
    /// `FUNCTION f(args)`): their grants are made again.
    remade: BTreeSet<String>,
    /// Enum types of either side (their values cast only through text).
    enum_types: BTreeSet<String>,
    /// See [`Plan::needs_empty`].
    needs_empty: Vec<(String, String)>,
}

impl Phases {
    fn object(&mut self, key: String, s: Step) {
        self.objects.push((key, s));
    }

    fn drop_last(&mut self, key: Option<String>, s: Step) {
        self.final_drops.push((key, s));
    }
}

/// `steps` in an order where each comes after the steps of every object its key depends
/// on (by `deps`), and otherwise in the order given.
fn order_creates(
    steps: Vec<(String, Step)>,
    deps: &BTreeMap<String, BTreeSet<String>>,
) -> Vec<Step> {
    let mut left: Vec<(String, Step)> = steps;
    let mut out = Vec::with_capacity(left.len());
    while !left.is_empty() {
        let waiting: BTreeSet<&str> = left.iter().map(|(k, _)| k.as_str()).collect();
        let ready = |key: &str| {
            deps.get(key).is_none_or(|needs| {
                needs
                    .iter()
                    .all(|n| n == key || !waiting.contains(n.as_str()))
            })
        };
        // A cycle (which PostgreSQL itself would refuse) keeps the given order.
        let at = left.iter().position(|(k, _)| ready(k)).unwrap_or(0);
        out.push(left.remove(at).1);
    }
    out
}

/// Drops in an order where each object goes before every object it depends on.
fn order_drops(
    steps: Vec<(Option<String>, Step)>,
    deps: &BTreeMap<String, BTreeSet<String>>,
) -> Vec<Step> {
    let (mut left, keyless): (Vec<_>, Vec<_>) = steps.into_iter().partition(|(k, _)| k.is_some());
    let mut out = Vec::with_capacity(left.len() + keyless.len());
    while !left.is_empty() {
        let needed_by_another = |key: &str| {
            left.iter().any(|(other, _)| {
                other.as_deref() != Some(key)
                    && other
                        .as_ref()
                        .and_then(|o| deps.get(o))
                        .is_some_and(|needs| needs.contains(key))
            })
        };
        let at = left
            .iter()
            .position(|(k, _)| !needed_by_another(k.as_deref().unwrap_or("")))
            .unwrap_or(0);
        out.push(left.remove(at).1);
    }
    out.extend(keyless.into_iter().map(|(_, s)| s));
    out
}

fn step(sql: impl Into<String>, hazard: Option<Hazard>) -> Step {
    Step {
        sql: sql.into(),
        hazard,
        outside_transaction: false,
    }
}

fn column_def(c: &Column) -> String {
    let mut s = format!("{} {}", c.name, c.data_type);
    if let Some(coll) = &c.collation {
        s.push_str(&format!(" COLLATE {coll}"));
    }
    if let Some(expr) = &c.generated {
        s.push_str(&format!(" GENERATED ALWAYS AS ({expr}) STORED"));
    }
    if let Some(d) = &c.default {
        s.push_str(&format!(" DEFAULT {d}"));
    }
    match c.identity.as_str() {
        "a" => s.push_str(" GENERATED ALWAYS AS IDENTITY"),
        "d" => s.push_str(" GENERATED BY DEFAULT AS IDENTITY"),
        _ => {}
    }
    if c.not_null {
        s.push_str(" NOT NULL");
    }
    s
}

fn sequence_options(s: &Sequence) -> String {
    format!(
        "AS {} INCREMENT BY {} MINVALUE {} MAXVALUE {} START WITH {} CACHE {}{}",
        s.data_type,
        s.increment,
        s.min,
        s.max,
        s.start,
        s.cache,
        if s.cycle { " CYCLE" } else { " NO CYCLE" }
    )
}

fn domain_create(name: &str, d: &Domain) -> String {
    let mut s = format!("CREATE DOMAIN {name} AS {}", d.base);
    if let Some(def) = &d.default {
        s.push_str(&format!(" DEFAULT {def}"));
    }
    if d.not_null {
        s.push_str(" NOT NULL");
    }
    for (cname, check) in &d.checks {
        s.push_str(&format!(" CONSTRAINT {cname} {check}"));
    }
    s
}

fn view_keyword(v: &View) -> &'static str {
    if v.materialized {
        "MATERIALIZED VIEW"
    } else {
        "VIEW"
    }
}

/// Views of `views` in an order where each comes after the views it reads.
fn topo(views: &BTreeMap<String, View>, subset: &BTreeSet<String>) -> Vec<String> {
    let mut out = Vec::new();
    let mut done = BTreeSet::new();
    fn visit(
        name: &str,
        views: &BTreeMap<String, View>,
        subset: &BTreeSet<String>,
        done: &mut BTreeSet<String>,
        out: &mut Vec<String>,
        depth: usize,
    ) {
        if done.contains(name) || depth > views.len() {
            return;
        }
        if let Some(v) = views.get(name) {
            for dep in &v.depends_on {
                if subset.contains(dep) {
                    visit(dep, views, subset, done, out, depth + 1);
                }
            }
        }
        done.insert(name.to_owned());
        out.push(name.to_owned());
    }
    for name in subset {
        visit(name, views, subset, &mut done, &mut out, 0);
    }
    out
}

/// The plan that turns `from` into `to`.
pub fn diff(from: &Catalog, to: &Catalog) -> Plan {
    let mut p = Phases::default();
    let mut unsupported = Vec::new();

    // Schemas and extensions.
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

    p.enum_types = from.enums.keys().chain(to.enums.keys()).cloned().collect();
    enums::diff(from, to, &mut p, &mut unsupported);
    composite::diff(from, to, &mut p);
    collation::diff(from, to, &mut p);

    // Domains.
    for (name, d) in &to.domains {
        match from.domains.get(name) {
            None => p.object(format!("domain {name}"), step(domain_create(name, d), None)),
            Some(old) if old == d => {}
            Some(old) if old.base != d.base => unsupported.push(format!(
                "domain {name} changed its base type from {} to {}",
                old.base, d.base
            )),
            Some(old) => {
                let key = format!("domain {name}");
                if old.default != d.default {
                    p.object(
                        key.clone(),
                        step(
                            match &d.default {
                                Some(def) => format!("ALTER DOMAIN {name} SET DEFAULT {def}"),
                                None => format!("ALTER DOMAIN {name} DROP DEFAULT"),
                            },
                            None,
                        ),
                    );
                }
                if old.not_null != d.not_null {
                    let verb = if d.not_null { "SET" } else { "DROP" };
                    p.object(
                        key.clone(),
                        step(
                            format!("ALTER DOMAIN {name} {verb} NOT NULL"),
                            d.not_null.then_some(Hazard::Lock),
                        ),
                    );
                }
                for (cname, check) in &old.checks {
                    if d.checks.get(cname) != Some(check) {
                        p.object(
                            key.clone(),
                            step(format!("ALTER DOMAIN {name} DROP CONSTRAINT {cname}"), None),
                        );
                    }
                }
                for (cname, check) in &d.checks {
                    if old.checks.get(cname) != Some(check) {
                        p.object(
                            key.clone(),
                            step(
                                format!("ALTER DOMAIN {name} ADD CONSTRAINT {cname} {check}"),
                                Some(Hazard::Lock),
                            ),
                        );
                    }
                }
            }
        }
    }

    // Sequences.
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

    // Functions. One whose result type or kind changes is dropped and re-made: what uses
    // it goes first (column defaults come back after it, views are re-made).
    let mut needs_lax_bodies = false;
    let mut redefault: BTreeSet<(String, String)> = BTreeSet::new();
    for (sig, f) in &to.functions {
        let key = format!("function {sig}");
        match from.functions.get(sig) {
            None => {
                p.object(key, step(f.definition.clone(), None));
                needs_lax_bodies = true;
            }
            Some(old) if old.definition == f.definition => {}
            Some(old) => {
                if old.result != f.result || old.kind != f.kind {
                    for user in dependents(&from.depends, &key) {
                        if let Some(view) = user.strip_prefix("view ") {
                            p.remake_views.insert(view.to_owned());
                        } else if let Some(col) = user.strip_prefix("default ")
                            && let Some((table, column)) = split_column(col, from)
                        {
                            p.drop_defaults.push(step(
                                format!("ALTER TABLE {table} ALTER COLUMN {column} DROP DEFAULT"),
                                None,
                            ));
                            redefault.insert((table, column));
                        }
                    }
                    p.drop_functions
                        .push(step(format!("DROP {} {sig}", old.kind), Some(Hazard::Drop)));
                    p.remade.insert(format!("{} {sig}", f.kind));
                }
                p.object(key, step(f.definition.clone(), None));
                needs_lax_bodies = true;
            }
        }
    }
    for (sig, f) in &from.functions {
        if !to.functions.contains_key(sig) {
            p.drop_last(
                Some(format!("function {sig}")),
                step(format!("DROP {} {sig}", f.kind), Some(Hazard::Drop)),
            );
        }
    }

    // Tables and columns.
    for (name, t) in &to.tables {
        match from.tables.get(name) {
            None => {
                p.object(
                    format!("table {name}"),
                    step(inherit::create(name, t), None),
                );
                rls(&mut p, name, &Table::default(), t);
            }
            Some(old) => {
                if let Some(u) = inherit::relink(name, old, t, &mut p) {
                    unsupported.push(u);
                }
                if !inherit::columns_follow_parent(old, t) {
                    alter_columns(&mut p, name, old, t);
                }
                rls(&mut p, name, old, t);
            }
        }
    }
    // Defaults taken off for a re-made function, unless the column's own change already
    // sets them again.
    for (table, column) in &redefault {
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
    let dropped_tables: BTreeSet<&String> = from
        .tables
        .keys()
        .filter(|t| !to.tables.contains_key(*t))
        .collect();
    for t in &dropped_tables {
        p.drop_last(
            Some(format!("table {t}")),
            step(format!("DROP TABLE {t}"), Some(Hazard::DataLoss)),
        );
        p.reshaped.insert((*t).clone());
    }
    for (name, s) in &from.sequences {
        if !to.sequences.contains_key(name) {
            let owned_by_dropped_table = s.owned_by.as_ref().is_some_and(|o| {
                dropped_tables
                    .iter()
                    .any(|t| o.starts_with(&format!("{t}.")))
            });
            if !owned_by_dropped_table {
                p.drop_last(
                    Some(format!("sequence {name}")),
                    step(format!("DROP SEQUENCE {name}"), Some(Hazard::DataLoss)),
                );
            }
        }
    }

    // Constraints: foreign keys go after every table exists; changed ones are re-made.
    for (key @ (table, cname), c) in &from.constraints {
        if dropped_tables.contains(table) {
            continue;
        }
        if to.constraints.get(key) != Some(c) {
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
    }
    let detached = |table: &String| {
        from.tables
            .get(table)
            .is_some_and(|t| t.partition_of.is_some())
            && to
                .tables
                .get(table)
                .is_some_and(|t| t.partition_of.is_none())
    };
    for (key @ (table, cname), c) in &to.constraints {
        // A detached partition keeps what it had from its partitioned table.
        let kept = detached(table) && from.cloned_constraints.contains(key);
        if from.constraints.get(key) != Some(c) && !kept {
            let existed = from.tables.contains_key(table);
            let s = step(
                format!(
                    "ALTER TABLE {table} ADD CONSTRAINT {cname} {}",
                    c.definition
                ),
                existed.then_some(Hazard::Lock),
            );
            if c.kind == 'f' {
                p.fks.push(s)
            } else {
                p.constraints.push(s)
            }
        }
    }

    // Views: re-made when they change, or when anything they read is re-made or reshaped.
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
        p.views.push(step(
            format!("CREATE {} {name} AS\n{}", view_keyword(v), v.definition),
            None,
        ));
        // Re-made views lose their comments.
        let key = format!("{} {name}", view_keyword(v));
        if let (Some(c), true) = (to.comments.get(&key), from.views.contains_key(&name)) {
            p.comments
                .push(step(format!("COMMENT ON {key} IS {}", lit(c)), None));
        }
    }

    // Indexes (those of re-made materialized views come back after the views).
    for (name, (table, def)) in &from.indexes {
        let gone_with_table = dropped_tables.contains(table) || remake.contains(table);
        if !gone_with_table && to.indexes.get(name).map(|(_, d)| d) != Some(def) {
            p.drop_indexes
                .push(step(format!("DROP INDEX {name}"), Some(Hazard::Drop)));
        }
    }
    for (name, (table, def)) in &to.indexes {
        let on_remade_view = create.contains(table);
        let kept = detached(table) && from.cloned_indexes.contains(name);
        if on_remade_view || (from.indexes.get(name).map(|(_, d)| d) != Some(def) && !kept) {
            // The server prints a partitioned table's index `ON ONLY` (its partitions'
            // indexes listed apart); created, it must cover the partitions too.
            let s = step(
                def.replacen(" ON ONLY ", " ON ", 1),
                from.tables.contains_key(table).then_some(Hazard::Lock),
            );
            if to.views.contains_key(table) {
                p.view_indexes.push(s)
            } else {
                p.indexes.push(s)
            }
        }
    }

    // Triggers and policies: re-made when they change.
    for (key @ (table, name), def) in &from.triggers {
        if !dropped_tables.contains(table) && to.triggers.get(key) != Some(def) {
            p.drop_triggers.push(step(
                format!("DROP TRIGGER {name} ON {table}"),
                Some(Hazard::Drop),
            ));
        }
    }
    // A re-made view comes back without its (INSTEAD OF) triggers.
    for (key @ (table, _), def) in &to.triggers {
        let view_remade = create.contains(table) && from.views.contains_key(table);
        if from.triggers.get(key) != Some(def) || view_remade {
            p.triggers.push(step(def.clone(), None));
        }
    }
    for (key @ (table, name), def) in &from.policies {
        if !dropped_tables.contains(table) && to.policies.get(key) != Some(def) {
            // Re-made in the same transaction when it changes; gone for good, it takes away
            // the access rule it enforced.
            let hazard = if to.policies.contains_key(key) {
                Hazard::Drop
            } else {
                Hazard::Security
            };
            p.drop_triggers
                .push(step(format!("DROP POLICY {name} ON {table}"), Some(hazard)));
        }
    }
    for (key, def) in &to.policies {
        if from.policies.get(key) != Some(def) {
            p.policies.push(step(def.clone(), None));
        }
    }

    for name in create.iter().filter(|n| from.views.contains_key(*n)) {
        p.remade.insert(format!("TABLE {name}"));
    }
    let remade = std::mem::take(&mut p.remade);
    grants::diff(from, to, &remade, &mut p);

    // Comments.
    for (key, text) in &to.comments {
        if from.comments.get(key) != Some(text) {
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

    // What no longer exists, last.
    for (name, _) in from
        .domains
        .iter()
        .filter(|(n, _)| !to.domains.contains_key(*n))
    {
        p.drop_last(
            Some(format!("domain {name}")),
            step(format!("DROP DOMAIN {name}"), Some(Hazard::Drop)),
        );
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

    let mut steps = p.outside;
    let inside: Vec<Step> = [
        p.drop_triggers,
        p.drop_views,
        p.drop_fks,
        p.drop_constraints,
        p.drop_indexes,
        p.drop_defaults,
        p.detach,
        p.drop_functions,
        p.schemas,
        p.extensions,
        order_creates(p.objects, &to.depends),
        p.columns,
        p.constraints,
        p.indexes,
        p.fks,
        p.attach,
        p.owned_by,
        p.views,
        p.view_indexes,
        p.triggers,
        p.policies,
        p.grants,
        p.comments,
        order_drops(p.final_drops, &from.depends),
    ]
    .into_iter()
    .flatten()
    .collect();
    if needs_lax_bodies && !inside.is_empty() {
        // SQL-language function bodies may name tables created later in the plan, as
        // pg_dump does.
        steps.push(step("SET LOCAL check_function_bodies = off", None));
    }
    steps.extend(inside);
    Plan {
        steps,
        unsupported,
        needs_empty: p.needs_empty,
    }
}

fn rls(p: &mut Phases, name: &str, old: &Table, new: &Table) {
    // Turning row-level security off takes away every policy's protection at once.
    if old.rls != new.rls {
        let verb = if new.rls { "ENABLE" } else { "DISABLE" };
        p.policies.push(step(
            format!("ALTER TABLE {name} {verb} ROW LEVEL SECURITY"),
            (!new.rls).then_some(Hazard::Security),
        ));
    }
    if old.force_rls != new.force_rls {
        let verb = if new.force_rls { "FORCE" } else { "NO FORCE" };
        p.policies.push(step(
            format!("ALTER TABLE {name} {verb} ROW LEVEL SECURITY"),
            (!new.force_rls).then_some(Hazard::Security),
        ));
    }
}

fn alter_columns(p: &mut Phases, table: &str, old: &Table, new: &Table) {
    let find = |t: &Table, n: &str| t.columns.iter().find(|c| c.name == n).cloned();
    for c in &new.columns {
        if inherit::inherited_on_both_sides(c, old, new) {
            continue;
        }
        let Some(o) = find(old, &c.name) else {
            let sql = format!("ALTER TABLE {table} ADD COLUMN {}", column_def(c));
            // Existing rows would get NULL in a NOT NULL column: it applies only to an
            // empty table.
            let needs_empty =
                c.not_null && c.default.is_none() && c.identity.is_empty() && c.generated.is_none();
            if needs_empty {
                p.needs_empty.push((table.to_owned(), sql.clone()));
            }
            p.columns
                .push(step(sql, needs_empty.then_some(Hazard::Lock)));
            continue;
        };
        let col = &c.name;
        if o.generated.is_some() && c.generated.is_none() {
            // The values stay; they just stop being computed.
            p.columns.push(step(
                format!("ALTER TABLE {table} ALTER COLUMN {col} DROP EXPRESSION"),
                None,
            ));
        } else if o.generated != c.generated {
            // A plain column's values are replaced by computed ones: data loss. A changed
            // expression only recomputes what was computed before.
            p.reshaped.insert(table.to_owned());
            let hazard = if o.generated.is_none() {
                Hazard::DataLoss
            } else {
                Hazard::Rewrite
            };
            p.columns.push(step(
                format!("ALTER TABLE {table} DROP COLUMN {col}"),
                Some(hazard),
            ));
            p.columns.push(step(
                format!("ALTER TABLE {table} ADD COLUMN {}", column_def(c)),
                Some(hazard),
            ));
            continue;
        }
        if o.data_type != c.data_type || o.collation != c.collation {
            p.reshaped.insert(table.to_owned());
            let coll = c
                .collation
                .as_ref()
                .map(|x| format!(" COLLATE {x}"))
                .unwrap_or_default();
            // The default may not cast to the new type: drop it first, set it again after.
            if o.default.is_some() {
                p.columns.push(step(
                    format!("ALTER TABLE {table} ALTER COLUMN {col} DROP DEFAULT"),
                    None,
                ));
            }
            let change = TypeChange::of(&o.data_type, &c.data_type);
            // A plain ALTER TYPE converts with the assignment cast, which refuses values
            // that do not fit (`varchar(5)`); an explicit `USING col::type` would truncate
            // them, so it is kept for types with no assignment cast between them.
            let using = match change {
                TypeChange::Widening | TypeChange::Narrowing => String::new(),
                // Enums have no casts but through text.
                TypeChange::Other
                    if p.enum_types.contains(base_type(&o.data_type))
                        || p.enum_types.contains(base_type(&c.data_type)) =>
                {
                    let text = if c.data_type.ends_with("[]") {
                        "text[]"
                    } else {
                        "text"
                    };
                    format!(" USING {col}::{text}::{}", c.data_type)
                }
                TypeChange::Other => format!(" USING {col}::{}", c.data_type),
            };
            let hazard = match change {
                TypeChange::Widening => Hazard::Rewrite,
                _ => Hazard::DataLoss,
            };
            p.columns.push(step(
                format!(
                    "ALTER TABLE {table} ALTER COLUMN {col} TYPE {}{coll}{using}",
                    c.data_type
                ),
                Some(hazard),
            ));
            if let Some(d) = &c.default {
                p.columns.push(step(
                    format!("ALTER TABLE {table} ALTER COLUMN {col} SET DEFAULT {d}"),
                    None,
                ));
            }
        } else if o.default != c.default {
            p.columns.push(step(
                match &c.default {
                    Some(d) => format!("ALTER TABLE {table} ALTER COLUMN {col} SET DEFAULT {d}"),
                    None => format!("ALTER TABLE {table} ALTER COLUMN {col} DROP DEFAULT"),
                },
                None,
            ));
        }
        // An identity column must be NOT NULL before it gets its identity, and loses its
        // identity before it may be nullable again.
        let not_null = |p: &mut Phases| {
            if o.not_null != c.not_null {
                let verb = if c.not_null { "SET" } else { "DROP" };
                p.columns.push(step(
                    format!("ALTER TABLE {table} ALTER COLUMN {col} {verb} NOT NULL"),
                    c.not_null.then_some(Hazard::Lock),
                ));
            }
        };
        if c.not_null {
            not_null(p);
        }
        if o.identity != c.identity {
            let sql = match (o.identity.as_str(), c.identity.as_str()) {
                ("", "a") => format!(
                    "ALTER TABLE {table} ALTER COLUMN {col} ADD GENERATED ALWAYS AS IDENTITY"
                ),
                ("", _) => format!(
                    "ALTER TABLE {table} ALTER COLUMN {col} ADD GENERATED BY DEFAULT AS IDENTITY"
                ),
                (_, "") => format!("ALTER TABLE {table} ALTER COLUMN {col} DROP IDENTITY"),
                (_, "a") => format!("ALTER TABLE {table} ALTER COLUMN {col} SET GENERATED ALWAYS"),
                _ => format!("ALTER TABLE {table} ALTER COLUMN {col} SET GENERATED BY DEFAULT"),
            };
            p.columns.push(step(sql, None));
        }
        if !c.not_null {
            not_null(p);
        }
    }
    for o in &old.columns {
        if find(new, &o.name).is_none() && !inherit::inherited_on_both_sides(o, old, new) {
            p.reshaped.insert(table.to_owned());
            p.columns.push(step(
                format!("ALTER TABLE {table} DROP COLUMN {}", o.name),
                Some(Hazard::DataLoss),
            ));
        }
    }
}

/// The objects whose `pg_depend` entries name `key`.
fn dependents<'a>(
    deps: &'a BTreeMap<String, BTreeSet<String>>,
    key: &'a str,
) -> impl Iterator<Item = &'a String> + 'a {
    deps.iter()
        .filter(move |(_, needs)| needs.contains(key))
        .map(|(user, _)| user)
}

/// `schema.table.column` split into the table (as the catalog names it) and the column.
fn split_column(qualified: &str, cat: &Catalog) -> Option<(String, String)> {
    let (table, column) = qualified.rsplit_once('.')?;
    cat.tables
        .contains_key(table)
        .then(|| (table.to_owned(), column.to_owned()))
}

/// `public.mood[]` → `public.mood`.
fn base_type(t: &str) -> &str {
    t.trim_end_matches("[]")
}

/// What a column type change does to the values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TypeChange {
    /// Every value fits the new type unchanged (a longer varchar, int to bigint, ...).
    Widening,
    /// Same type, smaller modifier: values may be refused or rounded.
    Narrowing,
    /// Anything else: a cast that may fail, truncate or reinterpret.
    Other,
}

impl TypeChange {
    fn of(old: &str, new: &str) -> Self {
        let (ob, om) = split_type(old);
        let (nb, nm) = split_type(new);
        let widens = match (ob.as_str(), nb.as_str()) {
            (a, b) if a == b => modifiers_widen(a, &om, &nm),
            ("character varying", "text") | ("text", "character varying") => nm.is_empty(),
            ("character", "character varying") | ("character", "text") => false,
            ("smallint", "integer" | "bigint") | ("integer", "bigint") => true,
            ("real", "double precision") => true,
            ("smallint" | "integer" | "bigint", "numeric") => {
                let digits = match ob.as_str() {
                    "smallint" => 5,
                    "integer" => 10,
                    _ => 19,
                };
                match nm.as_slice() {
                    [] => true,
                    [p] => *p >= digits,
                    [p, s] => p - s >= digits,
                    _ => false,
                }
            }
            _ => false,
        };
        if widens {
            Self::Widening
        } else if ob == nb {
            Self::Narrowing
        } else {
            Self::Other
        }
    }
}

/// `numeric(10,2)` → (`numeric`, [10, 2]); `timestamp(3) with time zone` →
/// (`timestamp with time zone`, [3]); arrays keep their `[]`.
fn split_type(t: &str) -> (String, Vec<i64>) {
    let Some(open) = t.find('(') else {
        return (t.to_owned(), Vec::new());
    };
    let close = t[open..].find(')').map_or(t.len(), |c| open + c);
    let mods = t[open + 1..close]
        .split(',')
        .filter_map(|m| m.trim().parse().ok())
        .collect();
    let base = format!("{}{}", &t[..open], t.get(close + 1..).unwrap_or(""));
    (base.split_whitespace().collect::<Vec<_>>().join(" "), mods)
}

/// Whether going from modifiers `old` to `new` of type `base` keeps every value.
fn modifiers_widen(base: &str, old: &[i64], new: &[i64]) -> bool {
    if new.is_empty() {
        // No limit at all (numeric without precision, varchar without length, ...).
        return true;
    }
    if old.is_empty() {
        return false;
    }
    match base {
        "numeric" => {
            let (op, os) = (old[0], old.get(1).copied().unwrap_or(0));
            let (np, ns) = (new[0], new.get(1).copied().unwrap_or(0));
            ns >= os && np - ns >= op - os
        }
        _ => old.len() == new.len() && old.iter().zip(new).all(|(o, n)| n >= o),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_changes_are_classified() {
        use TypeChange::*;
        let t = TypeChange::of;
        assert_eq!(
            t("character varying(5)", "character varying(100)"),
            Widening
        );
        assert_eq!(
            t("character varying(100)", "character varying(5)"),
            Narrowing
        );
        assert_eq!(t("character varying(100)", "text"), Widening);
        assert_eq!(t("text", "character varying(10)"), Other);
        assert_eq!(t("numeric(10,2)", "numeric(10,0)"), Narrowing);
        assert_eq!(t("numeric(10,2)", "numeric(12,2)"), Widening);
        assert_eq!(t("numeric(10,2)", "numeric(11,3)"), Widening);
        assert_eq!(t("numeric(10,2)", "numeric"), Widening);
        assert_eq!(t("integer", "bigint"), Widening);
        assert_eq!(t("bigint", "integer"), Other);
        assert_eq!(t("integer", "numeric(12,2)"), Widening);
        assert_eq!(t("integer", "numeric(10,2)"), Other);
        assert_eq!(
            t("timestamp(3) with time zone", "timestamp with time zone"),
            Widening
        );
        assert_eq!(
            t("timestamp with time zone", "timestamp(3) with time zone"),
            Narrowing
        );
        assert_eq!(t("text", "integer"), Other);
    }

    #[test]
    fn literals_are_quoted() {
        assert_eq!(lit("it's"), "'it''s'");
    }

    #[test]
    fn empty_catalogs_need_nothing() {
        assert!(diff(&Catalog::default(), &Catalog::default()).is_empty());
    }
}
