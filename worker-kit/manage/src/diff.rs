//! Turning two catalogs into an ordered plan.
//!
//! Statements are grouped in phases that respect PostgreSQL's dependencies: what depends on
//! something that changes is dropped first (triggers, policies, views — dependents before
//! what they read, using `pg_depend` — foreign keys, constraints, indexes), then schemas,
//! extensions and types are created, then functions, tables and columns, constraints,
//! indexes, foreign keys (after every table, so tables may reference each other), views
//! (in dependency order), triggers, policies and comments; data-losing drops come last.

mod collation;
mod comments;
mod composite;
mod constraints;
mod domains;
mod enums;
mod functions;
mod grants;
mod indexes;
mod inherit;
mod policies;
mod remake;
mod repartition;
mod schemas;
mod sequences;
mod statistics;
mod table_settings;
mod tables;
mod triggers;
mod views;

use std::collections::{BTreeMap, BTreeSet};

use crate::catalog::{Catalog, Column, Domain, Sequence, Table, View};
use crate::plan::{Hazard, Plan, Step};

fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[derive(Default)]
struct Phases {
    /// Whether the plan runs in steps (online forms: indexes built concurrently,
    /// constraints added NOT VALID and validated later) or in one transaction.
    online: bool,
    /// The target server's `server_version_num`: which online forms it has.
    server_version: i32,
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
    /// Generated columns made again, once the columns they read have their new types.
    readd_columns: Vec<Step>,
    constraints: Vec<Step>,
    indexes: Vec<Step>,
    fks: Vec<Step>,
    /// Constraints added NOT VALID, validated once every table and column is in place.
    validate: Vec<Step>,
    /// Partitions attached and parents added, once the columns match.
    attach: Vec<Step>,
    /// `REPLICA IDENTITY`, once the index it may name is built.
    replica: Vec<Step>,
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
    /// Tables that exist only on the current side.
    dropped_tables: BTreeSet<String>,
    /// Views the plan drops and creates again, and views it creates (new or re-made).
    views_remade: BTreeSet<String>,
    views_created: BTreeSet<String>,
    /// Functions created or re-made: their bodies are not checked at creation.
    lax_bodies: bool,
    /// Column defaults taken off for a function that is re-made.
    redefault: BTreeSet<(String, String)>,
    /// Comment keys (`TYPE x`, `COLUMN t.c`) of objects dropped and made again, which come
    /// back without their comments.
    recomment: BTreeSet<String>,
    /// Sub-objects dropped and made again, unchanged, so a change can go under them.
    remake: remake::Remake,
    /// Differences no statement expresses.
    unsupported: Vec<String>,
    /// See [`Plan::needs_empty`].
    needs_empty: Vec<(String, String)>,
    /// See [`Plan::remade_tables`].
    remade_tables: Vec<String>,
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
        ..Step::default()
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

/// The plan that turns `from` into `to`, in steps that keep the database writable: see
/// [`diff_with`].
pub fn diff(from: &Catalog, to: &Catalog) -> Plan {
    diff_with(from, to, false)
}

/// The plan that turns `from` into `to`. Unless `atomic`, it uses the online forms, which
/// must run in steps ([`Plan::batches`]): indexes on existing tables built and dropped
/// `CONCURRENTLY`, foreign keys and CHECKs added `NOT VALID` and validated in a later
/// step, `SET NOT NULL` proved by a validated CHECK first. With `atomic` it uses the plain
/// forms, which may all run in one transaction.
pub fn diff_with(from: &Catalog, to: &Catalog, atomic: bool) -> Plan {
    let mut p = Phases::default();
    // Tables that switch between plain and partitioned are dropped and made again: the
    // rest of the plan sees them as new.
    let from = &repartition::prepare(from, to, &mut p);
    let mut p = Phases {
        detach: std::mem::take(&mut p.detach),
        remade_tables: std::mem::take(&mut p.remade_tables),
        online: !atomic,
        server_version: from.server_version,
        dropped_tables: from
            .tables
            .keys()
            .filter(|t| !to.tables.contains_key(*t))
            .cloned()
            .collect(),
        enum_types: from.enums.keys().chain(to.enums.keys()).cloned().collect(),
        ..Phases::default()
    };
    // Each kind adds its statements to the phases; the calls are ordered only where one
    // kind reads what an earlier one found (re-made functions and reshaped tables make
    // views re-made; views re-made bring back their indexes, triggers and grants).
    let kinds: &[KindDiff] = &[
        enums::diff,
        composite::diff,
        collation::diff,
        domains::diff,
        sequences::diff,
        functions::diff,
        tables::diff,
        constraints::diff,
        views::diff,
        indexes::diff,
        statistics::diff,
        table_settings::diff,
        triggers::diff,
        policies::diff,
        grants::diff,
        comments::diff,
        schemas::diff,
    ];
    for kind in kinds {
        kind(from, to, &mut p);
    }
    p.into_plan(from, to)
}

/// The shape of every object kind's diff: read both catalogs, add statements to phases.
type KindDiff = fn(&Catalog, &Catalog, &mut Phases);

impl Phases {
    /// The phases in the order they run.
    fn into_plan(self, from: &Catalog, to: &Catalog) -> Plan {
        let p = self;
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
            p.readd_columns,
            p.constraints,
            p.indexes,
            p.fks,
            p.validate,
            p.attach,
            p.replica,
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
        let mut steps = p.outside;
        steps.extend(inside);
        for s in &mut steps {
            if s.locks.is_none() {
                s.locks = existing_table(&s.sql, from);
            }
        }
        Plan {
            steps,
            unsupported: p.unsupported,
            needs_empty: p.needs_empty,
            remade_tables: p.remade_tables,
            lax_bodies: p.lax_bodies,
            not_compared: to.not_compared.clone(),
        }
    }
}

/// The table of `from` that a statement as manage writes it alters or locks: `ALTER TABLE
/// t ...`, or `... ON t ...` (indexes, triggers, policies).
fn existing_table(sql: &str, from: &Catalog) -> Option<String> {
    let after_alter = sql.strip_prefix("ALTER TABLE ");
    if after_alter.is_none() && !sql.contains(" ON ") {
        return None;
    }
    from.tables
        .keys()
        .find(|t| {
            after_alter.is_some_and(|rest| rest.starts_with(&format!("{t} ")))
                || sql.contains(&format!(" ON {t} "))
                || sql.ends_with(&format!(" ON {t}"))
        })
        .cloned()
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

/// A column the target lacks.
fn add_column(p: &mut Phases, table: &str, c: &Column) {
    let sql = format!("ALTER TABLE {table} ADD COLUMN {}", column_def(c));
    // Existing rows would get NULL in a NOT NULL column: it applies only to an
    // empty table.
    let needs_empty =
        c.not_null && c.default.is_none() && c.identity.is_empty() && c.generated.is_none();
    if needs_empty {
        p.needs_empty.push((table.to_owned(), sql.clone()));
    }
    // A volatile default (or an identity, or a stored generated column) is
    // computed for every existing row: the table is rewritten under ACCESS
    // EXCLUSIVE. A constant or stable default (`now()`) is stored once.
    let rewrites = c.generated.is_some()
        || !c.identity.is_empty()
        || c.default.as_deref().is_some_and(volatile_default);
    let hazard = if rewrites {
        Some(Hazard::Rewrite)
    } else {
        needs_empty.then_some(Hazard::Lock)
    };
    p.columns.push(step(sql, hazard));
}

/// A column whose type or collation changes (`o` as it is, `c` as the model has it).
fn alter_column_type(p: &mut Phases, from: &Catalog, table: &str, o: &Column, c: &Column) {
    let col = &c.name;
    p.reshaped.insert(table.to_owned());
    p.remake.under_type_change(from, table, col);
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
        TypeChange::Metadata | TypeChange::Widening | TypeChange::Narrowing => String::new(),
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
    // A collation change rebuilds the column's indexes, even when the type stays.
    let hazard = match change {
        TypeChange::Metadata if o.collation == c.collation => None,
        TypeChange::Metadata | TypeChange::Widening => Some(Hazard::Rewrite),
        _ => Some(Hazard::DataLoss),
    };
    p.columns.push(step(
        format!(
            "ALTER TABLE {table} ALTER COLUMN {col} TYPE {}{coll}{using}",
            c.data_type
        ),
        hazard,
    ));
    if let Some(d) = &c.default {
        p.columns.push(step(
            format!("ALTER TABLE {table} ALTER COLUMN {col} SET DEFAULT {d}"),
            None,
        ));
    }
}

fn alter_columns(p: &mut Phases, from: &Catalog, table: &str, old: &Table, new: &Table) {
    let find = |t: &Table, n: &str| t.columns.iter().find(|c| c.name == n).cloned();
    let remade_generated = remake_generated(p, from, table, old, new);
    for c in &new.columns {
        if inherit::inherited_on_both_sides(c, old, new) {
            continue;
        }
        let Some(o) = find(old, &c.name) else {
            add_column(p, table, c);
            continue;
        };
        let col = &c.name;
        if remade_generated.contains(col) {
            continue;
        }
        if o.generated.is_some() && c.generated.is_none() {
            // The values stay; they just stop being computed.
            p.columns.push(step(
                format!("ALTER TABLE {table} ALTER COLUMN {col} DROP EXPRESSION"),
                None,
            ));
        } else if o.generated != c.generated {
            // A plain column's values are replaced by computed ones: data loss.
            p.reshaped.insert(table.to_owned());
            p.remake.under_remade_column(from, table, col);
            p.remade.insert(format!("COLUMN {table}.{col}"));
            p.columns.push(step(
                format!("ALTER TABLE {table} DROP COLUMN {col}"),
                Some(Hazard::DataLoss),
            ));
            p.columns.push(step(
                format!("ALTER TABLE {table} ADD COLUMN {}", column_def(c)),
                Some(Hazard::DataLoss),
            ));
            continue;
        }
        if o.data_type != c.data_type || o.collation != c.collation {
            alter_column_type(p, from, table, &o, c);
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
            if o.not_null == c.not_null {
            } else if c.not_null && p.online {
                set_not_null_online(p, table, col);
            } else {
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
        change_identity(p, table, col, &o, c);
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

/// An identity added, dropped or switched between ALWAYS and BY DEFAULT.
fn change_identity(p: &mut Phases, table: &str, col: &str, o: &Column, c: &Column) {
    if o.identity == c.identity {
        return;
    }
    let sql = match (o.identity.as_str(), c.identity.as_str()) {
        ("", "a") => {
            format!("ALTER TABLE {table} ALTER COLUMN {col} ADD GENERATED ALWAYS AS IDENTITY")
        }
        ("", _) => {
            format!("ALTER TABLE {table} ALTER COLUMN {col} ADD GENERATED BY DEFAULT AS IDENTITY")
        }
        (_, "") => format!("ALTER TABLE {table} ALTER COLUMN {col} DROP IDENTITY"),
        (_, "a") => format!("ALTER TABLE {table} ALTER COLUMN {col} SET GENERATED ALWAYS"),
        _ => format!("ALTER TABLE {table} ALTER COLUMN {col} SET GENERATED BY DEFAULT"),
    };
    p.columns.push(step(sql, None));
    if o.identity.is_empty() {
        // A new identity's sequence starts at 1: on a column already numbered (a
        // serial made an identity), the next insert would collide with the first
        // row. It goes on after the highest value.
        p.columns.push(Step {
            locks: Some(table.to_owned()),
            ..step(
                format!(
                    "DO $manage$ BEGIN EXECUTE format('ALTER TABLE %s ALTER COLUMN %s RESTART WITH %s', {}, {}, \
                     (SELECT coalesce(max({col}), 0) + 1 FROM {table})); END $manage$",
                    lit(table),
                    lit(col)
                ),
                None,
            )
        });
    }
}

/// Generated columns that stay generated but must be made again: their expression changes
/// (PostgreSQL 15 has no `SET EXPRESSION`), or it reads a column whose type changes (which
/// PostgreSQL refuses under a generated column). Each is dropped before the table's other
/// column changes and added after them; what stood on it (indexes, checks, policies,
/// triggers) is made again with it.
fn remake_generated(
    p: &mut Phases,
    from: &Catalog,
    table: &str,
    old: &Table,
    new: &Table,
) -> BTreeSet<String> {
    let retyped: Vec<&str> = new
        .columns
        .iter()
        .filter(|c| {
            old.columns
                .iter()
                .any(|o| o.name == c.name && o.data_type != c.data_type)
        })
        .map(|c| c.name.as_str())
        .collect();
    let mut out = BTreeSet::new();
    for c in &new.columns {
        let Some(o) = old.columns.iter().find(|o| o.name == c.name) else {
            continue;
        };
        let (Some(old_expr), Some(new_expr)) = (&o.generated, &c.generated) else {
            continue;
        };
        let reads_retyped = retyped
            .iter()
            .any(|r| *r != c.name && remake::mentions(old_expr, r));
        if old_expr == new_expr && !reads_retyped {
            continue;
        }
        // Only computed values are lost, and computed again.
        p.reshaped.insert(table.to_owned());
        p.remake.under_remade_column(from, table, &c.name);
        p.recomment.insert(format!("COLUMN {table}.{}", c.name));
        p.remade.insert(format!("COLUMN {table}.{}", c.name));
        p.columns.push(step(
            format!("ALTER TABLE {table} DROP COLUMN {}", c.name),
            Some(Hazard::Rewrite),
        ));
        p.readd_columns.push(step(
            format!("ALTER TABLE {table} ADD COLUMN {}", column_def(c)),
            Some(Hazard::Rewrite),
        ));
        out.insert(c.name.clone());
    }
    out
}

/// The first `server_version_num` with `ADD CONSTRAINT ... NOT NULL col NOT VALID`.
const NOT_NULL_NOT_VALID: i32 = 180_000;

/// `SET NOT NULL` without a scan under ACCESS EXCLUSIVE. From PostgreSQL 18: the column's
/// NOT NULL constraint added NOT VALID (a moment's lock), then validated (a scan that lets
/// writes go on). Before: a `CHECK (col IS NOT NULL)` added NOT VALID, validated, then `SET
/// NOT NULL`, which PostgreSQL proves from the validated check without scanning, and the
/// check dropped. Each runs in a step of its own.
fn set_not_null_online(p: &mut Phases, table: &str, col: &str) {
    if p.server_version >= NOT_NULL_NOT_VALID {
        // The name PostgreSQL gives a column's NOT NULL constraint, so the model's
        // (`col int NOT NULL`) and this one compare equal.
        let bare = &table[indexes::schema_prefix(table).len()..];
        let name = crate::target::ident(&format!(
            "{}_{}_not_null",
            bare.trim_matches('"'),
            col.trim_matches('"')
        ));
        for sql in [
            format!("ALTER TABLE {table} ADD CONSTRAINT {name} NOT NULL {col} NOT VALID"),
            format!("ALTER TABLE {table} VALIDATE CONSTRAINT {name}"),
        ] {
            p.columns.push(step(sql, None));
        }
        return;
    }
    let check = crate::target::ident(&format!(
        "manage_not_null_{}",
        &crate::target::digest(format!("{table}.{col}").as_bytes())[..16]
    ));
    for sql in [
        format!("ALTER TABLE {table} ADD CONSTRAINT {check} CHECK ({col} IS NOT NULL) NOT VALID"),
        format!("ALTER TABLE {table} VALIDATE CONSTRAINT {check}"),
        format!("ALTER TABLE {table} ALTER COLUMN {col} SET NOT NULL"),
        format!("ALTER TABLE {table} DROP CONSTRAINT {check}"),
    ] {
        p.columns.push(step(sql, None));
    }
}

/// Whether a column default, as the server prints it, calls a volatile function (its value
/// differs per row, so adding the column rewrites the table). The server does not expose
/// an expression's volatility; these are the volatile functions defaults use.
fn volatile_default(expr: &str) -> bool {
    [
        "nextval(",
        "random(",
        "gen_random_uuid(",
        "uuid_generate_v",
        "clock_timestamp(",
        "timeofday(",
        "txid_current(",
    ]
    .iter()
    .any(|f| expr.contains(f))
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

/// Whether `table` is a partition on the current side and a table of its own on the
/// desired one (it keeps what it had from its partitioned table).
fn detached(from: &Catalog, to: &Catalog, table: &String) -> bool {
    from.tables
        .get(table)
        .is_some_and(|t| t.partition_of.is_some())
        && to
            .tables
            .get(table)
            .is_some_and(|t| t.partition_of.is_none())
}

/// `public.mood[]` → `public.mood`.
fn base_type(t: &str) -> &str {
    t.trim_end_matches("[]")
}

/// What a column type change does to the values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TypeChange {
    /// Every value fits, and the stored bytes stay as they are: only the catalog changes
    /// (a longer varchar, varchar to text, more numeric precision at the same scale, more
    /// fractional seconds).
    Metadata,
    /// Every value fits the new type, but its storage changes: the table is rewritten
    /// (int to bigint, real to double precision, int to numeric, ...).
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
        if widens && same_bytes(&ob, &om, &nb, &nm) {
            Self::Metadata
        } else if widens {
            Self::Widening
        } else if ob == nb {
            Self::Narrowing
        } else {
            Self::Other
        }
    }
}

/// Whether a widening from `ob(om)` to `nb(nm)` keeps the stored bytes: PostgreSQL
/// changes the catalog only when the types are binary coercible and the new modifier's
/// length check cannot fail (its `*_support` functions), so the table is not rewritten.
fn same_bytes(ob: &str, om: &[i64], nb: &str, nm: &[i64]) -> bool {
    let texts = ["character varying", "text"];
    match (ob, nb) {
        (a, b) if texts.contains(&a) && texts.contains(&b) => true,
        ("numeric", "numeric") => nm.is_empty() || om.get(1) == nm.get(1),
        (a, b) if a == b => matches!(
            a,
            "timestamp without time zone"
                | "timestamp with time zone"
                | "time without time zone"
                | "interval"
                | "bit varying"
        ),
        _ => false,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_changes_are_classified() {
        use TypeChange::*;
        let t = TypeChange::of;
        assert_eq!(
            t("character varying(5)", "character varying(100)"),
            Metadata
        );
        assert_eq!(
            t("character varying(100)", "character varying(5)"),
            Narrowing
        );
        assert_eq!(t("character varying(100)", "text"), Metadata);
        assert_eq!(t("text", "character varying(10)"), Other);
        assert_eq!(t("numeric(10,2)", "numeric(10,0)"), Narrowing);
        assert_eq!(t("numeric(10,2)", "numeric(12,2)"), Metadata);
        assert_eq!(t("numeric(10,2)", "numeric(11,3)"), Widening);
        assert_eq!(t("numeric(10,2)", "numeric"), Metadata);
        assert_eq!(t("integer", "bigint"), Widening);
        assert_eq!(t("bigint", "integer"), Other);
        assert_eq!(t("integer", "numeric(12,2)"), Widening);
        assert_eq!(t("integer", "numeric(10,2)"), Other);
        assert_eq!(
            t("timestamp(3) with time zone", "timestamp with time zone"),
            Metadata
        );
        assert_eq!(
            t("timestamp with time zone", "timestamp(3) with time zone"),
            Narrowing
        );
        assert_eq!(t("text", "integer"), Other);
    }

    #[test]
    fn set_not_null_uses_not_valid_not_null_only_where_the_server_has_it() {
        let table = |not_null| Table {
            columns: vec![Column {
                name: "v".into(),
                data_type: "integer".into(),
                not_null,
                default: None,
                identity: String::new(),
                generated: None,
                collation: None,
                local: true,
            }],
            ..Table::default()
        };
        let catalog = |not_null, server_version| Catalog {
            tables: [("public.t".to_owned(), table(not_null))].into(),
            server_version,
            ..Catalog::default()
        };
        let sql = |version| diff(&catalog(false, version), &catalog(true, version)).to_sql();
        let pg15 = sql(150_004);
        assert!(
            pg15.contains("CHECK (v IS NOT NULL) NOT VALID")
                && pg15.contains("ALTER COLUMN v SET NOT NULL")
                && !pg15.contains("NOT NULL v NOT VALID"),
            "{pg15}"
        );
        let pg18 = sql(180_000);
        assert!(
            pg18.contains("ADD CONSTRAINT \"t_v_not_null\" NOT NULL v NOT VALID")
                && pg18.contains("VALIDATE CONSTRAINT \"t_v_not_null\"")
                && !pg18.contains("CHECK"),
            "{pg18}"
        );
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
