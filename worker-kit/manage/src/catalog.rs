//! Reading a database's schema from the system catalogs.
//!
//! Both sides of a diff are read with these same queries, so PostgreSQL itself normalizes
//! what the SQL said (`int` and `int4`, `varchar` and `character varying`, default and
//! CHECK expressions, view bodies). Names come back already quoted by `quote_ident`.
//! Objects that belong to an extension are left out.

mod collation;
mod comments;
mod composite;
mod constraints;
mod depends;
mod domains;
mod enums;
mod functions;
mod grants;
mod indexes;
mod inherit;
mod policies;
mod schemas;
mod sequences;
mod statistics;
mod tables;
mod triggers;
mod uncompared;
mod views;

use std::collections::{BTreeMap, BTreeSet};

use tokio_postgres::Client;

pub(crate) use composite::Attribute;
pub(crate) use grants::{GrantKey, Privileges};

/// A column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Column {
    pub(crate) name: String,
    pub(crate) data_type: String,
    pub(crate) not_null: bool,
    pub(crate) default: Option<String>,
    /// `a` (always), `d` (by default) or empty.
    pub(crate) identity: String,
    /// The generation expression of a stored generated column.
    pub(crate) generated: Option<String>,
    pub(crate) collation: Option<String>,
    /// Declared on this table, not only inherited from a parent or partitioned table.
    pub(crate) local: bool,
}

/// A table (ordinary or partitioned).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Table {
    pub(crate) columns: Vec<Column>,
    pub(crate) rls: bool,
    pub(crate) force_rls: bool,
    pub(crate) unlogged: bool,
    /// `RANGE (created_at)` for a partitioned table.
    pub(crate) partition_by: Option<String>,
    /// The partitioned table this one is a partition of, and its bound
    /// (`FOR VALUES FROM (...) TO (...)`, `DEFAULT`).
    pub(crate) partition_of: Option<(String, String)>,
    /// `INHERITS` parents, in order.
    pub(crate) parents: Vec<String>,
    /// Storage parameters (`fillfactor=70`; the TOAST table's as `toast.autovacuum_enabled=off`),
    /// sorted.
    pub(crate) options: Vec<String>,
    /// `REPLICA IDENTITY`: `DEFAULT`, `FULL`, `NOTHING` or `USING INDEX name` — what logical
    /// replication sends of an updated or deleted row.
    pub(crate) replica_identity: String,
}

/// A sequence not made by an identity column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sequence {
    pub(crate) data_type: String,
    pub(crate) start: i64,
    pub(crate) increment: i64,
    pub(crate) min: i64,
    pub(crate) max: i64,
    pub(crate) cache: i64,
    pub(crate) cycle: bool,
    /// `table.column` for a serial column's sequence.
    pub(crate) owned_by: Option<String>,
}

/// A domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Domain {
    pub(crate) base: String,
    pub(crate) not_null: bool,
    pub(crate) default: Option<String>,
    /// name → `CHECK (...)`.
    pub(crate) checks: BTreeMap<String, String>,
}

/// A view or materialized view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct View {
    pub(crate) materialized: bool,
    pub(crate) definition: String,
    /// Its options as `pg_class.reloptions` has them (`security_invoker=true`,
    /// `security_barrier=true`, `check_option=local`; storage parameters of a materialized
    /// view), sorted: lost with a re-made view, they would silently change who may see what.
    pub(crate) options: Vec<String>,
    /// Relations (tables, views) it reads.
    pub(crate) depends_on: BTreeSet<String>,
}

/// A function or procedure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Function {
    /// `CREATE OR REPLACE FUNCTION ...` as the server prints it.
    pub(crate) definition: String,
    /// `FUNCTION` or `PROCEDURE`.
    pub(crate) kind: &'static str,
    pub(crate) result: String,
}

/// A constraint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Constraint {
    /// `p`, `f`, `u`, `c`, `x`.
    pub(crate) kind: char,
    pub(crate) definition: String,
}

/// Everything manage compares. Keys are quoted, schema-qualified names.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Catalog {
    pub(crate) schemas: BTreeSet<String>,
    /// name → schema.
    pub(crate) extensions: BTreeMap<String, String>,
    pub(crate) enums: BTreeMap<String, Vec<String>>,
    /// Collations → `(provider = ..., ...)`, the options of their `CREATE COLLATION`.
    pub(crate) collations: BTreeMap<String, String>,
    /// Composite types (not tables' row types) → their attributes.
    pub(crate) composites: BTreeMap<String, Vec<Attribute>>,
    pub(crate) domains: BTreeMap<String, Domain>,
    pub(crate) sequences: BTreeMap<String, Sequence>,
    pub(crate) tables: BTreeMap<String, Table>,
    /// (table, constraint name) → constraint.
    pub(crate) constraints: BTreeMap<(String, String), Constraint>,
    /// index → (table, `CREATE INDEX ...`).
    pub(crate) indexes: BTreeMap<String, (String, String)>,
    /// Indexes not valid (`indisvalid` false): left by a concurrent build that failed or
    /// was interrupted; they cost writes and serve no query, so they count as drift.
    pub(crate) invalid_indexes: BTreeSet<String>,
    pub(crate) views: BTreeMap<String, View>,
    /// `schema.name(identity args)` → function.
    pub(crate) functions: BTreeMap<String, Function>,
    /// (table, trigger name) → `CREATE TRIGGER ...`.
    pub(crate) triggers: BTreeMap<(String, String), String>,
    /// (table, policy name) → `CREATE POLICY ...`.
    pub(crate) policies: BTreeMap<(String, String), String>,
    /// `TABLE x` / `COLUMN x.c` / `VIEW x` / `FUNCTION f(args)` / ... → comment.
    pub(crate) comments: BTreeMap<String, String>,
    /// What each object depends on, from `pg_depend`: `table x`, `view x`, `sequence x`,
    /// `function x(args)`, `type x`, `domain x`, `default x.c` → the objects it needs.
    /// Sub-objects (rules, triggers, constraints, indexes, policies) count as their table.
    pub(crate) depends: BTreeMap<String, BTreeSet<String>>,
    /// (partition, constraint) a partition has from its partitioned table.
    pub(crate) cloned_constraints: BTreeSet<(String, String)>,
    /// Indexes a partition has from its partitioned table's.
    pub(crate) cloned_indexes: BTreeSet<String>,
    /// Privileges granted to roles other than the object's owner; column privileges as
    /// `COLUMN table.column`.
    pub(crate) grants: BTreeMap<GrantKey, Privileges>,
    /// Statistics objects on tables → (table, `CREATE STATISTICS ...`, its statistics
    /// target or -1).
    pub(crate) statistics: BTreeMap<String, (String, String, i32)>,
    /// Kinds of objects present that manage does not read, with their counts.
    pub(crate) not_compared: Vec<String>,
    /// The server's `server_version_num` (150004 for 15.4): which online forms it has.
    pub(crate) server_version: i32,
}

const USER_SCHEMA: &str = "n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') \
     AND n.nspname NOT LIKE 'pg\\_temp\\_%' AND n.nspname NOT LIKE 'pg\\_toast\\_temp\\_%'";

/// A column's collation, qualified unless it is a built-in one (`co` and its namespace
/// `con` joined).
const COLLATION_NAME: &str = "CASE WHEN con.nspname = 'pg_catalog' THEN quote_ident(co.collname) \
     ELSE quote_ident(con.nspname) || '.' || quote_ident(co.collname) END";

fn not_extension_member(class: &str, oid: &str) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM pg_depend ext WHERE ext.classid = '{class}'::regclass \
         AND ext.objid = {oid} AND ext.deptype = 'e')"
    )
}

fn qname() -> &'static str {
    "quote_ident(n.nspname) || '.' || quote_ident(c.relname)"
}

impl Catalog {
    /// Reads the schema of the database behind `client`, in one read-only snapshot with
    /// a fixed `search_path` (as pg_dump does): `format_type` and `pg_get_*def` qualify
    /// names relative to it, so a search_path set on the database or role would
    /// otherwise print the two sides differently.
    ///
    /// # Errors
    ///
    /// When a catalog query fails.
    pub async fn read(client: &Client) -> anyhow::Result<Self> {
        client
            .batch_execute(
                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL search_path = pg_catalog",
            )
            .await?;
        let read = Self::read_in_snapshot(client).await;
        let _ = client.batch_execute("COMMIT").await;
        read
    }

    async fn read_in_snapshot(client: &Client) -> anyhow::Result<Self> {
        let mut cat = Catalog::default();
        let version: String = client
            .query_one("SELECT current_setting('server_version_num')", &[])
            .await?
            .get(0);
        cat.server_version = version.parse().unwrap_or(0);
        schemas::read(client, &mut cat).await?;
        enums::read(client, &mut cat).await?;
        composite::read(client, &mut cat).await?;
        collation::read(client, &mut cat).await?;
        domains::read(client, &mut cat).await?;
        sequences::read(client, &mut cat).await?;
        tables::read(client, &mut cat).await?;
        inherit::read(client, &mut cat).await?;
        inherit::read_cloned(client, &mut cat).await?;
        constraints::read(client, &mut cat).await?;
        indexes::read(client, &mut cat).await?;
        views::read(client, &mut cat).await?;
        functions::read(client, &mut cat).await?;
        triggers::read(client, &mut cat).await?;
        policies::read(client, &mut cat).await?;
        grants::read(client, &mut cat).await?;
        statistics::read(client, &mut cat).await?;
        comments::read(client, &mut cat).await?;
        depends::read(client, &mut cat).await?;
        uncompared::read(client, &mut cat).await?;
        Ok(cat)
    }

    /// Whether the catalog has no user objects (a fresh database).
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
            && self.views.is_empty()
            && self.functions.is_empty()
            && self.enums.is_empty()
            && self.composites.is_empty()
            && self.domains.is_empty()
            && self.sequences.is_empty()
    }
}
