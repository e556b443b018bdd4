//! Privileges granted on tables, views, sequences, schemas and functions, and on tables'
//! columns.
//!
//! The owner's own privileges are left out: the two sides' objects have different owners
//! (a shadow's belong to the shadow role), and an owner's rights are not granted anyway.
//! An ACL never set reads as the server's default for the kind (`acldefault`), so
//! `EXECUTE` for PUBLIC on functions compares equal to the same default on the other side.

use tokio_postgres::Client;

use super::{Catalog, USER_SCHEMA, not_extension_member};

/// The relation kinds whose column privileges are compared (tables); those on views stay
/// in the "not compared" list.
pub(super) const COLUMN_GRANTS_ON: &str = "c.relkind IN ('r', 'p')";

/// (`TABLE x` / `COLUMN x.c` / `SEQUENCE x` / `SCHEMA x` / `FUNCTION x(args)` / `PROCEDURE x(args)`,
/// grantee or `PUBLIC`).
pub(crate) type GrantKey = (String, String);

/// Privileges, each with whether it may be granted on.
pub(crate) type Privileges = std::collections::BTreeSet<(String, bool)>;

pub(super) async fn read(client: &Client, cat: &mut Catalog) -> anyhow::Result<()> {
    let grantee =
        "CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END";
    let sql = format!(
        "SELECT CASE WHEN c.relkind = 'S' THEN 'SEQUENCE ' ELSE 'TABLE ' END \
                || quote_ident(n.nspname) || '.' || quote_ident(c.relname), {grantee}, \
                a.privilege_type, a.is_grantable \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, \
              aclexplode(coalesce(c.relacl, acldefault(CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::\"char\", c.relowner))) a \
         WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S') AND a.grantee <> c.relowner AND {USER_SCHEMA} AND {} \
         UNION ALL \
         SELECT 'SCHEMA ' || quote_ident(n.nspname), {grantee}, a.privilege_type, a.is_grantable \
         FROM pg_namespace n, aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a \
         WHERE a.grantee <> n.nspowner AND {USER_SCHEMA} AND {} \
         UNION ALL \
         SELECT CASE p.prokind WHEN 'p' THEN 'PROCEDURE ' ELSE 'FUNCTION ' END || quote_ident(n.nspname) || '.' \
                || quote_ident(p.proname) || '(' || pg_get_function_identity_arguments(p.oid) || ')', \
                {grantee}, a.privilege_type, a.is_grantable \
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace, \
              aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a \
         WHERE p.prokind IN ('f', 'p') AND a.grantee <> p.proowner AND {USER_SCHEMA} AND {} \
         UNION ALL \
         SELECT 'COLUMN ' || quote_ident(n.nspname) || '.' || quote_ident(c.relname) || '.' || quote_ident(att.attname), \
                {grantee}, a.privilege_type, a.is_grantable \
         FROM pg_attribute att JOIN pg_class c ON c.oid = att.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace, \
              aclexplode(att.attacl) a \
         WHERE att.attacl IS NOT NULL AND att.attnum > 0 AND NOT att.attisdropped AND {COLUMN_GRANTS_ON} \
           AND a.grantee <> c.relowner AND {USER_SCHEMA} AND {}",
        not_extension_member("pg_class", "c.oid"),
        not_extension_member("pg_namespace", "n.oid"),
        not_extension_member("pg_proc", "p.oid"),
        not_extension_member("pg_class", "c.oid"),
    );
    for r in client.query(&sql, &[]).await? {
        cat.grants
            .entry((r.get(0), r.get(1)))
            .or_default()
            .insert((r.get(2), r.get(3)));
    }
    Ok(())
}
