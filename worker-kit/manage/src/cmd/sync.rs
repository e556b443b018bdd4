//! `manage sync`.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use anyhow::anyhow;

use super::{catalog_with, model_files, service_name};
use crate::apply::{Limits, apply_plan};
use crate::catalog::Catalog;
use crate::diff::{diff, diff_with};
use crate::opts::SyncArgs;
use crate::plan::{Hazard, Plan};
use crate::target::{Loader, Server, Shadow, TargetLock, service_dsn};
use crate::{EXIT_DRIFT, EXIT_REFUSED};

pub(crate) async fn run(args: SyncArgs) -> anyhow::Result<ExitCode> {
    let service = service_name(&args.service)?;
    let dir = args.service.models_dir.join(&service);
    let dsn = service_dsn(args.database_url.as_deref(), &service);
    let (server, db) = Server::from_dsn(&dsn)?;
    let _lock = TargetLock::take(&server, &db).await?;
    // Shadows kept for targets that are gone would otherwise pile up on the server; a
    // failure to drop one (another role's) does not stop the sync.
    match Shadow::prune(&server).await {
        Ok(dropped) => {
            for name in dropped {
                println!("Dropped {name}: the database it was kept for no longer exists.");
            }
        }
        Err(e) => eprintln!("manage: warning: shadows of gone targets not pruned: {e:#}"),
    }
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
    let plan = diff_with(&current, &desired, args.atomic);
    super::print_not_compared(&plan);
    if plan.is_empty() {
        println!("Already in sync.");
        return Ok(ExitCode::SUCCESS);
    }
    print!("{}", plan.render(args.atomic));
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
    let allowed = |h: Hazard| args.allow_unsafe || args.allow_hazard.contains(&h);
    if plan
        .refused()
        .any(|s| s.hazard.is_some_and(|h| !allowed(h)))
    {
        eprintln!("{}", refusal(&plan, &allowed));
        return Ok(ExitCode::from(EXIT_REFUSED));
    }
    if let Some(refusal) = long_locks(&target, &plan, &allowed, args.atomic).await? {
        eprintln!("{refusal}");
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
    let limits = Limits {
        lock_timeout: args.lock_timeout.clone(),
        statement_timeout: args.statement_timeout.clone(),
        lock_retries: args.lock_retries,
    };
    apply_plan(&target, &plan, &limits, args.atomic).await?;
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
/// column without a default; a table switched between plain and partitioned, which is
/// dropped and made again), if any.
async fn tables_with_rows(
    target: &tokio_postgres::Client,
    plan: &Plan,
) -> anyhow::Result<Option<String>> {
    // `table` comes from the catalog, already quoted and qualified.
    let has_rows = |table: String| async move {
        let row = target
            .query_one(&format!("SELECT EXISTS (SELECT 1 FROM {table})"), &[])
            .await?;
        anyhow::Ok(row.get::<_, bool>(0))
    };
    let mut lines = Vec::new();
    for (table, sql) in &plan.needs_empty {
        if has_rows(table.clone()).await? {
            lines.push(format!("  {sql}"));
        }
    }
    let mut out = Vec::new();
    if !lines.is_empty() {
        out.push(format!(
            "these add a NOT NULL column without a default to a table that has rows, which PostgreSQL refuses:\n{}\n\
             In the model, give the column a DEFAULT (NOT NULL DEFAULT <value>); or add it without NOT NULL, \
             sync, fill it (UPDATE), then add NOT NULL and sync again.",
            lines.join("\n")
        ));
    }
    for table in &plan.remade_tables {
        if has_rows(table.clone()).await? {
            out.push(format!(
                "table {table} switches between plain and partitioned, which PostgreSQL cannot do in place: \
                 manage would drop it and create it again, losing its rows (--unsafe does not allow this). \
                 By hand: create the new table under another name, move the rows (INSERT ... SELECT), \
                 drop the old one and rename the new one; then sync."
            ));
        }
    }
    Ok((!out.is_empty()).then(|| format!("Refused, nothing applied: {}", out.join("\n"))))
}

/// The refusal for statements that rewrite a table with rows, or hold a lock that blocks
/// its writes while they scan or build, unless their hazard is allowed.
async fn long_locks(
    target: &tokio_postgres::Client,
    plan: &Plan,
    allowed: &dyn Fn(Hazard) -> bool,
    atomic: bool,
) -> anyhow::Result<Option<String>> {
    let mut lines = Vec::new();
    for s in &plan.steps {
        let (Some(h @ (Hazard::Rewrite | Hazard::Lock)), Some(table)) = (s.hazard, &s.locks) else {
            continue;
        };
        if allowed(h) {
            continue;
        }
        // `table` comes from the catalog, already quoted and qualified.
        let has_rows: bool = target
            .query_one(&format!("SELECT EXISTS (SELECT 1 FROM {table})"), &[])
            .await?
            .get(0);
        if has_rows {
            lines.push(format!(
                "  [{h}] {}\n    {}",
                s.sql,
                alternative(h, &s.sql, atomic)
            ));
        }
    }
    Ok((!lines.is_empty()).then(|| {
        format!(
            "Refused, nothing applied: these block writes to a table that has rows for as long as they run:
{}
             Apply them in a maintenance window with --allow-hazard rewrite / --allow-hazard lock (or --unsafe).",
            lines.join("\n")
        )
    }))
}

/// The online way to get what a long-locking statement does, where there is one.
fn alternative(h: Hazard, sql: &str, atomic: bool) -> &'static str {
    if atomic {
        "Without --atomic, indexes are built CONCURRENTLY, constraints added NOT VALID and validated, and NOT NULL proved by a CHECK."
    } else if h == Hazard::Rewrite && sql.contains(" TYPE ") {
        "Online: add a new column of the new type, fill it in batches (and keep it filled by a trigger), then switch names in one short step."
    } else if h == Hazard::Rewrite {
        "Online: add the column without the default (or with a constant one), fill it in batches, then set the default."
    } else if sql.contains("UNIQUE") || sql.contains("PRIMARY KEY") {
        "Online: CREATE UNIQUE INDEX CONCURRENTLY, then ADD CONSTRAINT ... USING INDEX."
    } else {
        "No online form: PostgreSQL holds the lock while it scans."
    }
}

/// What `sync` says when it refuses a plan without `--unsafe`.
fn refusal(plan: &Plan, allowed: &dyn Fn(Hazard) -> bool) -> String {
    let list = |h: Hazard| -> Vec<&str> {
        plan.steps
            .iter()
            .filter(|s| s.hazard == Some(h) && !allowed(h))
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
    out.push_str(
        "\nRe-run with --unsafe (or --allow-hazard data-loss / --allow-hazard security) to apply them.",
    );
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
