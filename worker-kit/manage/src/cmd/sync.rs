//! `manage sync`.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use anyhow::anyhow;

use super::{catalog_with, model_files, service_name};
use crate::catalog::Catalog;
use crate::diff::diff;
use crate::opts::SyncArgs;
use crate::plan::{Hazard, Plan};
use crate::target::{Loader, Server, TargetLock, pg_message, service_dsn};
use crate::{EXIT_DRIFT, EXIT_REFUSED};

/// The lock timeout `apply` uses.
pub(crate) const DEFAULT_LOCK_TIMEOUT: &str = "5s";

pub(crate) async fn run(args: SyncArgs) -> anyhow::Result<ExitCode> {
    let service = service_name(&args.service)?;
    let dir = args.service.models_dir.join(&service);
    let dsn = service_dsn(args.database_url.as_deref(), &service);
    let (server, db) = Server::from_dsn(&dsn)?;
    let _lock = TargetLock::take(&server, &db).await?;
    if !server.exists(&db).await? {
        if args.check {
            println!("Database {db} does not exist on {}.", server.shown());
            return Ok(ExitCode::from(EXIT_DRIFT));
        }
        println!("Creating database {db} on {}.", server.shown());
        server.create(&db).await?;
    }
    let loader = Loader::prepare(&server, args.shadow.shadow_url.as_deref()).await?;
    let files = model_files(&dir)?;
    let desired = catalog_with(&server, &loader, &db, "models", &files, false).await?;
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
    if let Some(refusal) = tables_with_rows(&target, &plan).await? {
        eprintln!("{refusal}");
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
    if !args.allow_unsafe && plan.refused().next().is_some() {
        eprintln!("{}", refusal(&plan));
        return Ok(ExitCode::from(EXIT_REFUSED));
    }
    if !args.noprompt {
        if !confirm()? {
            println!("Nothing applied.");
            return Ok(ExitCode::from(EXIT_DRIFT));
        }
        // The plan is only right for the schema it was made from.
        if Catalog::read(&target).await? != current {
            eprintln!(
                "Refused: {db} changed while the prompt waited; nothing applied. Run sync again to see the new plan."
            );
            return Ok(ExitCode::from(EXIT_REFUSED));
        }
    }
    apply_with_lock_timeout(&target, &plan, &args.lock_timeout).await?;
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

/// The refusal for statements that cannot apply because their table has rows (a NOT NULL
/// column without a default), if any.
async fn tables_with_rows(
    target: &tokio_postgres::Client,
    plan: &Plan,
) -> anyhow::Result<Option<String>> {
    let mut lines = Vec::new();
    for (table, sql) in &plan.needs_empty {
        // `table` comes from the catalog, already quoted and qualified.
        let has_rows: bool = target
            .query_one(&format!("SELECT EXISTS (SELECT 1 FROM {table})"), &[])
            .await?
            .get(0);
        if has_rows {
            lines.push(format!("  {sql}"));
        }
    }
    Ok((!lines.is_empty()).then(|| {
        format!(
            "Refused, nothing applied: these add a NOT NULL column without a default to a table that has rows, which PostgreSQL refuses:\n{}\n\
             In the model, give the column a DEFAULT (NOT NULL DEFAULT <value>); or add it without NOT NULL, \
             sync, fill it (UPDATE), then add NOT NULL and sync again.",
            lines.join("\n")
        )
    }))
}

/// What `sync` says when it refuses a plan without `--unsafe`.
fn refusal(plan: &Plan) -> String {
    let list = |h: Hazard| -> Vec<&str> {
        plan.steps
            .iter()
            .filter(|s| s.hazard == Some(h))
            .map(|s| s.sql.as_str())
            .collect()
    };
    let mut out = String::from("Refused, nothing applied:");
    let loss = list(Hazard::DataLoss);
    if !loss.is_empty() {
        out.push_str(&format!(
            "\n  {} statement(s) would lose data: {}",
            loss.len(),
            loss.join("; ")
        ));
    }
    let security = list(Hazard::Security);
    if !security.is_empty() {
        out.push_str(&format!(
            "\n  {} statement(s) would weaken access control: {}",
            security.len(),
            security.join("; ")
        ));
    }
    out.push_str("\nRe-run with --unsafe to apply them.");
    out
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

/// Runs `plan` on `client` with the default lock timeout; see [`apply_with_lock_timeout`].
///
/// # Errors
///
/// The first statement that fails (nothing of the transaction is applied then).
pub async fn apply(client: &tokio_postgres::Client, plan: &Plan) -> anyhow::Result<()> {
    apply_with_lock_timeout(client, plan, DEFAULT_LOCK_TIMEOUT).await
}

/// Runs `plan` on `client`: statements that cannot run in a transaction first, then the rest
/// in one transaction (all or nothing). A statement that waits longer than `lock_timeout`
/// for a lock fails the whole plan rather than queue every later query on its table.
///
/// # Errors
///
/// The first statement that fails (nothing of the transaction is applied then), or a
/// `lock_timeout` the server does not accept.
pub async fn apply_with_lock_timeout(
    client: &tokio_postgres::Client,
    plan: &Plan,
    lock_timeout: &str,
) -> anyhow::Result<()> {
    client
        .execute(
            "SELECT set_config('lock_timeout', $1, false)",
            &[&lock_timeout],
        )
        .await
        .map_err(|e| anyhow!("--lock-timeout {lock_timeout}: {}", pg_message(&e)))?;
    let failed = |sql: &str, e: &tokio_postgres::Error| {
        let mut m = format!("{sql}: {}", pg_message(e));
        if e.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE) {
            m.push_str(&format!(
                " (another session held a lock longer than --lock-timeout {lock_timeout}; retry when it is done)"
            ));
        }
        m
    };
    for s in plan.steps.iter().filter(|s| s.outside_transaction) {
        client
            .batch_execute(&s.sql)
            .await
            .map_err(|e| anyhow!("{}", failed(&s.sql, &e)))?;
    }
    client.batch_execute("BEGIN").await?;
    for s in plan.steps.iter().filter(|s| !s.outside_transaction) {
        if let Err(e) = client.batch_execute(&s.sql).await {
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(anyhow!("nothing applied: {}", failed(&s.sql, &e)));
        }
    }
    client.batch_execute("COMMIT").await?;
    Ok(())
}
