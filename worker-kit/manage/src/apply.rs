//! Running a plan on a database, step by step (see [`Plan::batches`]).
//!
//! Every statement runs under `lock_timeout` and `statement_timeout`: a statement queued
//! behind a long transaction for a lock would otherwise stall every query on its table
//! behind it. A step whose lock is not had in time is rolled back (it changed nothing),
//! retried with backoff, and after the last attempt the run fails naming the step and the
//! sessions that held the lock; the steps before it stay applied, and a new run plans from
//! what is there.

use std::time::Duration;

use anyhow::anyhow;
use backon::{BackoffBuilder, ExponentialBuilder};
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

use crate::plan::{Batch, Plan};
use crate::target::pg_message;

/// How long a statement may wait and run, and how often a step is retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// PostgreSQL's `lock_timeout` for every statement (`5s`, `500ms`).
    pub lock_timeout: String,
    /// PostgreSQL's `statement_timeout` for every statement (`20min`).
    pub statement_timeout: String,
    /// How many times a step whose lock was not had in time is tried again.
    pub lock_retries: usize,
}

/// The default `lock_timeout`.
pub(crate) const DEFAULT_LOCK_TIMEOUT: &str = "5s";
/// The default `statement_timeout`: long enough for a concurrent index build on a large
/// table (which lets writes go on), short enough that nothing runs unbounded.
pub(crate) const DEFAULT_STATEMENT_TIMEOUT: &str = "20min";
/// The default number of retries of a step whose lock was not had in time.
pub(crate) const DEFAULT_LOCK_RETRIES: usize = 4;

impl Default for Limits {
    fn default() -> Self {
        Self {
            lock_timeout: DEFAULT_LOCK_TIMEOUT.to_owned(),
            statement_timeout: DEFAULT_STATEMENT_TIMEOUT.to_owned(),
            lock_retries: DEFAULT_LOCK_RETRIES,
        }
    }
}

/// A statement of a step that failed.
struct Failure {
    sql: String,
    error: tokio_postgres::Error,
    /// What became of a failed concurrent build's invalid index, when there was one.
    undo: Option<String>,
}

impl Failure {
    fn lock_not_had(&self) -> bool {
        self.error.code() == Some(&SqlState::LOCK_NOT_AVAILABLE)
    }
}

/// Runs `plan` on `client` in steps with the default [`Limits`]; see [`apply_plan`].
///
/// # Errors
///
/// As [`apply_plan`].
pub async fn apply(client: &Client, plan: &Plan) -> anyhow::Result<()> {
    apply_plan(client, plan, &Limits::default(), false).await
}

/// Runs `plan` on `client` with the default limits but `lock_timeout`; see [`apply_plan`].
///
/// # Errors
///
/// As [`apply_plan`].
pub async fn apply_with_lock_timeout(
    client: &Client,
    plan: &Plan,
    lock_timeout: &str,
) -> anyhow::Result<()> {
    let limits = Limits {
        lock_timeout: lock_timeout.to_owned(),
        ..Limits::default()
    };
    apply_plan(client, plan, &limits, false).await
}

/// Runs `plan` on `client`, step by step ([`Plan::batches`]; with `atomic`, one
/// transaction after the statements that cannot run in one).
///
/// # Errors
///
/// A timeout the server does not accept, or the first step that fails: its statement, the
/// server's error, and for a lock not had in time, which sessions held it. That step is
/// rolled back; the steps before it stay applied.
pub async fn apply_plan(
    client: &Client,
    plan: &Plan,
    limits: &Limits,
    atomic: bool,
) -> anyhow::Result<()> {
    for (name, value, flag) in [
        ("lock_timeout", &limits.lock_timeout, "--lock-timeout"),
        (
            "statement_timeout",
            &limits.statement_timeout,
            "--statement-timeout",
        ),
    ] {
        client
            .execute("SELECT set_config($1, $2, false)", &[&name, value])
            .await
            .map_err(|e| anyhow!("{flag} {value}: {}", pg_message(&e)))?;
    }
    if plan.lax_bodies {
        // SQL-language function bodies may name tables created later in the plan, as in
        // pg_dump's scripts.
        client
            .batch_execute("SET check_function_bodies = off")
            .await?;
    }
    let batches = plan.batches(atomic);
    let count = batches.len();
    for (i, batch) in batches.iter().enumerate() {
        let mut delays = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(500))
            .with_max_delay(Duration::from_secs(10))
            .with_jitter()
            .with_max_times(limits.lock_retries)
            .build();
        let mut attempts = 1;
        let failure = loop {
            match run(client, batch).await {
                Ok(()) => break None,
                Err(f) if f.lock_not_had() => match delays.next() {
                    Some(delay) => {
                        eprintln!(
                            "manage: step {} of {count}: lock not had within lock_timeout {}; retrying in {} ms",
                            i + 1,
                            limits.lock_timeout,
                            delay.as_millis()
                        );
                        tokio::time::sleep(delay).await;
                        attempts += 1;
                    }
                    None => break Some(f),
                },
                Err(f) => break Some(f),
            }
        };
        if let Some(f) = failure {
            return Err(anyhow!(
                "{}",
                explain(client, batch, &f, i + 1, count, attempts, limits).await
            ));
        }
    }
    Ok(())
}

/// Runs one step: its statements in a transaction, or its one statement alone (and, when
/// that fails, what undoes it).
async fn run(client: &Client, batch: &Batch<'_>) -> Result<(), Failure> {
    let fail = |sql: &str, error| Failure {
        sql: sql.to_owned(),
        error,
        undo: None,
    };
    if !batch.transaction {
        for s in &batch.steps {
            if let Err(error) = client.batch_execute(&s.sql).await {
                let mut f = fail(&s.sql, error);
                // A duplicate name means the index is someone else's, valid or not.
                if let Some(undo) = &s.undo_failed
                    && f.error.code() != Some(&SqlState::DUPLICATE_TABLE)
                {
                    f.undo = Some(match client.batch_execute(undo).await {
                        Ok(()) => format!("its invalid leftover was removed ({undo})"),
                        Err(e) => format!(
                            "its invalid leftover could not be removed ({}): run `{undo}` once the lock is free",
                            pg_message(&e)
                        ),
                    });
                }
                return Err(f);
            }
        }
        return Ok(());
    }
    client
        .batch_execute("BEGIN")
        .await
        .map_err(|e| fail("BEGIN", e))?;
    for s in &batch.steps {
        if let Err(e) = client.batch_execute(&s.sql).await {
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(fail(&s.sql, e));
        }
    }
    client
        .batch_execute("COMMIT")
        .await
        .map_err(|e| fail("COMMIT", e))
}

/// What a failed step says: which step, the statement, the server's error, for a lock not
/// had in time who held it, and what is applied.
async fn explain(
    client: &Client,
    batch: &Batch<'_>,
    f: &Failure,
    step: usize,
    count: usize,
    attempts: usize,
    limits: &Limits,
) -> String {
    let whole = if batch.transaction {
        "it was rolled back"
    } else {
        "it ran outside a transaction"
    };
    let mut m = format!(
        "step {step} of {count} failed: {}: {}",
        f.sql,
        pg_message(&f.error)
    );
    if let Some(undo) = &f.undo {
        m.push_str(&format!("; {undo}"));
    }
    if f.lock_not_had() {
        m.push_str(&format!(
            "\nThe lock was not had within --lock-timeout {} in {attempts} attempt(s). {}",
            limits.lock_timeout,
            holders(client, batch).await
        ));
    }
    let applied = match step {
        1 => "No step is applied".to_owned(),
        2 => "Step 1 is applied".to_owned(),
        n => format!("Steps 1 to {} are applied", n - 1),
    };
    m.push_str(&format!(
        "\n{applied}; {whole}. Run the command again once the cause is gone: it plans from what is there."
    ));
    m
}

/// The sessions holding locks on the step's tables (from `pg_locks` and
/// `pg_stat_activity`), else the oldest open transactions (a concurrent index build waits
/// for every transaction older than it, on any table).
async fn holders(client: &Client, batch: &Batch<'_>) -> String {
    let tables: Vec<String> = batch.locks().map(str::to_owned).collect();
    let describe = |rows: Vec<tokio_postgres::Row>| -> Vec<String> {
        rows.iter()
            .map(|r| {
                format!(
                    "pid {} (user {}, application {:?}, {} for {} s{}): {}",
                    r.get::<_, i32>(0),
                    r.get::<_, String>(1),
                    r.get::<_, String>(2),
                    r.get::<_, String>(3),
                    r.get::<_, i64>(4),
                    r.get::<_, Option<String>>(6)
                        .map(|m| format!(", holding {m}"))
                        .unwrap_or_default(),
                    r.get::<_, String>(5),
                )
            })
            .collect()
    };
    let columns = "a.pid, coalesce(a.usename::text, ''), coalesce(a.application_name, ''), \
         coalesce(a.state, ''), coalesce(extract(epoch FROM now() - a.xact_start)::bigint, 0), \
         left(coalesce(a.query, ''), 200)";
    let on_tables = client
        .query(
            &format!(
                "SELECT {columns}, string_agg(DISTINCT l.mode, ', ') \
                 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
                 WHERE l.granted AND l.pid <> pg_backend_pid() \
                   AND l.relation IN (SELECT to_regclass(t) FROM unnest($1::text[]) t) \
                 GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 5 DESC LIMIT 5"
            ),
            &[&tables],
        )
        .await
        .map(describe)
        .unwrap_or_default();
    if !on_tables.is_empty() {
        return format!("Held by: {}", on_tables.join("; "));
    }
    let oldest = client
        .query(
            &format!(
                "SELECT {columns}, NULL::text FROM pg_stat_activity a \
                 WHERE a.xact_start IS NOT NULL AND a.pid <> pg_backend_pid() AND a.datname = current_database() \
                 ORDER BY a.xact_start LIMIT 3"
            ),
            &[],
        )
        .await
        .map(describe)
        .unwrap_or_default();
    if oldest.is_empty() {
        "The sessions that held it have finished.".to_owned()
    } else {
        format!(
            "No session holds a lock on its tables now; the oldest open transactions (which a concurrent index build waits for) are: {}",
            oldest.join("; ")
        )
    }
}
