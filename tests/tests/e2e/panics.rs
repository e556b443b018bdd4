//! Panics anywhere on the handling path (extractors, `deserialize_with`, handlers) become
//! an `Internal` reply or a failed attempt, and the delivery is always settled.

use std::time::Duration;

use e2e::{RawPeer, gzip, reply_json, unique, wait_until};
use lapin::types::AMQPValue;
use serde_json::json;
use worker_kit::handler::extract::Incoming;
use worker_kit::queue::{QueueWorker, parking_queue};
use worker_kit::rpc::RpcWorker;
use worker_kit::{ErrorReply, FromMessage, Payload};

fn explode<'de, D: serde::Deserializer<'de>>(_: D) -> Result<u32, D::Error> {
    panic!("deserializer exploded")
}

#[derive(serde::Deserialize)]
struct Fragile {
    #[serde(deserialize_with = "explode")]
    #[allow(dead_code)]
    n: u32,
}

/// An extractor that panics while building its argument.
struct Exploding;

impl<S> FromMessage<S> for Exploding {
    fn from_message(_: &Incoming, _: &S) -> Result<Self, ErrorReply> {
        panic!("extractor exploded")
    }
}

async fn fragile(Payload(_): Payload<Fragile>) -> Result<&'static str, ErrorReply> {
    Ok("unreachable")
}

async fn exploding(_: Exploding) -> Result<&'static str, ErrorReply> {
    Ok("unreachable")
}

async fn fine(Payload(n): Payload<u32>) -> Result<u32, ErrorReply> {
    Ok(n)
}

#[tokio::test]
async fn panicking_extractors_get_an_internal_reply() {
    let (r_fragile, r_exploding, r_fine) = (unique("fragile"), unique("exploding"), unique("fine"));
    let running = e2e::start(
        e2e::runner("panics-rpc").await.register_worker(
            RpcWorker::new()
                .prefetch(1)
                .route(&r_fragile, fragile)
                .route(&r_exploding, exploding)
                .route(&r_fine, fine),
        ),
    )
    .await;
    let mut peer = RawPeer::connect().await;
    for (route, what) in [
        (&r_fragile, "deserializer exploded"),
        (&r_exploding, "extractor exploded"),
    ] {
        // Twice: with prefetch 1, a delivery left unsettled would block the second one.
        for i in 0..2 {
            let v = reply_json(
                &peer
                    .request(route, &gzip(br#"{"data": {"n": 1}}"#), &format!("c{i}"))
                    .await,
            );
            assert_eq!(v["error"]["type"], json!("Internal"), "{v}");
            assert!(v["error"]["trace"].to_string().contains(what), "{v}");
        }
    }
    let v = reply_json(&peer.request(&r_fine, &gzip(br#"{"data": 7}"#), "ok").await);
    assert_eq!(v["data"], json!(7), "{v}");
    running.stop().await.unwrap();
    for r in [&r_fragile, &r_exploding] {
        assert_eq!(peer.ready_count(r).await, 0, "every request settled");
    }
    peer.delete(&[&r_fragile, &r_exploding, &r_fine]).await;
}

#[tokio::test]
async fn panicking_extractors_are_failed_attempts_on_work_queues() {
    let route = unique("fragile-task");
    let running = e2e::start(
        e2e::runner("panics-queue").await.register_worker(
            QueueWorker::new()
                .prefetch(1)
                .max_retries(1)
                .route(&route, fragile),
        ),
    )
    .await;
    let peer = RawPeer::connect().await;
    peer.publish(
        &route,
        &gzip(br#"{"data": {"n": 1}}"#),
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
    assert_eq!(
        peer.ready_count(&route).await,
        0,
        "nothing left in the route queue"
    );
    let msg = peer.get(&dead).await.expect("parked message");
    let headers = msg
        .delivery
        .properties
        .headers()
        .clone()
        .unwrap_or_default();
    match headers.inner().get("x-error-type") {
        Some(AMQPValue::LongString(s)) => assert_eq!(s.to_string(), "Internal"),
        other => panic!("x-error-type: {other:?}"),
    }
    assert!(
        matches!(
            headers.inner().get("x-retry-count"),
            Some(AMQPValue::LongLongInt(1))
        ),
        "one retry before parking: {headers:?}"
    );
    peer.delete(&[&route, &dead]).await;
}
