//! The transactional outbox: change data and tell others, without losing the event or
//! publishing one for a change that rolled back.
//!
//! Inside a database transaction a handler records its events next to its changes
//! ([`Emit::emit`]); they exist only if the transaction commits. The [`Relay`] (a task
//! the Runner drives, like a worker) publishes committed events in id order to the
//! `events` topic exchange with publisher confirms and then marks them sent; it wakes on
//! `LISTEN/NOTIFY` and polls as a fallback. Several replicas may run it: a transaction-level
//! advisory lock lets one publish at a time, so an event is published once in the normal
//! case and at least once across crashes (a relay killed between the confirm and its
//! commit publishes the batch again). Subscribers therefore deduplicate by the event's id
//! with [`first_delivery`], in the transaction that applies the event.
//!
//! The same machinery publishes scheduled work messages when they are due
//! ([`ScheduledRelay`]; scheduling is [`QueuePublisher::send_at`](crate::queue::QueuePublisher::send_at)
//! and [`Schedule`](crate::queue::Schedule) in a transaction).
//!
//! The tables ship with the kit as SQL ([`OUTBOX_SQL`], [`PROCESSED_EVENTS_SQL`]): copy
//! them unchanged into `models/<service>/` so `manage` keeps them in step.
//!
//! ```no_run
//! use serde::{Deserialize, Serialize};
//! use worker_kit::EventContract;
//! use worker_kit::db::{Client, DbError, Executor};
//! use worker_kit::outbox::Emit;
//!
//! #[derive(Serialize, Deserialize)]
//! struct ItemRenamed {
//!     id: i64,
//!     name: String,
//! }
//!
//! impl EventContract for ItemRenamed {
//!     const ROUTING_KEY: &'static str = "example.item.renamed";
//!     fn aggregate_id(&self) -> String {
//!         self.id.to_string()
//!     }
//! }
//!
//! # async fn demo(db: Client) -> Result<(), DbError> {
//! db.transaction(|tx| Box::pin(async move {
//!     tx.execute("UPDATE items SET name = $1 WHERE id = $2", &[&"Ada", &1i64]).await?;
//!     tx.emit(&ItemRenamed { id: 1, name: "Ada".into() }).await?;
//!     Ok::<_, DbError>(())
//! }))
//! .await
//! # }
//! ```

mod batch;
mod listen;
mod prune;
mod relay;
mod scheduled_relay;
mod settings;

use std::future::Future;

use crate::EventContract;
use crate::db::{DbError, Executor, Tx};
use crate::events::EventMeta;

pub use prune::ProcessedEventsPruner;
pub use relay::Relay;
pub use scheduled_relay::{DUE_AT_HEADER, ScheduledRelay};
pub use settings::OutboxSettings;

/// The outbox table (`worker-kit/sql/outbox.sql`): include it in the writing service's
/// `models/<service>/`.
pub const OUTBOX_SQL: &str = include_str!("../../sql/outbox.sql");

/// The processed-events table (`worker-kit/sql/processed_events.sql`): include it in a
/// subscribing service's `models/<service>/`.
pub const PROCESSED_EVENTS_SQL: &str = include_str!("../../sql/processed_events.sql");

/// The channel the outbox notifies on commit.
pub const NOTIFY_CHANNEL: &str = "worker_kit_outbox";

/// How often this process's emits notify [`NOTIFY_CHANNEL`].
static NOTIFY: crate::db::notify::Throttle = crate::db::notify::Throttle::new();

/// Records events in a transaction.
pub trait Emit {
    /// Records `event` in the outbox; it is published after the transaction commits and
    /// never if it rolls back. Returns the event's id (its `message_id`).
    ///
    /// Emit after the change that locks the aggregate's row, so that events of one
    /// aggregate are numbered in commit order.
    ///
    /// # Errors
    ///
    /// [`DbError::Invalid`] when the event cannot be serialized; any [`DbError`] of the
    /// insert (a missing `worker_kit_outbox` table is a `Query` error naming it).
    fn emit<E: EventContract>(
        &self,
        event: &E,
    ) -> impl Future<Output = Result<uuid::Uuid, DbError>> + Send;
}

impl Emit for Tx<'_> {
    async fn emit<E: EventContract>(&self, event: &E) -> Result<uuid::Uuid, DbError> {
        let payload = serde_json::to_value(event).map_err(|e| {
            DbError::Invalid(format!(
                "event {} cannot be serialized: {e}",
                E::ROUTING_KEY
            ))
        })?;
        let id = uuid::Uuid::new_v4();
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
            [&id, &E::ROUTING_KEY, &event.aggregate_id(), &payload];
        if NOTIFY.due() {
            // One round trip: the insert, and the notification PostgreSQL delivers on
            // commit (and folds into one per transaction).
            self.query_rows(
                "WITH ins AS (INSERT INTO worker_kit_outbox (event_id, routing_key, aggregate_id, payload) \
                 VALUES ($1, $2, $3, $4) RETURNING 1) \
                 SELECT pg_notify('worker_kit_outbox', '') FROM ins",
                &params,
            )
            .await?;
        } else {
            self.execute(
                "INSERT INTO worker_kit_outbox (event_id, routing_key, aggregate_id, payload) \
                 VALUES ($1, $2, $3, $4)",
                &params,
            )
            .await?;
        }
        Ok(id)
    }
}

/// Whether a subscription has applied an event before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventDelivery {
    /// The first time: apply it.
    First,
    /// Applied before (a redelivery or a second publish): change nothing.
    Duplicate,
}

/// Records that `event`'s subscription applied it, in the transaction that applies it.
/// A concurrent duplicate waits for the first to commit, then sees `Duplicate`.
///
/// # Errors
///
/// Any [`DbError`] of the insert (the `worker_kit_processed_events` table must exist).
pub async fn first_delivery(tx: &Tx<'_>, event: &EventMeta) -> Result<EventDelivery, DbError> {
    let inserted = tx
        .execute(
            "INSERT INTO worker_kit_processed_events (subscription, event_id) VALUES ($1, $2) \
             ON CONFLICT DO NOTHING",
            &[&event.subscription, &event.id],
        )
        .await?;
    Ok(if inserted == 1 {
        EventDelivery::First
    } else {
        EventDelivery::Duplicate
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Services include the kit's tables by copying the files into `models/<service>/`
    /// (manage reads only that folder): every copy must stay equal to the kit's.
    #[test]
    fn copies_in_models_equal_the_kits_sql() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut copies = 0;
        for (name, kit) in [
            ("outbox.sql", super::OUTBOX_SQL),
            ("scheduled.sql", crate::queue::SCHEDULED_SQL),
            ("processed_events.sql", super::PROCESSED_EVENTS_SQL),
        ] {
            for service in std::fs::read_dir(root.join("models")).unwrap() {
                let copy = service.unwrap().path().join(name);
                if let Ok(text) = std::fs::read_to_string(&copy) {
                    assert_eq!(
                        text,
                        kit,
                        "{} differs from worker-kit/sql/{name}: copy the kit's file again",
                        copy.display()
                    );
                    copies += 1;
                }
            }
        }
        assert!(
            copies >= 3,
            "models/example/outbox.sql, models/example/scheduled.sql and models/catalog/processed_events.sql"
        );
    }
}
