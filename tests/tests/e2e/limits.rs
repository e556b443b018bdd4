//! Poison messages and time limits: a message that crashed the process (or outlived every
//! drain) reaches the parking queue, and no handler runs forever.

use std::sync::Arc;
use std::time::Duration;

use e2e::{RawPeer, gzip, reply_json, unique, wait_until};
use lapin::options::{BasicGetOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ConnectionProperties};
use serde_json::json;
use tokio::sync::Mutex;
use worker_kit::queue::{QueueWorker, parking_queue};
use worker_kit::rpc::RpcWorker;
use worker_kit::{ErrorReply, Meta, Payload, State};

type Seen = Arc<Mutex<Vec<(u32, bool)>>>;

async fn note(
    State(seen): State<Seen>,
    meta: Meta,
    Payload(_): Payload<String>,
) -> Result<(), ErrorReply> {
    seen.lock().await.push((meta.retry_count, meta.redelivered));
    Ok(())
}

async fn forever(Payload(_): Payload<serde_json::Value>) -> Result<(), ErrorReply> {
    std::future::pending::<()>().await;
    Ok(())
}

fn header_text(msg: &lapin::message::BasicGetMessage, name: &str) -> String {
    match msg
        .delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(name).cloned())
    {
        Some(AMQPValue::LongString(s)) => s.to_string(),
        other => panic!("header {name}: {other:?}"),
    }
}

/// Puts one message in `route` whose delivery was taken and never settled (as by a
/// process that crashed while handling it): the broker hands it out again as
/// `redelivered`.
async fn leave_redelivered(peer: &RawPeer, route: &str) {
    peer.declare_work_queue(route).await;
    peer.publish(
        route,
        &gzip(br#"{"data": "crash"}"#),
        lapin::BasicProperties::default().with_delivery_mode(2),
    )
    .await;
    let conn = Connection::connect(&e2e::amqp_url(), ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let got = ch
        .basic_get(route.into(), BasicGetOptions { no_ack: false })
        .await
        .unwrap();
    assert!(got.is_some(), "the message was taken");
    // Closing without an ack requeues it, flagged redelivered.
    conn.close(200, "crash".into()).await.unwrap();
    let ch = peer.channel.clone();
    let q = ch
        .queue_declare(
            route.into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    assert_eq!(q.message_count(), 1, "back in its queue");
}

/// With no retries left, a message delivered again after an attempt that never finished
/// is parked without running its handler a second time.
#[tokio::test]
async fn a_redelivered_message_with_no_retries_left_is_parked() {
    let route = unique("redelivered-park");
    let peer = RawPeer::connect().await;
    leave_redelivered(&peer, &route).await;
    let seen = Seen::default();
    let running = e2e::start(
        e2e::runner("redelivered-park").await.register_worker(
            QueueWorker::new()
                .max_retries(0)
                .route(&route, note)
                .with_state(seen.clone()),
        ),
    )
    .await;
    let dead = parking_queue(&route);
    wait_until(Duration::from_secs(10), "the message is parked", || {
        let (peer, dead) = (&peer, &dead);
        async move { peer.try_counts(dead).await.is_ok_and(|(n, _)| n == 1) }
    })
    .await;
    running.stop().await.unwrap();
    assert!(
        seen.lock().await.is_empty(),
        "the handler did not run again"
    );
    assert_eq!(peer.ready_count(&route).await, 0);
    let msg = peer.get(&dead).await.expect("parked");
    assert_eq!(header_text(&msg, "x-error-type"), "Redelivered");
    peer.delete(&[&route, &dead]).await;
}

/// A redelivered message is a failed attempt: it is handled again as retry 1.
#[tokio::test]
async fn a_redelivered_message_counts_as_an_attempt() {
    let route = unique("redelivered-retry");
    let peer = RawPeer::connect().await;
    leave_redelivered(&peer, &route).await;
    let seen = Seen::default();
    let running = e2e::start(
        e2e::runner("redelivered-retry").await.register_worker(
            QueueWorker::new()
                .max_retries(3)
                .route(&route, note)
                .with_state(seen.clone()),
        ),
    )
    .await;
    wait_until(Duration::from_secs(10), "handled", || {
        let seen = seen.clone();
        async move { !seen.lock().await.is_empty() }
    })
    .await;
    running.stop().await.unwrap();
    assert_eq!(
        *seen.lock().await,
        vec![(1, false)],
        "handled once, as retry 1"
    );
    assert_eq!(peer.ready_count(&route).await, 0);
    assert_eq!(peer.ready_count(&parking_queue(&route)).await, 0);
    peer.delete(&[&route, &parking_queue(&route)]).await;
}

/// A work-queue handler that never ends is stopped at the worker's time limit and the
/// attempt counts as failed (here: parked, no retries).
#[tokio::test]
async fn a_work_queue_handler_has_a_time_limit() {
    let route = unique("slow-task");
    let running = e2e::start(
        e2e::runner("slow-task").await.register_worker(
            QueueWorker::new()
                .handler_timeout(Duration::from_millis(200))
                .max_retries(0)
                .route(&route, forever),
        ),
    )
    .await;
    let peer = RawPeer::connect().await;
    peer.publish(
        &route,
        &gzip(br#"{"data": 1}"#),
        lapin::BasicProperties::default().with_delivery_mode(2),
    )
    .await;
    let dead = parking_queue(&route);
    wait_until(Duration::from_secs(10), "the message is parked", || {
        let (peer, dead) = (&peer, &dead);
        async move { peer.ready_count(dead).await == 1 }
    })
    .await;
    running.stop().await.unwrap();
    let msg = peer.get(&dead).await.expect("parked");
    assert_eq!(header_text(&msg, "x-error-type"), "Timeout");
    peer.delete(&[&route, &dead]).await;
}

/// An RPC request without a deadline (as Python callers send them) gets the worker's
/// time limit instead of none.
#[tokio::test]
async fn an_rpc_request_without_a_deadline_has_a_time_limit() {
    let route = unique("slow-rpc");
    let running = e2e::start(
        e2e::runner("slow-rpc").await.register_worker(
            RpcWorker::new()
                .handler_timeout(Duration::from_millis(200))
                .route(&route, forever),
        ),
    )
    .await;
    let mut peer = RawPeer::connect().await;
    let v = reply_json(&peer.request(&route, br#"{"data": 1}"#, "slow").await);
    assert_eq!(v["error"]["type"], json!("Timeout"), "{v}");
    running.stop().await.unwrap();
    peer.delete(&[&route]).await;
}

/// What the running handler's nested calls would inherit: the milliseconds left to the
/// current deadline, if there is one.
fn inherited_ms() -> Option<u128> {
    worker_kit::wire::deadline::current().map(|d| d.remaining().as_millis())
}

async fn report_deadline(
    Payload(_): Payload<serde_json::Value>,
) -> Result<Option<u128>, ErrorReply> {
    Ok(inherited_ms())
}

async fn note_deadline(
    State(seen): State<Arc<Mutex<Vec<Option<u128>>>>>,
    Payload(_): Payload<serde_json::Value>,
) -> Result<(), ErrorReply> {
    seen.lock().await.push(inherited_ms());
    Ok(())
}

/// A handler's nested calls end with its time limit at the latest: without a caller's
/// deadline (RPC) or any (work queue), the limit becomes the deadline they inherit.
#[tokio::test]
async fn nested_calls_inherit_the_handlers_time_limit() {
    let (rpc_route, task_route) = (unique("limit-rpc"), unique("limit-task"));
    let seen: Arc<Mutex<Vec<Option<u128>>>> = Arc::default();
    let running = e2e::start(
        e2e::runner("limit-inherit")
            .await
            .register_worker(
                RpcWorker::new()
                    .handler_timeout(Duration::from_millis(1500))
                    .route(&rpc_route, report_deadline),
            )
            .register_worker(
                QueueWorker::new()
                    .handler_timeout(Duration::from_millis(2500))
                    .route(&task_route, note_deadline)
                    .with_state(seen.clone()),
            ),
    )
    .await;
    let mut peer = RawPeer::connect().await;
    let v = reply_json(&peer.request(&rpc_route, br#"{"data": 1}"#, "limit").await);
    let left = v["data"]
        .as_u64()
        .unwrap_or_else(|| panic!("a deadline: {v}"));
    assert!(
        left <= 1500,
        "at most the RPC handler's limit, got {left} ms"
    );
    peer.publish(
        &task_route,
        &gzip(br#"{"data": 1}"#),
        lapin::BasicProperties::default().with_delivery_mode(2),
    )
    .await;
    wait_until(Duration::from_secs(10), "the task ran", || {
        let seen = &seen;
        async move { !seen.lock().await.is_empty() }
    })
    .await;
    let left = seen.lock().await[0].expect("the task's handler has a deadline");
    assert!(
        left <= 2500,
        "at most the work-queue handler's limit, got {left} ms"
    );
    running.stop().await.unwrap();
    peer.delete(&[&rpc_route, &task_route, &parking_queue(&task_route)])
        .await;
}
