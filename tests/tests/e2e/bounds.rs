//! Issue 25, round 3: what a peer's message claims about itself (its deadline, the size of
//! what it asks for) cannot make the service publish something the broker refuses. Such a
//! publish closes the channel the request came on, the request comes back, and the route
//! loops; here each claim gets one bounded reply instead.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use e2e::{RawPeer, gzip, reply_json, unique};
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable};
use serde_json::json;
use worker_kit::rpc::RpcWorker;
use worker_kit::{ErrorReply, Payload, Runner, State};

/// The handler limit the tests run with: every reply's `expiration` must stay within it.
const HANDLER_LIMIT: Duration = Duration::from_secs(2);

/// Counts its runs and answers with the milliseconds its request was given.
async fn time_given(
    State(runs): State<Arc<AtomicUsize>>,
    Payload(_): Payload<serde_json::Value>,
) -> Result<u64, ErrorReply> {
    runs.fetch_add(1, Ordering::SeqCst);
    let left = worker_kit::wire::deadline::current().map_or(u64::MAX, |d| {
        u64::try_from(d.remaining().as_millis()).unwrap_or(u64::MAX)
    });
    Ok(left)
}

/// Answers with a string of the asked length (a stand-in for an echo or a large row).
async fn sized(
    State(runs): State<Arc<AtomicUsize>>,
    Payload(n): Payload<usize>,
) -> Result<String, ErrorReply> {
    runs.fetch_add(1, Ordering::SeqCst);
    Ok("x".repeat(n))
}

fn expiration_ms(props: &BasicProperties) -> u64 {
    props
        .expiration()
        .as_ref()
        .expect("the reply expires")
        .as_str()
        .parse()
        .expect("a whole number of milliseconds")
}

fn with_headers(peer: &RawPeer, cid: &str, pairs: &[(&str, AMQPValue)]) -> BasicProperties {
    let mut headers = FieldTable::default();
    for (k, v) in pairs {
        headers.insert((*k).into(), v.clone());
    }
    BasicProperties::default()
        .with_reply_to(peer.reply_to().into())
        .with_correlation_id(cid.into())
        .with_headers(headers)
}

/// Issue 25.2: `x-deadline` in the year 2100 or `x-timeout-ms` of 5·10⁹ made the reply's
/// `expiration` larger than RabbitMQ accepts (2³²−1 ms); the broker closed the consuming
/// channel, the request came back, and the route looped without ever replying. Now the
/// budget is bounded by the handler limit when it is read: one reply each, expiring within
/// the limit, on a channel that stays open.
#[tokio::test]
async fn far_future_deadlines_get_one_reply_within_the_handler_limit() {
    let route = unique("far-deadline");
    let runs = Arc::new(AtomicUsize::new(0));
    let mut config = e2e::config();
    config.handler_timeout = HANDLER_LIMIT;
    let running = e2e::start(
        Runner::new(
            "far-deadline",
            Arc::new(config),
            e2e::broker("far-deadline").await,
        )
        .register_worker(
            RpcWorker::new()
                .route(&route, time_given)
                .with_state(runs.clone()),
        ),
    )
    .await;
    let mut peer = RawPeer::connect().await;
    let claims: [(&str, Vec<(&str, AMQPValue)>); 3] = [
        (
            "year-2100",
            vec![("x-deadline", AMQPValue::LongLongInt(4_102_444_800_000))],
        ),
        (
            "huge-timeout",
            vec![("x-timeout-ms", AMQPValue::LongLongInt(5_000_000_000))],
        ),
        (
            "both",
            vec![
                ("x-deadline", AMQPValue::Timestamp(4_102_444_800)),
                ("x-timeout-ms", AMQPValue::LongString("5000000000".into())),
            ],
        ),
    ];
    let limit_ms = u64::try_from(HANDLER_LIMIT.as_millis()).unwrap();
    for (n, (cid, headers)) in claims.iter().enumerate() {
        let props = with_headers(&peer, cid, headers);
        peer.publish(&route, &gzip(br#"{"data": null}"#), props)
            .await;
        let reply = peer.next_reply().await;
        assert_eq!(
            reply.properties.correlation_id().as_ref().unwrap().as_str(),
            *cid
        );
        let v = reply_json(&reply);
        assert_eq!(v["success"], json!(true), "{cid}: {v}");
        let given = v["data"].as_u64().unwrap();
        assert!(given <= limit_ms, "{cid}: the handler was given {given} ms");
        let expiration = expiration_ms(&reply.properties);
        assert!(
            (1..=limit_ms).contains(&expiration),
            "{cid}: expiration {expiration}"
        );
        assert_eq!(runs.load(Ordering::SeqCst), n + 1, "{cid}: ran once");
    }
    let conn = running.broker().connection_now().expect("connected");
    assert!(conn.status().connected());
    running.stop().await.unwrap();
    assert_eq!(
        runs.load(Ordering::SeqCst),
        claims.len(),
        "no request looped"
    );
    assert_eq!(peer.ready_count(&route).await, 0, "nothing requeued");
    peer.delete(&[&route]).await;
}

/// Issue 25.2, the same class: a reply larger than `MAX_MESSAGE_BYTES` (the broker's
/// `max_message_size` in a deployment that follows the README) is replaced by a small
/// `Internal` error saying which bound, and the route keeps answering.
#[tokio::test]
async fn a_reply_above_the_message_size_limit_costs_one_error_reply() {
    let route = unique("big-reply");
    let runs = Arc::new(AtomicUsize::new(0));
    let mut config = e2e::config();
    config.max_message_bytes = 64 * 1024;
    let running = e2e::start(
        Runner::new(
            "big-reply",
            Arc::new(config),
            e2e::broker("big-reply").await,
        )
        .register_worker(
            RpcWorker::new()
                .route(&route, sized)
                .with_state(runs.clone()),
        ),
    )
    .await;
    let mut peer = RawPeer::connect().await;
    // Plain JSON, so the reply is as large as the string.
    let v = reply_json(&peer.request(&route, br#"{"data": 100000}"#, "big").await);
    assert_eq!(
        v["success"],
        json!(false),
        "a reply of 100,000 bytes was sent"
    );
    assert_eq!(v["error"]["type"], json!("Internal"), "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains("MAX_MESSAGE_BYTES"), "{message}");
    let v = reply_json(&peer.request(&route, br#"{"data": 3}"#, "small").await);
    assert_eq!(v, json!({"success": true, "data": "xxx"}));
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    running.stop().await.unwrap();
    assert_eq!(peer.ready_count(&route).await, 0, "nothing requeued");
    peer.delete(&[&route]).await;
}
