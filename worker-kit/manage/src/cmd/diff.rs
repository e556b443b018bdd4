//! `manage diff FROM TO`: prints, never refuses, never applies.

use std::path::PathBuf;
use std::process::ExitCode;

use super::{catalog_once, dump_file, model_files};
use crate::EXIT_DRIFT;
use crate::catalog::Catalog;
use crate::diff::diff;
use crate::opts::DiffArgs;
use crate::target::{Loader, Server, service_dsn};

fn is_url(s: &str) -> bool {
    s.starts_with("postgres://") || s.starts_with("postgresql://")
}

/// One side's catalog: read from its database, or loaded (as `loader`) into a shadow made
/// for this run and dropped after it.
async fn side(
    spec: &str,
    shadow_server: &Server,
    loader: Option<&Loader>,
    role: &str,
) -> anyhow::Result<Catalog> {
    let path = PathBuf::from(spec);
    match loader {
        Some(loader) if !is_url(spec) => {
            let (files, dump) = if path.is_dir() {
                (model_files(&path)?, false)
            } else {
                (dump_file(&path)?, true)
            };
            catalog_once(shadow_server, loader, role, &files, dump).await
        }
        _ => {
            let (server, db) = Server::from_dsn(spec)?;
            Catalog::read(&server.connect(&db).await?).await
        }
    }
}

pub(crate) async fn run(args: DiffArgs) -> anyhow::Result<ExitCode> {
    // Shadows live on the server given, else the server of a URL side, else PGHOST.
    let url = args
        .database_url
        .clone()
        .or_else(|| {
            [&args.from, &args.to]
                .into_iter()
                .find(|s| is_url(s))
                .cloned()
        })
        .unwrap_or_else(|| service_dsn(None, "postgres"));
    let (server, _) = Server::from_dsn(&url)?;
    let loader = if is_url(&args.from) && is_url(&args.to) {
        None
    } else {
        Some(Loader::prepare(&server, args.shadow.shadow_url.as_deref()).await?)
    };
    let from = side(&args.from, &server, loader.as_ref(), "from").await?;
    let to = side(&args.to, &server, loader.as_ref(), "to").await?;
    let plan = diff(&from, &to);
    super::print_not_compared(&plan);
    if plan.is_empty() {
        eprintln!("No differences.");
        return Ok(ExitCode::SUCCESS);
    }
    print!("{}", plan.to_sql());
    Ok(if args.check {
        ExitCode::from(EXIT_DRIFT)
    } else {
        ExitCode::SUCCESS
    })
}
