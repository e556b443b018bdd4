//! A Python caller instrumented the usual way (the OpenTelemetry SDK and
//! opentelemetry-instrumentation-aio-pika from PyPI, in the interop virtualenv) calls a kit
//! RPC worker: the worker's `process` span continues the trace the Python publish started.

use std::time::Duration;

use opentelemetry::trace::{SpanId, TraceId};
use serde_json::{Value, json};
use worker_kit::rpc::RpcWorker;
use worker_kit::{ErrorReply, Payload};

use super::{attribute, named, spans_until, traces};

/// What the Python side pins: the SDK and the instrumentation of one release train.
const PACKAGES: [&str; 2] = [
    "opentelemetry-sdk==1.45.1",
    "opentelemetry-instrumentation-aio-pika==0.66b1",
];

async fn echo(Payload(v): Payload<Value>) -> Result<Value, ErrorReply> {
    Ok(v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instrumented_aio_pika_callers_trace_is_continued() {
    traces();
    let py = tokio::task::spawn_blocking(|| {
        e2e::python::python_with(
            &PACKAGES,
            &[
                "opentelemetry.sdk",
                "opentelemetry.instrumentation.aio_pika",
            ],
        )
    })
    .await
    .unwrap();
    let route = e2e::unique("otel.aio-pika");
    let running = e2e::start(
        e2e::runner("otel-aio-pika")
            .await
            .register_worker(RpcWorker::new().route(&route, echo)),
    )
    .await;
    let data = json!({"from": "python", "n": [1, 2, 3]});
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(py)
            .arg(e2e::python::script("traced_caller.py"))
            .args([&e2e::amqp_url(), &route, &data.to_string()])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the python caller ends within 60 s")
    .expect("python runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "python caller failed: {stderr}");
    let printed: Value = serde_json::from_slice(&out.stdout).expect("python printed JSON");
    // The reply reached Python, in the seed's success shape.
    assert_eq!(printed["reply"], json!({"success": true, "data": data}));
    // The instrumentation's PRODUCER span, inside the caller's span: its context is what
    // the `traceparent` header carried.
    let spans = printed["spans"].as_array().expect("python's spans");
    let py_span = |pred: &dyn Fn(&Value) -> bool, what: &str| {
        spans
            .iter()
            .find(|s| pred(s))
            .unwrap_or_else(|| panic!("no python span {what} among {spans:?}"))
            .clone()
    };
    let caller = py_span(&|s| s["name"] == "python caller", "\"python caller\"");
    let publish = py_span(
        &|s| s["kind"] == "PRODUCER" && s["name"].as_str().is_some_and(|n| n.contains(&route)),
        "PRODUCER for the route",
    );
    assert_eq!(publish["parent_id"], caller["span_id"]);
    let hex = |v: &Value| v.as_str().expect("a hex id").to_owned();
    let trace = TraceId::from_hex(&hex(&publish["trace_id"])).unwrap();
    let parent = SpanId::from_hex(&hex(&publish["span_id"])).unwrap();

    let name = format!("process {route}");
    let finished = spans_until("the worker's process span", |spans| {
        spans.iter().any(|s| s.name == name.as_str())
    })
    .await;
    let process = named(&finished, &name);
    assert_eq!(process.span_context.trace_id(), trace, "python's trace");
    assert_eq!(process.parent_span_id, parent, "python's publish span");
    assert!(process.parent_span_is_remote);
    assert_eq!(
        attribute(process, "messaging.destination.name").as_deref(),
        Some(route.as_str())
    );
    // The reply's `send` is inside the process span, in the same trace.
    let reply = finished
        .iter()
        .find(|s| s.name == "send" && s.parent_span_id == process.span_context.span_id())
        .expect("the reply's send span");
    assert_eq!(reply.span_context.trace_id(), trace);
    running.stop().await.unwrap();
    e2e::RawPeer::connect().await.delete(&[&route]).await;
}
