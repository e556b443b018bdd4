use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use e2e::{RawPeer, unique, wait_until};
use tokio::sync::Notify;
use worker_kit::rpc::{CallOptions, RpcClient, RpcWorker};
use worker_kit::{ErrorReply, Payload, State};

#[derive(Clone, Default)]
struct Gate {
    started: Arc<AtomicUsize>,
    finished: Arc<AtomicUsize>,
    open: Arc<Notify>,
}

async fn gated(State(g): State<Gate>, Payload(n): Payload<u32>) -> Result<u32, ErrorReply> {
    g.started.fetch_add(1, Ordering::SeqCst);
    g.open.notified().await;
    g.finished.fetch_add(1, Ordering::SeqCst);
    Ok(n)
}

/// Stop while handlers are in flight: they all finish and answer, and nothing is left
/// unacknowledged in the queue.
#[tokio::test]
async fn graceful_shutdown_drains_in_flight_calls() {
    let route = unique("drain");
    let gate = Gate::default();
    let running = e2e::start(
        e2e::runner("drain").await.register_worker(
            RpcWorker::with_state(gate.clone())
                .prefetch(16)
                .route(&route, gated),
        ),
    )
    .await;
    let c = RpcClient::new(&e2e::broker("caller").await, &e2e::config())
        .await
        .unwrap();
    let calls: Vec<_> = (0..10u32)
        .map(|i| {
            let (c, route) = (c.clone(), route.clone());
            tokio::spawn(async move {
                c.call_route::<_, u32>(&route, &i, CallOptions::default())
                    .await
            })
        })
        .collect();
    wait_until(Duration::from_secs(10), "all 10 handlers started", || {
        let g = gate.clone();
        async move { g.started.load(Ordering::SeqCst) == 10 }
    })
    .await;
    let stopping = tokio::spawn(running.stop());
    // The Runner must be waiting for the handlers now, not done.
    tokio::task::yield_now().await;
    assert!(!stopping.is_finished(), "stop waits for in-flight handlers");
    gate.open.notify_waiters();
    // notify_waiters only wakes current waiters; keep notifying until all finished.
    wait_until(Duration::from_secs(10), "all handlers finished", || {
        let g = gate.clone();
        async move {
            g.open.notify_waiters();
            g.finished.load(Ordering::SeqCst) == 10
        }
    })
    .await;
    for (i, call) in calls.into_iter().enumerate() {
        let v = call
            .await
            .unwrap()
            .expect("in-flight call answered during shutdown");
        assert_eq!(v as usize, i);
    }
    stopping.await.unwrap().unwrap();
    let peer = RawPeer::connect().await;
    assert_eq!(
        peer.ready_count(&route).await,
        0,
        "nothing left unacked and requeued"
    );
    peer.delete(&[&route]).await;
}
