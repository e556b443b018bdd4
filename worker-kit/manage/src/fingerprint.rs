//! A fingerprint of a database's schema that manage and PostgreSQL compute alike: the same
//! query runs on the shadow loaded from a dump (by `manage pending`) and, inside the guard
//! at the top of `pending.sql`, on the database the script is run on.
//!
//! It covers what the plan relies on and what is stable across servers and major
//! versions: the names of schemas, relations (with their kind), columns (with their type as
//! `format_type` prints it and NOT NULL), constraints (kind, validated or not), indexes
//! (valid or not), functions (identity arguments), types, enum labels, triggers and
//! policies. It leaves out what differs between a dump's shadow and production without
//! changing what the plan does: owners, grants, extensions' own objects, and the text of
//! expressions and bodies (which the server's version may print differently). Rows are
//! ordered by byte (`COLLATE "C"`), whatever the database's collation.

use tokio_postgres::Client;

/// The query: one row, one column, the fingerprint (an md5 in hex). It must run with
/// `search_path` set to `pg_catalog` (`format_type` qualifies names relative to it).
pub(crate) const QUERY: &str = r#"SELECT md5(coalesce(string_agg(x, E'\n' ORDER BY x COLLATE "C"), '')) FROM (
  SELECT 'schema ' || n.nspname AS x FROM pg_namespace n
   WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND n.nspname NOT LIKE 'pg\_%'
     AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_namespace'::regclass AND d.objid = n.oid AND d.deptype = 'e')
  UNION ALL
  SELECT 'rel ' || n.nspname || '.' || c.relname || ' ' || c.relkind::text
         || CASE WHEN c.relkind IN ('i', 'I') AND NOT i.indisvalid THEN ' invalid' ELSE '' END
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace LEFT JOIN pg_index i ON i.indexrelid = c.oid
   WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f', 'i', 'I', 'c')
     AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND n.nspname NOT LIKE 'pg\_%'
     AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
  UNION ALL
  SELECT 'col ' || n.nspname || '.' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
         || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'c')
     AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND n.nspname NOT LIKE 'pg\_%'
     AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
  UNION ALL
  SELECT 'con ' || n.nspname || '.' || coalesce(c.relname, t.typname) || ' ' || con.conname || ' ' || con.contype::text
         || CASE WHEN con.convalidated THEN '' ELSE ' not valid' END
    FROM pg_constraint con JOIN pg_namespace n ON n.oid = con.connamespace
         LEFT JOIN pg_class c ON c.oid = con.conrelid LEFT JOIN pg_type t ON t.oid = con.contypid
   WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND n.nspname NOT LIKE 'pg\_%'
     AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = coalesce(c.oid, t.oid) AND d.deptype = 'e')
  UNION ALL
  SELECT 'fn ' || n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')'
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
   WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND n.nspname NOT LIKE 'pg\_%'
     AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
  UNION ALL
  SELECT 'type ' || n.nspname || '.' || t.typname || ' ' || t.typtype::text || coalesce(' ' || e.enumlabel, '')
    FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace LEFT JOIN pg_enum e ON e.enumtypid = t.oid
   WHERE t.typtype IN ('e', 'd', 'r')
     AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND n.nspname NOT LIKE 'pg\_%'
     AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e')
  UNION ALL
  SELECT 'trigger ' || n.nspname || '.' || c.relname || ' ' || tg.tgname
    FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE NOT tg.tgisinternal AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND n.nspname NOT LIKE 'pg\_%'
  UNION ALL
  SELECT 'policy ' || n.nspname || '.' || c.relname || ' ' || pol.polname
    FROM pg_policy pol JOIN pg_class c ON c.oid = pol.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace
) s"#;

/// The fingerprint of the schema of the database behind `client`.
///
/// # Errors
///
/// When the query fails.
pub(crate) async fn of(client: &Client) -> anyhow::Result<String> {
    client
        .batch_execute("BEGIN READ ONLY; SET LOCAL search_path = pg_catalog")
        .await?;
    let row = client.query_one(QUERY, &[]).await;
    let _ = client.batch_execute("COMMIT").await;
    Ok(row?.get(0))
}

/// The statement that stops a script, changing nothing, when the database it runs on does
/// not have the schema of fingerprint `expected`.
pub(crate) fn guard(expected: &str, dump: &str) -> String {
    format!(
        "DO $manage_guard$\n\
         DECLARE\n    found text;\n\
         BEGIN\n    \
             PERFORM set_config('search_path', 'pg_catalog', true);\n    \
             {query} INTO found;\n    \
             IF found IS DISTINCT FROM '{expected}' THEN\n        \
                 RAISE EXCEPTION 'manage: this database''s schema (fingerprint %) is not the one this script was made from (%); nothing was changed', found, '{expected}'\n            \
                 USING HINT = 'Dump this database again into {dump} and run manage pending.';\n    \
             END IF;\n\
         END\n\
         $manage_guard$",
        query = QUERY.replace('\n', "\n    "),
        dump = dump.replace('\'', "''"),
    )
}
