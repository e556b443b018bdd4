//! Hostile input: every kind gets an error reply (or parking), never a crash, hang or loop.

use std::time::Duration;

use e2e::{RawPeer, gzip, reply_json, unique, wait_until};
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable};
use serde_json::json;
use worker_kit::queue::{QueueWorker, parking_queue};
use worker_kit::rpc::RpcWorker;
use worker_kit::{ErrorReply, Payload};

#[derive(serde::Deserialize)]
struct Point {
    #[allow(dead_code)]
    x: f64,
}

async fn point(Payload(_): Payload<Point>) -> Result<&'static str, ErrorReply> {
    Ok("ok")
}

async fn anything(Payload(_): Payload<serde_json::Value>) -> Result<&'static str, ErrorReply> {
    Ok("ok")
}

fn bomb(decoded_bytes: usize) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(b"{\"data\": \"").unwrap();
    enc.write_all(&vec![b'a'; decoded_bytes]).unwrap();
    enc.write_all(b"\"}").unwrap();
    enc.finish().unwrap()
}

#[tokio::test]
async fn rpc_survives_hostile_input() {
    let (r_point, r_any) = (unique("point"), unique("any"));
    // A cap below the broker's max_message_size (the shipped configuration sets it to the
    // default cap), so that the body reaches the worker.
    let mut config = e2e::config();
    config.max_message_bytes = 1024 * 1024;
    let running = e2e::start(
        worker_kit::Runner::new(
            "hostile",
            std::sync::Arc::new(config),
            e2e::broker("hostile").await,
        )
        .register_worker(
            RpcWorker::new()
                .route(&r_point, point)
                .route(&r_any, anything),
        ),
    )
    .await;
    let mut peer = RawPeer::connect().await;

    // Larger than MAX_MESSAGE_BYTES, as plain JSON.
    let mut huge = br#"{"data": ""#.to_vec();
    huge.extend(std::iter::repeat_n(b'x', 2 * 1024 * 1024));
    huge.extend(br#""}"#);
    let v = reply_json(&peer.request(&r_any, &huge, "huge").await);
    assert_eq!(v["error"]["type"], json!("BadRequest"));
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("more than the limit"),
        "{v}"
    );

    // A gzip bomb: 64 MiB of text in well under 1 MiB on the wire.
    let b = bomb(64 * 1024 * 1024);
    assert!(b.len() < 1024 * 1024);
    let v = reply_json(&peer.request(&r_any, &b, "bomb").await);
    assert_eq!(v["error"]["type"], json!("BadRequest"));
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("decompressed body exceeds"),
        "{v}"
    );

    // Deeply nested JSON is refused, not a stack overflow.
    let deep = format!(
        r#"{{"data": {}{}}}"#,
        "[".repeat(50_000),
        "]".repeat(50_000)
    );
    let v = reply_json(&peer.request(&r_any, deep.as_bytes(), "deep").await);
    assert_eq!(v["error"]["type"], json!("ValidationError"));

    // Wrong types, NaN-like text, empty body.
    let v = reply_json(
        &peer
            .request(&r_point, br#"{"data": {"x": "NaN"}}"#, "wrong")
            .await,
    );
    assert_eq!(v["error"]["type"], json!("ValidationError"));
    let v = reply_json(
        &peer
            .request(&r_point, br#"{"data": {"x": NaN}}"#, "nan")
            .await,
    );
    assert_eq!(v["error"]["type"], json!("BadRequest"));
    let v = reply_json(&peer.request(&r_point, b"", "empty").await);
    assert_eq!(v["error"]["type"], json!("BadRequest"));

    // Odd properties: an x-deadline that is not a number is ignored; no correlation id
    // gets a reply without one.
    let mut headers = FieldTable::default();
    headers.insert("x-deadline".into(), AMQPValue::LongString("soon".into()));
    headers.insert("x-retry-count".into(), AMQPValue::Boolean(true));
    let props = BasicProperties::default()
        .with_reply_to(peer.reply_to().into())
        .with_headers(headers)
        .with_content_type("text/nonsense".into());
    peer.publish(&r_point, br#"{"data": {"x": 1.5}}"#, props)
        .await;
    let reply = peer.next_reply().await;
    assert!(reply.properties.correlation_id().is_none());
    assert_eq!(reply_json(&reply), json!({"success": true, "data": "ok"}));

    // A reply_to that leads nowhere: the reply is dropped by the broker, the request acked.
    let props = BasicProperties::default()
        .with_reply_to("no-such-queue-anywhere".into())
        .with_correlation_id("lost".into());
    peer.publish(&r_any, &gzip(br#"{"data": 1}"#), props).await;
    // And the worker still answers afterwards.
    let v = reply_json(
        &peer
            .request(&r_any, &gzip(br#"{"data": 2}"#), "after")
            .await,
    );
    assert_eq!(v["success"], json!(true));

    running.stop().await.unwrap();
    assert_eq!(peer.ready_count(&r_any).await, 0, "nothing requeued");
    assert_eq!(peer.ready_count(&r_point).await, 0, "nothing requeued");
    peer.delete(&[&r_point, &r_any]).await;
}

#[tokio::test]
async fn work_queue_parks_hostile_input_without_looping() {
    let route = unique("hostile-q");
    let running = e2e::start(
        e2e::runner("hostile-q")
            .await
            .register_worker(QueueWorker::new().route(&route, point)),
    )
    .await;
    let peer = RawPeer::connect().await;
    peer.publish(&route, &bomb(32 * 1024 * 1024), BasicProperties::default())
        .await;
    peer.publish(&route, b"\xff\xfe\x00", BasicProperties::default())
        .await;
    peer.publish(
        &route,
        br#"{"data": {"x": []}}"#,
        BasicProperties::default(),
    )
    .await;
    let dead = parking_queue(&route);
    wait_until(Duration::from_secs(10), "all three parked", || {
        let (peer, dead) = (&peer, dead.clone());
        async move { peer.ready_count(&dead).await == 3 }
    })
    .await;
    running.stop().await.unwrap();
    assert_eq!(peer.ready_count(&route).await, 0, "no loop");
    peer.delete(&[&route, &dead]).await;
}

/// A caller a route does not admit is refused before its body is decoded: a gzip bomb or
/// a corrupt body from it is answered `Forbidden`, not with what decoding would have found
/// (and cost).
#[tokio::test]
async fn a_forbidden_callers_body_is_not_decoded() {
    let (r_rpc, r_task) = (unique("closed"), unique("closed-q"));
    let running = e2e::start(
        e2e::runner("closed")
            .await
            .register_worker(
                RpcWorker::new()
                    .route(&r_rpc, anything)
                    .allow(&r_rpc, ["nobody"]),
            )
            .register_worker(
                QueueWorker::new()
                    .route(&r_task, anything)
                    .allow(&r_task, ["nobody"]),
            ),
    )
    .await;
    let mut peer = RawPeer::connect().await;
    let user = e2e::amqp_url()
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .unwrap_or("guest")
        .to_owned();
    let reply_to = peer.reply_to().to_owned();
    let as_user = |id: &str| {
        BasicProperties::default()
            .with_reply_to(reply_to.as_str().into())
            .with_correlation_id(id.into())
            .with_user_id(user.as_str().into())
    };
    let too_big = bomb(64 * 1024 * 1024);
    let mut corrupt = gzip(br#"{"data": "hello"}"#);
    let n = corrupt.len();
    corrupt[n - 6] ^= 0xff;
    for (body, id) in [(&too_big, "bomb"), (&corrupt, "corrupt")] {
        peer.publish(&r_rpc, body, as_user(id)).await;
        let v = reply_json(&peer.next_reply().await);
        assert_eq!(v["error"]["type"], json!("Forbidden"), "{id}: {v}");
        // Anonymous: refused by the list as well, before decoding.
        let v = reply_json(&peer.request(&r_rpc, body, id).await);
        assert_eq!(
            v["error"]["type"],
            json!("Forbidden"),
            "{id}, anonymous: {v}"
        );
        peer.publish(&r_task, body, BasicProperties::default())
            .await;
    }
    let dead = parking_queue(&r_task);
    wait_until(Duration::from_secs(10), "both parked", || {
        let (peer, dead) = (&peer, dead.clone());
        async move { peer.ready_count(&dead).await == 2 }
    })
    .await;
    for _ in 0..2 {
        let msg = peer.get(&dead).await.expect("parked");
        let headers = msg
            .delivery
            .properties
            .headers()
            .clone()
            .unwrap_or_default();
        assert_eq!(
            headers.inner().get("x-error-type"),
            Some(&AMQPValue::LongString("Forbidden".into())),
            "{headers:?}"
        );
    }
    running.stop().await.unwrap();
    peer.delete(&[&r_rpc, &r_task, &dead]).await;
}
