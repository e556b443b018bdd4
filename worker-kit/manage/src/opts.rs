//! Command-line options; the doc comments are the `--help`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Schema drift between SQL model files and live PostgreSQL databases.
///
/// The desired schema of a service is models/SERVICE/**/*.sql (query files named
/// queries.sql or *.queries.sql are skipped). Its database is --database-url, else
/// DB_MAIN_DSN, else the database named after the service on the server that PGHOST,
/// PGPORT, PGUSER and PGPASSWORD name. A .env file in the current directory is read first
/// (variables already set win).
///
/// Exit codes: 0 in sync or applied, 2 drift found and not applied, 3 refused
/// (destructive statements without --unsafe), 1 error.
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
    /// Prints the plan, asks "Apply these changes? [y/N]", and applies it in one
    /// transaction, then checks that nothing is left to do. Creates the database when it
    /// does not exist.
    Sync(SyncArgs),
    /// Write migrations/SERVICE/pending.sql: what production needs to match the models.
    ///
    /// Production's current schema is migrations/SERVICE/production.dump.sql, made with
    /// `pg_dump --schema-only --no-owner --no-privileges DB > production.dump.sql`.
    Pending(PendingArgs),
    /// Print the statements that turn FROM into TO.
    ///
    /// Each side is a database URL (postgres://...), a models directory, or a pg_dump
    /// file (*.sql).
    Diff(DiffArgs),
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
    /// Apply without asking.
    #[arg(long)]
    pub noprompt: bool,
    /// Also apply statements that lose data (dropping tables, columns, types, schemas).
    #[arg(long = "unsafe")]
    pub allow_unsafe: bool,
    /// Change nothing: exit 2 when the database differs from the models (for CI).
    #[arg(long)]
    pub check: bool,
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
}
