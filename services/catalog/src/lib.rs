//! The `catalog` service: a read model of the `example` service's items in a database of
//! its own (`models/catalog`), kept in step by `example.item.*` events and answering
//! searches over it. It is eventually consistent, and says how far behind it is.
//!
//! - events `example.item.created|updated|deleted`: applied once per event id
//!   ([`worker_kit::outbox::first_delivery`]) and only when newer than the row
//!   (`x-outbox-seq`), so redeliveries and events handled out of order change nothing; an
//!   event whose number jumps too far ahead of the newest applied is parked, not applied
//!   ([`SequenceJump`]);
//! - `catalog.items.search` (RPC): text search over name and tags, keyset pages;
//! - `catalog.items.get` (RPC): one item;
//! - `catalog.freshness` (RPC): the commit time of the newest event applied.

use chrono::{DateTime, Utc};
use stubs::catalog::{CatalogPage, Freshness, GetCatalogItem, GetFreshness, SearchCatalog};
use stubs::example::events::{ItemCreated, ItemDeleted, ItemUpdated};
use stubs::example::items::Item;
use worker_kit::db::{Client, DbError, Executor, Tx, page_limit};
use worker_kit::events::{EventMeta, EventWorker};
use worker_kit::outbox::{EventDelivery, ProcessedEventsPruner, first_delivery};
use worker_kit::rpc::RpcWorker;
use worker_kit::{ErrorReply, IntoErrorReply, Payload, Runner, Setup, State, rpc};

/// The service's name: its connection name, its database's name, and the prefix of its
/// subscription queues (`catalog.events.<routing key>`).
pub const SERVICE: &str = "catalog";

/// Default page size of search.
const DEFAULT_LIMIT: u32 = 100;

/// How far an event's `x-outbox-seq` may lie beyond the newest one the read model applied
/// when `CATALOG_MAX_SEQ_JUMP` is not set: a million events the catalog has not applied yet
/// while a newer one arrives is a backlog no healthy deployment has, and a forged number
/// (up to `i64::MAX`) is far beyond it.
pub const DEFAULT_MAX_SEQ_JUMP: i64 = 1_000_000;

/// Shared state of the handlers.
#[derive(Clone, Debug)]
pub struct App {
    /// The read model's database.
    pub db: Client,
    /// How far an event's `x-outbox-seq` may lie beyond the newest applied
    /// (`CATALOG_MAX_SEQ_JUMP`, [`DEFAULT_MAX_SEQ_JUMP`]).
    pub max_seq_jump: i64,
}

/// Why an event was not applied.
#[derive(Debug)]
pub enum ApplyError {
    /// The database failed (retried as the kit retries any failure).
    Db(DbError),
    /// The event's number lies too far beyond the newest applied. Applied, it would lock
    /// its row against every real event after it (each would look older), so it is parked
    /// at once (`SequenceJump`, a permanent error) for someone to look at.
    SequenceJump(SequenceJump),
}

/// An event whose `x-outbox-seq` jumps further than `CATALOG_MAX_SEQ_JUMP` beyond the
/// newest number the read model applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequenceJump {
    /// The event's `x-outbox-seq`.
    pub seq: i64,
    /// The newest `x-outbox-seq` applied.
    pub newest: i64,
    /// The bound it broke.
    pub max_jump: i64,
}

impl std::fmt::Display for SequenceJump {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "x-outbox-seq {} lies more than {} beyond the newest applied ({}): a forged or corrupt event, not applied; if the writer's outbox really jumped, raise CATALOG_MAX_SEQ_JUMP and replay it (pj parked replay)",
            self.seq, self.max_jump, self.newest
        )
    }
}

impl From<DbError> for ApplyError {
    fn from(e: DbError) -> Self {
        Self::Db(e)
    }
}

impl IntoErrorReply for ApplyError {
    fn into_error_reply(self) -> ErrorReply {
        match self {
            Self::Db(e) => e.into_error_reply(),
            Self::SequenceJump(jump) => {
                ErrorReply::new("SequenceJump", jump.to_string()).permanent()
            }
        }
    }
}

/// Refuses an event whose number lies more than `max_jump` beyond `newest` (the newest the
/// read model applied; `None` while it is empty, when there is nothing to measure a jump
/// from and the first event sets the mark). Events without a number are not bounded: they
/// apply over nothing newer than themselves.
fn check_jump(seq: Option<i64>, newest: Option<i64>, max_jump: i64) -> Result<(), SequenceJump> {
    match (seq, newest) {
        (Some(seq), Some(newest)) if seq > newest.saturating_add(max_jump) => Err(SequenceJump {
            seq,
            newest,
            max_jump,
        }),
        _ => Ok(()),
    }
}

/// `CATALOG_MAX_SEQ_JUMP` from `setup`'s variables, or [`DEFAULT_MAX_SEQ_JUMP`].
///
/// # Errors
///
/// A value that is not a whole number of at least 1.
pub fn max_seq_jump(setup: &Setup) -> Result<i64, worker_kit::Error> {
    match setup.var("CATALOG_MAX_SEQ_JUMP") {
        None => Ok(DEFAULT_MAX_SEQ_JUMP),
        Some(text) => match text.trim().parse::<i64>() {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err(worker_kit::Error::Config(format!(
                "CATALOG_MAX_SEQ_JUMP={text:?}: expected a whole number of at least 1 (how far an event's x-outbox-seq may lie beyond the newest applied), e.g. {DEFAULT_MAX_SEQ_JUMP}"
            ))),
        },
    }
}

const COLUMNS: &str = "id, name, price_cents, tags, created_at, updated_at";

fn item(row: &tokio_postgres::Row) -> Item {
    Item {
        id: row.get(0),
        name: row.get(1),
        price_cents: row.get(2),
        tags: row.get(3),
        created_at: row.get(4),
        updated_at: row.get(5),
    }
}

/// Applies `event` once: `apply` runs only on its first delivery, in the transaction
/// that records it, and the progress moves on with it. An event whose number jumps too far
/// is refused before anything is written.
async fn once<F>(app: &App, event: EventMeta, apply: F) -> Result<(), ApplyError>
where
    F: for<'t> FnOnce(&'t Tx<'t>, i64) -> worker_kit::db::TxFuture<'t, (), DbError>
        + Send
        + 'static,
{
    if event.seq.is_some() {
        // The newest applied, read outside the transaction: concurrent applies only move it
        // up, and the bound is far wider than what they can add.
        let newest: Option<i64> = app
            .db
            .query_opt_row("SELECT max(seq) FROM catalog_items", &[])
            .await?
            .and_then(|row| row.get(0));
        check_jump(event.seq, newest, app.max_seq_jump).map_err(ApplyError::SequenceJump)?;
    }
    let applied: Result<(), DbError> = app.db
        .transaction(|tx| {
            Box::pin(async move {
                if first_delivery(tx, &event).await? == EventDelivery::Duplicate {
                    return Ok(());
                }
                // Hand-published events have no outbox number: they apply over nothing
                // newer than themselves.
                apply(tx, event.seq.unwrap_or(0)).await?;
                // An upsert: `manage sync` makes the table but writes no rows.
                tx.execute(
                    "INSERT INTO catalog_progress (shard, applied, last_event_at) VALUES ($1, 1, $2) \
                     ON CONFLICT (shard) DO UPDATE SET applied = catalog_progress.applied + 1, \
                     last_event_at = GREATEST(catalog_progress.last_event_at, EXCLUDED.last_event_at)",
                    &[&progress_shard(&event), &event.occurred_at],
                )
                .await?;
                Ok(())
            })
        })
        .await;
    applied.map_err(ApplyError::Db)
}

/// The `catalog_progress` row `event` counts in: one of 16, picked by its id.
fn progress_shard(event: &EventMeta) -> i16 {
    i16::from(event.id.as_bytes()[15] % 16)
}

/// Writes `item` unless the row holds a newer event's state.
async fn upsert(tx: &Tx<'_>, item: &Item, seq: i64) -> Result<(), DbError> {
    tx.execute(
        "INSERT INTO catalog_items (id, name, price_cents, tags, created_at, updated_at, deleted, seq, search) \
         VALUES ($1, $2, $3, $4, $5, $6, false, $7, to_tsvector('simple', $2 || ' ' || array_to_string($4::text[], ' '))) \
         ON CONFLICT (id) DO UPDATE SET name = excluded.name, price_cents = excluded.price_cents, \
         tags = excluded.tags, created_at = excluded.created_at, updated_at = excluded.updated_at, \
         deleted = false, seq = excluded.seq, search = excluded.search \
         WHERE catalog_items.seq < excluded.seq",
        &[
            &item.id,
            &item.name,
            &item.price_cents,
            &item.tags,
            &item.created_at,
            &item.updated_at,
            &seq,
        ],
    )
    .await?;
    Ok(())
}

/// `example.item.created`.
pub async fn item_created(
    State(app): State<App>,
    event: EventMeta,
    Payload(ItemCreated(item)): Payload<ItemCreated>,
) -> Result<(), ApplyError> {
    once(&app, event, move |tx, seq| {
        Box::pin(async move { upsert(tx, &item, seq).await })
    })
    .await
}

/// `example.item.updated`.
pub async fn item_updated(
    State(app): State<App>,
    event: EventMeta,
    Payload(ItemUpdated(item)): Payload<ItemUpdated>,
) -> Result<(), ApplyError> {
    once(&app, event, move |tx, seq| {
        Box::pin(async move { upsert(tx, &item, seq).await })
    })
    .await
}

/// `example.item.deleted`: leaves a tombstone, so a late event cannot bring it back.
pub async fn item_deleted(
    State(app): State<App>,
    event: EventMeta,
    Payload(ItemDeleted { id }): Payload<ItemDeleted>,
) -> Result<(), ApplyError> {
    once(&app, event, move |tx, seq| {
        Box::pin(async move {
            tx.execute(
                "INSERT INTO catalog_items (id, name, price_cents, tags, created_at, updated_at, deleted, seq, search) \
                 VALUES ($1, '', 0, '{}', now(), now(), true, $2, ''::tsvector) \
                 ON CONFLICT (id) DO UPDATE SET deleted = true, seq = excluded.seq \
                 WHERE catalog_items.seq < excluded.seq",
                &[&id, &seq],
            )
            .await?;
            Ok(())
        })
    })
    .await
}

async fn freshness(db: &Client) -> Result<Freshness, DbError> {
    // No row yet: no event applied yet.
    let Some(row) = db
        .query_opt_row(
            "SELECT max(last_event_at), sum(applied)::bigint FROM catalog_progress \
             HAVING count(*) > 0",
            &[],
        )
        .await?
    else {
        return Ok(Freshness {
            last_event_at: None,
            applied: 0,
        });
    };
    let last_event_at: Option<DateTime<Utc>> = row.get(0);
    Ok(Freshness {
        last_event_at,
        applied: row.get(1),
    })
}

/// Searches names and tags.
#[rpc(contract = SearchCatalog)]
pub async fn search(
    State(app): State<App>,
    Payload(req): Payload<SearchCatalog>,
) -> Result<CatalogPage, DbError> {
    let limit = page_limit(req.limit, DEFAULT_LIMIT)?;
    let fetch = i64::from(limit) + 1;
    let after = req.after.unwrap_or(i64::MIN);
    let sql = format!(
        "SELECT {COLUMNS} FROM catalog_items WHERE NOT deleted \
         AND ($1 = '' OR search @@ websearch_to_tsquery('simple', $1)) \
         AND id > $2 ORDER BY id LIMIT $3"
    );
    let rows = app
        .db
        .query_rows(&sql, &[&req.text.trim(), &after, &fetch])
        .await?;
    let mut items: Vec<Item> = rows.iter().map(item).collect();
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    Ok(CatalogPage {
        last_reference: if more {
            items.last().map(|i| i.id)
        } else {
            None
        },
        items,
        freshness: freshness(&app.db).await?,
    })
}

/// One item.
#[rpc(contract = GetCatalogItem)]
pub async fn get(
    State(app): State<App>,
    Payload(req): Payload<GetCatalogItem>,
) -> Result<Item, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM catalog_items WHERE id = $1 AND NOT deleted");
    app.db
        .query_opt_row(&sql, &[&req.id])
        .await?
        .map(|r| item(&r))
        .ok_or_else(|| DbError::not_found(format!("catalog item {}", req.id)))
}

/// How far behind the catalog is.
#[rpc(contract = GetFreshness)]
pub async fn get_freshness(
    State(app): State<App>,
    Payload(_): Payload<GetFreshness>,
) -> Result<Freshness, DbError> {
    freshness(&app.db).await
}

/// The service's RPC routes, still needing their [`App`] (given last, with
/// `.with_state(app)`; the AsyncAPI document describes them without it).
pub fn rpc_worker() -> RpcWorker<App> {
    RpcWorker::new()
        .register(search)
        .register(get)
        .register(get_freshness)
}

/// The service's AsyncAPI 3.0 document (what `catalog asyncapi` prints), without a broker
/// or a database: its RPC routes and the events it subscribes to.
pub fn asyncapi() -> worker_kit::asyncapi::Document {
    worker_kit::asyncapi::Document::new(SERVICE)
        .version(env!("CARGO_PKG_VERSION"))
        .rpc(&rpc_worker())
        .subscribes::<ItemCreated>()
        .subscribes::<ItemUpdated>()
        .subscribes::<ItemDeleted>()
}

/// The service's subscriptions, still needing their [`App`] (`.with_state(app)`); the
/// document lists the same events (a test holds them in step).
pub fn event_worker() -> EventWorker<App> {
    EventWorker::new()
        .event::<ItemCreated, _, _, _>(item_created)
        .event::<ItemUpdated, _, _, _>(item_updated)
        .event::<ItemDeleted, _, _, _>(item_deleted)
}

/// Builds the service on `setup`: its database from `DB_MAIN_DSN` (or the `catalog`
/// database on the `PGHOST` server), its subscriptions on `EVENTS_EXCHANGE`, the pruning
/// of processed events after `PROCESSED_EVENTS_RETENTION_SECS` and the bound on sequence
/// jumps from `CATALOG_MAX_SEQ_JUMP`, all read from the setup's variables (the
/// environment, or what a test gives with [`Setup::with_var`]).
///
/// # Errors
///
/// A malformed setting.
pub async fn build(setup: Setup) -> Result<Runner, worker_kit::Error> {
    let db = setup.db_config("main")?;
    let settings = setup.outbox_settings()?;
    let client = Client::new("main", &db)?;
    let app = App {
        db: client.clone(),
        max_seq_jump: max_seq_jump(&setup)?,
    };
    let pruner = ProcessedEventsPruner::new(&client).retention(settings.processed_retention);
    Ok(setup
        .runner()
        .register_database(client)
        .register_worker(rpc_worker().with_state(app.clone()))
        .register_worker(event_worker().exchange(&settings.exchange).with_state(app))
        .register_worker(pruner))
}

#[cfg(test)]
mod tests {
    use super::*;
    use worker_kit::db::DbConfig;
    use worker_kit::worker::Runnable;

    #[test]
    fn the_document_lists_every_subscription() {
        let doc = asyncapi().to_json();
        let mut documented: Vec<String> = doc["operations"]
            .as_object()
            .unwrap()
            .keys()
            .filter_map(|id| id.strip_prefix("subscribe.").map(str::to_owned))
            .collect();
        documented.sort();
        // A client that never connects: only the worker's routes are read.
        let db = Client::new(
            "main",
            &DbConfig::new("postgres://catalog@127.0.0.1/catalog"),
        );
        let app = App {
            db: db.unwrap(),
            max_seq_jump: DEFAULT_MAX_SEQ_JUMP,
        };
        let mut subscribed: Vec<String> = event_worker()
            .with_state(app)
            .route_names()
            .into_iter()
            .map(|n| n.trim_start_matches("events:").to_owned())
            .collect();
        subscribed.sort();
        assert_eq!(documented, subscribed);
        assert_eq!(subscribed.len(), 3);
    }

    #[test]
    fn a_jump_beyond_the_bound_is_refused() {
        assert_eq!(check_jump(Some(11), Some(10), 1), Ok(()));
        assert_eq!(
            check_jump(Some(12), Some(10), 1),
            Err(SequenceJump {
                seq: 12,
                newest: 10,
                max_jump: 1
            })
        );
        assert!(check_jump(Some(i64::MAX), Some(i64::MAX - 1), DEFAULT_MAX_SEQ_JUMP).is_ok());
        assert!(check_jump(Some(i64::MAX), Some(5), DEFAULT_MAX_SEQ_JUMP).is_err());
        assert_eq!(
            check_jump(Some(i64::MAX), None, 1),
            Ok(()),
            "empty: no mark yet"
        );
        assert_eq!(
            check_jump(None, Some(5), 1),
            Ok(()),
            "no number: not bounded"
        );
        assert!(
            check_jump(Some(3), Some(10), 1).is_ok(),
            "older: ignored later"
        );
    }
}
