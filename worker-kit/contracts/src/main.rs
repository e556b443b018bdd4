//! `contracts`: the compatibility gate over the services' AsyncAPI documents.
//!
//! `contracts check [--base REF] [--docs DIR] [--json]` compares the documents committed at
//! REF (default: the merge-base of HEAD with `main`) with those in DIR (default: the
//! working tree's `docs/asyncapi`); `contracts compare OLD_DIR NEW_DIR [--json]` compares
//! two directories. Exit 0 when compatible, 1 on a break, 2 when the check cannot run.
//! `scripts/pj contracts check` generates fresh documents first.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use worker_kit_contracts::gate::{Break, Documents, check};
use worker_kit_contracts::git;

#[derive(Parser)]
#[command(
    name = "contracts",
    about = "Are the services' contracts still compatible with a base revision?"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Compare the documents committed at a git revision with a directory of documents.
    Check {
        /// The revision to stay compatible with (default: the merge-base of HEAD with main).
        #[arg(long)]
        base: Option<String>,
        /// The new documents (default: docs/asyncapi of the working tree).
        #[arg(long)]
        docs: Option<PathBuf>,
        /// One JSON object on stdout instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Compare two directories of documents.
    Compare {
        /// The old documents (SERVICE.json).
        old: PathBuf,
        /// The new documents.
        new: PathBuf,
        /// One JSON object on stdout instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("contracts: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<bool> {
    let (base_name, base, head, json) = match cli.command {
        Command::Check { base, docs, json } => {
            let repo = git::top_level(&std::env::current_dir()?)?;
            let base = match base {
                Some(b) => b,
                None => git::default_base(&repo)?,
            };
            let docs = docs.unwrap_or_else(|| repo.join(git::DOCS_DIR));
            (
                base.clone(),
                git::documents_at(&repo, &base)?,
                git::documents_in(&docs)?,
                json,
            )
        }
        Command::Compare { old, new, json } => (
            old.display().to_string(),
            git::documents_in(&old)?,
            git::documents_in(&new)?,
            json,
        ),
    };
    let breaks = check(&base, &head).map_err(anyhow::Error::msg)?;
    report(&base_name, &base, &head, &breaks, json)?;
    Ok(breaks.is_empty())
}

fn report(
    base_name: &str,
    base: &Documents,
    head: &Documents,
    breaks: &[Break],
    json: bool,
) -> Result<()> {
    if json {
        let out = serde_json::json!({
            "base": base_name,
            "compatible": breaks.is_empty(),
            "services": head.keys().collect::<Vec<_>>(),
            "breaks": breaks,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    for b in breaks {
        println!("BREAK {b}\n");
    }
    let services = base
        .keys()
        .chain(head.keys())
        .collect::<std::collections::BTreeSet<_>>();
    if breaks.is_empty() {
        println!(
            "contracts: compatible with {base_name} ({} service(s): {})",
            services.len(),
            services.into_iter().cloned().collect::<Vec<_>>().join(", ")
        );
    } else {
        println!(
            "contracts: {} break(s) against {base_name}; old callers or subscribers would fail during a rolling deploy",
            breaks.len()
        );
    }
    Ok(())
}
