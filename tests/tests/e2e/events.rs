//! Events: the transactional outbox, its relay and topic subscriptions, through the real
//! PostgreSQL and RabbitMQ. Every test uses an exchange and a subscribing service of its
//! own, so it sees only its own events.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use e2e::pg::TestDb;
use e2e::{RawPeer, gzip, unique, wait_until};
use lapin::BasicProperties;
use lapin::options::{BasicPublishOptions, ExchangeDeleteOptions};
use lapin::types::AMQPValue;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use worker_kit::db::{Client, DbError, Executor};
use worker_kit::events::{EventMeta, EventWorker, subscription_queue};
use worker_kit::outbox::{self, Emit, EventDelivery, OutboxSettings, ProcessedEventsPruner, Relay};
use worker_kit::queue::parking_queue;
use worker_kit::{ErrorReply, EventContract, Payload, State};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct ThingChanged {
    id: i64,
    seq: u32,
}

impl EventContract for ThingChanged {
    const ROUTING_KEY: &'static str = "thing.thing.changed";
    fn aggregate_id(&self) -> String {
        self.id.to_string()
    }
}

#[derive(Clone, Default)]
struct Seen {
    events: Arc<Mutex<Vec<(EventMeta, ThingChanged)>>>,
}

async fn record(
    State(seen): State<Seen>,
    event: EventMeta,
    Payload(thing): Payload<ThingChanged>,
) -> Result<(), ErrorReply> {
    seen.events.lock().await.push((event, thing));
    Ok(())
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

async fn outbox_db() -> (TestDb, Client, worker_kit::db::DbConfig) {
    let db = TestDb::create(
        "outbox",
        &format!(
            "{}\nCREATE TABLE things (id bigint PRIMARY KEY, seq int NOT NULL);",
            outbox::OUTBOX_SQL
        ),
    )
    .await;
    let config = db.config();
    let client = Client::new("main", &config).unwrap();
    (db, client, config)
}

/// Changes thing `id` to `seq` and emits the event, in one transaction that commits
/// unless `roll_back`.
async fn change(db: &Client, id: i64, seq: u32, roll_back: bool) -> Result<(), DbError> {
    db.transaction(|tx| {
        Box::pin(async move {
            tx.execute(
                "INSERT INTO things (id, seq) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET seq = $2",
                &[&id, &i32::try_from(seq).unwrap()],
            )
            .await?;
            tx.emit(&ThingChanged { id, seq }).await?;
            if roll_back {
                return Err(DbError::Invalid("rolled back on purpose".into()));
            }
            Ok(())
        })
    })
    .await
}

async fn cleanup(exchange: &str, queues: &[String]) {
    let peer = RawPeer::connect().await;
    let mut all: Vec<&str> = queues.iter().map(String::as_str).collect();
    let parked: Vec<String> = queues.iter().map(|q| parking_queue(q)).collect();
    all.extend(parked.iter().map(String::as_str));
    peer.delete(&all).await;
    let _ = peer
        .channel
        .exchange_delete(exchange.into(), ExchangeDeleteOptions::default())
        .await;
}

#[tokio::test]
async fn rolled_back_emits_nothing_committed_emits_its_events_in_order() {
    let exchange = unique("events");
    let service = leak(unique("sub"));
    let (db, client, config) = outbox_db().await;
    let seen = Seen::default();
    let subscriber = e2e::start(
        e2e::runner(service).await.register_worker(
            EventWorker::new()
                .exchange(&exchange)
                .event::<ThingChanged, _, _, _>(record)
                .with_state(seen.clone()),
        ),
    )
    .await;
    // Rolled back before anything is relayed, and in between committed changes.
    change(&client, 99, 1, true).await.unwrap_err();
    let relay = e2e::start(
        e2e::runner("relay")
            .await
            .register_worker(Relay::new(&client, &config).exchange(&exchange)),
    )
    .await;
    for seq in 1..=5 {
        for id in 1..=4 {
            change(&client, id, seq, false).await.unwrap();
        }
        change(&client, 99, seq + 1, true).await.unwrap_err();
    }
    wait_until(Duration::from_secs(20), "20 events applied", || {
        let seen = seen.clone();
        async move { seen.events.lock().await.len() >= 20 }
    })
    .await;
    // The outbox is drained: nothing further can arrive.
    let pg = db.client().await;
    wait_until(Duration::from_secs(10), "every outbox row sent", || {
        let pg = &pg;
        async move {
            pg.query_one(
                "SELECT count(*) FROM worker_kit_outbox WHERE sent_at IS NULL",
                &[],
            )
            .await
            .unwrap()
            .get::<_, i64>(0)
                == 0
        }
    })
    .await;
    subscriber.stop().await.unwrap();
    relay.stop().await.unwrap();

    let events = seen.events.lock().await.clone();
    assert_eq!(events.len(), 20, "exactly the committed events: {events:?}");
    assert!(
        events.iter().all(|(_, t)| t.id != 99),
        "a rolled-back event was published"
    );
    let mut per_aggregate: HashMap<String, Vec<u32>> = HashMap::new();
    for (meta, thing) in &events {
        assert_eq!(meta.aggregate_id, thing.id.to_string());
        assert_eq!(meta.name, "thing.thing.changed");
        assert!(meta.seq.is_some_and(|s| s > 0));
        assert!(meta.occurred_at.is_some());
        per_aggregate
            .entry(meta.aggregate_id.clone())
            .or_default()
            .push(thing.seq);
    }
    for (id, seqs) in &per_aggregate {
        assert_eq!(seqs, &vec![1, 2, 3, 4, 5], "aggregate {id} out of order");
    }
    let ids: HashSet<uuid::Uuid> = events.iter().map(|(m, _)| m.id).collect();
    assert_eq!(ids.len(), 20, "event ids are unique");
    let stored: HashSet<uuid::Uuid> = pg
        .query("SELECT event_id FROM worker_kit_outbox", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ids, stored, "the published ids are the committed rows' ids");
    cleanup(
        &exchange,
        &[subscription_queue(service, ThingChanged::ROUTING_KEY)],
    )
    .await;
    db.drop_db().await;
}

#[tokio::test]
async fn two_relays_publish_each_event_once() {
    let exchange = unique("events");
    let service = leak(unique("sub"));
    let (db, client, config) = outbox_db().await;
    let seen = Seen::default();
    let subscriber = e2e::start(
        e2e::runner(service).await.register_worker(
            EventWorker::new()
                .exchange(&exchange)
                .event::<ThingChanged, _, _, _>(record)
                .with_state(seen.clone()),
        ),
    )
    .await;
    let relay_a = e2e::start(
        e2e::runner("relay-a").await.register_worker(
            Relay::new(&client, &config)
                .exchange(&exchange)
                .batch_size(20)
                .poll_interval(Duration::from_millis(50)),
        ),
    )
    .await;
    let relay_b = e2e::start(
        e2e::runner("relay-b").await.register_worker(
            Relay::new(&client, &config)
                .exchange(&exchange)
                .batch_size(20)
                .poll_interval(Duration::from_millis(50)),
        ),
    )
    .await;
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..8i64 {
        let client = client.clone();
        writers.spawn(async move {
            for seq in 1..=50 {
                change(&client, w, seq, false).await.unwrap();
            }
        });
    }
    while let Some(r) = writers.join_next().await {
        r.unwrap();
    }
    let pg = db.client().await;
    wait_until(Duration::from_secs(30), "every outbox row sent", || {
        let pg = &pg;
        async move {
            pg.query_one(
                "SELECT count(*) FROM worker_kit_outbox WHERE sent_at IS NULL",
                &[],
            )
            .await
            .unwrap()
            .get::<_, i64>(0)
                == 0
        }
    })
    .await;
    relay_a.stop().await.unwrap();
    relay_b.stop().await.unwrap();
    let queue = subscription_queue(service, ThingChanged::ROUTING_KEY);
    let peer = RawPeer::connect().await;
    wait_until(Duration::from_secs(20), "400 events handled", || {
        let seen = seen.clone();
        async move { seen.events.lock().await.len() >= 400 }
    })
    .await;
    subscriber.stop().await.unwrap();
    assert_eq!(peer.ready_count(&queue).await, 0, "events left unhandled");
    let events = seen.events.lock().await.clone();
    let ids: HashSet<uuid::Uuid> = events.iter().map(|(m, _)| m.id).collect();
    assert_eq!(ids.len(), 400, "each event arrived");
    assert_eq!(events.len(), 400, "and arrived once");
    let mut per_aggregate: HashMap<i64, Vec<u32>> = HashMap::new();
    for (_, t) in &events {
        per_aggregate.entry(t.id).or_default().push(t.seq);
    }
    for (id, seqs) in per_aggregate {
        assert_eq!(
            seqs,
            (1..=50).collect::<Vec<_>>(),
            "aggregate {id} in order"
        );
    }
    cleanup(&exchange, &[queue]).await;
    db.drop_db().await;
}

#[derive(Clone)]
struct Applier {
    db: Client,
    attempts: Arc<Mutex<u32>>,
}

/// Applies `ThingChanged` once per event id; `seq == 0` is poison.
async fn apply(
    State(app): State<Applier>,
    event: EventMeta,
    Payload(thing): Payload<ThingChanged>,
) -> Result<(), ErrorReply> {
    *app.attempts.lock().await += 1;
    if thing.seq == 0 {
        return Err(ErrorReply::new("Poison", "seq 0 cannot be applied"));
    }
    app.db
        .transaction(|tx| {
            Box::pin(async move {
                if outbox::first_delivery(tx, &event).await? == EventDelivery::Duplicate {
                    return Ok(());
                }
                tx.execute(
                    "INSERT INTO things (id, seq) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET seq = things.seq + $2",
                    &[&thing.id, &i32::try_from(thing.seq).unwrap()],
                )
                .await?;
                Ok::<_, DbError>(())
            })
        })
        .await
        .map_err(|e| ErrorReply::unavailable(e.to_string()))
}

async fn publish_event(peer: &RawPeer, exchange: &str, id: uuid::Uuid, thing: &ThingChanged) {
    let body = gzip(&serde_json::to_vec(&serde_json::json!({ "data": thing })).unwrap());
    let mut headers = lapin::types::FieldTable::default();
    headers.insert(
        "x-aggregate-id".into(),
        AMQPValue::LongString(thing.id.to_string().into()),
    );
    peer.channel
        .basic_publish(
            exchange.into(),
            ThingChanged::ROUTING_KEY.into(),
            BasicPublishOptions::default(),
            &body,
            BasicProperties::default()
                .with_message_id(id.to_string().into())
                .with_type(ThingChanged::ROUTING_KEY.into())
                .with_delivery_mode(2)
                .with_headers(headers),
        )
        .await
        .unwrap()
        .await
        .unwrap();
}

#[tokio::test]
async fn redelivered_event_changes_nothing_and_poison_is_parked_without_stopping() {
    let exchange = unique("events");
    let service = leak(unique("sub"));
    let db = TestDb::create(
        "subscriber",
        &format!(
            "{}\nCREATE TABLE things (id bigint PRIMARY KEY, seq int NOT NULL);",
            outbox::PROCESSED_EVENTS_SQL
        ),
    )
    .await;
    let client = Client::new("main", &db.config()).unwrap();
    let app = Applier {
        db: client.clone(),
        attempts: Arc::default(),
    };
    let subscriber = e2e::start(
        e2e::runner(service).await.register_worker(
            EventWorker::new()
                .exchange(&exchange)
                .max_retries(2)
                .event::<ThingChanged, _, _, _>(apply)
                .with_state(app.clone()),
        ),
    )
    .await;
    let queue = subscription_queue(service, ThingChanged::ROUTING_KEY);
    let peer = RawPeer::connect().await;
    let first = uuid::Uuid::new_v4();
    publish_event(&peer, &exchange, first, &ThingChanged { id: 1, seq: 5 }).await;
    publish_event(&peer, &exchange, first, &ThingChanged { id: 1, seq: 5 }).await;
    publish_event(
        &peer,
        &exchange,
        uuid::Uuid::new_v4(),
        &ThingChanged { id: 2, seq: 0 },
    )
    .await;
    publish_event(
        &peer,
        &exchange,
        uuid::Uuid::new_v4(),
        &ThingChanged { id: 1, seq: 1 },
    )
    .await;
    let parked = parking_queue(&queue);
    wait_until(Duration::from_secs(20), "poison parked", || {
        let peer = &peer;
        let parked = &parked;
        async move { peer.ready_count(parked).await == 1 }
    })
    .await;
    let pg = db.client().await;
    wait_until(Duration::from_secs(20), "later event applied", || {
        let pg = &pg;
        async move {
            pg.query_opt("SELECT seq FROM things WHERE id = 1", &[])
                .await
                .unwrap()
                .is_some_and(|r| r.get::<_, i32>(0) == 6)
        }
    })
    .await;
    // And the subscription still consumes after the parking.
    publish_event(
        &peer,
        &exchange,
        uuid::Uuid::new_v4(),
        &ThingChanged { id: 3, seq: 7 },
    )
    .await;
    wait_until(
        Duration::from_secs(20),
        "event after the poison applied",
        || {
            let pg = &pg;
            async move {
                pg.query_opt("SELECT seq FROM things WHERE id = 3", &[])
                    .await
                    .unwrap()
                    .is_some()
            }
        },
    )
    .await;
    subscriber.stop().await.unwrap();
    let seq1: i32 = pg
        .query_one("SELECT seq FROM things WHERE id = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(seq1, 6, "the duplicate of event {first} was applied twice");
    assert!(
        pg.query_opt("SELECT 1 FROM things WHERE id = 2", &[])
            .await
            .unwrap()
            .is_none(),
        "poison applied"
    );
    let processed: i64 = pg
        .query_one("SELECT count(*) FROM worker_kit_processed_events", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(processed, 3);
    // Poison: first attempt + 2 retries; the others once each, the duplicate included.
    assert_eq!(*app.attempts.lock().await, 3 + 4);
    let msg = peer.get(&parked).await.expect("parked poison");
    let headers = msg
        .delivery
        .properties
        .headers()
        .clone()
        .unwrap_or_default();
    assert!(matches!(
        headers.inner().get("x-error-type"),
        Some(AMQPValue::LongString(s)) if s.as_bytes() == b"Poison"
    ));
    cleanup(&exchange, &[queue]).await;
    db.drop_db().await;
}

/// Sent outbox rows older than the retention are pruned by the running relay (pending and
/// newer rows stay); processed-event ids older than theirs by the pruner, in batches, so a
/// backlog larger than one batch goes too.
#[tokio::test]
async fn sent_rows_and_processed_ids_are_pruned_after_their_retention() {
    let exchange = unique("events");
    let db = TestDb::create(
        "prune",
        &format!("{}\n{}", outbox::OUTBOX_SQL, outbox::PROCESSED_EVENTS_SQL),
    )
    .await;
    let config = db.config();
    let client = Client::new("main", &config).unwrap();
    let pg = db.client().await;
    pg.batch_execute(
        "INSERT INTO worker_kit_outbox (event_id, routing_key, aggregate_id, payload, occurred_at, sent_at) \
         SELECT gen_random_uuid(), 'thing.thing.changed', '1', '{}', now() - interval '3 days', \
                now() - make_interval(days => CASE WHEN g <= 20 THEN 2 ELSE 0 END) \
         FROM generate_series(1, 30) g; \
         INSERT INTO worker_kit_processed_events (subscription, event_id, processed_at) \
         SELECT 'sub', gen_random_uuid(), now() - make_interval(days => CASE WHEN g <= 12000 THEN 2 ELSE 0 END) \
         FROM generate_series(1, 12005) g;",
    )
    .await
    .unwrap();
    let count = |sql: &'static str| {
        let pg = &pg;
        async move { pg.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) }
    };

    let pruner = ProcessedEventsPruner::new(&client).retention(Duration::from_secs(86_400));
    assert_eq!(
        pruner.prune().await.unwrap(),
        12_000,
        "every id older than a day, over several batches"
    );
    assert_eq!(
        count("SELECT count(*) FROM worker_kit_processed_events").await,
        5
    );

    let settings = OutboxSettings::from_vars([
        ("EVENTS_EXCHANGE".to_owned(), exchange.clone()),
        ("OUTBOX_RETENTION_SECS".to_owned(), "86400".to_owned()),
    ])
    .unwrap();
    let relay = e2e::start(
        e2e::runner("relay-prune")
            .await
            .register_worker(Relay::new(&client, &config).settings(&settings))
            .register_worker(pruner),
    )
    .await;
    wait_until(
        Duration::from_secs(30),
        "the relay pruned the rows sent two days ago",
        || async { count("SELECT count(*) FROM worker_kit_outbox").await == 10 },
    )
    .await;
    assert_eq!(
        count("SELECT count(*) FROM worker_kit_outbox WHERE sent_at < now() - interval '1 day'")
            .await,
        0
    );
    relay.stop().await.unwrap();
    cleanup(&exchange, &[]).await;
    drop(pg);
    db.drop_db().await;
}

/// Lag of each applied event: now minus its commit time.
#[derive(Clone, Default)]
struct Lags {
    millis: Arc<Mutex<Vec<i64>>>,
}

async fn measure_lag(
    State(lags): State<Lags>,
    event: EventMeta,
    Payload(_): Payload<ThingChanged>,
) -> Result<(), ErrorReply> {
    let at = event
        .occurred_at
        .expect("outbox events carry their commit time");
    let lag = (chrono::Utc::now() - at).num_milliseconds();
    lags.millis.lock().await.push(lag);
    Ok(())
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Not a test: figures for the README (`cargo test --release ... -- --ignored
/// measure_outbox --nocapture`). Events per second from commit to subscriber, the
/// commit-to-handler lag at 500 changes per second, and what emitting costs a writer.
#[tokio::test]
#[ignore = "a measurement, run by hand"]
async fn measure_outbox() {
    let exchange = unique("events");
    let service = leak(unique("sub"));
    let (db, client, config) = outbox_db().await;
    let lags = Lags::default();
    let subscriber = e2e::start(
        e2e::runner(service).await.register_worker(
            EventWorker::new()
                .exchange(&exchange)
                .event::<ThingChanged, _, _, _>(measure_lag)
                .with_state(lags.clone()),
        ),
    )
    .await;
    let relay = e2e::start(
        e2e::runner("relay")
            .await
            .register_worker(Relay::new(&client, &config).exchange(&exchange)),
    )
    .await;

    // Writer cost: one-row transactions with and without an emit, 8 writers.
    async fn writes(client: &Client, n: i64, emit: bool) -> f64 {
        let started = std::time::Instant::now();
        let mut set = tokio::task::JoinSet::new();
        for w in 0..8i64 {
            let client = client.clone();
            set.spawn(async move {
                for i in 0..n / 8 {
                    let id = 1_000_000 * (w + 1) + i + if emit { 0 } else { 500_000 };
                    client
                        .transaction(|tx| {
                            Box::pin(async move {
                                tx.execute("INSERT INTO things (id, seq) VALUES ($1, 1)", &[&id])
                                    .await?;
                                if emit {
                                    tx.emit(&ThingChanged { id, seq: 1 }).await?;
                                }
                                Ok::<_, DbError>(())
                            })
                        })
                        .await
                        .unwrap();
                }
            });
        }
        while set.join_next().await.is_some() {}
        n as f64 / started.elapsed().as_secs_f64()
    }
    let without = writes(&client, 4000, false).await;
    let with = writes(&client, 4000, true).await;
    wait_until(Duration::from_secs(120), "4000 events handled", || {
        let lags = lags.clone();
        async move { lags.millis.lock().await.len() >= 4000 }
    })
    .await;
    lags.millis.lock().await.clear();

    // Throughput: a burst, from the first commit to the last handled event.
    let started = std::time::Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for w in 0..8i64 {
        let client = client.clone();
        set.spawn(async move {
            for seq in 1..=500 {
                change(&client, 10_000 + w, seq, false).await.unwrap();
            }
        });
    }
    while set.join_next().await.is_some() {}
    wait_until(
        Duration::from_secs(120),
        "4000 burst events handled",
        || {
            let lags = lags.clone();
            async move { lags.millis.lock().await.len() >= 4000 }
        },
    )
    .await;
    let burst = 4000.0 / started.elapsed().as_secs_f64();
    lags.millis.lock().await.clear();

    // Lag at 500 changes per second for 6 s.
    let mut tick = tokio::time::interval(Duration::from_millis(2));
    for seq in 1..=3000u32 {
        tick.tick().await;
        let client = client.clone();
        tokio::spawn(
            async move { change(&client, 20_000 + i64::from(seq % 50), seq, false).await },
        );
    }
    wait_until(
        Duration::from_secs(120),
        "3000 paced events handled",
        || {
            let lags = lags.clone();
            async move { lags.millis.lock().await.len() >= 3000 }
        },
    )
    .await;
    let mut sorted = lags.millis.lock().await.clone();
    sorted.sort_unstable();
    println!(
        "outbox: writer {without:.0} tx/s without emit, {with:.0} tx/s with emit; \
         commit→handler {burst:.0} events/s (burst of 4000, 8 writers); \
         lag at 500/s: p50 {} ms, p99 {} ms, max {} ms",
        percentile(&sorted, 0.5),
        percentile(&sorted, 0.99),
        sorted[sorted.len() - 1]
    );
    subscriber.stop().await.unwrap();
    relay.stop().await.unwrap();
    cleanup(
        &exchange,
        &[subscription_queue(service, ThingChanged::ROUTING_KEY)],
    )
    .await;
    db.drop_db().await;
}

/// The broker goes silent (a frozen link) while an event waits in the outbox: the relay
/// is inside its batch, holding the outbox lock and waiting for a publisher confirm that
/// does not come. A stop still ends within the drain deadline plus bounded close times,
/// and the event stays pending (it is published again after the restart).
#[tokio::test]
async fn stop_during_a_broker_outage_with_an_event_pending_ends_promptly() {
    let exchange = unique("events-outage");
    let (db, client, config) = outbox_db().await;
    let proxy = e2e::proxy::Proxy::start("127.0.0.1:5672".parse().unwrap()).await;
    let url = e2e::amqp_url().replacen("127.0.0.1:5672", &format!("127.0.0.1:{}", proxy.port()), 1);
    let mut settings = e2e::config();
    settings.amqp_url = url.parse().unwrap();
    settings.drain_timeout = Duration::from_secs(1);
    settings.connect_timeout = Duration::from_secs(2);
    let broker = worker_kit::amqp::Broker::connect(&url, "relay-outage", Duration::from_secs(2))
        .await
        .unwrap();
    let running = e2e::start(
        worker_kit::Runner::new("relay-outage", Arc::new(settings), broker)
            .register_worker(Relay::new(&client, &config).exchange(&exchange)),
    )
    .await;
    proxy.freeze();
    change(&client, 1, 1, false).await.unwrap();
    let pg = db.client().await;
    wait_until(
        Duration::from_secs(10),
        "the relay holds the outbox lock, waiting for the broker",
        || {
            let pg = &pg;
            async move {
                pg.query_one(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' \
                     AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                    &[],
                )
                .await
                .unwrap()
                .get::<_, i64>(0)
                    > 0
            }
        },
    )
    .await;
    // Drain (1 s) plus closing the channels and the connection (2 s each), with a wide
    // margin: before, the stop waited for the broker for good.
    tokio::time::timeout(Duration::from_secs(15), running.stop())
        .await
        .expect("stop ends within the drain deadline and bounded close times")
        .unwrap();
    let pending: i64 = pg
        .query_one(
            "SELECT count(*) FROM worker_kit_outbox WHERE sent_at IS NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(pending, 1, "the unconfirmed event stays pending");
    drop(proxy);
    let _ = RawPeer::connect()
        .await
        .channel
        .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
        .await;
}
