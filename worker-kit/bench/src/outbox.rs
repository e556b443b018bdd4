//! The transactional outbox end to end, in release: what emitting costs the writing route
//! (the example's create, with and without its event, both through the broker), how many
//! events per second go from commit to catalog's read model, and the commit-to-visible lag
//! at a steady rate of changes.
//!
//! The writer, the relay and catalog's subscription run in this process, each on a fresh
//! database (models/example, models/catalog) and on an exchange of the run's own.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use example::store::Store;
use stubs::example::items::{CreateItem, Item};
use tokio::sync::Mutex;
use worker_kit::db::{Client, DbConfig, DbError, Executor};
use worker_kit::outbox::Relay;
use worker_kit::rpc::{CallOptions, RpcClient, RpcWorker};
use worker_kit::runner::Running;
use worker_kit::{Payload, Runner, State};

/// The example's create: the row and its `example.item.created` event in one transaction.
async fn create_emitting(
    State(store): State<Store>,
    Payload(req): Payload<CreateItem>,
) -> Result<Item, DbError> {
    store.create_item(&req).await
}

/// The same transaction without the event: what the route would cost without an outbox.
async fn create_plain(
    State(store): State<Store>,
    Payload(req): Payload<CreateItem>,
) -> Result<Item, DbError> {
    let row = store
        .db()
        .transaction(|tx| {
            Box::pin(async move {
                let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
                    [&req.name, &req.price_cents, &req.tags];
                tx.query_opt_row(
                    "INSERT INTO items (name, price_cents, tags) VALUES ($1, $2, $3) \
                     RETURNING id, name, price_cents, tags, created_at, updated_at",
                    &params,
                )
                .await?
                .ok_or_else(|| DbError::Invalid("INSERT … RETURNING gave no row".into()))
            })
        })
        .await?;
    Ok(Item {
        id: row.get(0),
        name: row.get(1),
        price_cents: row.get(2),
        tags: row.get(3),
        created_at: row.get(4),
        updated_at: row.get(5),
    })
}

/// The writer (both routes), the relay and catalog's subscription, running.
pub(crate) struct Pipeline {
    running: Running,
    catalog: Running,
    pub(crate) client: RpcClient,
    pub(crate) emitting: String,
    pub(crate) plain: String,
    read: tokio_postgres::Client,
    exchange: String,
    catalog_service: &'static str,
}

impl Pipeline {
    /// Starts everything on the databases at `write_dsn` and `read_dsn`; `tag` names the
    /// routes, the exchange and the subscription.
    pub(crate) async fn start(
        url: &str,
        tag: &str,
        write_dsn: &str,
        read_dsn: &str,
    ) -> anyhow::Result<Self> {
        let exchange = format!("{tag}.events");
        let (emitting, plain) = (format!("{tag}.create"), format!("{tag}.create-plain"));
        let write_config = DbConfig::new(write_dsn);
        let write = Client::new("main", &write_config).map_err(|e| anyhow!("{e}"))?;
        let store = Store::new(write.clone());
        let b = crate::kit::broker(url, "bench outbox writer").await?;
        let running = Runner::new("bench", Arc::new(crate::kit::config(url)), b)
            .register_database(write.clone())
            .register_worker(
                RpcWorker::new()
                    .route(&emitting, create_emitting)
                    .route(&plain, create_plain)
                    .with_state(store),
            )
            .register_worker(Relay::new(&write, &write_config).exchange(&exchange))
            .start()
            .await
            .context("starting the writer and its relay")?;
        let read_db = Client::new("main", &DbConfig::new(read_dsn)).map_err(|e| anyhow!("{e}"))?;
        let catalog_service: &'static str = Box::leak(format!("{tag}-catalog").into_boxed_str());
        let b = crate::kit::broker(url, "bench outbox catalog").await?;
        let catalog =
            Runner::new(catalog_service, Arc::new(crate::kit::config(url)), b)
                .register_database(read_db.clone())
                .register_worker(catalog::event_worker().exchange(&exchange).with_state(
                    catalog::App {
                        db: read_db,
                        max_seq_jump: catalog::DEFAULT_MAX_SEQ_JUMP,
                    },
                ))
                .start()
                .await
                .context("starting catalog's subscription")?;
        let (read, conn) = tokio_postgres::connect(read_dsn, tokio_postgres::NoTls).await?;
        tokio::spawn(conn);
        Ok(Self {
            running,
            catalog,
            client: crate::kit::client(url).await?,
            emitting,
            plain,
            read,
            exchange,
            catalog_service,
        })
    }

    /// Creates item `name` through `route`.
    pub(crate) async fn create(&self, route: &str, name: String) -> anyhow::Result<()> {
        let req = CreateItem {
            name,
            price_cents: 1,
            tags: vec!["bench".into()],
        };
        let item: Item = self
            .client
            .call_route(route, &req, CallOptions::default())
            .await?;
        anyhow::ensure!(item.name == req.name, "wrong item back");
        Ok(())
    }

    /// How many events catalog has applied.
    pub(crate) async fn applied(&self) -> anyhow::Result<i64> {
        Ok(self
            .read
            .query_opt(
                "SELECT sum(applied)::bigint FROM catalog_progress HAVING count(*) > 0",
                &[],
            )
            .await?
            .map_or(0, |r| r.get(0)))
    }

    /// Waits until catalog has applied `n` events, for at most `limit`.
    pub(crate) async fn wait_applied(&self, n: i64, limit: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        while self.applied().await? < n {
            anyhow::ensure!(
                started.elapsed() < limit,
                "catalog applied {} of {n} events within {limit:?}",
                self.applied().await?
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Ok(())
    }

    /// `n` creates at `per_sec`, each followed until its item is in the read model: the
    /// lag from the writer's reply (after its commit) to the row being visible there.
    pub(crate) async fn lag_at(&self, per_sec: u32, n: usize) -> anyhow::Result<Vec<Duration>> {
        let replied: Arc<Mutex<HashMap<i64, Instant>>> = Arc::default();
        let mut lags = Vec::with_capacity(n);
        let interval = Duration::from_secs(1) / per_sec.max(1);
        let writer = async {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut calls = tokio::task::JoinSet::new();
            for i in 0..n {
                tick.tick().await;
                let (client, route, replied) =
                    (self.client.clone(), self.emitting.clone(), replied.clone());
                calls.spawn(async move {
                    let req = CreateItem {
                        name: format!("paced {i}"),
                        price_cents: 1,
                        tags: Vec::new(),
                    };
                    let item: Item = client
                        .call_route(&route, &req, CallOptions::default())
                        .await?;
                    replied.lock().await.insert(item.id, Instant::now());
                    Ok::<_, anyhow::Error>(())
                });
            }
            while let Some(r) = calls.join_next().await {
                r??;
            }
            Ok::<_, anyhow::Error>(())
        };
        let follower = async {
            let started = Instant::now();
            while lags.len() < n {
                anyhow::ensure!(
                    started.elapsed() < Duration::from_secs(120),
                    "only {} of {n} items reached the read model",
                    lags.len()
                );
                let waiting: Vec<i64> = replied.lock().await.keys().copied().collect();
                if !waiting.is_empty() {
                    let rows = self
                        .read
                        .query(
                            "SELECT id FROM catalog_items WHERE id = ANY($1)",
                            &[&waiting],
                        )
                        .await?;
                    let now = Instant::now();
                    let mut replied = replied.lock().await;
                    for r in rows {
                        if let Some(at) = replied.remove(&r.get::<_, i64>(0)) {
                            lags.push(now - at);
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Ok::<_, anyhow::Error>(())
        };
        let (w, f) = tokio::join!(writer, follower);
        w?;
        f?;
        Ok(lags)
    }

    pub(crate) async fn stop(self, url: &str) {
        let _ = self.running.stop().await;
        let _ = self.catalog.stop().await;
        crate::delete_queue(url, &self.emitting).await;
        crate::delete_queue(url, &self.plain).await;
        for key in [
            "example.item.created",
            "example.item.updated",
            "example.item.deleted",
        ] {
            let q = worker_kit::events::subscription_queue(self.catalog_service, key);
            crate::delete_queue(url, &worker_kit::queue::parking_queue(&q)).await;
            crate::delete_queue(url, &q).await;
        }
        crate::delete_exchange(url, &self.exchange).await;
    }
}
