//! Traces across services (worker-kit's `otel` feature), with the SDK's in-memory exporter:
//! no collector needed. The spans of one process all go to one exporter, installed once for
//! this test binary; each test finds its own spans by their unique routes or trace id.

mod otlp;
mod python;

use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::trace::{SpanKind, TraceId};
use opentelemetry_sdk::trace::{
    InMemorySpanExporter, InMemorySpanExporterBuilder, SdkTracerProvider, SpanData,
};
use stubs::greeter::Greet;
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;
use worker_kit::queue::QueueWorker;
use worker_kit::testing::BrokerFixture;
use worker_kit::{ErrorReply, Payload};

struct Traces {
    provider: SdkTracerProvider,
    exporter: InMemorySpanExporter,
}

/// The process's tracer, exporting to memory, behind a global subscriber (spawned tasks
/// do not see a thread's default one).
fn traces() -> &'static Traces {
    static TRACES: OnceLock<Traces> = OnceLock::new();
    TRACES.get_or_init(|| {
        let exporter = InMemorySpanExporterBuilder::new().build();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let subscriber =
            tracing_subscriber::registry().with(worker_kit::observe::trace::layer(&provider));
        tracing::subscriber::set_global_default(subscriber).expect("one global subscriber");
        Traces { provider, exporter }
    })
}

fn finished() -> Vec<SpanData> {
    let t = traces();
    let _ = t.provider.force_flush();
    t.exporter.get_finished_spans().expect("finished spans")
}

fn named<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
    spans.iter().find(|s| s.name == name).unwrap_or_else(|| {
        panic!(
            "no span {name:?} among {:?}",
            spans.iter().map(|s| s.name.to_string()).collect::<Vec<_>>()
        )
    })
}

fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

fn event_names(span: &SpanData) -> Vec<String> {
    span.events.iter().map(|e| e.name.to_string()).collect()
}

/// The host and port of the broker the tests connect to, as `AMQP_URL` says (5672 when it
/// names no port).
fn broker_host_port() -> (String, u16) {
    let url = url::Url::parse(&e2e::amqp_url()).expect("AMQP_URL is a URL");
    (
        url.host_str().expect("AMQP_URL names a host").to_owned(),
        url.port().unwrap_or(5672),
    )
}

/// Waits until `cond` holds on the finished spans, for at most 20 s.
async fn spans_until(what: &str, cond: impl Fn(&[SpanData]) -> bool) -> Vec<SpanData> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let spans = finished();
        if cond(&spans) {
            return spans;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A caller's span → `send greeter.greet` → `process greeter.greet` in greeter → its
/// nested `send hello_world` → `process hello_world` in example: one trace, each span the
/// parent of the next, with the messaging attributes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_through_greeter_to_example_is_one_trace() {
    traces();
    let db = e2e::pg::TestDb::with_models("example").await;
    // A vhost of the test's own: example's route names are fixed.
    let mut fx = BrokerFixture::from_env().expect("a vhost");
    let dsn = db.dsn.clone();
    fx.start("example", |s| {
        example::build(s.with_var("DB_MAIN_DSN", dsn))
    })
    .await
    .expect("example starts");
    fx.start("greeter", greeter::build)
        .await
        .expect("greeter starts");
    let client = fx.client().await.unwrap();
    let root = tracing::info_span!("caller");
    let greeting = client
        .call(&Greet { name: "Ada".into() })
        .instrument(root.clone())
        .await
        .unwrap();
    assert_eq!(greeting.message, "Hello world! (to Ada)");
    let trace = {
        use opentelemetry::trace::TraceContextExt;
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        root.context().span().span_context().trace_id()
    };
    drop(root);
    // Every span by name: a server's `process` span ends after its reply went out, so it
    // can finish after the caller already has the answer.
    let wanted = [
        "caller",
        "send greeter.greet",
        "process greeter.greet",
        "send hello_world",
        "process hello_world",
    ];
    let spans = spans_until("the five spans of the call", |spans| {
        wanted.iter().all(|name| {
            spans
                .iter()
                .any(|s| s.span_context.trace_id() == trace && s.name == *name)
        })
    })
    .await;
    let ours: Vec<SpanData> = spans
        .into_iter()
        .filter(|s| s.span_context.trace_id() == trace)
        .collect();
    let caller = named(&ours, "caller");
    let send_greet = named(&ours, "send greeter.greet");
    let process_greet = named(&ours, "process greeter.greet");
    let send_hello = named(&ours, "send hello_world");
    let process_hello = named(&ours, "process hello_world");
    assert_eq!(send_greet.parent_span_id, caller.span_context.span_id());
    assert_eq!(
        process_greet.parent_span_id,
        send_greet.span_context.span_id()
    );
    assert!(
        process_greet.parent_span_is_remote,
        "parented on the message's context"
    );
    assert_eq!(
        send_hello.parent_span_id,
        process_greet.span_context.span_id()
    );
    assert_eq!(
        process_hello.parent_span_id,
        send_hello.span_context.span_id()
    );
    assert_eq!(send_greet.span_kind, SpanKind::Producer);
    assert_eq!(process_greet.span_kind, SpanKind::Consumer);
    assert_eq!(
        attribute(process_greet, "messaging.system").as_deref(),
        Some("rabbitmq")
    );
    assert_eq!(
        attribute(process_hello, "messaging.destination.name").as_deref(),
        Some("hello_world")
    );
    assert_eq!(
        attribute(process_hello, "messaging.operation.type").as_deref(),
        Some("process")
    );
    assert!(
        attribute(process_hello, "messaging.message.conversation_id")
            .is_some_and(|c| !c.is_empty()),
        "the correlation id is the conversation id"
    );
    // The reply's `send`, inside each process span.
    let reply_hello = ours
        .iter()
        .find(|s| {
            s.name == "send"
                && s.parent_span_id == process_hello.span_context.span_id()
                && s.span_kind == SpanKind::Producer
        })
        .expect("example's reply span");
    // The broker as the connection URL names it, on every send, process and reply span.
    let (host, port) = broker_host_port();
    for span in [
        send_greet,
        process_greet,
        send_hello,
        process_hello,
        reply_hello,
    ] {
        assert_eq!(
            attribute(span, "server.address").as_deref(),
            Some(host.as_str()),
            "server.address of {:?}",
            span.name
        );
        assert_eq!(
            attribute(span, "server.port").as_deref(),
            Some(port.to_string().as_str()),
            "server.port of {:?}",
            span.name
        );
    }
    assert_eq!(
        attribute(caller, "server.address"),
        None,
        "only messaging spans name the broker"
    );
    fx.finish().await.unwrap();
    db.drop_db().await;
}

async fn fails(Payload(_): Payload<serde_json::Value>) -> Result<(), ErrorReply> {
    Err(ErrorReply::new("Flaky", "always"))
}

/// A message published the way a Python service instrumented with aio-pika's OpenTelemetry
/// instrumentation publishes it (a plain `traceparent` header) is handled in a span of that
/// trace, parented on the caller's span; a failed attempt marks the span with its error type.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_traceparent_header_from_another_stack_is_continued() {
    traces();
    let route = e2e::unique("otel.python");
    let running = e2e::start(
        e2e::runner("otel-python")
            .await
            .register_worker(QueueWorker::new().max_retries(0).route(&route, fails)),
    )
    .await;
    let trace_hex = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent_hex = "00f067aa0ba902b7";
    let mut headers = lapin::types::FieldTable::default();
    headers.insert(
        "traceparent".into(),
        lapin::types::AMQPValue::LongString(format!("00-{trace_hex}-{parent_hex}-01").into()),
    );
    let peer = e2e::RawPeer::connect().await;
    peer.publish(
        &route,
        br#"{"data": 1}"#,
        lapin::BasicProperties::default().with_headers(headers),
    )
    .await;
    let trace = TraceId::from_hex(trace_hex).unwrap();
    let name = format!("process {route}");
    let spans = spans_until("the consumer span of the published message", |spans| {
        spans.iter().any(|s| s.name == name.as_str())
    })
    .await;
    let process = named(&spans, &name);
    assert_eq!(process.span_context.trace_id(), trace);
    assert_eq!(process.parent_span_id.to_string(), parent_hex);
    assert!(process.parent_span_is_remote);
    assert_eq!(attribute(process, "error.type").as_deref(), Some("Flaky"));
    // A work-queue delivery comes over the consume-only connection: its node is named too.
    let (host, port) = broker_host_port();
    assert_eq!(
        attribute(process, "server.address").as_deref(),
        Some(host.as_str())
    );
    assert_eq!(
        attribute(process, "server.port").as_deref(),
        Some(port.to_string().as_str())
    );
    assert!(
        process.events.iter().any(|e| e.name.contains("parking")),
        "parking is a span event: {:?}",
        event_names(process)
    );
    running.stop().await.unwrap();
    peer.delete(&[&route, &worker_kit::queue::parking_queue(&route)])
        .await;
}

async fn looks_up(Payload(n): Payload<u32>) -> Result<u32, ErrorReply> {
    tracing::info!(n, "looking up");
    let found = async {
        tracing::info!("found");
        n + 1
    }
    .instrument(tracing::info_span!("lookup"))
    .await;
    Ok(found)
}

/// A handler's own `tracing` span is a child of the delivery's `process` span, and what the
/// handler logs outside its own spans is an event of the `process` span.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handlers_own_spans_and_logs_are_inside_its_process_span() {
    traces();
    let route = e2e::unique("otel.handler");
    let setup = e2e::setup("otel-handler").await;
    let client = worker_kit::rpc::RpcClient::new(&setup.broker, &setup.config)
        .await
        .unwrap();
    let running = e2e::start(
        setup
            .runner()
            .register_worker(worker_kit::rpc::RpcWorker::new().route(&route, looks_up)),
    )
    .await;
    let answer = client
        .call_raw(&route, &41, worker_kit::rpc::CallOptions::default())
        .await
        .unwrap();
    assert_eq!(answer.get(), "42");
    let name = format!("process {route}");
    let spans = spans_until("the handler's span and its process span", |spans| {
        spans.iter().any(|s| s.name == name.as_str()) && spans.iter().any(|s| s.name == "lookup")
    })
    .await;
    let process = named(&spans, &name);
    let lookup = spans
        .iter()
        .find(|s| s.name == "lookup" && s.parent_span_id == process.span_context.span_id())
        .expect("the handler's span, a child of the process span");
    assert_eq!(
        lookup.span_context.trace_id(),
        process.span_context.trace_id()
    );
    assert!(
        lookup.events.iter().any(|e| e.name == "found"),
        "the handler's span keeps its own event"
    );
    let logged = process
        .events
        .iter()
        .find(|e| e.name == "looking up")
        .unwrap_or_else(|| {
            panic!(
                "the handler's log line is a process span event: {:?}",
                event_names(process)
            )
        });
    assert!(
        logged
            .attributes
            .iter()
            .any(|kv| kv.key.as_str() == "n" && kv.value.to_string() == "41"),
        "the event keeps the log line's fields: {:?}",
        logged.attributes
    );
    running.stop().await.unwrap();
    e2e::RawPeer::connect().await.delete(&[&route]).await;
}

#[derive(Clone)]
struct Forwarder {
    rpc: worker_kit::rpc::RpcClient,
    next: String,
}

/// Calls `next`, where nobody answers: the request itself is what the test looks at.
async fn forwards(
    worker_kit::State(f): worker_kit::State<Forwarder>,
    Payload(_): Payload<serde_json::Value>,
) -> Result<(), ErrorReply> {
    let options = worker_kit::rpc::CallOptions {
        timeout: Some(Duration::from_millis(200)),
        ..Default::default()
    };
    let _ = f.rpc.call_raw(&f.next, &1, options).await;
    Ok(())
}

/// A message whose `traceparent` says "not sampled" makes no spans here, and its context
/// still travels: the nested call carries the same trace id, a span id of its own and the
/// sampled flag still clear, so the services downstream keep the caller's decision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsampled_traces_context_still_travels() {
    traces();
    let route = e2e::unique("otel.unsampled");
    let next = format!("{route}.next");
    let peer = e2e::RawPeer::connect().await;
    peer.declare_work_queue(&next).await;
    let setup = e2e::setup("otel-unsampled").await;
    let rpc = worker_kit::rpc::RpcClient::new(&setup.broker, &setup.config)
        .await
        .unwrap();
    let forwarder = Forwarder {
        rpc,
        next: next.clone(),
    };
    let running = e2e::start(
        setup.runner().register_worker(
            QueueWorker::new()
                .max_retries(0)
                .route(&route, forwards)
                .with_state(forwarder),
        ),
    )
    .await;
    let publish = |trace: String, flags: &str| {
        let mut headers = lapin::types::FieldTable::default();
        headers.insert(
            "traceparent".into(),
            lapin::types::AMQPValue::LongString(
                format!("00-{trace}-00f067aa0ba902b7-{flags}").into(),
            ),
        );
        lapin::BasicProperties::default().with_headers(headers)
    };
    let unsampled = uuid::Uuid::new_v4().simple().to_string();
    peer.publish(&route, br#"{"data": 1}"#, publish(unsampled.clone(), "00"))
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let nested = loop {
        if let Some(m) = peer.get(&next).await {
            break m;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the nested call never arrived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let traceparent = nested
        .delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get("traceparent").cloned())
        .expect("the nested call carries a traceparent");
    let lapin::types::AMQPValue::LongString(traceparent) = traceparent else {
        panic!("traceparent is a long string: {traceparent:?}");
    };
    let parts: Vec<String> = traceparent
        .to_string()
        .split('-')
        .map(str::to_owned)
        .collect();
    assert_eq!(parts.len(), 4, "{traceparent:?}");
    assert_eq!(parts[1], unsampled, "the same trace");
    assert_ne!(parts[2], "00f067aa0ba902b7", "a span id of its own");
    assert_eq!(parts[3], "00", "still not sampled");
    // A sampled message after it: once its span is exported, the first one's would be too.
    let sampled = uuid::Uuid::new_v4().simple().to_string();
    peer.publish(&route, br#"{"data": 2}"#, publish(sampled.clone(), "01"))
        .await;
    let sampled = TraceId::from_hex(&sampled).unwrap();
    let spans = spans_until("the sampled message's spans", |spans| {
        spans
            .iter()
            .filter(|s| s.span_context.trace_id() == sampled)
            .count()
            >= 2
    })
    .await;
    let unsampled = TraceId::from_hex(&unsampled).unwrap();
    assert!(
        spans.iter().all(|s| s.span_context.trace_id() != unsampled),
        "no span of the unsampled trace is exported"
    );
    running.stop().await.unwrap();
    peer.delete(&[&route, &next, &worker_kit::queue::parking_queue(&route)])
        .await;
}

/// Issue 25.8: opentelemetry does not bound `tracestate`, so a caller's 130 KB list (500
/// members of 250 characters, each valid) was copied into the nested call, whose properties
/// then broke the frame size and closed the service's connection. Read as W3C bounds it (at
/// most 32 members and 512 characters), the list is dropped here, and the nested call goes
/// out with the caller's trace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_tracestate_is_not_copied_into_nested_calls() {
    traces();
    let route = e2e::unique("otel.tracestate");
    let next = format!("{route}.next");
    let peer = e2e::RawPeer::connect().await;
    peer.declare_work_queue(&next).await;
    let setup = e2e::setup("otel-tracestate").await;
    let rpc = worker_kit::rpc::RpcClient::new(&setup.broker, &setup.config)
        .await
        .unwrap();
    let forwarder = Forwarder {
        rpc,
        next: next.clone(),
    };
    let running = e2e::start(
        setup.runner().register_worker(
            QueueWorker::new()
                .max_retries(0)
                .route(&route, forwards)
                .with_state(forwarder),
        ),
    )
    .await;
    let publishing = running.broker().connection_now().expect("connected");
    let trace = uuid::Uuid::new_v4().simple().to_string();
    let members: Vec<String> = (0..500)
        .map(|i| format!("k{i}={}", "v".repeat(250)))
        .collect();
    let tracestate = members.join(",");
    assert!(tracestate.len() > 120_000, "{}", tracestate.len());
    let mut headers = lapin::types::FieldTable::default();
    headers.insert(
        "traceparent".into(),
        lapin::types::AMQPValue::LongString(format!("00-{trace}-00f067aa0ba902b7-01").into()),
    );
    headers.insert(
        "tracestate".into(),
        lapin::types::AMQPValue::LongString(tracestate.into()),
    );
    peer.publish(
        &route,
        br#"{"data": 1}"#,
        lapin::BasicProperties::default().with_headers(headers),
    )
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let nested = loop {
        if let Some(m) = peer.get(&next).await {
            break m;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the nested call never arrived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let headers = nested
        .delivery
        .properties
        .headers()
        .clone()
        .unwrap_or_default();
    let text = |name: &str| match headers.inner().get(name) {
        Some(lapin::types::AMQPValue::LongString(s)) => Some(s.to_string()),
        _ => None,
    };
    let traceparent = text("traceparent").expect("the nested call carries a traceparent");
    assert!(
        traceparent.contains(&trace),
        "the same trace: {traceparent}"
    );
    if let Some(state) = text("tracestate") {
        assert!(state.len() <= 512, "{} bytes of tracestate", state.len());
        assert!(state.split(',').count() <= 32);
    }
    assert!(
        publishing.status().connected(),
        "the nested publish closed the service's connection"
    );
    running.stop().await.unwrap();
    peer.delete(&[&route, &next, &worker_kit::queue::parking_queue(&route)])
        .await;
}
