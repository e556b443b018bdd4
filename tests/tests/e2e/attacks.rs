//! Attacks a peer on the same broker can make (issue #13): each test reproduces one and
//! checks that the service neither loses its connection nor publishes where the attacker
//! points it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use e2e::{RawPeer, gzip, reply_json, unique, wait_until};
use futures::StreamExt;
use lapin::BasicProperties;
use lapin::options::{BasicConsumeOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use serde_json::json;
use worker_kit::queue::{QueuePublisher, QueueWorker, parking_queue};
use worker_kit::rpc::RpcWorker;
use worker_kit::rpc::{CallOptions, RpcClient};
use worker_kit::runner::Running;
use worker_kit::{ErrorReply, Payload, Runner, State};

#[derive(serde::Deserialize)]
struct Point {
    #[allow(dead_code)]
    x: f64,
}

async fn point(Payload(_): Payload<Point>) -> Result<&'static str, ErrorReply> {
    Ok("ok")
}

async fn fail(Payload(_): Payload<serde_json::Value>) -> Result<(), ErrorReply> {
    Err(ErrorReply::new("Internal", "always fails"))
}

async fn counted(
    State(n): State<Arc<AtomicUsize>>,
    Payload(v): Payload<serde_json::Value>,
) -> Result<serde_json::Value, ErrorReply> {
    n.fetch_add(1, Ordering::SeqCst);
    Ok(v)
}

/// The Runner's broker connection as it is now, to check later that nothing closed it.
fn connection_of(running: &Running) -> Arc<lapin::Connection> {
    running
        .broker()
        .connection_now()
        .expect("the runner is connected")
}

fn assert_still_connected(conn: &lapin::Connection) {
    assert!(
        conn.status().connected(),
        "the service's broker connection was closed by the message"
    );
}

fn header<'a>(props: &'a BasicProperties, name: &str) -> Option<&'a AMQPValue> {
    props.headers().as_ref()?.inner().get(name)
}

fn long_string(v: &AMQPValue) -> String {
    match v {
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        other => panic!("expected a long string, got {other:?}"),
    }
}

/// A ~200 KB string where a number is expected: serde quotes the whole value in its
/// error, which the parked copy carries in `x-error-message`. Past the frame size, the
/// broker would close the connection, the message would come back, and so on forever.
#[tokio::test]
async fn quoted_caller_text_is_capped_when_parking() {
    let route = unique("attack-park");
    let running = e2e::start(
        e2e::runner("attack-park")
            .await
            .register_worker(QueueWorker::new().route(&route, point)),
    )
    .await;
    let conn = connection_of(&running);
    let peer = RawPeer::connect().await;
    let big = "a".repeat(200 * 1024);
    let body = gzip(format!(r#"{{"data": {{"x": "{big}"}}}}"#).as_bytes());
    assert!(body.len() < 2048, "the attack is small on the wire");
    peer.publish(&route, &body, BasicProperties::default())
        .await;
    let dead = parking_queue(&route);
    wait_until(Duration::from_secs(10), "the message is parked", || {
        let (peer, dead) = (&peer, dead.clone());
        async move { peer.ready_count(&dead).await == 1 }
    })
    .await;
    assert_still_connected(&conn);
    let parked = peer.get(&dead).await.expect("the parked copy");
    let message = long_string(header(&parked.properties, "x-error-message").expect("message"));
    assert!(message.len() <= 1024, "{} bytes", message.len());
    assert!(message.starts_with("invalid payload"), "{message}");
    assert_eq!(
        long_string(header(&parked.properties, "x-error-type").unwrap()),
        "ValidationError"
    );
    assert_eq!(parked.data, body, "the body is kept as it came");
    running.stop().await.unwrap();
    assert_eq!(peer.ready_count(&route).await, 0, "no loop");
    peer.delete(&[&route, &dead]).await;
}

/// Headers just under the frame size pass the broker, but the parked copy's extra headers
/// would push them over: the copy is parked with the kit's headers only.
#[tokio::test]
async fn headers_near_the_frame_size_are_dropped_when_parking() {
    let route = unique("attack-frame");
    let running = e2e::start(
        e2e::runner("attack-frame").await.register_worker(
            QueueWorker::new()
                .max_retries(1)
                .route(&route, fail)
                .prefetch(1),
        ),
    )
    .await;
    let conn = connection_of(&running);
    let peer = RawPeer::connect().await;
    let mut headers = FieldTable::default();
    headers.insert(
        "x-pad".into(),
        AMQPValue::LongString("p".repeat(131_000).into()),
    );
    peer.publish(
        &route,
        br#"{"data": 1}"#,
        BasicProperties::default().with_headers(headers),
    )
    .await;
    let dead = parking_queue(&route);
    wait_until(
        Duration::from_secs(10),
        "the message is retried, then parked",
        || {
            let (peer, dead) = (&peer, dead.clone());
            async move { peer.ready_count(&dead).await == 1 }
        },
    )
    .await;
    assert_still_connected(&conn);
    let parked = peer.get(&dead).await.expect("the parked copy");
    assert!(header(&parked.properties, "x-pad").is_none());
    assert_eq!(
        long_string(header(&parked.properties, "x-original-route").unwrap()),
        route
    );
    assert_eq!(
        header(&parked.properties, "x-original-headers-dropped"),
        Some(&AMQPValue::Boolean(true))
    );
    running.stop().await.unwrap();
    assert_eq!(peer.ready_count(&route).await, 0, "no loop");
    peer.delete(&[&route, &dead]).await;
}

/// A `traceparent` just under the frame size, echoed into a reply that adds properties of
/// its own, would make the reply too big to publish. Only a valid W3C value is echoed.
#[tokio::test]
async fn reply_echoes_only_a_valid_traceparent() {
    let route = unique("attack-trace");
    let mut config = e2e::config();
    config.rpc_reply_to = vec!["rt-*".to_owned()];
    let running = e2e::start(
        Runner::new(
            "attack-trace",
            Arc::new(config),
            e2e::broker("attack-trace").await,
        )
        .register_worker(RpcWorker::new().route(&route, point)),
    )
    .await;
    let conn = connection_of(&running);
    let peer = RawPeer::connect().await;
    // A short reply queue name (allowed above) leaves the most room for the header.
    let reply_queue = format!("rt-{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
    peer.channel
        .queue_declare(
            reply_queue.as_str().into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut replies = peer
        .channel
        .basic_consume(
            reply_queue.as_str().into(),
            "trace".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut next_reply = async || {
        tokio::time::timeout(Duration::from_secs(10), replies.next())
            .await
            .expect("a reply within 10 s")
            .unwrap()
            .unwrap()
    };
    let mut headers = FieldTable::default();
    headers.insert(
        "traceparent".into(),
        AMQPValue::LongString("0".repeat(131_010).into()),
    );
    let props = BasicProperties::default()
        .with_reply_to(reply_queue.as_str().into())
        .with_correlation_id("h".into())
        .with_headers(headers);
    peer.publish(&route, &gzip(br#"{"data": {"x": 1}}"#), props)
        .await;
    let reply = next_reply().await;
    assert_eq!(reply_json(&reply)["success"], json!(true));
    assert!(header(&reply.properties, "traceparent").is_none());
    assert_still_connected(&conn);

    let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut headers = FieldTable::default();
    headers.insert("traceparent".into(), AMQPValue::LongString(valid.into()));
    headers.insert("tracestate".into(), AMQPValue::LongString("k=v".into()));
    let props = BasicProperties::default()
        .with_reply_to(reply_queue.as_str().into())
        .with_correlation_id("good-trace".into())
        .with_headers(headers);
    peer.publish(&route, br#"{"data": {"x": 1}}"#, props).await;
    let reply = next_reply().await;
    assert_eq!(
        header(&reply.properties, "traceparent").map(long_string),
        Some(valid.to_owned())
    );
    assert_eq!(
        header(&reply.properties, "tracestate").map(long_string),
        Some("k=v".to_owned())
    );
    running.stop().await.unwrap();
    peer.delete(&[&route]).await;
}

/// Two RPC routes on workers of their own that handle one message at a time, so a request
/// answered on one proves the requests before it on that route were settled.
async fn two_routes(service: &'static str) -> (Running, String, String, Arc<AtomicUsize>) {
    let (a, b) = (unique("attack-a"), unique("attack-b"));
    let calls_b = Arc::new(AtomicUsize::new(0));
    let running = e2e::start(
        e2e::runner(service)
            .await
            .register_worker(
                RpcWorker::new()
                    .route(&a, counted)
                    .prefetch(1)
                    .with_state(Arc::new(AtomicUsize::new(0))),
            )
            .register_worker(
                RpcWorker::new()
                    .route(&b, counted)
                    .prefetch(1)
                    .with_state(calls_b.clone()),
            ),
    )
    .await;
    (running, a, b, calls_b)
}

/// `reply_to` naming another route this process serves: the reply would be taken as a
/// request there, run under the server's identity.
#[tokio::test]
async fn reply_to_a_served_route_is_not_published() {
    let (running, a, b, calls_b) = two_routes("attack-reply-route").await;
    let mut peer = RawPeer::connect().await;
    let props = BasicProperties::default()
        .with_reply_to(b.as_str().into())
        .with_correlation_id("redirected".into());
    peer.publish(&a, br#"{"data": 42}"#, props).await;
    // A's next request is delivered only once the first was settled (prefetch 1), and B's
    // next only once whatever came before it on B was.
    let v = reply_json(&peer.request(&a, br#"{"data": 1}"#, "a-sync").await);
    assert_eq!(v["data"], json!(1));
    let v = reply_json(&peer.request(&b, br#"{"data": 2}"#, "b-sync").await);
    assert_eq!(v["data"], json!(2));
    assert_eq!(
        calls_b.load(Ordering::SeqCst),
        1,
        "B ran only for its own call"
    );
    running.stop().await.unwrap();
    peer.delete(&[&a, &b]).await;
}

/// `reply_to` naming some other durable queue, with `delivery_mode` 2: the reply would be
/// stored there for good.
#[tokio::test]
async fn reply_to_a_durable_work_queue_is_not_published() {
    let (running, a, b, _) = two_routes("attack-reply-durable").await;
    let mut peer = RawPeer::connect().await;
    let victim = unique("attack-victim");
    peer.declare_work_queue(&victim).await;
    let props = BasicProperties::default()
        .with_reply_to(victim.as_str().into())
        .with_delivery_mode(2)
        .with_correlation_id("stored".into());
    peer.publish(&a, br#"{"data": 42}"#, props).await;
    let v = reply_json(&peer.request(&a, br#"{"data": 1}"#, "a-sync").await);
    assert_eq!(v["data"], json!(1));
    assert_eq!(
        peer.ready_count(&victim).await,
        0,
        "nothing left in the victim"
    );
    running.stop().await.unwrap();
    peer.delete(&[&a, &b, &victim]).await;
}

/// A reply body, or a message typed as a reply, sent as a request is refused unrun.
#[tokio::test]
async fn a_reply_is_not_taken_as_a_request() {
    let (running, a, b, calls_b) = two_routes("attack-reply-body").await;
    let mut peer = RawPeer::connect().await;
    let v = reply_json(
        &peer
            .request(&b, br#"{"success": true, "data": 42}"#, "body")
            .await,
    );
    assert_eq!(v["error"]["type"], json!("BadRequest"), "{v}");
    for t in ["result", "error"] {
        let props = BasicProperties::default()
            .with_reply_to(peer.reply_to().into())
            .with_correlation_id(t.into())
            .with_type(ShortString::from(t));
        peer.publish(&b, &gzip(br#"{"data": 42}"#), props).await;
        let reply = peer.next_reply().await;
        assert_eq!(reply_json(&reply)["error"]["type"], json!("BadRequest"));
        assert_eq!(
            reply.properties.kind().as_ref().map(ShortString::as_str),
            Some("error")
        );
    }
    assert_eq!(calls_b.load(Ordering::SeqCst), 0, "no handler ran");
    running.stop().await.unwrap();
    peer.delete(&[&a, &b]).await;
}

/// Replies are never persistent and expire with the caller's deadline.
#[tokio::test]
async fn replies_are_transient_and_expire_with_the_deadline() {
    let (running, a, b, _) = two_routes("attack-reply-props").await;
    let mut peer = RawPeer::connect().await;
    let deadline = chrono::Utc::now().timestamp_millis() + 20_000;
    let mut headers = FieldTable::default();
    headers.insert("x-deadline".into(), AMQPValue::LongLongInt(deadline));
    let props = BasicProperties::default()
        .with_reply_to(peer.reply_to().into())
        .with_delivery_mode(2)
        .with_headers(headers)
        .with_correlation_id("props".into());
    peer.publish(&a, br#"{"data": 1}"#, props).await;
    let reply = peer.next_reply().await;
    assert_eq!(reply.properties.delivery_mode(), &Some(1));
    let expiration: u64 = reply
        .properties
        .expiration()
        .as_ref()
        .expect("an expiration")
        .as_str()
        .parse()
        .expect("milliseconds");
    assert!(
        (1..=20_000).contains(&expiration),
        "expiration {expiration}"
    );
    running.stop().await.unwrap();
    peer.delete(&[&a, &b]).await;
}

/// A body over `MAX_MESSAGE_BYTES` is refused by the kit's own client and publisher before
/// it is published: the broker would close the publishing channel over it (taking every
/// call in flight on it along), and no kit server would take it anyway.
#[tokio::test]
async fn oversized_bodies_are_refused_before_publishing() {
    let route = unique("attack-size");
    let mut config = e2e::config();
    config.max_message_bytes = 64 * 1024;
    let config = Arc::new(config);
    let broker = e2e::broker("attack-size").await;
    let running = e2e::start(
        Runner::new("attack-size", config.clone(), broker.clone()).register_worker(
            RpcWorker::new()
                .route(&route, counted)
                .with_state(Arc::new(AtomicUsize::new(0))),
        ),
    )
    .await;
    let client = RpcClient::new(&broker, &config).await.unwrap().plain_json();
    let err = client
        .call_raw(
            &route,
            &json!("x".repeat(100 * 1024)),
            CallOptions::default(),
        )
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("MAX_MESSAGE_BYTES") && text.contains(&route),
        "{text}"
    );
    let small = client
        .call_raw(&route, &json!(1), CallOptions::default())
        .await
        .unwrap();
    assert_eq!(small.get(), "1");

    let queue = unique("attack-size-q");
    let peer = RawPeer::connect().await;
    peer.declare_work_queue(&queue).await;
    let mut big = br#"{"data": ""#.to_vec();
    big.extend(std::iter::repeat_n(b'x', 100 * 1024));
    big.extend(br#""}"#);
    let err = QueuePublisher::new(&broker)
        .with_max_message_bytes(config.max_message_bytes)
        .publish_body(&queue, &big, None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("MAX_MESSAGE_BYTES"), "{err}");
    assert_eq!(peer.ready_count(&queue).await, 0, "nothing published");
    running.stop().await.unwrap();
    peer.delete(&[&route, &queue]).await;
}
