use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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
            RpcWorker::new()
                .prefetch(16)
                .route(&route, gated)
                .with_state(gate.clone()),
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
    let peer = RawPeer::connect().await;
    assert_eq!(peer.counts(&route).await.1, 1, "the worker consumes");
    let stopping = tokio::spawn(running.stop());
    // Once the consumer is gone the stop is under way: it must now be waiting for the
    // handlers, not done.
    wait_until(
        Duration::from_secs(10),
        "the stop cancelled the consumer",
        || {
            let (peer, route) = (&peer, &route);
            async move { peer.counts(route).await.1 == 0 }
        },
    )
    .await;
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
    assert_eq!(
        peer.ready_count(&route).await,
        0,
        "nothing left unacked and requeued"
    );
    peer.delete(&[&route]).await;
}

/// Sets its flag when dropped: proof that a handler's future was dropped (aborted).
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[derive(Clone, Default)]
struct Stubborn {
    started: Arc<AtomicUsize>,
    dropped: Arc<AtomicBool>,
}

async fn never_ends(
    State(s): State<Stubborn>,
    Payload(_): Payload<u32>,
) -> Result<u32, ErrorReply> {
    let _flag = DropFlag(s.dropped.clone());
    s.started.fetch_add(1, Ordering::SeqCst);
    std::future::pending::<()>().await;
    Ok(0)
}

/// After `DRAIN_TIMEOUT_MS`, handlers still running are aborted: once `stop` returns,
/// none is left running (and writing) behind the process's back.
#[tokio::test]
async fn handlers_still_running_after_the_drain_deadline_are_aborted() {
    let route = unique("drain-abort");
    let state = Stubborn::default();
    let mut config = e2e::config();
    config.drain_timeout = Duration::from_millis(300);
    let running = e2e::start(
        worker_kit::Runner::new(
            "drain-abort",
            Arc::new(config),
            e2e::broker("drain-abort").await,
        )
        .register_worker(
            RpcWorker::new()
                .route(&route, never_ends)
                .with_state(state.clone()),
        ),
    )
    .await;
    let peer = RawPeer::connect().await;
    peer.publish(
        &route,
        br#"{"data": 1}"#,
        lapin::BasicProperties::default()
            .with_reply_to(peer.reply_to().into())
            .with_correlation_id("stuck".into()),
    )
    .await;
    wait_until(Duration::from_secs(10), "the handler started", || {
        let s = state.clone();
        async move { s.started.load(Ordering::SeqCst) == 1 }
    })
    .await;
    tokio::time::timeout(Duration::from_secs(10), running.stop())
        .await
        .expect("stop ends soon after the drain deadline")
        .unwrap();
    assert!(
        state.dropped.load(Ordering::SeqCst),
        "the handler still running at the drain deadline was aborted"
    );
    peer.delete(&[&route]).await;
}
