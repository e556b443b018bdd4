//! A work-queue service for the SIGTERM fault test: records each message id in
//! PostgreSQL, counting how often it was handled. Settings from the environment:
//! `FAULT_ROUTE` (the queue), `FAULT_DSN` (the database), `FAULT_DELAY_MS` (time each
//! message takes), plus the kit's usual variables.

use std::time::Duration;

use deadpool_postgres::{Manager, Pool};
use worker_kit::queue::QueueWorker;
use worker_kit::{ErrorReply, Payload, State};

#[derive(Clone)]
struct App {
    pool: Pool,
    delay: Duration,
}

async fn record(State(app): State<App>, Payload(id): Payload<i64>) -> Result<(), ErrorReply> {
    tokio::time::sleep(app.delay).await;
    let client = app
        .pool
        .get()
        .await
        .map_err(|e| ErrorReply::unavailable(e.to_string()))?;
    client
        .execute(
            "INSERT INTO handled (id, times) VALUES ($1, 1) ON CONFLICT (id) DO UPDATE SET times = handled.times + 1",
            &[&id],
        )
        .await
        .map_err(|e| ErrorReply::unavailable(e.to_string()))?;
    Ok(())
}

fn main() -> std::process::ExitCode {
    worker_kit::runner::main("fault-worker", |setup| async move {
        let env = |k: &str| {
            std::env::var(k).map_err(|_| worker_kit::Error::Config(format!("{k} is required")))
        };
        let route = env("FAULT_ROUTE")?;
        let dsn = env("FAULT_DSN")?;
        let delay = Duration::from_millis(env("FAULT_DELAY_MS")?.parse().unwrap_or(20));
        let pg: tokio_postgres::Config = dsn
            .parse()
            .map_err(|e| worker_kit::Error::Config(format!("FAULT_DSN: {e}")))?;
        let pool = Pool::builder(Manager::new(pg, tokio_postgres::NoTls))
            .max_size(16)
            .build()
            .map_err(|e| worker_kit::Error::Database(e.to_string()))?;
        let worker = QueueWorker::with_state(App { pool, delay }).route(&route, record);
        Ok(setup.runner().register_worker(worker))
    })
}
