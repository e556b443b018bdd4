use std::process::Stdio;
use std::time::Duration;

use e2e::pg::TestDb;
use e2e::{RawPeer, handled, unique, wait_until};
use futures::future::join_all;
use worker_kit::queue::{QueuePublisher, parking_queue};

fn spawn_worker(route: &str, dsn: &str) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_fault-worker"))
        .env("AMQP_URL", e2e::amqp_url())
        .env("FAULT_ROUTE", route)
        .env("FAULT_DSN", dsn)
        .env("FAULT_DELAY_MS", "40")
        .env("AMQP_PREFETCH", "16")
        .env("DRAIN_TIMEOUT_MS", "15000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("fault-worker starts")
}

async fn sigterm_and_wait(child: &mut tokio::process::Child) {
    let pid = child.id().expect("running").to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("the service exits after draining")
        .unwrap();
    assert!(status.success(), "graceful stop exits 0, got {status}");
}

/// SIGTERM with work in flight: in-flight messages finish and are acked, the rest stay in
/// the queue; after a restart every message is recorded, none lost and none handled twice.
#[tokio::test]
async fn sigterm_under_load_loses_nothing_and_duplicates_nothing() {
    let _serial = crate::serial().await;
    let db = TestDb::create("sigterm", handled::SCHEMA).await;
    let pg = db.client().await;
    let route = unique("sigterm");
    let peer = RawPeer::connect().await;
    // Declare the queue (durable, as the worker will) so the messages wait for it.
    peer.declare_work_queue(&route).await;
    let publisher = QueuePublisher::new(&e2e::broker("publisher").await);
    join_all((0..1000i64).map(|id| {
        let (p, r) = (publisher.clone(), route.clone());
        async move { p.publish(&r, &id).await.unwrap() }
    }))
    .await;

    let mut worker = spawn_worker(&route, &db.dsn);
    wait_until(
        Duration::from_secs(30),
        "the worker has handled 100 messages",
        || {
            let pg = &pg;
            async move { handled::count(pg).await >= 100 }
        },
    )
    .await;
    sigterm_and_wait(&mut worker).await;
    let after_stop = handled::count(&pg).await;
    assert!(
        after_stop < 1000,
        "the stop came while work remained ({after_stop} done)"
    );
    let (ready, consumers) = peer.counts(&route).await;
    assert_eq!(consumers, 0);
    assert_eq!(
        i64::from(ready),
        1000 - after_stop,
        "exactly the unfinished messages wait in the queue"
    );

    let mut worker = spawn_worker(&route, &db.dsn);
    wait_until(Duration::from_secs(60), "all 1000 recorded", || {
        let pg = &pg;
        async move { handled::count(pg).await == 1000 }
    })
    .await;
    sigterm_and_wait(&mut worker).await;
    let dups: i64 = pg
        .query_one("SELECT count(*) FROM handled WHERE times <> 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(dups, 0, "no message was handled twice");
    assert_eq!(peer.ready_count(&route).await, 0);
    assert_eq!(peer.ready_count(&parking_queue(&route)).await, 0);
    peer.delete(&[&route, &parking_queue(&route)]).await;
    drop(pg);
    db.drop_db().await;
}
