//! Interoperability with the Python seed's wire format, using aio-pika from PyPI in a
//! virtualenv the tests create under target/ (once, [`e2e::python`]).

use std::process::Command;
use std::time::Duration;

use e2e::python::{python, script};
use e2e::unique;
use serde_json::{Value, json};
use worker_kit::config::RpcQueueDurable;
use worker_kit::rpc::RpcWorker;
use worker_kit::testing::BrokerFixture;

#[tokio::test]
async fn python_client_calls_the_rust_example_service() {
    let _serial = e2e::example_service_lock().await;
    let py = tokio::task::spawn_blocking(python).await.unwrap();
    let (running, db) = e2e::start_example(|s| s).await;
    let out = tokio::task::spawn_blocking(move || {
        Command::new(py)
            .arg(script("seed_peer.py"))
            .args(["call", &e2e::amqp_url()])
            .output()
            .expect("python runs")
    })
    .await
    .unwrap();
    running.stop().await.unwrap();
    db.drop_db().await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "python client failed: {stderr}");
    // aio-pika's RPC client only resolves a call whose reply has AMQP type "result" and the
    // call's correlation id, and raises otherwise: getting values back checks both.
    let replies: Value = serde_json::from_slice(&out.stdout).expect("python printed JSON");
    assert_eq!(
        replies["hello_world"],
        json!({"success": true, "data": "Hello world!"})
    );
    let err = &replies["will-error"];
    assert_eq!(err["success"], json!(false));
    assert_eq!(err["error"]["type"], json!("Exception"));
    assert!(
        err["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("Just an exception") && m.contains("from python")),
        "{err}"
    );
    assert!(err["error"]["args"].is_array());
    assert!(err["error"]["trace"].is_string());
    assert_eq!(
        replies["dictionary"]["data"],
        json!({"foo": "bar", "bar": "baz"})
    );
}

/// A Python seed worker on the broker of `url` serving `route` (declaring its queue durable
/// when asked), once it consumes.
async fn python_worker(url: &str, route: &str, durable: bool) -> tokio::process::Child {
    let mut args = vec!["serve", url, route];
    if durable {
        args.push("durable");
    }
    python_peer(&args).await.0
}

/// Lines a Python peer prints.
type PeerOutput = tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>;

/// `seed_peer.py` run with `args`, once it says "ready", and the lines it prints after.
async fn python_peer(args: &[&str]) -> (tokio::process::Child, PeerOutput) {
    use tokio::io::AsyncBufReadExt;
    let py = tokio::task::spawn_blocking(python).await.unwrap();
    let mut child = tokio::process::Command::new(py)
        .arg(script("seed_peer.py"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python peer starts");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("python peer ready within 30 s")
        .unwrap()
        .unwrap_or_default();
    if line.trim() != "ready" {
        let mut stderr = String::new();
        let _ = tokio::io::AsyncReadExt::read_to_string(
            child.stderr.as_mut().expect("stderr is piped"),
            &mut stderr,
        )
        .await;
        panic!("the python peer did not start: {line:?}; it said: {stderr}");
    }
    (child, lines)
}

/// A vhost of this test's own: a Python seed worker declares the auto-delete `rpc.dlx` and
/// then binds to it, and on a shared vhost another test deleting the last queue bound to it
/// removes the exchange in between.
fn own_vhost() -> BrokerFixture {
    BrokerFixture::from_env().expect("a vhost of the test's own (rabbitmqctl)")
}

#[tokio::test]
async fn rust_client_calls_a_python_seed_worker() {
    let mut fx = own_vhost();
    let url = fx.config().amqp_url.clone();
    let route = unique("py-echo");
    let mut child = python_worker(&url, &route, false).await;
    let c = fx.client().await.unwrap();
    let v = c
        .call_json(&route, json!({"echo": [1, "two"]}))
        .await
        .unwrap();
    assert_eq!(v, json!({"echo": [1, "two"]}));
    let err = c.call_json(&route, json!("raise")).await.unwrap_err();
    assert_eq!(err.remote_type(), Some("ValueError"));
    match &err {
        worker_kit::rpc::CallError::Remote { error, .. } => {
            assert_eq!(error.args, vec![json!("asked to raise")]);
            assert!(
                error.trace.contains("Traceback"),
                "the seed sends its traceback: {error:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        c.call_json(&route, serde_json::Value::Null).await.unwrap(),
        serde_json::Value::Null
    );
    child.kill().await.unwrap();
    child.wait().await.unwrap();
    fx.finish().await.expect("nothing left on the vhost");
}

async fn answers_rust(
    _: worker_kit::Payload<Value>,
) -> Result<&'static str, worker_kit::ErrorReply> {
    Ok("rust")
}

/// A Rust and a Python worker on one RPC queue, started in `order`, with
/// `RPC_QUEUE_DURABLE=setting`: both consume it and both answer calls.
async fn share_one_queue(setting: RpcQueueDurable, python_first: bool, python_durable: bool) {
    let mut fx = own_vhost();
    let url = fx.config().amqp_url.clone();
    let route = unique("shared");
    let rust_worker = || async {
        let mut config = (*fx.config()).clone();
        config.rpc_queue_durable = setting;
        let broker = worker_kit::Broker::connect(&url, "interop-shared", Duration::from_secs(10))
            .await
            .unwrap();
        let runner = worker_kit::Runner::new("interop-shared", std::sync::Arc::new(config), broker)
            .register_worker(RpcWorker::new().route(&route, answers_rust));
        runner
            .start()
            .await
            .unwrap_or_else(|e| panic!("{setting:?}: the Rust worker joins the queue: {e}"))
    };
    let (mut child, running) = if python_first {
        let child = python_worker(&url, &route, python_durable).await;
        (child, rust_worker().await)
    } else {
        let running = rust_worker().await;
        (python_worker(&url, &route, python_durable).await, running)
    };
    let peer = e2e::RawPeer::connect_to(&url).await;
    assert_eq!(peer.counts(&route).await.1, 2, "{setting:?}: two consumers");
    drop(peer);
    let c = fx.client().await.unwrap();
    let mut seen = std::collections::BTreeSet::new();
    let limit = tokio::time::Instant::now() + Duration::from_secs(20);
    while seen.len() < 2 {
        assert!(
            tokio::time::Instant::now() < limit,
            "{setting:?}: both workers answer; seen {seen:?}"
        );
        let v = c.call_json(&route, json!("python")).await.unwrap();
        seen.insert(v.as_str().unwrap_or_default().to_owned());
    }
    assert_eq!(seen, ["python", "rust"].map(str::to_owned).into());
    running.stop().await.unwrap();
    child.kill().await.unwrap();
    child.wait().await.unwrap();
    fx.finish().await.expect("nothing left on the vhost");
}

#[tokio::test]
async fn python_and_rust_workers_share_a_queue_with_rpc_queue_durable_auto() {
    share_one_queue(RpcQueueDurable::Auto, false, false).await;
}

#[tokio::test]
async fn python_and_rust_workers_share_a_queue_with_rpc_queue_durable_false() {
    share_one_queue(RpcQueueDurable::False, true, false).await;
}

#[tokio::test]
async fn python_and_rust_workers_share_a_queue_with_rpc_queue_durable_true() {
    // Rust declares it durable and the Python side follows; and a queue the Python side
    // declared in the seed's shape is consumed as it is.
    share_one_queue(RpcQueueDurable::True, false, true).await;
    share_one_queue(RpcQueueDurable::True, true, false).await;
}

async fn always_fails(_: worker_kit::Payload<Value>) -> Result<(), worker_kit::ErrorReply> {
    Err(worker_kit::ErrorReply::unavailable(
        "the Rust worker fails every attempt",
    ))
}

/// A Python seed worker sharing a work route with a Rust worker whose retries wait in delay
/// queues: the retry copies that come back from them reach the Python worker as ordinary
/// messages of the route (the seed's serialization, no `expiration`, delivered by the
/// default exchange with the route's name), never as anything of the delay queues'.
#[tokio::test]
async fn a_python_worker_sharing_a_route_with_delayed_retries_sees_ordinary_messages() {
    const MESSAGES: usize = 20;
    let route = unique("py-shared-work");
    let url = e2e::amqp_url();
    let running = e2e::start(
        e2e::runner("interop-delayed").await.register_worker(
            worker_kit::queue::QueueWorker::new()
                .max_retries(3)
                .retry_delay(
                    &route,
                    Duration::from_millis(50),
                    Duration::from_millis(200),
                )
                .route(&route, always_fails),
        ),
    )
    .await;
    let (mut child, mut lines) = python_peer(&["work", &url, &route]).await;
    let publisher = worker_kit::queue::QueuePublisher::new(&e2e::broker("publisher").await);
    for i in 0..MESSAGES {
        publisher.publish(&route, &format!("m{i}")).await.unwrap();
    }
    // Every message ends with the Python worker (which acks what it gets) or parked by the
    // Rust one after its last retry.
    let peer = e2e::RawPeer::connect().await;
    let dead = worker_kit::queue::parking_queue(&route);
    let mut seen: Vec<Value> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let parked = peer.try_counts(&dead).await.map_or(0, |(n, _)| n as usize);
        if seen.len() + parked == MESSAGES {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "every message handled within 60 s: python saw {}, {parked} parked",
            seen.len()
        );
        if let Ok(line) = tokio::time::timeout(Duration::from_millis(200), lines.next_line()).await
        {
            let line = line.unwrap().expect("the python worker still runs");
            seen.push(serde_json::from_str(&line).expect("a JSON line"));
        }
    }
    running.stop().await.unwrap();
    child.kill().await.unwrap();
    child.wait().await.unwrap();

    let retried: Vec<&Value> = seen
        .iter()
        .filter(|m| m["retry_count"].as_u64().is_some_and(|n| n >= 1))
        .collect();
    assert!(
        !retried.is_empty(),
        "the python worker got retry copies back from the delay queues: {seen:?}"
    );
    for m in &seen {
        assert!(m["body_error"].is_null(), "the seed decodes it: {m}");
        let body = m["body"]["data"].as_str().unwrap_or_default();
        assert!(body.starts_with('m'), "the original body: {m}");
        assert_eq!(
            m["routing_key"],
            json!(route),
            "delivered as the route's: {m}"
        );
        assert_eq!(m["exchange"], json!(""), "by the default exchange: {m}");
        assert!(m["expiration"].is_null(), "a copy never expires: {m}");
        assert_eq!(m["redelivered"], json!(false), "{m}");
    }
    // The copy's own headers (its retry count, the original sender, trace context) and the
    // broker's record of the wait: nothing of the kit's parking or delay machinery.
    let allowed = [
        "x-retry-count",
        "x-original-user-id",
        "traceparent",
        "tracestate",
        "x-death",
        "x-first-death-exchange",
        "x-first-death-queue",
        "x-first-death-reason",
    ];
    for m in retried {
        let headers = m["headers"].as_array().unwrap();
        assert!(
            headers
                .iter()
                .all(|h| h.as_str().is_some_and(|h| allowed.contains(&h))),
            "{m}"
        );
    }
    peer.delete_routes(&[&route]).await;
}
