use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use e2e::{RawPeer, gzip, reply_json, unique, wait_until};
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable};
use serde::{Deserialize, Serialize};
use serde_json::json;
use worker_kit::rpc::{CallError, CallOptions, RpcClient, RpcWorker};
use worker_kit::{Error, ErrorReply, Meta, Payload, State};

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Order {
    id: u32,
    qty: u32,
}

async fn echo(Payload(v): Payload<serde_json::Value>) -> Result<serde_json::Value, ErrorReply> {
    Ok(v)
}

async fn order(Payload(o): Payload<Order>) -> Result<u32, ErrorReply> {
    if o.qty == 0 {
        return Err(
            ErrorReply::new("EmptyOrder", "an order needs at least one item")
                .with_args(vec![json!(o.id)]),
        );
    }
    Ok(o.id * 10 + o.qty)
}

async fn client() -> RpcClient {
    RpcClient::new(&e2e::broker("test-client").await, &e2e::config())
        .await
        .expect("client")
}

#[tokio::test]
async fn success_error_and_validation() {
    e2e::init_logs();
    let (r_echo, r_order) = (unique("echo"), unique("order"));
    let running = e2e::start(
        e2e::runner("rpc-basic")
            .await
            .register_worker(RpcWorker::new().route(&r_echo, echo).route(&r_order, order)),
    )
    .await;
    let c = client().await;

    let v = c
        .call_json(&r_echo, json!({"a": [1, 2, null]}))
        .await
        .unwrap();
    assert_eq!(v, json!({"a": [1, 2, null]}));
    let v = c.call_json(&r_echo, serde_json::Value::Null).await.unwrap();
    assert_eq!(v, serde_json::Value::Null);

    let n: u32 = c
        .call_route(&r_order, &Order { id: 4, qty: 2 }, CallOptions::default())
        .await
        .unwrap();
    assert_eq!(n, 42);

    let err = c
        .call_route::<_, u32>(&r_order, &Order { id: 4, qty: 0 }, CallOptions::default())
        .await
        .unwrap_err();
    match err {
        CallError::Remote { error, .. } => {
            assert_eq!(error.error_type, "EmptyOrder");
            assert_eq!(error.message, "an order needs at least one item");
            assert_eq!(error.args, vec![json!(4)]);
        }
        other => panic!("expected a remote error, got {other:?}"),
    }

    let err = c
        .call_json(&r_order, json!({"id": 1, "qty": "two"}))
        .await
        .unwrap_err();
    match err {
        CallError::Remote { error, .. } => {
            assert_eq!(error.error_type, "ValidationError");
            assert!(error.message.contains("`qty`"), "{}", error.message);
            assert_eq!(error.args, vec![json!("qty")]);
        }
        other => panic!("expected a validation error, got {other:?}"),
    }
    running.stop().await.unwrap();
}

#[tokio::test]
async fn malformed_requests_get_error_replies_and_are_acked() {
    let route = unique("malformed");
    let running = e2e::start(
        e2e::runner("rpc-malformed")
            .await
            .register_worker(RpcWorker::new().route(&route, echo)),
    )
    .await;
    let mut peer = RawPeer::connect().await;
    let valid_gzip = gzip(br#"{"data": 1}"#);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "bad gzip",
            valid_gzip[..valid_gzip.len() / 2].to_vec(),
            "not valid gzip",
        ),
        (
            "bad utf-8",
            gzip(b"{\"data\": \"\xff\xfe\"}"),
            "not valid UTF-8",
        ),
        ("bad json", b"{\"data\": ".to_vec(), "not valid JSON"),
        (
            "bad envelope",
            gzip(br#"{"payload": 1}"#),
            "not a request envelope",
        ),
        (
            "array envelope",
            br#"["data"]"#.to_vec(),
            "not a request envelope",
        ),
    ];
    for (what, body, expect) in cases {
        let corr = format!("corr-{what}");
        let reply = peer.request(&route, &body, &corr).await;
        assert_eq!(
            reply
                .properties
                .correlation_id()
                .as_ref()
                .map(|c| c.as_str()),
            Some(corr.as_str()),
            "{what}: correlation id echoed"
        );
        assert_eq!(
            reply.properties.kind().as_ref().map(|k| k.as_str()),
            Some("error"),
            "{what}: AMQP type"
        );
        let v = reply_json(&reply);
        assert_eq!(v["success"], json!(false), "{what}");
        assert_eq!(v["error"]["type"], json!("BadRequest"), "{what}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains(expect), "{what}: {msg}");
    }
    // Plain JSON in gets plain JSON out; gzip in gets gzip out.
    let reply = peer.request(&route, br#"{"data": "plain"}"#, "p").await;
    assert_eq!(&reply.data[..2], b"{\"");
    assert_eq!(
        reply_json(&reply),
        json!({"success": true, "data": "plain"})
    );
    let reply = peer
        .request(&route, &gzip(br#"{"data": "zipped"}"#), "z")
        .await;
    assert_eq!(&reply.data[..2], &[0x1f, 0x8b]);
    assert_eq!(
        reply
            .properties
            .content_encoding()
            .as_ref()
            .map(|c| c.as_str()),
        Some("gzip")
    );
    assert_eq!(
        reply.properties.kind().as_ref().map(|k| k.as_str()),
        Some("result")
    );

    running.stop().await.unwrap();
    assert_eq!(peer.ready_count(&route).await, 0, "every request was acked");
    peer.delete(&[&route]).await;
}

#[tokio::test]
async fn request_without_reply_to_runs_and_is_acked() {
    let route = unique("noreply");
    let seen = Arc::new(AtomicUsize::new(0));
    async fn count(
        State(seen): State<Arc<AtomicUsize>>,
        Payload(n): Payload<usize>,
    ) -> Result<(), ErrorReply> {
        seen.fetch_add(n, Ordering::SeqCst);
        Ok(())
    }
    let running = e2e::start(
        e2e::runner("rpc-noreply").await.register_worker(
            RpcWorker::new()
                .route(&route, count)
                .with_state(seen.clone()),
        ),
    )
    .await;
    let peer = RawPeer::connect().await;
    peer.publish(&route, &gzip(br#"{"data": 3}"#), BasicProperties::default())
        .await;
    wait_until(Duration::from_secs(10), "handler ran", || {
        let seen = seen.clone();
        async move { seen.load(Ordering::SeqCst) == 3 }
    })
    .await;
    running.stop().await.unwrap();
    assert_eq!(peer.ready_count(&route).await, 0, "acked, not requeued");
    peer.delete(&[&route]).await;
}

#[tokio::test]
async fn expired_deadline_is_not_worked_on() {
    let route = unique("deadline");
    let ran = Arc::new(AtomicUsize::new(0));
    async fn work(State(ran): State<Arc<AtomicUsize>>, _m: Meta) -> Result<(), ErrorReply> {
        ran.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    let running = e2e::start(
        e2e::runner("rpc-deadline")
            .await
            .register_worker(RpcWorker::new().route(&route, work).with_state(ran.clone())),
    )
    .await;
    let mut peer = RawPeer::connect().await;
    let mut headers = FieldTable::default();
    headers.insert("x-deadline".into(), AMQPValue::LongLongInt(1_000));
    let props = BasicProperties::default()
        .with_reply_to(peer.reply_to().into())
        .with_correlation_id("late".into())
        .with_headers(headers);
    peer.publish(&route, &gzip(br#"{"data": null}"#), props)
        .await;
    let reply = peer.next_reply().await;
    let v = reply_json(&reply);
    assert_eq!(v["error"]["type"], json!("Timeout"));
    assert_eq!(ran.load(Ordering::SeqCst), 0, "handler never ran");
    running.stop().await.unwrap();
    peer.delete(&[&route]).await;
}

#[tokio::test]
async fn caller_timeout_and_missing_route() {
    let route = unique("slow");
    async fn slow() -> Result<(), ErrorReply> {
        std::future::pending::<()>().await;
        Ok(())
    }
    let running = e2e::start(
        e2e::runner("rpc-timeout")
            .await
            .register_worker(RpcWorker::new().route(&route, slow)),
    )
    .await;
    let c = client().await;
    let err = c
        .call_raw(
            &route,
            &json!(null),
            CallOptions {
                timeout: Some(Duration::from_millis(300)),
                ..CallOptions::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::Timeout { .. }), "{err:?}");

    // With a 30 s timeout, a route nobody serves fails with NoRoute (not Timeout), and
    // does so well before the timeout: the outer deadline turns a hang into a failure.
    let missing = unique("nobody-home");
    let err = tokio::time::timeout(Duration::from_secs(5), c.call_json(&missing, json!(1)))
        .await
        .expect("fails fast, not at the 30 s timeout")
        .unwrap_err();
    assert!(matches!(err, CallError::NoRoute { .. }), "{err:?}");
    assert!(err.to_string().contains("no queue for route"), "{err}");
    // Stopping does not wait for the handler that never finishes beyond the drain deadline.
    running.stop().await.unwrap();
    let peer = RawPeer::connect().await;
    peer.delete(&[&route]).await;
}

#[tokio::test]
async fn thousand_concurrent_calls_each_get_their_own_answer() {
    let route = unique("concurrent");
    let running = e2e::start(
        e2e::runner("rpc-concurrent")
            .await
            .register_worker(RpcWorker::new().route(&route, echo)),
    )
    .await;
    let c = client().await;
    let calls = (0..1000u32).map(|i| {
        let c = c.clone();
        let route = route.clone();
        async move {
            let v: u32 = c
                .call_route(&route, &i, CallOptions::default())
                .await
                .unwrap();
            assert_eq!(v, i, "call {i} got someone else's answer");
        }
    });
    futures::future::join_all(calls).await;
    running.stop().await.unwrap();
    RawPeer::connect().await.delete(&[&route]).await;
}

#[tokio::test]
async fn duplicate_routes_are_refused_at_start() {
    let route = unique("dup");
    let err = e2e::runner("rpc-dup")
        .await
        .register_worker(RpcWorker::new().route(&route, echo).route(&route, order))
        .start()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::DuplicateRoute(r) if *r == route),
        "{err}"
    );

    // Across workers too: a route is a queue.
    let err = e2e::runner("rpc-dup2")
        .await
        .register_worker(RpcWorker::new().route(&route, echo))
        .register_worker(worker_kit::queue::QueueWorker::new().route(&route, order))
        .start()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::DuplicateRoute(_)), "{err}");
}

#[tokio::test]
async fn queue_declared_with_other_arguments_is_a_clear_error() {
    // An RPC route consumes an existing queue as it is (protocol v2); a work route declares
    // its queue, so a transient queue where it wants a durable one is a conflict.
    async fn work(Payload(_): Payload<serde_json::Value>) -> Result<(), ErrorReply> {
        Ok(())
    }
    let route = unique("conflict");
    let peer = RawPeer::connect().await;
    peer.channel
        .queue_declare(
            route.as_str().into(),
            lapin::options::QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let err = e2e::runner("rpc-conflict")
        .await
        .register_worker(worker_kit::queue::QueueWorker::new().route(&route, work))
        .start()
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains(&route), "{text}");
    assert!(text.contains("other flags or arguments"), "{text}");
    // The work route declared its parking queue before it met the conflict.
    let parking = format!("{route}.dead");
    RawPeer::connect().await.delete(&[&route, &parking]).await;
}
