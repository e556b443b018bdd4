use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use e2e::{RawPeer, unique, wait_until};
use worker_kit::config::PausePolicy;
use worker_kit::queue::{QueuePublisher, QueueWorker, parking_queue};
use worker_kit::rpc::RpcWorker;
use worker_kit::{Database, ErrorReply, Payload, State};

/// A stand-in database whose health the test switches (this tests the Runner's pause
/// logic; the real-PostgreSQL outage is covered with the database client's tests).
#[derive(Clone, Default)]
struct Switch(Arc<AtomicBool>);

#[async_trait]
impl Database for Switch {
    fn name(&self) -> &str {
        "switch"
    }
    async fn connect(&self) -> Result<(), worker_kit::Error> {
        self.0.store(true, Ordering::SeqCst);
        Ok(())
    }
    async fn is_ready(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
    async fn close(&self) {}
}

async fn work(
    State(n): State<Arc<AtomicUsize>>,
    Payload(_): Payload<u8>,
) -> Result<(), ErrorReply> {
    n.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

#[tokio::test]
async fn queue_workers_pause_while_the_database_is_down() {
    let _serial = crate::serial().await;
    let (task_route, rpc_route) = (unique("paused"), unique("not-paused"));
    let db = Switch::default();
    let handled = Arc::new(AtomicUsize::new(0));
    let mut config = e2e::config();
    config.pause_on_db_outage = PausePolicy::Queue;
    config.db_health_interval = Duration::from_millis(50);
    let running = worker_kit::Runner::new("pause", Arc::new(config), e2e::broker("pause").await)
        .register_shared_database(Arc::new(db.clone()))
        .register_worker(
            QueueWorker::new()
                .route(&task_route, work)
                .with_state(handled.clone()),
        )
        .register_worker(
            RpcWorker::new()
                .route(&rpc_route, work)
                .with_state(handled.clone()),
        )
        .start()
        .await
        .unwrap();
    let peer = RawPeer::connect().await;
    let publisher = QueuePublisher::new(&e2e::broker("publisher").await);
    publisher.publish(&task_route, &1u8).await.unwrap();
    wait_until(Duration::from_secs(10), "first message handled", || {
        let h = handled.clone();
        async move { h.load(Ordering::SeqCst) == 1 }
    })
    .await;

    db.0.store(false, Ordering::SeqCst);
    wait_until(
        Duration::from_secs(10),
        "the queue worker stopped consuming",
        || {
            let (peer, r) = (&peer, task_route.clone());
            async move { peer.counts(&r).await.1 == 0 }
        },
    )
    .await;
    assert_eq!(
        peer.counts(&rpc_route).await.1,
        1,
        "RPC keeps consuming under the `queue` policy"
    );
    publisher.publish(&task_route, &2u8).await.unwrap();
    assert_eq!(
        peer.ready_count(&task_route).await,
        1,
        "the message waits in its queue"
    );
    assert_eq!(handled.load(Ordering::SeqCst), 1);

    db.0.store(true, Ordering::SeqCst);
    wait_until(Duration::from_secs(10), "resumed and handled", || {
        let h = handled.clone();
        async move { h.load(Ordering::SeqCst) == 2 }
    })
    .await;
    running.stop().await.unwrap();
    peer.delete(&[&task_route, &parking_queue(&task_route), &rpc_route])
        .await;
}
