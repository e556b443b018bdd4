//! `manage diff FROM TO`.

use std::path::PathBuf;
use std::process::ExitCode;

use super::{catalog_of_dump, catalog_of_models};
use crate::EXIT_DRIFT;
use crate::catalog::Catalog;
use crate::diff::diff;
use crate::opts::DiffArgs;
use crate::target::{Server, service_dsn};

fn is_url(s: &str) -> bool {
    s.starts_with("postgres://") || s.starts_with("postgresql://")
}

async fn side(spec: &str, shadow_server: &Server, role: &str) -> anyhow::Result<Catalog> {
    if is_url(spec) {
        let (server, db) = Server::from_dsn(spec)?;
        return Catalog::read(&server.connect(&db).await?).await;
    }
    let path = PathBuf::from(spec);
    let base = format!("manage_diff_{role}");
    if path.is_dir() {
        catalog_of_models(shadow_server, &base, &path).await
    } else {
        catalog_of_dump(shadow_server, &base, &path).await
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
    let from = side(&args.from, &server, "from").await?;
    let to = side(&args.to, &server, "to").await?;
    let plan = diff(&from, &to);
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
