//! The idempotent record the fault tests check: one row per message id, counting how often
//! the handler ran for it.

use deadpool_postgres::Pool;
use worker_kit::ErrorReply;

/// The table the record lives in.
pub const SCHEMA: &str = "CREATE TABLE handled (id bigint PRIMARY KEY, times int NOT NULL)";

/// Records that message `id` was handled (once more).
///
/// # Errors
///
/// `Unavailable` when the database cannot be reached.
pub async fn record(pool: &Pool, id: i64) -> Result<(), ErrorReply> {
    let client = pool
        .get()
        .await
        .map_err(|e| ErrorReply::unavailable(e.to_string()))?;
    client
        .execute(
            "INSERT INTO handled (id, times) VALUES ($1, 1) \
             ON CONFLICT (id) DO UPDATE SET times = handled.times + 1",
            &[&id],
        )
        .await
        .map_err(|e| ErrorReply::unavailable(e.to_string()))?;
    Ok(())
}

/// Rows recorded so far.
///
/// # Panics
///
/// When the query fails.
pub async fn count(db: &tokio_postgres::Client) -> i64 {
    db.query_one("SELECT count(*) FROM handled", &[])
        .await
        .expect("count handled")
        .get(0)
}

/// A small pool on `dsn`.
///
/// # Panics
///
/// When `dsn` does not parse.
pub fn pool(dsn: &str, size: usize) -> Pool {
    let config: tokio_postgres::Config = dsn.parse().expect("valid DSN");
    Pool::builder(deadpool_postgres::Manager::new(
        config,
        tokio_postgres::NoTls,
    ))
    .max_size(size)
    .build()
    .expect("pool")
}
