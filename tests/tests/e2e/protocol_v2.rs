//! Protocol v2 (docs/protocol.md): replies without publisher confirms, deadlines read from
//! either form and bounded by the relative budget `x-timeout-ms`, and deadlines that flow
//! into nested calls by themselves, and RPC queues that work on RabbitMQ 3.x and 4.x.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use e2e::proxy::Proxy;
use e2e::{RawPeer, gzip, reply_json, unique, wait_until};
use lapin::BasicProperties;
use lapin::options::QueueDeclareOptions;
use lapin::types::{AMQPValue, FieldTable};
use serde_json::{Value, json};
use worker_kit::config::{Config, RpcQueueDurable};
use worker_kit::rpc::{CallError, CallOptions, RpcClient, RpcWorker};
use worker_kit::{Broker, ErrorReply, Meta, Runner, State};

fn now_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// What a handler saw of its request's timing: its deadline (epoch ms) and the
/// `x-timeout-ms` header.
async fn timing(meta: Meta) -> Result<Value, ErrorReply> {
    let timeout_ms = match meta.headers.inner().get("x-timeout-ms") {
        Some(AMQPValue::LongLongInt(n)) => json!(n),
        Some(AMQPValue::LongUInt(n)) => json!(n),
        Some(other) => json!(format!("{other:?}")),
        None => Value::Null,
    };
    Ok(json!({
        "deadline": meta.deadline.map(|d| d.epoch_millis()),
        "timeout_ms": timeout_ms,
    }))
}

async fn never_answers() -> Result<(), ErrorReply> {
    std::future::pending::<()>().await;
    Ok(())
}

/// `rabbitmqctl <args>` as lines of tab-separated fields.
async fn rabbitmqctl(args: &[&str]) -> Vec<Vec<String>> {
    let out = tokio::process::Command::new("rabbitmqctl")
        .args(args)
        .output()
        .await
        .expect("rabbitmqctl is installed");
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect()
}

/// Whether the channel consuming `queue` is in confirm mode (publisher confirms on).
async fn consumer_channel_confirms(queue: &str) -> bool {
    let consumers = rabbitmqctl(&["list_consumers", "-q", "queue_name", "channel_pid"]).await;
    let pid = consumers
        .iter()
        .find(|f| f[0] == queue)
        .map(|f| f[1].clone())
        .expect("the worker consumes its queue");
    let channels = rabbitmqctl(&["list_channels", "-q", "pid", "confirm"]).await;
    let row = channels
        .iter()
        .find(|f| f[0] == pid)
        .expect("the consumer's channel is listed");
    row[1] == "true"
}

#[tokio::test]
async fn replies_go_out_on_a_channel_without_publisher_confirms() {
    let route = unique("v2-noconfirm");
    let running = e2e::start(
        e2e::runner("v2-noconfirm")
            .await
            .register_worker(RpcWorker::new().route(&route, timing)),
    )
    .await;
    let mut peer = RawPeer::connect().await;
    let reply = peer
        .request(&route, &gzip(br#"{"data": null}"#), "c1")
        .await;
    assert_eq!(reply_json(&reply)["success"], json!(true));
    assert!(
        !consumer_channel_confirms(&route).await,
        "the RPC worker's channel must not be in confirm mode (v2: replies without confirms)"
    );
    running.stop().await.unwrap();
    peer.delete(&[&route]).await;
}

/// Sends a request to `route` with `headers` and returns the reply's JSON.
async fn request_with(peer: &mut RawPeer, route: &str, headers: FieldTable) -> Value {
    let props = BasicProperties::default()
        .with_reply_to(peer.reply_to().into())
        .with_correlation_id("v2".into())
        .with_headers(headers);
    peer.publish(route, &gzip(br#"{"data": null}"#), props)
        .await;
    reply_json(&peer.next_reply().await)
}

#[tokio::test]
async fn deadline_sent_as_an_amqp_timestamp_is_read_as_seconds() {
    let route = unique("v2-tsdeadline");
    let running = e2e::start(
        e2e::runner("v2-tsdeadline")
            .await
            .register_worker(RpcWorker::new().route(&route, timing)),
    )
    .await;
    let mut peer = RawPeer::connect().await;
    let in_30s = now_ms() / 1000 + 30;
    let mut headers = FieldTable::default();
    headers.insert("x-deadline".into(), AMQPValue::Timestamp(in_30s));
    let v = request_with(&mut peer, &route, headers).await;
    assert_eq!(v["success"], json!(true), "{v}");
    assert_eq!(v["data"]["deadline"], json!(in_30s * 1000), "{v}");
    running.stop().await.unwrap();
    peer.delete(&[&route]).await;
}

#[tokio::test]
async fn a_deadline_behind_the_servers_clock_falls_back_to_the_relative_budget() {
    let route = unique("v2-lagging");
    let running = e2e::start(
        e2e::runner("v2-lagging")
            .await
            .register_worker(RpcWorker::new().route(&route, timing)),
    )
    .await;
    let mut peer = RawPeer::connect().await;
    // The caller's clock is a minute behind: its deadline has "passed" on arrival.
    let mut headers = FieldTable::default();
    let lagging = now_ms() - 60_000 + 10_000;
    headers.insert(
        "x-deadline".into(),
        AMQPValue::LongLongInt(i64::try_from(lagging).unwrap()),
    );
    headers.insert("x-timeout-ms".into(), AMQPValue::LongLongInt(10_000));
    let before = now_ms();
    let v = request_with(&mut peer, &route, headers).await;
    assert_eq!(v["success"], json!(true), "handled, not timed out: {v}");
    let deadline = v["data"]["deadline"].as_u64().expect("a deadline");
    assert!(
        deadline >= before + 9_000 && deadline <= now_ms() + 10_000,
        "the server's deadline is its own now + x-timeout-ms: {deadline} vs {before}"
    );
    running.stop().await.unwrap();
    peer.delete(&[&route]).await;
}

#[tokio::test]
async fn a_deadline_far_ahead_cannot_extend_the_relative_budget() {
    let route = unique("v2-ahead");
    let running = e2e::start(
        e2e::runner("v2-ahead")
            .await
            .register_worker(RpcWorker::new().route(&route, never_answers)),
    )
    .await;
    let mut peer = RawPeer::connect().await;
    // The caller's clock is an hour ahead; its budget was 300 ms.
    let mut headers = FieldTable::default();
    headers.insert(
        "x-deadline".into(),
        AMQPValue::LongLongInt(i64::try_from(now_ms() + 3_600_000).unwrap()),
    );
    headers.insert("x-timeout-ms".into(), AMQPValue::LongLongInt(300));
    let v = request_with(&mut peer, &route, headers).await;
    assert_eq!(v["error"]["type"], json!("Timeout"), "{v}");
    running.stop().await.unwrap();
    peer.delete(&[&route]).await;
}

#[tokio::test]
async fn calls_carry_their_budget_as_x_timeout_ms() {
    let route = unique("v2-timeoutms");
    let running = e2e::start(
        e2e::runner("v2-timeoutms")
            .await
            .register_worker(RpcWorker::new().route(&route, timing)),
    )
    .await;
    let c = RpcClient::new(&e2e::broker("v2-caller").await, &e2e::config())
        .await
        .unwrap();
    let v: Value = c
        .call_route(
            &route,
            &json!(null),
            CallOptions {
                timeout: Some(Duration::from_millis(2_500)),
                ..CallOptions::default()
            },
        )
        .await
        .unwrap();
    let ms = v["timeout_ms"]
        .as_i64()
        .expect("x-timeout-ms is an integer");
    assert!((2_000..=2_500).contains(&ms), "{v}");
    running.stop().await.unwrap();
    RawPeer::connect().await.delete(&[&route]).await;
}

#[derive(Clone)]
struct Nested {
    rpc: RpcClient,
    inner: String,
    seen: Arc<Mutex<Option<Result<Value, String>>>>,
}

/// Calls the inner route with default options and records what came back.
async fn outer(State(s): State<Nested>) -> Result<Value, ErrorReply> {
    let r = s
        .rpc
        .call_json(&s.inner, Value::Null)
        .await
        .map_err(|e| match e {
            CallError::Timeout { .. } => "Timeout".to_owned(),
            other => other.to_string(),
        });
    *s.seen.lock().unwrap() = Some(r.clone());
    r.map_err(|m| ErrorReply::new("Nested", m))
}

#[tokio::test]
async fn nested_calls_inherit_the_remaining_budget() {
    let (r_outer, r_inner) = (unique("v2-outer"), unique("v2-inner"));
    let caller = RpcClient::new(&e2e::broker("v2-nest-caller").await, &e2e::config())
        .await
        .unwrap();
    let state = Nested {
        rpc: RpcClient::new(&e2e::broker("v2-nest-server").await, &e2e::config())
            .await
            .unwrap(),
        inner: r_inner.clone(),
        seen: Arc::default(),
    };
    let running = e2e::start(
        e2e::runner("v2-nest").await.register_worker(
            RpcWorker::new()
                .route(&r_outer, outer)
                .route(&r_inner, timing)
                .with_state(state.clone()),
        ),
    )
    .await;
    let before = now_ms();
    let v: Value = caller
        .call_route(
            &r_outer,
            &json!(null),
            CallOptions {
                timeout: Some(Duration::from_secs(2)),
                ..CallOptions::default()
            },
        )
        .await
        .unwrap();
    let inner_deadline = v["deadline"]
        .as_u64()
        .expect("the inner call has a deadline");
    assert!(
        inner_deadline <= now_ms() + 2_000 && inner_deadline <= before + 2_100,
        "the nested call's deadline is within the outer call's 2 s, not the client's default: {v}"
    );
    let ms = v["timeout_ms"].as_i64().expect("x-timeout-ms");
    assert!(ms <= 2_000, "{v}");
    running.stop().await.unwrap();
    RawPeer::connect().await.delete(&[&r_outer, &r_inner]).await;
}

#[tokio::test]
async fn a_nested_call_without_enough_budget_fails_at_once() {
    let (r_outer, r_inner) = (unique("v2-outer-short"), unique("v2-inner-short"));
    let ran = Arc::new(Mutex::new(0u32));
    let state = Nested {
        rpc: RpcClient::new(&e2e::broker("v2-short-server").await, &e2e::config())
            .await
            .unwrap(),
        inner: r_inner.clone(),
        seen: Arc::default(),
    };
    async fn counted(State(s): State<(Nested, Arc<Mutex<u32>>)>) -> Result<(), ErrorReply> {
        *s.1.lock().unwrap() += 1;
        Ok(())
    }
    async fn outer_of_pair(
        State(s): State<(Nested, Arc<Mutex<u32>>)>,
    ) -> Result<Value, ErrorReply> {
        outer(State(s.0)).await
    }
    let running = e2e::start(
        e2e::runner("v2-short").await.register_worker(
            RpcWorker::new()
                .route(&r_outer, outer_of_pair)
                .route(&r_inner, counted)
                .with_state((state.clone(), ran.clone())),
        ),
    )
    .await;
    // The request arrives with 2 ms of budget, below the minimum a nested call needs.
    let peer = RawPeer::connect().await;
    let mut headers = FieldTable::default();
    headers.insert("x-timeout-ms".into(), AMQPValue::LongLongInt(2));
    peer.publish(
        &r_outer,
        &gzip(br#"{"data": null}"#),
        BasicProperties::default().with_headers(headers),
    )
    .await;
    wait_until(
        Duration::from_secs(10),
        "the outer handler saw its nested call end",
        || {
            let seen = state.seen.clone();
            async move { seen.lock().unwrap().is_some() }
        },
    )
    .await;
    let seen = state.seen.lock().unwrap().clone();
    assert_eq!(seen, Some(Err("Timeout".to_owned())));
    assert_eq!(*ran.lock().unwrap(), 0, "the inner route never ran");
    running.stop().await.unwrap();
    peer.delete(&[&r_outer, &r_inner]).await;
}

/// Whether `queue` is durable, as the broker lists it (`None` when it does not exist).
async fn queue_durable(queue: &str) -> Option<bool> {
    rabbitmqctl(&["list_queues", "-q", "name", "durable"])
        .await
        .iter()
        .find(|f| f[0] == queue)
        .map(|f| f[1] == "true")
}

fn config_with(shape: RpcQueueDurable) -> Arc<Config> {
    let mut c = e2e::config();
    c.rpc_queue_durable = shape;
    Arc::new(c)
}

/// An RPC worker on `route` with `RPC_QUEUE_DURABLE=shape`, on `broker`.
fn shaped_runner(broker: Broker, route: &str, shape: RpcQueueDurable) -> Runner {
    Runner::new("v2-shape", config_with(shape), broker)
        .register_worker(RpcWorker::new().route(route, timing))
}

/// Declares `queue` the way a Python worker does, transient or durable.
async fn declare_like_python(peer: &RawPeer, queue: &str, durable: bool) {
    let mut args = FieldTable::default();
    args.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString("rpc.dlx".into()),
    );
    peer.channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                durable,
                ..QueueDeclareOptions::default()
            },
            args,
        )
        .await
        .expect("declare like the Python worker");
}

#[tokio::test]
async fn rpc_queue_durable_picks_the_shape_of_a_missing_queue() {
    for (shape, durable) in [
        (RpcQueueDurable::Auto, false),
        (RpcQueueDurable::False, false),
        (RpcQueueDurable::True, true),
    ] {
        let route = unique("v2-shape");
        let running = shaped_runner(e2e::broker("v2-shape").await, &route, shape)
            .start()
            .await
            .unwrap_or_else(|e| panic!("{shape:?}: {e}"));
        assert_eq!(queue_durable(&route).await, Some(durable), "{shape:?}");
        let mut peer = RawPeer::connect().await;
        let reply = peer
            .request(&route, &gzip(br#"{"data": null}"#), "shape")
            .await;
        assert_eq!(reply_json(&reply)["success"], json!(true), "{shape:?}");
        running.stop().await.unwrap();
        peer.delete(&[&route]).await;
    }
}

#[tokio::test]
async fn an_existing_route_queue_is_consumed_as_it_is_whatever_the_setting() {
    let peer = RawPeer::connect().await;
    for (declared_durable, shape) in [
        (true, RpcQueueDurable::False),
        (true, RpcQueueDurable::Auto),
        (false, RpcQueueDurable::True),
    ] {
        let route = unique("v2-existing");
        declare_like_python(&peer, &route, declared_durable).await;
        let running = shaped_runner(e2e::broker("v2-existing").await, &route, shape)
            .start()
            .await
            .unwrap_or_else(|e| panic!("durable={declared_durable}, {shape:?}: {e}"));
        assert_eq!(
            queue_durable(&route).await,
            Some(declared_durable),
            "left as it was"
        );
        let mut caller = RawPeer::connect().await;
        let reply = caller
            .request(&route, &gzip(br#"{"data": null}"#), "existing")
            .await;
        assert_eq!(reply_json(&reply)["success"], json!(true));
        running.stop().await.unwrap();
        peer.delete(&[&route]).await;
    }
}

/// A broker connection through a proxy that answers transient queue declarations the way
/// RabbitMQ 4.3 does by default.
async fn refusing_broker() -> (Proxy, Broker) {
    let proxy = Proxy::start_refusing_transient_queues("127.0.0.1:5672".parse().unwrap()).await;
    let url = format!("amqp://guest:guest@127.0.0.1:{}/%2f", proxy.port());
    let broker = Broker::connect(&url, "v2-refusing", Duration::from_secs(10))
        .await
        .expect("connect through the proxy");
    (proxy, broker)
}

#[tokio::test]
async fn on_a_broker_refusing_transient_queues_auto_declares_a_durable_one() {
    let (proxy, broker) = refusing_broker().await;
    let route = unique("v2-refused");
    let running = shaped_runner(broker, &route, RpcQueueDurable::Auto)
        .start()
        .await
        .expect("an RPC worker starts on RabbitMQ 4.3 defaults");
    assert!(
        proxy.refused_declarations() >= 1,
        "the transient shape was tried first"
    );
    assert_eq!(queue_durable(&route).await, Some(true));
    let mut peer = RawPeer::connect().await;
    let reply = peer
        .request(&route, &gzip(br#"{"data": null}"#), "refused")
        .await;
    assert_eq!(reply_json(&reply)["success"], json!(true));
    running.stop().await.unwrap();
    peer.delete(&[&route]).await;
}

#[tokio::test]
async fn rpc_queue_durable_false_on_a_refusing_broker_says_what_to_change() {
    let (_proxy, broker) = refusing_broker().await;
    let route = unique("v2-refused-false");
    let err = shaped_runner(broker, &route, RpcQueueDurable::False)
        .start()
        .await
        .expect_err("the forced transient shape cannot be declared");
    let text = err.to_string();
    assert!(text.contains(&route), "{text}");
    assert!(text.contains("RPC_QUEUE_DURABLE"), "{text}");
    assert_eq!(queue_durable(&route).await, None, "nothing declared");
}
