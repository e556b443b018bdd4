//! How many handlers a worker runs at once: bounded per worker (`WORKER_CONCURRENCY`),
//! whatever its number of routes (prefetch is per consumer, so per route: the broker-side
//! buffer).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use e2e::{RawPeer, gzip, unique, wait_until};
use tokio::sync::Semaphore;
use worker_kit::queue::{QueueWorker, parking_queue};
use worker_kit::{ErrorReply, Payload, State};

#[derive(Clone)]
struct Gauge {
    now: Arc<AtomicUsize>,
    max: Arc<AtomicUsize>,
    done: Arc<AtomicUsize>,
    gate: Arc<Semaphore>,
}

async fn gauged(State(g): State<Gauge>, Payload(_): Payload<u32>) -> Result<(), ErrorReply> {
    let n = g.now.fetch_add(1, Ordering::SeqCst) + 1;
    g.max.fetch_max(n, Ordering::SeqCst);
    g.gate.acquire().await.expect("gate open").forget();
    g.now.fetch_sub(1, Ordering::SeqCst);
    g.done.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

/// Three routes with prefetch 2 each hold up to six deliveries, but the worker runs at
/// most two handlers at once (`WORKER_CONCURRENCY` bounds the worker's handlers).
#[tokio::test]
async fn handlers_in_flight_are_bounded_per_worker_not_per_route() {
    let routes: Vec<String> = (0..3).map(|i| unique(&format!("bound{i}"))).collect();
    let peer = RawPeer::connect().await;
    // Every message waits in its queue before the worker starts, so all six arrive at
    // once.
    for r in &routes {
        peer.declare_work_queue(r).await;
        for i in 0..2u32 {
            peer.publish(
                r,
                &gzip(format!(r#"{{"data": {i}}}"#).as_bytes()),
                lapin::BasicProperties::default().with_delivery_mode(2),
            )
            .await;
        }
    }
    let g = Gauge {
        now: Arc::default(),
        max: Arc::default(),
        done: Arc::default(),
        gate: Arc::new(Semaphore::new(0)),
    };
    let mut worker = QueueWorker::new().prefetch(2).concurrency(2);
    for r in &routes {
        worker = worker.route(r, gauged);
    }
    let worker = worker.with_state(g.clone());
    let running = e2e::start(e2e::runner("bound").await.register_worker(worker)).await;
    // All six delivered to the worker (none ready in the broker) and two handlers running.
    wait_until(
        Duration::from_secs(10),
        "all six delivered, two running",
        || {
            let (peer, routes, g) = (&peer, &routes, &g);
            async move {
                for r in routes {
                    if peer.ready_count(r).await != 0 {
                        return false;
                    }
                }
                g.now.load(Ordering::SeqCst) >= 2
            }
        },
    )
    .await;
    // Let them through one at a time.
    for k in 1..=6 {
        g.gate.add_permits(1);
        wait_until(Duration::from_secs(10), "one more finished", || {
            let g = g.clone();
            async move { g.done.load(Ordering::SeqCst) == k }
        })
        .await;
    }
    running.stop().await.unwrap();
    assert_eq!(
        g.max.load(Ordering::SeqCst),
        2,
        "at most prefetch (2) handlers at once across the worker's three routes"
    );
    for r in &routes {
        assert_eq!(peer.ready_count(r).await, 0);
        peer.delete(&[r, &parking_queue(r)]).await;
    }
}
