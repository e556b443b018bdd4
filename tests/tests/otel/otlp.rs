//! The real exporter: a service started as every kit service is (the `traced-service` binary,
//! through `worker_kit::runner::main`) exports over OTLP/gRPC to a trace receiver this test
//! runs, because `OTEL_EXPORTER_OTLP_ENDPOINT` points there. The service runs in its own
//! process, so its tracer provider and global subscriber are its own, as in production, and
//! the spans still batched at its graceful stop must be flushed before it exits.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use worker_kit::rpc::RpcClient;

/// One span as the receiver got it, with the `service.name` of its resource.
#[derive(Clone, Debug)]
struct Received {
    service: Option<String>,
    span: Span,
}

/// An OTLP/gRPC trace receiver (what a collector's `otlp` receiver is), keeping every span.
#[derive(Clone, Default)]
struct Receiver {
    spans: Arc<Mutex<Vec<Received>>>,
}

fn text(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
        .map(|v| match v {
            Any::StringValue(s) => s.clone(),
            Any::IntValue(i) => i.to_string(),
            other => format!("{other:?}"),
        })
}

#[async_trait::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut got = self.spans.lock().unwrap();
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .as_ref()
                .and_then(|r| text(&r.attributes, "service.name"));
            for scope in resource_spans.scope_spans {
                got.extend(scope.spans.into_iter().map(|span| Received {
                    service: service.clone(),
                    span,
                }));
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

impl Receiver {
    /// Serves on a free port of 127.0.0.1 until `stop`; returns the endpoint URL.
    async fn start(&self, stop: CancellationToken) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let service = TraceServiceServer::new(self.clone());
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .serve_with_incoming_shutdown(
                    service,
                    tonic::transport::server::TcpIncoming::from(listener),
                    stop.cancelled_owned(),
                )
                .await
                .expect("the receiver serves");
        });
        endpoint
    }

    fn named(&self, name: &str) -> Option<Received> {
        self.spans
            .lock()
            .unwrap()
            .iter()
            .find(|r| r.span.name == name)
            .cloned()
    }
}

const SERVICE: &str = "otlp-export-test";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_services_spans_reach_an_otlp_receiver() {
    let stop = CancellationToken::new();
    let receiver = Receiver::default();
    let endpoint = receiver.start(stop.clone()).await;
    let route = e2e::unique("otel.otlp");
    let back = format!("{route}.back");
    let mut service = tokio::process::Command::new(env!("CARGO_BIN_EXE_traced-service"))
        .env("AMQP_URL", e2e::amqp_url())
        .env("TRACED_ROUTE", &route)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
        .env("OTEL_SERVICE_NAME", SERVICE)
        .env("OTEL_TRACES_SAMPLER", "always_on")
        .env_remove("OTEL_SDK_DISABLED")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        // The log filter also decides which spans exist: at the default `info` every
        // message span does.
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("traced-service starts");
    // Its queue exists once it serves; a request published earlier would find no queue.
    let peer = e2e::RawPeer::connect().await;
    e2e::wait_until(Duration::from_secs(30), "the service's queue", || {
        let (peer, route) = (&peer, &route);
        async move { peer.exists(route).await }
    })
    .await;
    let client = RpcClient::new(&e2e::broker("otlp-caller").await, &e2e::config())
        .await
        .unwrap();
    let data = json!({"through": ["front", "back"]});
    let answer = client.call_json(&route, data.clone()).await.unwrap();
    assert_eq!(answer, data);

    // A graceful stop flushes what the batch processor still holds.
    let pid = service.id().expect("running").to_string();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = tokio::time::timeout(Duration::from_secs(30), service.wait())
        .await
        .expect("the service stops within 30 s")
        .unwrap();
    assert!(status.success(), "graceful stop exits 0, got {status}");

    let (process, send, process_back) = (
        format!("process {route}"),
        format!("send {back}"),
        format!("process {back}"),
    );
    e2e::wait_until(Duration::from_secs(20), "the spans at the receiver", || {
        let found = [&process, &send, &process_back]
            .iter()
            .all(|n| receiver.named(n).is_some());
        async move { found }
    })
    .await;
    stop.cancel();
    let process = receiver.named(&process).unwrap();
    let send = receiver.named(&send).unwrap();
    let process_back = receiver.named(&process_back).unwrap();
    for r in [&process, &send, &process_back] {
        assert_eq!(
            r.service.as_deref(),
            Some(SERVICE),
            "{}: OTEL_SERVICE_NAME",
            r.span.name
        );
        assert_eq!(
            r.span.trace_id, process.span.trace_id,
            "{}: one trace",
            r.span.name
        );
        assert_eq!(
            text(&r.span.attributes, "messaging.system").as_deref(),
            Some("rabbitmq")
        );
        assert!(
            text(&r.span.attributes, "server.address").is_some(),
            "{}: server.address",
            r.span.name
        );
    }
    assert_eq!(process.span.kind, SpanKind::Consumer as i32);
    assert_eq!(send.span.kind, SpanKind::Producer as i32);
    assert_eq!(send.span.parent_span_id, process.span.span_id);
    assert_eq!(process_back.span.parent_span_id, send.span.span_id);
    peer.delete(&[&route, &back]).await;
}
