//! Command-line options; the doc comments are the `--help`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Schema drift between SQL model files and live PostgreSQL databases.
///
/// The desired schema of a service is models/SERVICE/**/*.sql (query files named
/// queries.sql or *.queries.sql are skipped). Its database is --database-url, else
/// DB_MAIN_DSN, else the database named after the service on the server that PGHOST,
/// PGPORT, PGUSER and PGPASSWORD name. PGSSLMODE and PGSSLROOTCERT give the sslmode and
/// sslrootcert of every DSN that names none (as in libpq; sslmode=allow and client
/// certificates are not supported). A .env file in the current directory is read first
/// (variables already set win).
///
/// Model and dump SQL never runs as the target's role: manage loads it into its shadow
/// databases (manage_shadow_*) as a role without superuser, file or program access
/// (manage_shadow, created when missing, or the role of --shadow-url), in one transaction.
///
/// Exit codes: 0 in sync or applied, 2 drift found and not applied, 3 refused, 1 error.
/// `sync` refuses (exit 3), and applies nothing, when the plan would lose data (drops a
/// table, column, sequence or schema; narrows a column type; turns a column into a
/// generated one; removes enum values) or weaken access control (drops a policy,
/// disables row-level security), unless --unsafe is given; what rewrites a table that has
/// rows or blocks its writes while it scans (`rewrite`, `lock`) unless --allow-hazard KIND;
/// and always when a difference needs a hand-written migration (e.g. a NOT NULL column
/// without a default added to a table that has rows; a table with rows switched between
/// plain and partitioned, which manage can only drop and create again), or when the
/// database changed while the prompt waited.
///
/// Plans run in steps that keep the database writable (see `sync --help`); `diff`, `sync`
/// and `pending` print each step and the transaction it runs in.
/// `diff` only prints: it never refuses and never applies.
#[derive(Debug, Parser)]
#[command(name = "manage", version)]
pub struct Opts {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Bring the service's development database in line with its model files.
    ///
    /// Prints the plan, asks "Apply these changes? [y/N]", and applies it in steps, then
    /// checks that nothing is left to do. Creates the database when it does not exist.
    ///
    /// Steps keep the database writable: statements on new objects share one short
    /// transaction; a statement that locks an existing table runs in a transaction of its
    /// own; indexes on existing tables are built and dropped CONCURRENTLY (outside any
    /// transaction; a failed build's invalid index is dropped); foreign keys and CHECKs
    /// are added NOT VALID and validated in a later step; SET NOT NULL is proved by a
    /// validated CHECK (col IS NOT NULL) first (on PostgreSQL 18+: NOT NULL ... NOT VALID,
    /// then validated); PRIMARY KEY and UNIQUE (INCLUDE and NULLS NOT DISTINCT too) get
    /// their index built CONCURRENTLY, then are added USING INDEX; an index on a
    /// partitioned table is built CONCURRENTLY per partition, made ON ONLY the partitioned
    /// table and the partitions' indexes attached; a domain CHECK is added NOT VALID and
    /// validated in its own step (before PostgreSQL 19 that still blocks writes to the
    /// tables using the domain: tagged `lock`). Every statement runs under --lock-timeout
    /// and --statement-timeout. --atomic applies the plain forms in one transaction.
    ///
    /// Holds an advisory lock on the database while it runs (a second sync of the same
    /// database fails at once), re-reads the database after the prompt and refuses if it
    /// changed. Refuses (exit 3) what loses data or weakens access control unless
    /// --unsafe, and what rewrites or long-locks a table with rows unless
    /// --allow-hazard KIND.
    Sync(SyncArgs),
    /// Write migrations/SERVICE/pending.sql: what production needs to match the models.
    ///
    /// Production's current schema is migrations/SERVICE/production.dump.sql, made with
    /// `pg_dump --schema-only --no-owner DB > production.dump.sql` (its GRANTs are
    /// compared; those to roles this server does not have are skipped with a warning).
    ///
    /// The script runs in the same steps as `sync` (online forms, a transaction per
    /// statement on an existing table) under SET lock_timeout and statement_timeout. Its
    /// header records a fingerprint of the dump's schema, and its first statement
    /// recomputes it on the database it runs on and aborts, changing nothing, when they
    /// differ. --check exits 2 when the file on disk is stale.
    Pending(PendingArgs),
    /// Print the statements that turn FROM into TO.
    ///
    /// Each side is a database URL (postgres://...), a models directory, or a pg_dump
    /// file (*.sql); files are loaded into shadow databases made for the run and dropped
    /// after it. `diff` only prints, hazards included as comments: it never refuses and
    /// never applies (exit 0, or 2 with --check when there is a difference); `sync` is
    /// what refuses.
    Diff(DiffArgs),
    /// List manage's shadow databases on the server, or drop those whose target is gone.
    ///
    /// `sync` keeps one shadow per target (manage_shadow_models_*) so a no-op sync need
    /// not reload the models; when the target is dropped, its shadow is left behind. `sync`
    /// prunes them at start; `shadows prune` does it on demand.
    Shadows(ShadowsArgs),
}

/// `manage shadows`.
#[derive(Debug, Clone, Args)]
pub struct ShadowsArgs {
    /// What to do.
    #[arg(value_enum)]
    pub action: ShadowsAction,
    /// The server (default: DB_MAIN_DSN's server, else PGHOST).
    #[arg(long)]
    pub database_url: Option<String>,
}

/// What `manage shadows` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ShadowsAction {
    /// Print each shadow, the target it is kept for, and whether that still exists.
    List,
    /// Drop the shadows whose target no longer exists.
    Prune,
}

/// Where the models and the service's database are.
#[derive(Debug, Clone, Args)]
pub struct ServiceArgs {
    /// The service (a directory under --models-dir); optional when there is only one.
    #[arg(long, short)]
    pub service: Option<String>,
    /// The directory holding one directory of model files per service.
    #[arg(long, default_value = "models")]
    pub models_dir: PathBuf,
}

/// `manage sync`.
#[derive(Debug, Clone, Args)]
pub struct SyncArgs {
    #[command(flatten)]
    pub service: ServiceArgs,
    /// The database to sync (default: DB_MAIN_DSN, else the service's database on PGHOST).
    #[arg(long)]
    pub database_url: Option<String>,
    /// Apply without asking (the bare word `noprompt` works too, as in the seed).
    #[arg(long)]
    pub noprompt: bool,
    /// Also apply statements that lose data or weaken access control (dropping tables,
    /// columns, types, schemas, policies; narrowing types; disabling row-level security).
    #[arg(long = "unsafe")]
    pub allow_unsafe: bool,
    /// Change nothing: exit 2 when the database differs from the models (for CI).
    #[arg(long)]
    pub check: bool,
    /// How long a statement may wait for a lock (PostgreSQL's lock_timeout): an ALTER
    /// TABLE queued behind a long transaction would otherwise stall every query on that
    /// table behind it. A step whose lock is not had in time is rolled back and retried
    /// (--lock-retries), then the sync fails naming the step and the sessions holding
    /// the lock.
    #[arg(long, default_value = crate::apply::DEFAULT_LOCK_TIMEOUT, value_name = "DURATION")]
    pub lock_timeout: String,
    /// How long any one statement may run (PostgreSQL's statement_timeout).
    #[arg(long, default_value = crate::apply::DEFAULT_STATEMENT_TIMEOUT, value_name = "DURATION")]
    pub statement_timeout: String,
    /// How many times a step whose lock was not had within --lock-timeout is tried
    /// again, with growing pauses (from 0.5 s, doubling, with jitter).
    #[arg(long, default_value_t = crate::apply::DEFAULT_LOCK_RETRIES, value_name = "N")]
    pub lock_retries: usize,
    /// Apply the whole plan in one transaction (all or nothing), with the plain forms
    /// (CREATE INDEX, constraints validated at once, SET NOT NULL by a scan): for
    /// development databases. Every lock is then held until the end.
    #[arg(long)]
    pub atomic: bool,
    /// Apply statements of this hazard: `rewrite` (a table with rows rewritten under
    /// ACCESS EXCLUSIVE: int to bigint, a column added with a volatile default), `lock`
    /// (writes blocked while a scan or build runs), `data-loss`, `security`. Repeatable;
    /// --unsafe allows every kind.
    #[arg(long, value_enum, value_name = "KIND")]
    pub allow_hazard: Vec<crate::plan::Hazard>,
    #[command(flatten)]
    pub shadow: ShadowArgs,
}

/// Where model and dump SQL is loaded.
#[derive(Debug, Clone, Args)]
pub struct ShadowArgs {
    /// Log in to the shadow databases as this DSN's role (it must not be a superuser nor
    /// have server file or program access). Default: the role manage_shadow, created when
    /// missing and given a fresh random password each run.
    #[arg(long, value_name = "URL")]
    pub shadow_url: Option<String>,
}

/// `manage pending`.
#[derive(Debug, Clone, Args)]
pub struct PendingArgs {
    #[command(flatten)]
    pub service: ServiceArgs,
    /// The directory holding migrations/SERVICE/.
    #[arg(long, default_value = "migrations")]
    pub migrations_dir: PathBuf,
    /// The server for the shadow databases (default: DB_MAIN_DSN's server, else PGHOST).
    #[arg(long)]
    pub database_url: Option<String>,
    /// Write nothing: exit 2 when pending.sql on disk is not what it would be now (for CI).
    #[arg(long)]
    pub check: bool,
    /// The lock_timeout pending.sql sets for its statements.
    #[arg(long, default_value = crate::apply::DEFAULT_LOCK_TIMEOUT, value_name = "DURATION")]
    pub lock_timeout: String,
    /// The statement_timeout pending.sql sets for its statements.
    #[arg(long, default_value = crate::apply::DEFAULT_STATEMENT_TIMEOUT, value_name = "DURATION")]
    pub statement_timeout: String,
    #[command(flatten)]
    pub shadow: ShadowArgs,
}

/// `manage diff`.
#[derive(Debug, Clone, Args)]
pub struct DiffArgs {
    /// The current side: a database URL, a models directory or a dump file.
    pub from: String,
    /// The desired side: a database URL, a models directory or a dump file.
    pub to: String,
    /// The server for shadow databases when a side is files (default: PGHOST).
    #[arg(long)]
    pub database_url: Option<String>,
    /// Exit 2 when there is a difference.
    #[arg(long)]
    pub check: bool,
    #[command(flatten)]
    pub shadow: ShadowArgs,
}

/// The seed's spellings: `manage sync noprompt` (bare words) for `--noprompt` and the other
/// switches of `sync`, so old scripts keep working. Only words after `sync` are
/// rewritten, and only those that are exactly a switch's name.
pub fn normalize_args<I: IntoIterator<Item = String>>(args: I) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_sync = false;
    let mut after_value_flag = false;
    for a in args {
        let bare =
            in_sync && !after_value_flag && matches!(a.as_str(), "noprompt" | "unsafe" | "check");
        after_value_flag = in_sync
            && a.starts_with("--")
            && !a.contains('=')
            && matches!(
                a.as_str(),
                "--database-url"
                    | "--service"
                    | "--models-dir"
                    | "--lock-timeout"
                    | "--statement-timeout"
                    | "--lock-retries"
                    | "--allow-hazard"
                    | "--shadow-url"
            );
        if !in_sync && out.len() == 1 && a == "sync" {
            in_sync = true;
        }
        out.push(if bare { format!("--{a}") } else { a });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn seed_spellings_are_aliases() {
        assert_eq!(
            normalize_args(v(&["manage", "sync", "noprompt", "unsafe"])),
            v(&["manage", "sync", "--noprompt", "--unsafe"])
        );
        // A value that happens to be a switch's name stays a value.
        assert_eq!(
            normalize_args(v(&["manage", "sync", "--service", "check"])),
            v(&["manage", "sync", "--service", "check"])
        );
        assert_eq!(
            normalize_args(v(&["manage", "diff", "check", "b"])),
            v(&["manage", "diff", "check", "b"])
        );
    }
}
