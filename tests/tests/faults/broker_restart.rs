use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use e2e::pg::TestDb;
use e2e::{RawPeer, handled, unique, wait_until};
use futures::future::join_all;
use worker_kit::queue::{QueuePublisher, QueueWorker, parking_queue};
use worker_kit::{ErrorReply, Payload, State};

const MESSAGES: i64 = 10_000;

async fn record(State(pool): State<Pool>, Payload(id): Payload<i64>) -> Result<(), ErrorReply> {
    // A little work per message, so the restart lands in the middle of the run.
    tokio::time::sleep(Duration::from_millis(2)).await;
    handled::record(&pool, id).await
}

async fn rabbitmqctl(arg: &str) {
    let out = tokio::process::Command::new("rabbitmqctl")
        .arg(arg)
        .output()
        .await
        .expect("rabbitmqctl is installed (the test restarts the local RabbitMQ)");
    assert!(
        out.status.success(),
        "rabbitmqctl {arg}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A real RabbitMQ restart (stop_app/start_app) in the middle of 10,000 persistent
/// messages: the worker reconnects and resumes on its own; every message is recorded
/// at least once (the handler is idempotent), none is parked, and what is left in the
/// queue is only second copies of handled messages.
#[tokio::test]
async fn broker_restart_under_load() {
    let _serial = crate::serial().await;
    let db = TestDb::create("restart", handled::SCHEMA).await;
    let pg = db.client().await;
    let route = unique("restart");
    let peer = RawPeer::connect().await;
    peer.declare_work_queue(&route).await;
    drop(peer);
    let publisher = QueuePublisher::new(&e2e::broker("publisher").await);
    for chunk in (0..MESSAGES).collect::<Vec<_>>().chunks(1000) {
        join_all(chunk.iter().map(|id| {
            let (p, r) = (publisher.clone(), route.clone());
            async move { p.publish(&r, id).await.expect("published and confirmed") }
        }))
        .await;
    }

    let pool = handled::pool(&db.dsn, 8);
    let mut config = e2e::config();
    config.prefetch = 8;
    let broker = e2e::broker("restart-worker").await;
    let running = worker_kit::Runner::new("restart", Arc::new(config), broker)
        .register_worker(QueueWorker::new().route(&route, record).with_state(pool))
        .start()
        .await
        .unwrap();
    wait_until(Duration::from_secs(60), "1,000 messages handled", || {
        let pg = &pg;
        async move { handled::count(pg).await >= 1000 }
    })
    .await;

    rabbitmqctl("stop_app").await;
    let before = handled::count(&pg).await;
    rabbitmqctl("start_app").await;
    let back = Instant::now();
    assert!(before < MESSAGES, "the restart came while work remained");
    wait_until(
        Duration::from_secs(5),
        "consumers back within 5 s of the broker",
        || {
            let pg = &pg;
            async move { handled::count(pg).await > before }
        },
    )
    .await;
    eprintln!("consuming again {:?} after start_app", back.elapsed());
    wait_until(Duration::from_secs(120), "all 10,000 recorded", || {
        let pg = &pg;
        async move { handled::count(pg).await == MESSAGES }
    })
    .await;
    running.stop().await.unwrap();
    let handled: i64 = pg
        .query_one("SELECT sum(times)::bigint FROM handled", &[])
        .await
        .unwrap()
        .get(0);
    assert!(handled >= MESSAGES, "every message handled at least once");
    // Every id is recorded, so anything still queued is a second copy of a handled
    // message: a delivery whose ack the restart lost, or one prefetched but not started
    // when `stop` requeued it. Such copies were delivered before (redelivered is set),
    // and there can be no more of them than two prefetch windows.
    let peer = RawPeer::connect().await;
    let mut leftovers = 0;
    while let Some(m) = peer.get(&route).await {
        assert!(
            m.delivery.redelivered,
            "a message left in the queue was never delivered: lost work"
        );
        leftovers += 1;
    }
    assert!(
        leftovers <= 16,
        "{leftovers} copies left in the queue: more than two prefetch windows"
    );
    assert_eq!(
        peer.ready_count(&parking_queue(&route)).await,
        0,
        "none parked"
    );
    peer.delete(&[&route, &parking_queue(&route)]).await;
    drop(pg);
    db.drop_db().await;
}
