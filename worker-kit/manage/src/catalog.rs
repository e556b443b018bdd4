//! Reading a database's schema from the system catalogs.
//!
//! Both sides of a diff are read with these same queries, so PostgreSQL itself normalizes
//! what the SQL said (`int` and `int4`, `varchar` and `character varying`, default and
//! CHECK expressions, view bodies). Names come back already quoted by `quote_ident`.
//! Objects that belong to an extension are left out.

mod collation;
mod composite;
mod grants;
mod inherit;

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
    /// Privileges granted to roles other than the object's owner.
    pub(crate) grants: BTreeMap<GrantKey, Privileges>,
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

/// `(dependent, referenced)` object keys from `pg_depend` (normal dependencies only:
/// automatic and internal ones are what `OWNED BY`, identity and row types make).
fn depends_query() -> String {
    let rel = "quote_ident(n.nspname) || '.' || quote_ident(c.relname)";
    format!(
        "WITH obj(classid, objid, key) AS ( \
           SELECT 'pg_class'::regclass, c.oid, \
                  CASE WHEN c.relkind IN ('r', 'p') THEN 'table ' WHEN c.relkind IN ('v', 'm') THEN 'view ' \
                       WHEN c.relkind = 'S' THEN 'sequence ' ELSE 'type ' END || {rel} \
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
           WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'c') AND {USER_SCHEMA} \
           UNION ALL \
           SELECT 'pg_proc'::regclass, p.oid, 'function ' || quote_ident(n.nspname) || '.' || quote_ident(p.proname) \
                  || '(' || pg_get_function_identity_arguments(p.oid) || ')' \
           FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE {USER_SCHEMA} \
           UNION ALL \
           SELECT 'pg_collation'::regclass, co.oid, 'collation ' || quote_ident(n.nspname) || '.' || quote_ident(co.collname) \
           FROM pg_collation co JOIN pg_namespace n ON n.oid = co.collnamespace WHERE {USER_SCHEMA} \
           UNION ALL \
           SELECT 'pg_type'::regclass, t.oid, CASE t.typtype WHEN 'd' THEN 'domain ' ELSE 'type ' END \
                  || quote_ident(n.nspname) || '.' || quote_ident(t.typname) \
           FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
           WHERE t.typtype IN ('e', 'd') AND {USER_SCHEMA} \
         ), owner(classid, objid, key) AS ( \
           SELECT classid, objid, key FROM obj \
           UNION ALL SELECT 'pg_type'::regclass, t.oid, o.key FROM pg_type t \
             JOIN obj o ON o.classid = 'pg_class'::regclass AND o.objid = t.typrelid \
           UNION ALL SELECT 'pg_type'::regclass, t.oid, o.key FROM pg_type t \
             JOIN obj o ON o.classid = 'pg_type'::regclass AND o.objid = t.typelem WHERE t.typcategory = 'A' \
           UNION ALL SELECT 'pg_rewrite'::regclass, r.oid, o.key FROM pg_rewrite r \
             JOIN obj o ON o.classid = 'pg_class'::regclass AND o.objid = r.ev_class \
           UNION ALL SELECT 'pg_attrdef'::regclass, d.oid, 'default ' || substr(o.key, 7) || '.' || quote_ident(a.attname) \
             FROM pg_attrdef d JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum \
             JOIN obj o ON o.classid = 'pg_class'::regclass AND o.objid = d.adrelid \
           UNION ALL SELECT 'pg_trigger'::regclass, t.oid, o.key FROM pg_trigger t \
             JOIN obj o ON o.classid = 'pg_class'::regclass AND o.objid = t.tgrelid \
           UNION ALL SELECT 'pg_policy'::regclass, p.oid, o.key FROM pg_policy p \
             JOIN obj o ON o.classid = 'pg_class'::regclass AND o.objid = p.polrelid \
           UNION ALL SELECT 'pg_constraint'::regclass, con.oid, o.key FROM pg_constraint con \
             JOIN obj o ON (o.classid = 'pg_class'::regclass AND o.objid = con.conrelid) \
                        OR (o.classid = 'pg_type'::regclass AND o.objid = con.contypid) \
           UNION ALL SELECT 'pg_class'::regclass, i.indexrelid, o.key FROM pg_index i \
             JOIN obj o ON o.classid = 'pg_class'::regclass AND o.objid = i.indrelid \
         ) \
         SELECT DISTINCT a.key, b.key FROM pg_depend d \
         JOIN owner a ON a.classid = d.classid AND a.objid = d.objid \
         JOIN owner b ON b.classid = d.refclassid AND b.objid = d.refobjid \
         WHERE d.deptype = 'n' AND a.key <> b.key"
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
        let q = |sql: String| async move { client.query(&sql, &[]).await };

        for r in q(format!(
            "SELECT quote_ident(n.nspname) FROM pg_namespace n WHERE {USER_SCHEMA} AND {}",
            not_extension_member("pg_namespace", "n.oid")
        ))
        .await?
        {
            cat.schemas.insert(r.get(0));
        }

        for r in q(
            "SELECT quote_ident(e.extname), quote_ident(n.nspname) FROM pg_extension e \
                    JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname <> 'plpgsql'"
                .into(),
        )
        .await?
        {
            cat.extensions.insert(r.get(0), r.get(1));
        }

        for r in q(format!(
            "SELECT quote_ident(n.nspname) || '.' || quote_ident(t.typname), \
                    array_agg(e.enumlabel::text ORDER BY e.enumsortorder) \
             FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid JOIN pg_namespace n ON n.oid = t.typnamespace \
             WHERE {USER_SCHEMA} AND {} GROUP BY 1",
            not_extension_member("pg_type", "t.oid")
        ))
        .await?
        {
            cat.enums.insert(r.get(0), r.get(1));
        }

        for r in q(format!(
            "SELECT quote_ident(n.nspname) || '.' || quote_ident(t.typname), format_type(t.typbasetype, t.typtypmod), \
                    t.typnotnull, t.typdefault, \
                    coalesce((SELECT array_agg(quote_ident(con.conname) ORDER BY con.conname) FROM pg_constraint con WHERE con.contypid = t.oid), '{{}}'), \
                    coalesce((SELECT array_agg(pg_get_constraintdef(con.oid, true) ORDER BY con.conname) FROM pg_constraint con WHERE con.contypid = t.oid), '{{}}') \
             FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
             WHERE t.typtype = 'd' AND {USER_SCHEMA} AND {}",
            not_extension_member("pg_type", "t.oid")
        ))
        .await?
        {
            let names: Vec<String> = r.get(4);
            let defs: Vec<String> = r.get(5);
            cat.domains.insert(
                r.get(0),
                Domain {
                    base: r.get(1),
                    not_null: r.get(2),
                    default: r.get(3),
                    checks: names.into_iter().zip(defs).collect(),
                },
            );
        }

        for r in q(format!(
            "SELECT {}, format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement, s.seqmin, s.seqmax, s.seqcache, s.seqcycle, \
                    (SELECT quote_ident(tn.nspname) || '.' || quote_ident(tc.relname) || '.' || quote_ident(a.attname) \
                     FROM pg_depend d JOIN pg_class tc ON tc.oid = d.refobjid JOIN pg_namespace tn ON tn.oid = tc.relnamespace \
                     JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid \
                     WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'a' LIMIT 1) \
             FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE {USER_SCHEMA} AND {} \
               AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'i')",
            qname(),
            not_extension_member("pg_class", "c.oid")
        ))
        .await?
        {
            cat.sequences.insert(
                r.get(0),
                Sequence {
                    data_type: r.get(1),
                    start: r.get(2),
                    increment: r.get(3),
                    min: r.get(4),
                    max: r.get(5),
                    cache: r.get(6),
                    cycle: r.get(7),
                    owned_by: r.get(8),
                },
            );
        }

        let rel_filter = format!(
            "{USER_SCHEMA} AND {}",
            not_extension_member("pg_class", "c.oid")
        );
        for r in q(format!(
            "SELECT {}, c.relrowsecurity, c.relforcerowsecurity, c.relpersistence = 'u', \
                    CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END, \
                    CASE WHEN c.relispartition THEN pg_get_expr(c.relpartbound, c.oid) END \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p') AND {rel_filter}",
            qname()
        ))
        .await?
        {
            cat.tables.insert(
                r.get(0),
                Table {
                    columns: Vec::new(),
                    rls: r.get(1),
                    force_rls: r.get(2),
                    unlogged: r.get(3),
                    partition_by: r.get(4),
                    // The parent comes from pg_inherits, below.
                    partition_of: r
                        .get::<_, Option<String>>(5)
                        .map(|bound| (String::new(), bound)),
                    parents: Vec::new(),
                },
            );
        }
        for r in q(format!(
            "SELECT {}, quote_ident(a.attname), format_type(a.atttypid, a.atttypmod), a.attnotnull, \
                    CASE WHEN a.attgenerated = '' THEN pg_get_expr(ad.adbin, ad.adrelid) END, \
                    a.attidentity::text, \
                    CASE WHEN a.attgenerated <> '' THEN pg_get_expr(ad.adbin, ad.adrelid) END, \
                    CASE WHEN a.attcollation <> t.typcollation THEN {COLLATION_NAME} END, \
                    a.attislocal \
             FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_type t ON t.oid = a.atttypid \
             LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum \
             LEFT JOIN pg_collation co ON co.oid = a.attcollation \
             LEFT JOIN pg_namespace con ON con.oid = co.collnamespace \
             WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p') AND {rel_filter} \
             ORDER BY 1, a.attnum",
            qname()
        ))
        .await?
        {
            let table: String = r.get(0);
            if let Some(t) = cat.tables.get_mut(&table) {
                t.columns.push(Column {
                    name: r.get(1),
                    data_type: r.get(2),
                    not_null: r.get(3),
                    default: r.get(4),
                    identity: r.get(5),
                    generated: r.get(6),
                    collation: r.get(7),
                    local: r.get(8),
                });
            }
        }

        for r in q(format!(
            "SELECT {}, quote_ident(con.conname), con.contype::text, pg_get_constraintdef(con.oid, true) \
             FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p') AND con.conparentid = 0 AND con.conislocal AND {rel_filter}",
            qname()
        ))
        .await?
        {
            let kind: String = r.get(2);
            cat.constraints.insert(
                (r.get(0), r.get(1)),
                Constraint {
                    kind: kind.chars().next().unwrap_or('?'),
                    definition: r.get(3),
                },
            );
        }

        for r in q(format!(
            "SELECT quote_ident(n.nspname) || '.' || quote_ident(ic.relname), {}, pg_get_indexdef(i.indexrelid) \
             FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_class c ON c.oid = i.indrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE {rel_filter} AND NOT EXISTS (SELECT 1 FROM pg_constraint con WHERE con.conindid = i.indexrelid AND con.contype IN ('p', 'u', 'x')) \
               AND NOT ic.relispartition",
            qname()
        ))
        .await?
        {
            cat.indexes.insert(r.get(0), (r.get(1), r.get(2)));
        }

        for r in q(format!(
            "SELECT {}, c.relkind = 'm', pg_get_viewdef(c.oid, true), \
                    coalesce((SELECT array_agg(DISTINCT quote_ident(dn.nspname) || '.' || quote_ident(dc.relname)) \
                     FROM pg_rewrite rw JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = rw.oid \
                     JOIN pg_class dc ON dc.oid = d.refobjid AND d.refclassid = 'pg_class'::regclass \
                     JOIN pg_namespace dn ON dn.oid = dc.relnamespace \
                     WHERE rw.ev_class = c.oid AND d.refobjid <> c.oid), '{{}}') \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('v', 'm') AND {rel_filter}",
            qname()
        ))
        .await?
        {
            let def: String = r.get(2);
            let deps: Vec<String> = r.get(3);
            cat.views.insert(
                r.get(0),
                View {
                    materialized: r.get(1),
                    definition: def.trim().trim_end_matches(';').trim_end().to_owned(),
                    depends_on: deps.into_iter().collect(),
                },
            );
        }

        for r in q(format!(
            "SELECT quote_ident(n.nspname) || '.' || quote_ident(p.proname) || '(' || pg_get_function_identity_arguments(p.oid) || ')', \
                    pg_get_functiondef(p.oid), p.prokind::text, coalesce(pg_get_function_result(p.oid), '') \
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
             WHERE p.prokind IN ('f', 'p') AND {USER_SCHEMA} AND {}",
            not_extension_member("pg_proc", "p.oid")
        ))
        .await?
        {
            let kind: String = r.get(2);
            let def: String = r.get(1);
            cat.functions.insert(
                r.get(0),
                Function {
                    definition: def.trim_end().to_owned(),
                    kind: if kind == "p" { "PROCEDURE" } else { "FUNCTION" },
                    result: r.get(3),
                },
            );
        }

        for r in q(format!(
            "SELECT {}, quote_ident(t.tgname), pg_get_triggerdef(t.oid, true) \
             FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE NOT t.tgisinternal AND t.tgparentid = 0 AND {rel_filter}",
            qname()
        ))
        .await?
        {
            cat.triggers.insert((r.get(0), r.get(1)), r.get(2));
        }

        for r in q(format!(
            "SELECT {}, quote_ident(p.polname), \
                    'CREATE POLICY ' || quote_ident(p.polname) || ' ON ' || {} \
                    || ' AS ' || CASE WHEN p.polpermissive THEN 'PERMISSIVE' ELSE 'RESTRICTIVE' END \
                    || ' FOR ' || CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE' WHEN 'd' THEN 'DELETE' ELSE 'ALL' END \
                    || ' TO ' || coalesce((SELECT string_agg(CASE WHEN r = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(r)) END, ', ' ORDER BY 1) FROM unnest(p.polroles) r), 'PUBLIC') \
                    || coalesce(' USING (' || pg_get_expr(p.polqual, p.polrelid) || ')', '') \
                    || coalesce(' WITH CHECK (' || pg_get_expr(p.polwithcheck, p.polrelid) || ')', '') \
             FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE {rel_filter}",
            qname(),
            qname()
        ))
        .await?
        {
            cat.policies.insert((r.get(0), r.get(1)), r.get(2));
        }

        for r in q(format!(
            "SELECT CASE c.relkind WHEN 'v' THEN 'VIEW ' WHEN 'm' THEN 'MATERIALIZED VIEW ' ELSE 'TABLE ' END || {}, d.description \
             FROM pg_description d JOIN pg_class c ON c.oid = d.objoid AND d.classoid = 'pg_class'::regclass AND d.objsubid = 0 \
             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p', 'v', 'm') AND {rel_filter} \
             UNION ALL \
             SELECT 'COLUMN ' || {} || '.' || quote_ident(a.attname), d.description \
             FROM pg_description d JOIN pg_class c ON c.oid = d.objoid AND d.classoid = 'pg_class'::regclass \
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = d.objsubid \
             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE d.objsubid > 0 AND {rel_filter} \
             UNION ALL \
             SELECT CASE p.prokind WHEN 'p' THEN 'PROCEDURE ' ELSE 'FUNCTION ' END || quote_ident(n.nspname) || '.' || quote_ident(p.proname) || '(' || pg_get_function_identity_arguments(p.oid) || ')', d.description \
             FROM pg_description d JOIN pg_proc p ON p.oid = d.objoid AND d.classoid = 'pg_proc'::regclass \
             JOIN pg_namespace n ON n.oid = p.pronamespace WHERE {USER_SCHEMA} \
             UNION ALL \
             SELECT 'SCHEMA ' || quote_ident(n.nspname), d.description \
             FROM pg_description d JOIN pg_namespace n ON n.oid = d.objoid AND d.classoid = 'pg_namespace'::regclass \
             WHERE {USER_SCHEMA} AND n.nspname <> 'public' \
             UNION ALL \
             SELECT CASE t.typtype WHEN 'd' THEN 'DOMAIN ' ELSE 'TYPE ' END || quote_ident(n.nspname) || '.' || quote_ident(t.typname), d.description \
             FROM pg_description d JOIN pg_type t ON t.oid = d.objoid AND d.classoid = 'pg_type'::regclass \
             JOIN pg_namespace n ON n.oid = t.typnamespace WHERE {USER_SCHEMA}",
            qname(),
            qname()
        ))
        .await?
        {
            cat.comments.insert(r.get(0), r.get(1));
        }

        composite::read(client, &mut cat).await?;
        collation::read(client, &mut cat).await?;
        inherit::read(client, &mut cat).await?;
        inherit::read_cloned(client, &mut cat).await?;
        grants::read(client, &mut cat).await?;

        for r in q(depends_query()).await? {
            let (from, to): (String, String) = (r.get(0), r.get(1));
            // A default counts for its table too.
            if let Some(col) = from.strip_prefix("default ")
                && let Some((table, _)) = col.rsplit_once('.')
            {
                cat.depends
                    .entry(format!("table {table}"))
                    .or_default()
                    .insert(to.clone());
            }
            cat.depends.entry(from).or_default().insert(to);
        }
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
