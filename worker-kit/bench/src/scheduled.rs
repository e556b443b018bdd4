//! Scheduled messages' precision: a steady 1,000 messages due per second, each scheduled
//! (`QueuePublisher::send_at`) a second before it is due, published by the
//! `ScheduledRelay` running in this process, and taken off the route's queue by a plain
//! consumer. A message's lateness is its arrival at the consumer minus the time it was due
//! (the `x-scheduled-due-at` header): the relay's wake-up, its batch, the broker's routing
//! and the delivery.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use serde::{Deserialize, Serialize};
use worker_kit::db::{Client, DbConfig};
use worker_kit::outbox::{DUE_AT_HEADER, ScheduledRelay};
use worker_kit::queue::QueuePublisher;
use worker_kit::{Runner, TaskContract};

/// The bench's scheduled task (routes are constants; the queue is deleted before and after).
#[derive(Serialize, Deserialize, schemars::JsonSchema)]
struct Tick {
    n: usize,
}

impl TaskContract for Tick {
    const ROUTE: &'static str = "bench.scheduled.tick";
}

/// How long before it is due each message is scheduled.
const AHEAD: Duration = Duration::from_secs(1);

/// Schedules `n` messages, `per_sec` due each second, on the database at `dsn`; returns
/// each one's lateness, how long the run took, and how many arrived before they were due
/// (none should).
pub(crate) async fn lateness(
    url: &str,
    dsn: &str,
    per_sec: u32,
    n: usize,
) -> anyhow::Result<(crate::measure::Run, usize)> {
    let db = Client::new("main", &DbConfig::new(dsn)).map_err(|e| anyhow!("{e}"))?;
    let b = crate::kit::broker(url, "bench scheduled relay").await?;
    let running = Runner::new("bench", Arc::new(crate::kit::config(url)), b)
        .register_database(db.clone())
        .register_worker(ScheduledRelay::new(&db))
        .start()
        .await
        .context("starting the scheduled relay")?;
    let conn = crate::lean::connect(url, "bench scheduled consumer").await?;
    crate::lean::delete_queues(&conn, &[Tick::ROUTE]).await;
    let ch = conn.create_channel().await?;
    ch.queue_declare(
        Tick::ROUTE.into(),
        QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        },
        FieldTable::default(),
    )
    .await?;
    let mut deliveries = ch
        .basic_consume(
            Tick::ROUTE.into(),
            "bench".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    let publisher =
        QueuePublisher::new(&crate::kit::broker(url, "bench scheduler").await?).with_database(&db);
    let started = Instant::now();
    let producer = async {
        let mut tick = tokio::time::interval(Duration::from_secs(1) / per_sec.max(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut inserts = tokio::task::JoinSet::new();
        for i in 0..n {
            tick.tick().await;
            let publisher = publisher.clone();
            let due = chrono::Utc::now() + AHEAD;
            inserts.spawn(async move { publisher.send_at(due, &Tick { n: i }).await });
        }
        while let Some(r) = inserts.join_next().await {
            r??;
        }
        eprintln!(
            "scheduled: {n} scheduled in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        Ok::<_, anyhow::Error>(())
    };
    let consumer = async {
        let mut late = Vec::with_capacity(n);
        let mut early = 0;
        let deadline = tokio::time::Instant::now()
            + AHEAD
            + Duration::from_secs(60)
            + Duration::from_secs_f64(n as f64 / f64::from(per_sec.max(1)));
        while late.len() < n {
            let next = tokio::time::timeout_at(deadline, deliveries.next())
                .await
                .map_err(|_| anyhow!("only {} of {n} scheduled messages arrived", late.len()))?
                .ok_or_else(|| anyhow!("the consumer stopped"))??;
            let arrived = chrono::Utc::now().timestamp_micros();
            let due_ms = match next
                .properties
                .headers()
                .as_ref()
                .and_then(|h| h.inner().get(DUE_AT_HEADER).cloned())
            {
                Some(AMQPValue::LongLongInt(ms)) => ms,
                _ => anyhow::bail!("a message without {DUE_AT_HEADER}"),
            };
            let micros = arrived - due_ms * 1000;
            early += usize::from(micros < 0);
            late.push(Duration::from_micros(u64::try_from(micros).unwrap_or(0)));
        }
        Ok::<_, anyhow::Error>((late, early))
    };
    let (p, late) = tokio::join!(producer, consumer);
    let elapsed = started.elapsed();
    let _ = running.stop().await;
    crate::lean::delete_queues(&conn, &[Tick::ROUTE]).await;
    let _ = conn.close(200, "done".into()).await;
    p?;
    let (latencies, early) = late?;
    Ok((crate::measure::Run { latencies, elapsed }, early))
}
