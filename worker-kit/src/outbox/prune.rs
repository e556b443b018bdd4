//! Pruning what the outbox and its subscribers keep: sent outbox rows (by the relay) and
//! the ids of applied events (by [`ProcessedEventsPruner`]).

use std::time::Duration;

use async_trait::async_trait;
use tracing::{debug, info, warn};

use crate::Error;
use crate::db::{Client, DbError};
use crate::worker::{Runnable, WorkerContext, WorkerKind, sealed};

use super::OutboxSettings;

/// Rows deleted per statement, so that pruning a large backlog (a first start after
/// weeks, a retention shortened) never holds locks or bloats one transaction for long.
const BATCH: i64 = 5_000;

/// How often to prune for a given retention: often enough that each pass is small, never
/// more than once a second.
pub(super) fn every(retention: Duration) -> Duration {
    retention.clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// Runs `delete` (parameters: the retention in seconds, the batch size) until it deletes
/// less than a batch; returns the rows deleted.
pub(super) async fn in_batches(
    db: &Client,
    delete: &str,
    retention: Duration,
) -> Result<u64, DbError> {
    let conn = db.connection().await?;
    let mut total = 0;
    loop {
        let n = conn
            .execute(delete, &[&retention.as_secs_f64(), &BATCH])
            .await?;
        total += n;
        if n < BATCH as u64 {
            return Ok(total);
        }
    }
}

/// Deletes the processed-event ids ([`first_delivery`](super::first_delivery)'s table)
/// older than a retention, in a subscribing service; register it with the Runner like a
/// worker, next to the event worker.
///
/// ```no_run
/// # use worker_kit::{Runner, db::Client, outbox::{OutboxSettings, ProcessedEventsPruner}};
/// # fn demo(runner: Runner, db: Client, settings: &OutboxSettings) -> Runner {
/// runner.register_worker(ProcessedEventsPruner::new(&db).retention(settings.processed_retention))
/// # }
/// ```
#[derive(Debug)]
pub struct ProcessedEventsPruner {
    db: Client,
    retention: Duration,
}

impl ProcessedEventsPruner {
    /// A pruner of `db`'s `worker_kit_processed_events`, keeping 7 days.
    pub fn new(db: &Client) -> Self {
        Self {
            db: db.clone(),
            retention: OutboxSettings::default().processed_retention,
        }
    }

    /// How long applied event ids are kept (default 7 days).
    #[must_use]
    pub fn retention(mut self, keep: Duration) -> Self {
        self.retention = keep;
        self
    }

    /// Deletes the ids older than the retention now; returns how many.
    ///
    /// # Errors
    ///
    /// Any [`DbError`] of the delete.
    pub async fn prune(&self) -> Result<u64, DbError> {
        in_batches(
            &self.db,
            "DELETE FROM worker_kit_processed_events WHERE (subscription, event_id) IN \
             (SELECT subscription, event_id FROM worker_kit_processed_events \
              WHERE processed_at < now() - make_interval(secs => $1) LIMIT $2)",
            self.retention,
        )
        .await
    }
}

impl sealed::Sealed for ProcessedEventsPruner {}

#[async_trait]
impl Runnable for ProcessedEventsPruner {
    fn kind(&self) -> WorkerKind {
        WorkerKind::Pruner
    }

    fn route_names(&self) -> Vec<String> {
        Vec::new()
    }

    async fn run(self: Box<Self>, ctx: WorkerContext) -> Result<(), Error> {
        let _ = ctx.ready.send(Ok(format!(
            "processed-event ids kept {}s",
            self.retention.as_secs()
        )));
        let every = every(self.retention);
        loop {
            match self.prune().await {
                Ok(0) => {}
                Ok(n) => debug!(pruned = n, "processed-event ids pruned"),
                Err(e) => {
                    warn!(error = %e, "pruning processed-event ids failed; trying again later")
                }
            }
            tokio::select! {
                () = ctx.shutdown.cancelled() => break,
                () = tokio::time::sleep(every) => {}
            }
        }
        info!("processed-event pruner stopped");
        Ok(())
    }
}
