//! A work-queue service for the SIGTERM fault test: records each message id in
//! PostgreSQL, counting how often it was handled. Settings from the environment:
//! `FAULT_ROUTE` (the queue), `FAULT_DSN` (the database), `FAULT_DELAY_MS` (time each
//! message takes), plus the kit's usual variables.

use std::time::Duration;

use deadpool_postgres::Pool;
use worker_kit::queue::QueueWorker;
use worker_kit::{ErrorReply, Payload, State};

#[derive(Clone)]
struct App {
    pool: Pool,
    delay: Duration,
}

async fn record(State(app): State<App>, Payload(id): Payload<i64>) -> Result<(), ErrorReply> {
    tokio::time::sleep(app.delay).await;
    e2e::handled::record(&app.pool, id).await
}

fn main() -> std::process::ExitCode {
    worker_kit::runner::main("fault-worker", |setup| async move {
        let env = |k: &str| {
            std::env::var(k).map_err(|_| worker_kit::Error::Config(format!("{k} is required")))
        };
        let route = env("FAULT_ROUTE")?;
        let dsn = env("FAULT_DSN")?;
        let delay = Duration::from_millis(env("FAULT_DELAY_MS")?.parse().unwrap_or(20));
        let pool = e2e::handled::pool(&dsn, 16);
        let worker = QueueWorker::new()
            .route(&route, record)
            .with_state(App { pool, delay });
        Ok(setup.runner().register_worker(worker))
    })
}
