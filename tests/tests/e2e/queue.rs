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
        runner.register_worker(QueueWorker::with_state(log.clone()).route(&route, record)),
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
            QueueWorker::with_state(log.clone())
                .max_retries(3)
                .route(&route, record),
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
            QueueWorker::with_state(log.clone())
                .max_retries(2)
                .route(&route, record),
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
        e2e::runner("queue-poison")
            .await
            .register_worker(QueueWorker::with_state(log.clone()).route(&route, record)),
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
