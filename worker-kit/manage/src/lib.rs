//! `manage`: what the Python seed's `manage.py` did with migra, on PostgreSQL's own terms.
//!
//! The desired schema is what PostgreSQL makes of the model files: they are loaded into a
//! shadow database, both sides are read back from the system catalogs with the same
//! queries (so the server normalizes types, defaults and expressions), the two catalog
//! models are diffed, and the statements are ordered so that each one's dependencies exist
//! when it runs. Statements that lose data are refused unless `--unsafe` is given.
//!
//! Model and dump SQL runs in the shadows as an unprivileged role ([`Loader`]), never as
//! the target's. Statements that lose data or weaken access control are refused by `sync`
//! unless `--unsafe` is given.
//!
//! Exit codes: 0 in sync (or applied), 2 drift found and not applied, 3 refused, 1 error.

mod apply;
mod catalog;
mod cmd;
mod diff;
mod fingerprint;
mod load;
mod opts;
mod plan;
mod target;

pub use apply::{Limits, apply, apply_plan, apply_with_lock_timeout};
pub use catalog::Catalog;
pub use cmd::{catalog_of_files, catalog_with};
pub use diff::{diff, diff_with};
pub use load::{ModelFile, load_into, load_models, split_statements};
pub use opts::{Command, Opts, normalize_args};
pub use plan::{Batch, Hazard, Plan, Step};
pub use target::{Loader, SHADOW_ROLE, Server, Shadow, ShadowInfo, TargetLock};

use std::process::ExitCode;

/// The first key of the advisory lock a sync holds on its target.
pub const LOCK_CLASS: i32 = 0x6d67_6d74;

/// Exit code: drift found and not applied.
pub const EXIT_DRIFT: u8 = 2;
/// Exit code: destructive statements refused.
pub const EXIT_REFUSED: u8 = 3;

/// Runs a parsed command line.
///
/// # Errors
///
/// Anything that stops the command (unreachable database, a model file that fails, ...);
/// `main` prints it and exits 1.
pub async fn run(opts: Opts) -> anyhow::Result<ExitCode> {
    load_dotenv()?;
    match opts.command {
        Command::Sync(args) => cmd::sync::run(args).await,
        Command::Pending(args) => cmd::pending::run(args).await,
        Command::Diff(args) => cmd::diff::run(args).await,
        Command::Shadows(args) => cmd::shadows::run(args).await,
    }
}

fn load_dotenv() -> anyhow::Result<()> {
    match dotenvy::dotenv() {
        Ok(_) => Ok(()),
        Err(e) if e.not_found() => Ok(()),
        Err(e) => Err(anyhow::anyhow!(".env: {e}")),
    }
}
