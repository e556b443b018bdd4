use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use e2e::{RawPeer, gzip, unique, wait_until};
use lapin::types::AMQPValue;
use tokio::sync::Mutex;
use worker_kit::queue::{QueuePublisher, QueueWorker, parking_queue};
use worker_kit::{ErrorReply, Meta, Payload, State};

#[derive(Clone, Default)]
struct Log {
    seen: Arc<Mutex<Vec<(String, u32, bool)>>>,
    fail_first: Arc<AtomicU32>,
}

async fn record(
    State(log): State<Log>,
    meta: Meta,
    Payload(text): Payload<String>,
) -> Result<(), ErrorReply> {
    log.seen
        .lock()
        .await
        .push((text.clone(), meta.retry_count, meta.redelivered));
    if text == "always-fail" {
        return Err(ErrorReply::new("Broken", "this message always fails"));
    }
    if log.fail_first.load(Ordering::SeqCst) > 0 {
        log.fail_first.fetch_sub(1, Ordering::SeqCst);
        return Err(ErrorReply::unavailable("not yet"));
    }
    Ok(())
}

fn header<'a>(msg: &'a lapin::message::BasicGetMessage, name: &str) -> Option<&'a AMQPValue> {
    msg.delivery
        .properties
        .headers()
        .as_ref()?
        .inner()
        .get(name)
}

fn header_text(msg: &lapin::message::BasicGetMessage, name: &str) -> String {
    match header(msg, name) {
        Some(AMQPValue::LongString(s)) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        other => panic!("header {name} missing or not text: {other:?}"),
    }
}

#[tokio::test]
async fn ack_on_ok() {
    let route = unique("ack");
    let log = Log::default();
    let runner = e2e::runner("queue-ack").await;
    let running = e2e::start(
        runner.register_worker(
            QueueWorker::new()
                .route(&route, record)
                .with_state(log.clone()),
        ),
    )
    .await;
    let publisher = QueuePublisher::new(&e2e::broker("publisher").await);
    for i in 0..20 {
        publisher.publish(&route, &format!("m{i}")).await.unwrap();
    }
    wait_until(Duration::from_secs(10), "20 messages handled", || {
        let log = log.clone();
        async move { log.seen.lock().await.len() == 20 }
    })
    .await;
    running.stop().await.unwrap();
    let peer = RawPeer::connect().await;
    assert_eq!(peer.ready_count(&route).await, 0);
    assert_eq!(peer.ready_count(&parking_queue(&route)).await, 0);
    peer.delete(&[&route, &parking_queue(&route)]).await;
}

#[tokio::test]
async fn retried_until_it_works() {
    let route = unique("retry");
    let log = Log::default();
    log.fail_first.store(2, Ordering::SeqCst);
    let running = e2e::start(
        e2e::runner("queue-retry").await.register_worker(
            QueueWorker::new()
                .max_retries(3)
                .route(&route, record)
                .with_state(log.clone()),
        ),
    )
    .await;
    let publisher = QueuePublisher::new(&e2e::broker("publisher").await);
    publisher.publish(&route, "flaky").await.unwrap();
    wait_until(Duration::from_secs(10), "third attempt", || {
        let log = log.clone();
        async move { log.seen.lock().await.len() == 3 }
    })
    .await;
    running.stop().await.unwrap();
    let attempts: Vec<u32> = log.seen.lock().await.iter().map(|(_, n, _)| *n).collect();
    assert_eq!(attempts, vec![0, 1, 2], "x-retry-count counts the attempts");
    let peer = RawPeer::connect().await;
    assert_eq!(peer.ready_count(&route).await, 0);
    assert_eq!(
        peer.ready_count(&parking_queue(&route)).await,
        0,
        "nothing parked"
    );
    peer.delete(&[&route, &parking_queue(&route)]).await;
}

#[tokio::test]
async fn parked_when_retries_are_exhausted() {
    let route = unique("park");
    let log = Log::default();
    let running = e2e::start(
        e2e::runner("queue-park").await.register_worker(
            QueueWorker::new()
                .max_retries(2)
                .route(&route, record)
                .with_state(log.clone()),
        ),
    )
    .await;
    let peer = RawPeer::connect().await;
    let body = gzip(br#"{"data": "always-fail"}"#);
    peer.publish(
        &route,
        &body,
        lapin::BasicProperties::default().with_delivery_mode(2),
    )
    .await;
    let dead = parking_queue(&route);
    wait_until(Duration::from_secs(10), "message parked", || {
        let peer = &peer;
        let dead = dead.clone();
        async move { peer.ready_count(&dead).await == 1 }
    })
    .await;
    running.stop().await.unwrap();
    assert_eq!(log.seen.lock().await.len(), 3, "first try plus two retries");
    let msg = peer.get(&dead).await.expect("parked message");
    assert_eq!(msg.delivery.data, body, "the original body, untouched");
    assert_eq!(header_text(&msg, "x-error-type"), "Broken");
    assert_eq!(
        header_text(&msg, "x-error-message"),
        "this message always fails"
    );
    assert_eq!(header_text(&msg, "x-original-route"), route);
    assert!(matches!(
        header(&msg, "x-retry-count"),
        Some(AMQPValue::LongLongInt(2))
    ));
    assert_eq!(
        peer.ready_count(&route).await,
        0,
        "no loop: the route queue is empty"
    );
    peer.delete(&[&route, &dead]).await;
}

#[tokio::test]
async fn undecodable_and_misfit_messages_are_parked_at_once() {
    let route = unique("poison");
    let log = Log::default();
    let running = e2e::start(
        e2e::runner("queue-poison").await.register_worker(
            QueueWorker::new()
                .route(&route, record)
                .with_state(log.clone()),
        ),
    )
    .await;
    let peer = RawPeer::connect().await;
    peer.publish(
        &route,
        b"this is not json",
        lapin::BasicProperties::default(),
    )
    .await;
    peer.publish(
        &route,
        &gzip(br#"{"data": 42}"#),
        lapin::BasicProperties::default(),
    )
    .await;
    let dead = parking_queue(&route);
    wait_until(Duration::from_secs(10), "both parked", || {
        let (peer, dead) = (&peer, dead.clone());
        async move { peer.ready_count(&dead).await == 2 }
    })
    .await;
    running.stop().await.unwrap();
    assert!(log.seen.lock().await.is_empty(), "the handler never ran");
    let mut types = vec![
        header_text(&peer.get(&dead).await.unwrap(), "x-error-type"),
        header_text(&peer.get(&dead).await.unwrap(), "x-error-type"),
    ];
    types.sort();
    assert_eq!(types, vec!["BadRequest", "ValidationError"]);
    peer.delete(&[&route, &dead]).await;
}

#[tokio::test]
async fn publishing_to_a_missing_queue_fails_clearly() {
    let publisher = QueuePublisher::new(&e2e::broker("publisher").await);
    let err = publisher
        .publish(&unique("nowhere"), "x")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no queue for route"), "{err}");
}

/// A parking queue deleted while the worker runs is declared again and the failed message
/// parked in it, instead of being requeued in a hot loop.
#[tokio::test]
async fn a_deleted_parking_queue_is_redeclared() {
    let route = unique("park-gone");
    let log = Log::default();
    let running = e2e::start(
        e2e::runner("queue-park-gone").await.register_worker(
            QueueWorker::new()
                .max_retries(0)
                .route(&route, record)
                .with_state(log.clone()),
        ),
    )
    .await;
    let peer = RawPeer::connect().await;
    let dead = parking_queue(&route);
    peer.delete(&[&dead]).await;
    assert!(!peer.exists(&dead).await, "the parking queue is gone");
    peer.publish(
        &route,
        &gzip(br#"{"data": "always-fail"}"#),
        lapin::BasicProperties::default().with_delivery_mode(2),
    )
    .await;
    wait_until(Duration::from_secs(10), "the message is parked", || {
        let (peer, dead) = (&peer, &dead);
        async move { peer.try_counts(dead).await.is_ok_and(|(n, _)| n == 1) }
    })
    .await;
    running.stop().await.unwrap();
    assert_eq!(
        log.seen.lock().await.len(),
        1,
        "handled once, not in a loop"
    );
    assert_eq!(peer.ready_count(&route).await, 0);
    peer.delete(&[&route, &dead]).await;
}

/// The broker user the tests log in as (`AMQP_URL`'s; guest when it names none).
fn login() -> String {
    url::Url::parse(&e2e::amqp_url())
        .map(|u| u.username().to_owned())
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "guest".to_owned())
}

/// Retry and parked copies drop the original's `expiration` (a parked message must not
/// vanish) and carry the worker's own `user_id` (the broker checks it against the
/// publishing connection's user), the original sender named in `x-original-user-id`
/// (`identity.rs` shows it with a sender other than the worker).
#[tokio::test]
async fn copies_drop_expiration_and_carry_the_workers_user_id() {
    let route = unique("park-props");
    let log = Log::default();
    let running = e2e::start(
        e2e::runner("queue-park-props").await.register_worker(
            QueueWorker::new()
                .max_retries(1)
                .route(&route, record)
                .with_state(log.clone()),
        ),
    )
    .await;
    let peer = RawPeer::connect().await;
    let body = gzip(br#"{"data": "always-fail"}"#);
    peer.publish(
        &route,
        &body,
        lapin::BasicProperties::default()
            .with_delivery_mode(2)
            .with_expiration("600000".into())
            .with_user_id(login().as_str().into())
            .with_correlation_id("kept".into()),
    )
    .await;
    let dead = parking_queue(&route);
    wait_until(Duration::from_secs(10), "message parked", || {
        let (peer, dead) = (&peer, &dead);
        async move { peer.ready_count(dead).await == 1 }
    })
    .await;
    running.stop().await.unwrap();
    assert_eq!(log.seen.lock().await.len(), 2, "first try plus one retry");
    let msg = peer.get(&dead).await.expect("parked message");
    let props = &msg.delivery.properties;
    assert_eq!(
        props.expiration(),
        &None,
        "no expiration on the parked copy"
    );
    assert_eq!(
        props.user_id().as_ref().map(ToString::to_string),
        Some(login()),
        "the worker's own user_id on the parked copy"
    );
    assert_eq!(
        header_text(&msg, "x-original-user-id"),
        login(),
        "the sender of the original (the same login here)"
    );
    assert_eq!(
        props
            .correlation_id()
            .as_ref()
            .map(ToString::to_string)
            .as_deref(),
        Some("kept"),
        "other properties are kept"
    );
    assert_eq!(msg.delivery.data, body);
    peer.delete(&[&route, &dead]).await;
}
