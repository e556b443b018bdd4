//! Work-queue routes declared as quorum queues (`QUEUE_TYPE=quorum` or per route). Quorum
//! queues work on a single node too, so these run against the default broker; the cluster
//! tier (tests/tests/cluster) runs them over three nodes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use e2e::{RawPeer, unique, wait_until};
use lapin::types::{AMQPValue, FieldTable};
use worker_kit::events::{EventWorker, subscription_queue};
use worker_kit::queue::{QueuePublisher, QueueType, QueueWorker, parking_queue};
use worker_kit::{ErrorReply, Payload, State};

async fn count_or_fail(
    State(seen): State<Arc<AtomicU32>>,
    Payload(text): Payload<String>,
) -> Result<(), ErrorReply> {
    seen.fetch_add(1, Ordering::SeqCst);
    if text == "always-fail" {
        return Err(ErrorReply::new("Broken", "this message always fails"));
    }
    Ok(())
}

fn quorum_args() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    args
}

/// A route chosen as quorum in code: its queue and parking queue are quorum queues (a
/// classic declaration of either is refused by the broker: the type cannot change in
/// place), messages are worked, and a failing one is retried and parked by the kit.
#[tokio::test]
async fn quorum_route_works_retries_and_parks() {
    let route = unique("quorum");
    let seen = Arc::new(AtomicU32::new(0));
    let running = e2e::start(
        e2e::runner("quorum").await.register_worker(
            QueueWorker::new()
                .max_retries(2)
                .route(&route, count_or_fail)
                .queue_type(&route, QueueType::Quorum)
                .with_state(seen.clone()),
        ),
    )
    .await;
    let publisher = QueuePublisher::new(&e2e::broker("publisher").await);
    for i in 0..10 {
        publisher.publish(&route, &format!("m{i}")).await.unwrap();
    }
    publisher.publish(&route, "always-fail").await.unwrap();
    let peer = RawPeer::connect().await;
    wait_until(
        Duration::from_secs(10),
        "the failing message parked",
        || {
            let peer = &peer;
            let route = &route;
            async move { peer.ready_count(&parking_queue(route)).await == 1 }
        },
    )
    .await;
    running.stop().await.unwrap();
    assert_eq!(
        seen.load(Ordering::SeqCst),
        10 + 3,
        "10 once, the bad one 3 times"
    );
    assert_eq!(peer.ready_count(&route).await, 0);

    for q in [route.clone(), parking_queue(&route)] {
        let err = peer
            .declare_error(&q, true, FieldTable::default())
            .await
            .unwrap_or_else(|| panic!("{q} accepted a classic declaration: it is not quorum"));
        assert!(err.contains("PRECONDITION_FAILED"), "{q}: {err}");
    }
    assert_eq!(
        peer.declare_error(&parking_queue(&route), true, quorum_args())
            .await,
        None,
        "the parking queue is a quorum queue"
    );
    peer.delete_routes(&[&route]).await;
}

/// `QUEUE_TYPE=quorum` makes every work-queue route quorum unless the route says classic;
/// a route already declared classic (by a Python worker, say) is refused with a message
/// that says why, instead of being consumed in a shape the other side did not choose.
#[tokio::test]
async fn queue_type_setting_and_per_route_override() {
    let quorum_route = unique("qt-quorum");
    let classic_route = unique("qt-classic");
    let mut config = e2e::config();
    config.queue_type = QueueType::Quorum;
    let running = worker_kit::Runner::new(
        "queue-type",
        Arc::new(config.clone()),
        e2e::broker("queue-type").await,
    )
    .register_worker(
        QueueWorker::new()
            .route(&quorum_route, count_or_fail)
            .route(&classic_route, count_or_fail)
            .queue_type(&classic_route, QueueType::Classic)
            .with_state(Arc::new(AtomicU32::new(0))),
    )
    .start()
    .await
    .unwrap();
    running.stop().await.unwrap();
    let peer = RawPeer::connect().await;
    assert!(
        peer.declare_error(&quorum_route, true, FieldTable::default())
            .await
            .is_some_and(|e| e.contains("PRECONDITION_FAILED")),
        "QUEUE_TYPE=quorum declared {quorum_route} quorum"
    );
    assert_eq!(
        peer.declare_error(&classic_route, true, FieldTable::default())
            .await,
        None,
        "the per-route override kept {classic_route} classic"
    );

    // A classic queue someone else declared: a quorum worker refuses to start on it.
    let taken = unique("qt-taken");
    peer.declare_work_queue(&taken).await;
    let err = worker_kit::Runner::new(
        "queue-type",
        Arc::new(config),
        e2e::broker("queue-type").await,
    )
    .register_worker(
        QueueWorker::new()
            .route(&taken, count_or_fail)
            .with_state(Arc::new(AtomicU32::new(0))),
    )
    .start()
    .await
    .expect_err("a quorum worker on a classic queue does not start");
    let text = format!("{err:#}");
    assert!(
        text.contains(&taken) && text.contains("other flags or arguments"),
        "{text}"
    );
    peer.delete_routes(&[&quorum_route, &classic_route, &taken])
        .await;
}

/// A quorum route whose retry count changes between deploys still starts (the broker's
/// delivery limit does not follow the retry count: RabbitMQ would refuse the changed
/// declaration), and a retry count at or above that limit is refused at start.
#[tokio::test]
async fn quorum_route_survives_a_changed_retry_count() {
    let route = unique("qt-retries");
    for retries in [3, 5] {
        let running = e2e::start(
            e2e::runner("qt-retries").await.register_worker(
                QueueWorker::new()
                    .max_retries(retries)
                    .route(&route, count_or_fail)
                    .queue_type(&route, QueueType::Quorum)
                    .with_state(Arc::new(AtomicU32::new(0))),
            ),
        )
        .await;
        running.stop().await.unwrap();
    }
    let err = e2e::runner("qt-retries")
        .await
        .register_worker(
            QueueWorker::new()
                .max_retries(worker_kit::queue::DELIVERY_LIMIT)
                .route(&route, count_or_fail)
                .queue_type(&route, QueueType::Quorum)
                .with_state(Arc::new(AtomicU32::new(0))),
        )
        .start()
        .await
        .expect_err("retries at the broker's delivery limit are refused");
    assert!(
        err.to_string()
            .contains("reach the broker's delivery limit"),
        "{err}"
    );
    RawPeer::connect().await.delete_routes(&[&route]).await;
}

/// Event subscriptions are work queues of `QUEUE_TYPE`'s kind: on quorum queues, a
/// subscription whose retries reach the broker's delivery limit is refused at start with
/// the error a queue worker gets, before anything is declared.
#[tokio::test]
async fn quorum_subscription_refuses_retries_at_the_delivery_limit() {
    async fn ignore(Payload(_): Payload<serde_json::Value>) -> Result<(), ErrorReply> {
        Ok(())
    }
    let service: &'static str = Box::leak(unique("qt-events").into_boxed_str());
    let exchange = unique("qt-events-x");
    let pattern = "qt.thing.*";
    let mut config = e2e::config();
    config.queue_type = QueueType::Quorum;
    let started = worker_kit::Runner::new(service, Arc::new(config), e2e::broker(service).await)
        .register_worker(
            EventWorker::new()
                .exchange(&exchange)
                .max_retries(worker_kit::queue::DELIVERY_LIMIT)
                .pattern(pattern, ignore),
        )
        .start()
        .await;
    let queue = subscription_queue(service, pattern);
    let peer = RawPeer::connect().await;
    let err = match started {
        Err(e) => e,
        Ok(running) => {
            running.stop().await.unwrap();
            peer.delete_routes(&[&queue]).await;
            let _ = peer
                .channel
                .exchange_delete(exchange.as_str().into(), Default::default())
                .await;
            panic!("a quorum subscription with retries at the delivery limit started");
        }
    };
    let text = err.to_string();
    assert!(
        text.contains("reach the broker's delivery limit") && text.contains(&queue),
        "{text}"
    );
    assert!(
        !peer.exists(&queue).await,
        "the refused subscription declared its queue"
    );
}

/// The broker's safety net on a quorum route: a message that keeps going back to the queue
/// unsettled (a worker crashing on it, here a raw consumer that requeues it) is
/// dead-lettered to the parking queue at the broker's delivery limit, not redelivered
/// forever and not dropped.
#[tokio::test]
async fn quorum_delivery_limit_parks_a_message_that_keeps_coming_back() {
    use lapin::options::{BasicGetOptions, BasicNackOptions};

    let route = unique("qt-limit");
    // A worker declares the route's queues the kit's way, then goes away.
    e2e::start(
        e2e::runner("qt-limit").await.register_worker(
            QueueWorker::new()
                .route(&route, count_or_fail)
                .queue_type(&route, QueueType::Quorum)
                .with_state(Arc::new(AtomicU32::new(0))),
        ),
    )
    .await
    .stop()
    .await
    .unwrap();
    let publisher = QueuePublisher::new(&e2e::broker("publisher").await);
    publisher
        .publish(&route, "crashes its worker")
        .await
        .unwrap();

    let peer = RawPeer::connect().await;
    let mut returned = 0u32;
    while let Some(msg) = peer
        .channel
        .basic_get(route.as_str().into(), BasicGetOptions { no_ack: false })
        .await
        .expect("basic.get")
    {
        msg.delivery
            .acker
            .nack(BasicNackOptions {
                requeue: true,
                ..BasicNackOptions::default()
            })
            .await
            .expect("nack");
        returned += 1;
        assert!(
            returned <= worker_kit::queue::DELIVERY_LIMIT + 1,
            "still delivered after {returned} returns"
        );
    }
    wait_until(
        Duration::from_secs(10),
        "the message parked by the broker",
        || {
            let (peer, route) = (&peer, &route);
            async move { peer.ready_count(&parking_queue(route)).await == 1 }
        },
    )
    .await;
    assert!(
        returned >= worker_kit::queue::DELIVERY_LIMIT,
        "parked at the limit, not before: {returned} returns"
    );
    assert_eq!(peer.ready_count(&route).await, 0);
    peer.delete_routes(&[&route]).await;
}
