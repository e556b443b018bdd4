//! Issue 25.1: deliveries whose content-header frame is a few bytes over `frame_max`.
//!
//! RabbitMQ checks a publisher's frame *payload* against `frame_max` (131,072 bytes by
//! default), so it accepts a content-header frame of up to `frame_max + 8` bytes, and
//! delivers it as it came. lapin 4.12 refused any incoming frame longer than `frame_max` with
//! FRAME-ERROR: the connection closed, the message came back, and the service reconnected in
//! a loop (about 25 times a second) until someone purged the queue. The kit carries a lapin
//! patched to read such frames (vendor/lapin, PATCHES.md); the kit then refuses the delivery
//! as bad input without running a handler: parked on a work queue, one error reply on an RPC
//! route.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use e2e::{RawPeer, reply_json, unique, wait_until};
use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use serde_json::json;
use worker_kit::queue::{QueueWorker, parking_queue};
use worker_kit::rpc::RpcWorker;
use worker_kit::runner::Running;
use worker_kit::{ErrorReply, Payload, State};

/// The broker's `frame_max` (RabbitMQ's default, which the shared test broker keeps).
const FRAME_MAX: usize = 131_072;

/// The largest content-header frame RabbitMQ accepts from a publisher: its payload may be
/// `frame_max` bytes, plus the frame's 8 bytes of framing (found by probing: one byte more
/// and the broker closes the publisher's connection with FRAME_ERROR).
const LARGEST_ACCEPTED_FRAME: usize = FRAME_MAX + 8;

/// Properties whose content-header frame is exactly `frame` bytes: `base` (no headers; its
/// short-string properties counted below) plus one long-string header `key` padded to fit.
fn sized_to_frame(base: BasicProperties, key: &str, frame: usize) -> BasicProperties {
    let short =
        |s: &Option<lapin::types::ShortString>| s.as_ref().map_or(0, |s| 1 + s.as_str().len());
    // Frame header (7) and end (1); content header: class, weight, body size (12); property
    // flags (2); reply_to and correlation_id; the table's length (4); the entry: key length
    // (1), key, type tag (1), value length (4).
    let fixed = 8
        + 12
        + 2
        + short(base.reply_to())
        + short(base.correlation_id())
        + 4
        + 1
        + key.len()
        + 1
        + 4;
    let mut headers = FieldTable::default();
    headers.insert(
        key.into(),
        AMQPValue::LongString("0".repeat(frame - fixed).into()),
    );
    base.with_headers(headers)
}

/// How often the service's broker connections were reopened (the kit's
/// `worker_kit_broker_reconnects_total`, every connection role summed).
fn reconnects(running: &Running) -> u64 {
    running
        .broker()
        .metrics()
        .encode()
        .lines()
        .filter(|l| l.starts_with("worker_kit_broker_reconnects_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

fn header<'a>(props: &'a BasicProperties, name: &str) -> Option<&'a AMQPValue> {
    props.headers().as_ref()?.inner().get(name)
}

fn text(v: Option<&AMQPValue>) -> String {
    match v {
        Some(AMQPValue::LongString(s)) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        other => panic!("expected a long string, got {other:?}"),
    }
}

async fn counted(
    State(n): State<Arc<AtomicUsize>>,
    Payload(_): Payload<serde_json::Value>,
) -> Result<&'static str, ErrorReply> {
    n.fetch_add(1, Ordering::SeqCst);
    Ok("ok")
}

/// The exact boundary, seen by a plain lapin consumer: frames of `frame_max` + 1 to + 8
/// bytes are what the broker accepts and delivers; the patched lapin reads them instead of
/// closing the connection. One byte more and the broker refuses the publish itself.
#[tokio::test]
async fn lapin_reads_every_frame_the_broker_accepts() {
    let admin = RawPeer::connect().await;
    let queue = unique("frame-edge");
    admin.declare_work_queue(&queue).await;
    let frames = [FRAME_MAX, FRAME_MAX + 1, LARGEST_ACCEPTED_FRAME];
    for frame in frames {
        admin
            .publish(
                &queue,
                b"{}",
                sized_to_frame(BasicProperties::default(), "x-pad", frame),
            )
            .await;
    }
    let conn = Connection::connect(&e2e::amqp_url(), ConnectionProperties::default())
        .await
        .unwrap();
    let channel = conn.create_channel().await.unwrap();
    let mut deliveries = channel
        .basic_consume(
            queue.as_str().into(),
            "frame-edge".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    for frame in frames {
        let delivery = tokio::time::timeout(Duration::from_secs(10), deliveries.next())
            .await
            .expect("a delivery within 10 s")
            .expect("the consumer is open")
            .unwrap_or_else(|e| panic!("the {frame}-byte frame was refused: {e}"));
        let pad = text(header(&delivery.properties, "x-pad"));
        assert_eq!(pad.len(), frame - 37, "the {frame}-byte frame came whole");
    }
    assert!(conn.status().connected());

    // One byte past what the broker accepts: it closes the publisher's connection.
    let publisher = Connection::connect(&e2e::amqp_url(), ConnectionProperties::default())
        .await
        .unwrap();
    let ch = publisher.create_channel().await.unwrap();
    let props = sized_to_frame(
        BasicProperties::default(),
        "x-pad",
        LARGEST_ACCEPTED_FRAME + 1,
    );
    let _ = ch
        .basic_publish(
            "".into(),
            queue.as_str().into(),
            BasicPublishOptions::default(),
            b"{}",
            props,
        )
        .await;
    let passive = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    let after = ch
        .queue_declare(queue.as_str().into(), passive, FieldTable::default())
        .await;
    assert!(
        after.is_err() && !publisher.status().connected(),
        "the broker accepted a frame of {} bytes: the boundary moved, update LARGEST_ACCEPTED_FRAME",
        LARGEST_ACCEPTED_FRAME + 1
    );
    admin.delete(&[&queue]).await;
}

/// A work message whose frame is over `frame_max` (the first byte over, and the largest the
/// broker accepts) is parked as bad input without running the handler, the connections stay
/// as they were, and the next message is handled.
#[tokio::test]
async fn work_messages_over_frame_max_are_parked_without_a_reconnect() {
    let route = unique("frame-work");
    let runs = Arc::new(AtomicUsize::new(0));
    let running = e2e::start(
        e2e::runner("frame-work").await.register_worker(
            QueueWorker::new()
                .route(&route, counted)
                .with_state(runs.clone()),
        ),
    )
    .await;
    let peer = RawPeer::connect().await;
    for frame in [FRAME_MAX + 1, LARGEST_ACCEPTED_FRAME] {
        let props = sized_to_frame(BasicProperties::default(), "x-pad", frame);
        peer.publish(&route, br#"{"data": 1}"#, props).await;
    }
    peer.publish(&route, br#"{"data": 2}"#, BasicProperties::default())
        .await;
    let dead = parking_queue(&route);
    wait_until(
        Duration::from_secs(20),
        "both oversized messages parked and the ordinary one handled (or a reconnect)",
        || {
            let (peer, dead, runs, running) = (&peer, dead.clone(), runs.clone(), &running);
            async move {
                reconnects(running) > 0
                    || (runs.load(Ordering::SeqCst) == 1 && peer.ready_count(&dead).await == 2)
            }
        },
    )
    .await;
    assert_eq!(
        reconnects(&running),
        0,
        "the message closed the service's connection"
    );
    for _ in 0..2 {
        let parked = peer.get(&dead).await.expect("a parked copy");
        assert_eq!(
            text(header(&parked.properties, "x-error-type")),
            "BadRequest"
        );
        let message = text(header(&parked.properties, "x-error-message"));
        assert!(message.contains("frame"), "{message}");
        assert_eq!(
            header(&parked.properties, "x-original-headers-dropped"),
            Some(&AMQPValue::Boolean(true))
        );
        assert!(header(&parked.properties, "x-pad").is_none());
    }
    assert_eq!(reconnects(&running), 0);
    running.stop().await.unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 1, "the handler ran once");
    assert_eq!(peer.ready_count(&route).await, 0, "no loop");
    peer.delete_routes(&[&route]).await;
}

/// An RPC request whose oversized `traceparent` makes its frame the largest the broker
/// accepts gets one error reply without running the handler; the route keeps answering.
#[tokio::test]
async fn rpc_requests_over_frame_max_get_one_error_reply_without_a_reconnect() {
    let route = unique("frame-rpc");
    let runs = Arc::new(AtomicUsize::new(0));
    let running = e2e::start(
        e2e::runner("frame-rpc").await.register_worker(
            RpcWorker::new()
                .route(&route, counted)
                .with_state(runs.clone()),
        ),
    )
    .await;
    let mut peer = RawPeer::connect().await;
    for (cid, frame) in [
        ("first-over", FRAME_MAX + 1),
        ("largest", LARGEST_ACCEPTED_FRAME),
    ] {
        let base = BasicProperties::default()
            .with_reply_to(peer.reply_to().into())
            .with_correlation_id(cid.into());
        let props = sized_to_frame(base, "traceparent", frame);
        peer.publish(&route, br#"{"data": 1}"#, props).await;
        let reply = tokio::select! {
            r = peer.next_reply() => r,
            () = wait_until(Duration::from_secs(20), "a reconnect", || {
                let running = &running;
                async move { reconnects(running) > 0 }
            }) => panic!("{cid}: the request closed the service's connection"),
        };
        assert_eq!(
            reply.properties.correlation_id().as_ref().unwrap().as_str(),
            cid
        );
        let v = reply_json(&reply);
        assert_eq!(v["success"], json!(false), "{cid}: {v}");
        assert_eq!(v["error"]["type"], json!("BadRequest"), "{cid}: {v}");
        assert_eq!(reply.properties.kind().as_ref().unwrap().as_str(), "error");
        assert!(header(&reply.properties, "traceparent").is_none());
    }
    let reply = peer.request(&route, br#"{"data": 2}"#, "ordinary").await;
    assert_eq!(reply_json(&reply)["success"], json!(true));
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "only the ordinary request ran"
    );
    assert_eq!(reconnects(&running), 0, "no reconnect");
    running.stop().await.unwrap();
    assert_eq!(peer.ready_count(&route).await, 0, "nothing requeued");
    peer.delete(&[&route]).await;
}

async fn failing(
    State(n): State<Arc<AtomicUsize>>,
    Payload(_): Payload<serde_json::Value>,
) -> Result<(), ErrorReply> {
    n.fetch_add(1, Ordering::SeqCst);
    Err(ErrorReply::new("Internal", "fails to be retried"))
}

/// The broker makes a frame larger itself: a retry copy that fits one frame comes back from
/// its delay queue with the `x-death` headers dead-lettering adds, over `frame_max`. It is
/// read and parked as bad input, not retried forever and not a reconnect.
#[tokio::test]
async fn a_retry_that_dead_lettering_grows_over_frame_max_is_parked() {
    let route = unique("frame-death");
    let runs = Arc::new(AtomicUsize::new(0));
    let wait = Duration::from_millis(50);
    let running = e2e::start(
        e2e::runner("frame-death").await.register_worker(
            QueueWorker::new()
                .max_retries(3)
                .retry_delay(&route, wait, wait)
                .route(&route, failing)
                .with_state(runs.clone()),
        ),
    )
    .await;
    let peer = RawPeer::connect().await;
    // 100 bytes under the frame: room for the retry count and user_id the copy adds, not
    // for the broker's x-death.
    let props = sized_to_frame(BasicProperties::default(), "x-pad", FRAME_MAX - 100);
    peer.publish(&route, br#"{"data": 1}"#, props).await;
    let dead = parking_queue(&route);
    wait_until(
        Duration::from_secs(20),
        "the message parked (or a reconnect)",
        || {
            let (peer, dead, running) = (&peer, dead.clone(), &running);
            async move { reconnects(running) > 0 || peer.ready_count(&dead).await == 1 }
        },
    )
    .await;
    assert_eq!(reconnects(&running), 0, "the retry closed the connection");
    let parked = peer.get(&dead).await.expect("the parked copy");
    assert_eq!(
        text(header(&parked.properties, "x-error-type")),
        "BadRequest"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1, "the handler ran once");
    running.stop().await.unwrap();
    assert_eq!(peer.ready_count(&route).await, 0, "no loop");
    peer.delete_routes(&[&route]).await;
}
