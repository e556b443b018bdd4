//! `manage sync`.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use anyhow::anyhow;

use super::{catalog_of_models, service_name};
use crate::catalog::Catalog;
use crate::diff::diff;
use crate::opts::SyncArgs;
use crate::plan::Plan;
use crate::target::{Server, pg_message, service_dsn};
use crate::{EXIT_DRIFT, EXIT_REFUSED};

pub(crate) async fn run(args: SyncArgs) -> anyhow::Result<ExitCode> {
    let service = service_name(&args.service)?;
    let dir = args.service.models_dir.join(&service);
    let dsn = service_dsn(args.database_url.as_deref(), &service);
    let (server, db) = Server::from_dsn(&dsn)?;
    if !server.exists(&db).await? {
        if args.check {
            println!("Database {db} does not exist on {}.", server.shown());
            return Ok(ExitCode::from(EXIT_DRIFT));
        }
        println!("Creating database {db} on {}.", server.shown());
        server.create(&db).await?;
    }
    let desired = catalog_of_models(&server, &db, &dir).await?;
    let target = server.connect(&db).await?;
    let current = Catalog::read(&target).await?;
    let plan = diff(&current, &desired);
    if plan.is_empty() {
        println!("Already in sync.");
        return Ok(ExitCode::SUCCESS);
    }
    print!("{}", plan.to_sql());
    if !plan.unsupported.is_empty() {
        eprintln!(
            "Refused: some differences need a hand-written migration (see NOT HANDLED above)."
        );
        return Ok(ExitCode::from(EXIT_REFUSED));
    }
    if args.check {
        eprintln!(
            "Drift: {db} differs from {} ({} statements).",
            dir.display(),
            plan.steps.len()
        );
        return Ok(ExitCode::from(EXIT_DRIFT));
    }
    let losing: Vec<&str> = plan.destructive().map(|s| s.sql.as_str()).collect();
    if !losing.is_empty() && !args.allow_unsafe {
        eprintln!(
            "Refused: {} statement(s) would lose data ({}). Re-run with --unsafe to apply them.",
            losing.len(),
            losing.join("; ")
        );
        return Ok(ExitCode::from(EXIT_REFUSED));
    }
    if !args.noprompt && !confirm()? {
        println!("Nothing applied.");
        return Ok(ExitCode::from(EXIT_DRIFT));
    }
    apply(&target, &plan).await?;
    let after = Catalog::read(&target).await?;
    let rest = diff(&after, &desired);
    if rest.is_empty() {
        println!(
            "Applied {} statement(s); {db} now matches the models.",
            plan.steps.len()
        );
        Ok(ExitCode::SUCCESS)
    } else {
        print!("{}", rest.to_sql());
        Err(anyhow!(
            "after applying, {db} still differs from the models by the statements above"
        ))
    }
}

fn confirm() -> anyhow::Result<bool> {
    print!("Apply these changes? [y/N] ");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(matches!(
        line.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

/// Runs `plan` on `client`: statements that cannot run in a transaction first, then the rest in one
/// transaction (all or nothing).
///
/// # Errors
///
/// The first statement that fails (nothing of the transaction is applied then).
pub async fn apply(client: &tokio_postgres::Client, plan: &Plan) -> anyhow::Result<()> {
    for s in plan.steps.iter().filter(|s| s.outside_transaction) {
        client
            .batch_execute(&s.sql)
            .await
            .map_err(|e| anyhow!("{}: {}", s.sql, pg_message(&e)))?;
    }
    client.batch_execute("BEGIN").await?;
    for s in plan.steps.iter().filter(|s| !s.outside_transaction) {
        if let Err(e) = client.batch_execute(&s.sql).await {
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(anyhow!("nothing applied: {}: {}", s.sql, pg_message(&e)));
        }
    }
    client.batch_execute("COMMIT").await?;
    Ok(())
}
