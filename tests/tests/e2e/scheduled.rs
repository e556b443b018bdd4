//! Scheduled messages through the real PostgreSQL and RabbitMQ: stored with the time they
//! are due (`QueuePublisher::send_at`, `tx.schedule`), published to their route by the
//! `ScheduledRelay` then. Each test has a route of its own, read with `basic.get`, and a
//! database of its own. What is asserted is order (never before due, once, or never), not
//! how late: lateness is the benchmark's.

use std::time::Duration;

use chrono::{DateTime, Utc};
use e2e::pg::TestDb;
use e2e::{RawPeer, wait_until};
use serde::{Deserialize, Serialize};
use worker_kit::TaskContract;
use worker_kit::db::{Client, DbError};
use worker_kit::outbox::{DUE_AT_HEADER, ScheduledRelay};
use worker_kit::queue::{QueuePublisher, SCHEDULED_SQL, Schedule, ScheduleError};
use worker_kit::runner::Running;

/// Declares a task contract with a route of its own (routes are constants; one per test
/// keeps the tests of this file apart while they run in parallel).
macro_rules! task {
    ($name:ident, $route:literal) => {
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
        struct $name {
            n: u32,
        }
        impl TaskContract for $name {
            const ROUTE: &'static str = $route;
        }
    };
}

task!(Due, "e2e.scheduled.due");
task!(Restart, "e2e.scheduled.restart");
task!(Cancelled, "e2e.scheduled.cancel");
task!(RolledBack, "e2e.scheduled.rollback");
task!(Failover, "e2e.scheduled.failover");

/// A database with the kit's scheduled-messages table, a client of it, and `route`'s queue
/// declared empty.
async fn setup(route: &str) -> (TestDb, Client, RawPeer) {
    let db = TestDb::create("scheduled", SCHEDULED_SQL).await;
    let client = Client::new("main", &db.config()).unwrap();
    let peer = RawPeer::connect().await;
    peer.delete(&[route]).await;
    peer.declare_work_queue(route).await;
    (db, client, peer)
}

async fn relay(client: &Client) -> Running {
    e2e::start(
        e2e::runner("scheduled-relay")
            .await
            .register_worker(ScheduledRelay::new(client).poll_interval(Duration::from_millis(500))),
    )
    .await
}

async fn publisher(client: &Client) -> QueuePublisher {
    QueuePublisher::new(&e2e::broker("scheduler").await).with_database(client)
}

/// Messages still pending in the table.
async fn pending(db: &TestDb) -> i64 {
    db.client()
        .await
        .query_one("SELECT count(*) FROM worker_kit_scheduled", &[])
        .await
        .unwrap()
        .get(0)
}

/// Takes every message in `route` now: (message_id, task number, due-at header).
async fn drain(peer: &RawPeer, route: &str) -> Vec<(String, u32, i64)> {
    let mut got = Vec::new();
    while let Some(m) = peer.get(route).await {
        let props = &m.delivery.properties;
        let id = props.message_id().as_ref().unwrap().to_string();
        let n = e2e::reply_json(&m.delivery)["data"]["n"].as_u64().unwrap();
        let due = match props
            .headers()
            .as_ref()
            .and_then(|h| h.inner().get(DUE_AT_HEADER).cloned())
        {
            Some(lapin::types::AMQPValue::LongLongInt(ms)) => ms,
            other => panic!("no {DUE_AT_HEADER} header: {other:?}"),
        };
        got.push((id, u32::try_from(n).unwrap(), due));
    }
    got
}

async fn past(when: DateTime<Utc>) {
    wait_until(
        Duration::from_secs(30),
        "the due time to pass",
        || async move { Utc::now() > when },
    )
    .await;
}

#[tokio::test]
async fn delivered_when_due_and_not_before() {
    let (db, client, peer) = setup(Due::ROUTE).await;
    let running = relay(&client).await;
    let publisher = publisher(&client).await;
    let at = Utc::now() + chrono::Duration::milliseconds(1500);
    let first = publisher.send_at(at, &Due { n: 1 }).await.unwrap();
    let second = publisher
        .send_after(Duration::from_millis(800), &Due { n: 2 })
        .await
        .unwrap();
    // Scheduled, stored, not published yet.
    assert_eq!(
        peer.ready_count(Due::ROUTE).await,
        0,
        "published before due"
    );
    assert_eq!(pending(&db).await, 2);
    let got = std::sync::Mutex::new(Vec::new());
    wait_until(Duration::from_secs(30), "both scheduled messages", || {
        let (peer, got) = (&peer, &got);
        async move {
            let taken = drain(peer, Due::ROUTE).await;
            let now = Utc::now().timestamp_millis();
            for m in &taken {
                assert!(
                    now >= m.2,
                    "message {} arrived {} ms before it was due",
                    m.1,
                    m.2 - now
                );
            }
            let mut got = got.lock().unwrap();
            got.extend(taken);
            got.len() >= 2
        }
    })
    .await;
    let got = got.into_inner().unwrap();
    // In due order, each under the id send_at returned, the first due when asked.
    let ids: Vec<(&str, u32)> = got.iter().map(|m| (m.0.as_str(), m.1)).collect();
    assert_eq!(
        ids,
        [
            (second.to_string().as_str(), 2),
            (first.to_string().as_str(), 1)
        ]
    );
    assert_eq!(got[1].2, at.timestamp_millis());
    assert_eq!(pending(&db).await, 0);
    let _ = running.stop().await;
    peer.delete(&[Due::ROUTE]).await;
    db.drop_db().await;
}

#[tokio::test]
async fn scheduled_before_a_stop_is_delivered_once_after_the_restart() {
    let (db, client, peer) = setup(Restart::ROUTE).await;
    let running = relay(&client).await;
    let publisher = publisher(&client).await;
    let at = Utc::now() + chrono::Duration::milliseconds(1200);
    let id = publisher.send_at(at, &Restart { n: 7 }).await.unwrap();
    running.stop().await.unwrap();
    past(at).await;
    // Due, but no relay runs: still pending, not published.
    assert_eq!(pending(&db).await, 1);
    assert_eq!(peer.ready_count(Restart::ROUTE).await, 0);
    let running = relay(&client).await;
    wait_until(
        Duration::from_secs(30),
        "the message published and its row gone",
        || {
            let (peer, db) = (&peer, &db);
            async move { pending(db).await == 0 && peer.ready_count(Restart::ROUTE).await >= 1 }
        },
    )
    .await;
    let got = drain(&peer, Restart::ROUTE).await;
    assert_eq!(got.len(), 1, "delivered once: {got:?}");
    assert_eq!((got[0].0.as_str(), got[0].1), (id.to_string().as_str(), 7));
    let _ = running.stop().await;
    peer.delete(&[Restart::ROUTE]).await;
    db.drop_db().await;
}

#[tokio::test]
async fn cancelled_before_due_is_never_delivered_and_cancel_after_publish_says_false() {
    let (db, client, peer) = setup(Cancelled::ROUTE).await;
    let running = relay(&client).await;
    let publisher = publisher(&client).await;
    let at = Utc::now() + chrono::Duration::milliseconds(1000);
    let cancelled = publisher.send_at(at, &Cancelled { n: 1 }).await.unwrap();
    // Due after the cancelled one: once it is published, the cancelled one's time has
    // passed too, and the relay has looked at everything due.
    let kept = publisher
        .send_at(
            at + chrono::Duration::milliseconds(300),
            &Cancelled { n: 2 },
        )
        .await
        .unwrap();
    assert!(publisher.cancel(cancelled).await.unwrap(), "still pending");
    assert!(
        !publisher.cancel(cancelled).await.unwrap(),
        "cancelled already"
    );
    wait_until(
        Duration::from_secs(30),
        "the kept message published",
        || {
            let db = &db;
            async move { pending(db).await == 0 }
        },
    )
    .await;
    let got = drain(&peer, Cancelled::ROUTE).await;
    assert_eq!(got.len(), 1, "only the kept message: {got:?}");
    assert_eq!(
        (got[0].0.as_str(), got[0].1),
        (kept.to_string().as_str(), 2)
    );
    assert!(!publisher.cancel(kept).await.unwrap(), "published already");
    let _ = running.stop().await;
    peer.delete(&[Cancelled::ROUTE]).await;
    db.drop_db().await;
}

#[tokio::test]
async fn a_rolled_back_schedule_is_never_delivered() {
    let (db, client, peer) = setup(RolledBack::ROUTE).await;
    let running = relay(&client).await;
    let now = Utc::now();
    let rolled_back = client
        .transaction(|tx| {
            Box::pin(async move {
                tx.schedule(now, &RolledBack { n: 1 }).await?;
                Err::<(), _>(DbError::Invalid("rolled back on purpose".into()))
            })
        })
        .await;
    assert!(rolled_back.is_err());
    // Committed after the rolled-back one and due after it: once it is published, the
    // relay has seen whatever the rolled-back transaction could have left.
    let committed = client
        .transaction(|tx| {
            Box::pin(async move {
                let id = tx.schedule(now, &RolledBack { n: 2 }).await?;
                // Cancelled in the same transaction: nothing of it is ever published.
                let gone = tx
                    .schedule_after(Duration::ZERO, &RolledBack { n: 3 })
                    .await?;
                assert!(tx.cancel_scheduled(gone).await?);
                Ok::<_, DbError>(id)
            })
        })
        .await
        .unwrap();
    wait_until(
        Duration::from_secs(30),
        "the committed message published",
        || {
            let db = &db;
            async move { pending(db).await == 0 }
        },
    )
    .await;
    let got = drain(&peer, RolledBack::ROUTE).await;
    assert_eq!(got.len(), 1, "only the committed message: {got:?}");
    assert_eq!(
        (got[0].0.as_str(), got[0].1),
        (committed.to_string().as_str(), 2)
    );
    let _ = running.stop().await;
    peer.delete(&[RolledBack::ROUTE]).await;
    db.drop_db().await;
}

#[tokio::test]
async fn two_relays_publish_each_message_once_and_one_takes_over_when_the_other_stops() {
    let (db, client, peer) = setup(Failover::ROUTE).await;
    let (a, b) = (relay(&client).await, relay(&client).await);
    let publisher = publisher(&client).await;
    let start = Utc::now() + chrono::Duration::milliseconds(300);
    for n in 0..40 {
        publisher
            .send_at(
                start + chrono::Duration::milliseconds(i64::from(n) * 20),
                &Failover { n },
            )
            .await
            .unwrap();
    }
    wait_until(Duration::from_secs(30), "the first 40 published", || {
        let db = &db;
        async move { pending(db).await == 0 }
    })
    .await;
    a.stop().await.unwrap();
    let at = Utc::now() + chrono::Duration::milliseconds(500);
    publisher.send_at(at, &Failover { n: 40 }).await.unwrap();
    wait_until(
        Duration::from_secs(30),
        "the 41st published by the other relay",
        || {
            let db = &db;
            async move { pending(db).await == 0 }
        },
    )
    .await;
    let mut got: Vec<u32> = drain(&peer, Failover::ROUTE)
        .await
        .into_iter()
        .map(|m| m.1)
        .collect();
    got.sort_unstable();
    assert_eq!(got, (0..=40).collect::<Vec<_>>(), "each once");
    let _ = b.stop().await;
    peer.delete(&[Failover::ROUTE]).await;
    db.drop_db().await;
}

#[tokio::test]
async fn a_publisher_without_a_database_says_how_to_give_it_one() {
    let publisher = QueuePublisher::new(&e2e::broker("scheduler").await);
    let e = publisher
        .send_after(Duration::from_secs(1), &Due { n: 0 })
        .await
        .unwrap_err();
    assert!(matches!(e, ScheduleError::NoDatabase), "{e:?}");
    let shown = e.to_string();
    assert!(
        shown.contains("with_database(&db)") && shown.contains("ScheduledRelay"),
        "{shown}"
    );
    let e = publisher.cancel(uuid::Uuid::new_v4()).await.unwrap_err();
    assert!(matches!(e, ScheduleError::NoDatabase), "{e:?}");
}

/// The example service: an item created with `expires_in_ms` is deleted when its scheduled
/// `example.items.expire` message comes; one created without stays.
#[tokio::test]
async fn an_example_item_created_with_expires_in_ms_is_deleted_when_due() {
    use stubs::example::items::{CreateItemV2, GetItem, Money};
    let db = TestDb::with_models("example").await;
    let dsn = db.dsn.clone();
    let mut fx = worker_kit::testing::BrokerFixture::from_env().unwrap();
    fx.start("example", |setup| {
        example::build(setup.with_var("DB_MAIN_DSN", dsn))
    })
    .await
    .unwrap();
    let client = fx.client().await.unwrap();
    let create = |name: &str, expires_in_ms| CreateItemV2 {
        name: name.into(),
        price: Money::eur(100),
        tags: vec![],
        expires_in_ms,
    };
    let kept = client.call(&create("kept", None)).await.unwrap();
    let expiring = client.call(&create("expiring", Some(300))).await.unwrap();
    assert_eq!(
        client
            .call(&GetItem { id: expiring.id })
            .await
            .unwrap()
            .name,
        "expiring"
    );
    wait_until(Duration::from_secs(30), "the expiring item deleted", || {
        let client = &client;
        async move {
            client
                .call(&GetItem { id: expiring.id })
                .await
                .is_err_and(|e| e.remote_type() == Some("NotFound"))
        }
    })
    .await;
    assert_eq!(pending(&db).await, 0);
    assert_eq!(
        client.call(&GetItem { id: kept.id }).await.unwrap().name,
        "kept"
    );
    drop(client);
    fx.finish().await.unwrap();
    db.drop_db().await;
}
