//! Traces across services (cargo feature `otel`): W3C trace context in plain `traceparent` /
//! `tracestate` AMQP headers (what aio-pika's OpenTelemetry instrumentation reads and
//! writes), spans after the OpenTelemetry messaging conventions through
//! `tracing-opentelemetry`, exported over OTLP/gRPC as the standard `OTEL_*` variables say.
//!
//! The `send {route}`, `process {route}` and reply `send` spans carry `server.address` and
//! `server.port`: the host and port of the broker node the process's publishing connection
//! is on, as its URL names them (noted at each connect and reconnect). A `traceparent`
//! with W3C level-2 flags (`03`, what Python's SDK writes) is continued: only its sampled
//! bit is kept before the propagator reads it.
//!
//! The log filter (`RUST_LOG`) decides which spans exist at all, so it also filters the
//! traces: the message spans are at `info`.
//!
//! Without the feature every function here is a no-op (or the plain log span) and nothing
//! of OpenTelemetry is linked.

use lapin::types::FieldTable;

/// The span a delivery is handled in: the log span (`message`: worker, route, correlation
/// id, outcome, duration) and, with `otel`, the `process {route}` CONSUMER span parented on
/// the context the message carries.
pub(crate) fn process_span(
    kind: &'static str,
    route: &str,
    correlation_id: &str,
    headers: Option<&FieldTable>,
) -> tracing::Span {
    #[cfg(feature = "otel")]
    {
        otel::process_span(kind, route, correlation_id, headers)
    }
    #[cfg(not(feature = "otel"))]
    {
        let _ = headers;
        tracing::info_span!(
            "message",
            worker = kind,
            %route,
            correlation_id,
            outcome = tracing::field::Empty,
            duration_ms = tracing::field::Empty,
        )
    }
}

/// Marks `span` (a [`process_span`]) as failed with the kit's error type name.
pub(crate) fn failed(span: &tracing::Span, error_type: &str) {
    #[cfg(feature = "otel")]
    {
        span.record("error.type", error_type);
        span.record("otel.status_code", "ERROR");
    }
    #[cfg(not(feature = "otel"))]
    let _ = (span, error_type);
}

/// A `send {route}` PRODUCER span for a publish (an RPC call, a work message), inside the
/// current span; `None` without `otel`.
pub(crate) fn send_span(route: &str) -> Option<tracing::Span> {
    #[cfg(feature = "otel")]
    {
        Some(otel::send_span(route))
    }
    #[cfg(not(feature = "otel"))]
    {
        let _ = route;
        None
    }
}

/// The reply's `send` PRODUCER span, inside the `process` span; `None` without `otel`.
pub(crate) fn reply_span() -> Option<tracing::Span> {
    #[cfg(feature = "otel")]
    {
        Some(otel::reply_span())
    }
    #[cfg(not(feature = "otel"))]
    None
}

/// Notes the broker node the process's publishing connection is now on (at each connect and
/// reconnect): the `server.address` / `server.port` of every later span. Without `otel`
/// nothing is kept.
pub(crate) fn connected(host: &str, port: u16) {
    #[cfg(feature = "otel")]
    otel::connected(host, port);
    #[cfg(not(feature = "otel"))]
    let _ = (host, port);
}

/// Writes the current span's context into `headers` as `traceparent` (and `tracestate`).
pub(crate) fn inject(headers: &mut FieldTable) {
    #[cfg(feature = "otel")]
    otel::inject(headers);
    #[cfg(not(feature = "otel"))]
    let _ = headers;
}

#[cfg(feature = "otel")]
pub use otel::{install, layer, shutdown};

#[cfg(feature = "otel")]
mod otel {
    use std::sync::{OnceLock, PoisonError, RwLock, RwLockReadGuard};

    use lapin::types::{AMQPValue, FieldTable};
    use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    use crate::wire::headers::text_of;

    static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

    /// The host and port of the broker node the process's publishing connection is on;
    /// written at each (re)connect, read by every span (an uncontended read lock).
    static SERVER: RwLock<Option<(Box<str>, u16)>> = RwLock::new(None);

    pub(super) fn connected(host: &str, port: u16) {
        *SERVER.write().unwrap_or_else(PoisonError::into_inner) = Some((host.into(), port));
    }

    /// `server.address` and `server.port`, unset before the first connection.
    fn server() -> RwLockReadGuard<'static, Option<(Box<str>, u16)>> {
        SERVER.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The layer that turns `tracing` spans into OpenTelemetry spans, exported with
    /// `provider` (the service's: [`install`] makes it from the `OTEL_*` variables; tests
    /// pass one with an in-memory exporter).
    pub fn layer<S>(
        provider: &SdkTracerProvider,
    ) -> tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::SdkTracer>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        // Only the messaging attributes the spans set themselves: the layer's defaults add
        // the kit's source file, line, module, `tracing` target, thread and busy/idle times
        // to every span, which say nothing about the message and are built for each span
        // even when the sampler then drops it.
        tracing_opentelemetry::layer()
            .with_location(false)
            .with_target(false)
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_tracer(provider.tracer("worker-kit"))
    }

    /// The service's tracer provider: OTLP over gRPC to `OTEL_EXPORTER_OTLP_ENDPOINT`
    /// (default `http://localhost:4317`), sampled as `OTEL_TRACES_SAMPLER` says, named by
    /// `OTEL_SERVICE_NAME` or else `service`. `None` with `OTEL_SDK_DISABLED=true` or when
    /// the exporter cannot be built (said on stderr: logs are not set up yet).
    pub fn install(service: &str) -> Option<SdkTracerProvider> {
        if std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true")) {
            return None;
        }
        let exporter = match opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build()
        {
            Ok(e) => e,
            Err(e) => {
                eprintln!("{service}: OpenTelemetry exporter not started: {e}");
                return None;
            }
        };
        let name = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| service.to_owned());
        // Batches exported on the Tokio runtime the service runs on (tonic needs one).
        let batches = opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(
            exporter,
            opentelemetry_sdk::runtime::Tokio,
        )
        .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(batches)
            .with_resource(
                opentelemetry_sdk::Resource::builder()
                    .with_service_name(name)
                    .build(),
            )
            .build();
        let _ = PROVIDER.set(provider.clone());
        Some(provider)
    }

    /// Flushes and stops the provider [`install`] made (at exit, on the runtime: spans
    /// still batched would be lost).
    pub fn shutdown() {
        if let Some(p) = PROVIDER.get() {
            let _ = p.shutdown();
        }
    }

    pub(super) fn process_span(
        kind: &'static str,
        route: &str,
        correlation_id: &str,
        headers: Option<&FieldTable>,
    ) -> tracing::Span {
        let server = server();
        let (address, port) = server.as_ref().map(|(a, p)| (&**a, *p)).unzip();
        let span = tracing::info_span!(
            "message",
            worker = kind,
            %route,
            correlation_id,
            outcome = tracing::field::Empty,
            duration_ms = tracing::field::Empty,
            otel.name = %format_args!("process {route}"),
            otel.kind = "consumer",
            otel.status_code = tracing::field::Empty,
            messaging.system = "rabbitmq",
            messaging.destination.name = %route,
            messaging.rabbitmq.destination.routing_key = %route,
            messaging.message.conversation_id = correlation_id,
            messaging.operation.name = "process",
            "messaging.operation.type" = "process",
            "error.type" = tracing::field::Empty,
            server.address = address,
            server.port = port,
        );
        drop(server);
        let parent = TraceContextPropagator::new().extract(&Headers::new(headers));
        let _ = span.set_parent(parent);
        span
    }

    pub(super) fn send_span(route: &str) -> tracing::Span {
        let server = server();
        let (address, port) = server.as_ref().map(|(a, p)| (&**a, *p)).unzip();
        tracing::info_span!(
            "send",
            otel.name = %format_args!("send {route}"),
            otel.kind = "producer",
            otel.status_code = tracing::field::Empty,
            messaging.system = "rabbitmq",
            messaging.destination.name = %route,
            messaging.rabbitmq.destination.routing_key = %route,
            messaging.operation.name = "send",
            "messaging.operation.type" = "send",
            "error.type" = tracing::field::Empty,
            server.address = address,
            server.port = port,
        )
    }

    pub(super) fn reply_span() -> tracing::Span {
        let server = server();
        let (address, port) = server.as_ref().map(|(a, p)| (&**a, *p)).unzip();
        tracing::info_span!(
            "send",
            otel.name = "send",
            otel.kind = "producer",
            messaging.system = "rabbitmq",
            messaging.operation.name = "send",
            "messaging.operation.type" = "send",
            server.address = address,
            server.port = port,
        )
    }

    pub(super) fn inject(headers: &mut FieldTable) {
        let cx = tracing::Span::current().context();
        TraceContextPropagator::new().inject_context(&cx, &mut HeadersMut(headers));
    }

    /// A message's headers as the propagator reads them.
    struct Headers<'a> {
        headers: Option<&'a FieldTable>,
        /// `traceparent` with its flags cut to the sampled bit, when it had others.
        traceparent: Option<String>,
    }

    impl<'a> Headers<'a> {
        fn new(headers: Option<&'a FieldTable>) -> Self {
            let traceparent = headers
                .and_then(|h| h.inner().get("traceparent"))
                .and_then(text_of)
                .and_then(only_sampled_flag);
            Self {
                headers,
                traceparent,
            }
        }
    }

    /// `traceparent` with every trace flag but `sampled` (0x01) cleared, or `None` when it
    /// has no other flag (or is malformed: the propagator refuses it then). W3C Trace
    /// Context level 2 adds the `random` flag (0x02), which Python's OpenTelemetry SDK sets
    /// (flags `03`); the spec says a receiver ignores flags it does not know, but
    /// opentelemetry-sdk's propagator refuses any version-00 flags above `02`, which would
    /// start a new trace for every message such a peer sends.
    pub(super) fn only_sampled_flag(traceparent: &str) -> Option<String> {
        let (rest, flags) = traceparent.rsplit_once('-')?;
        let bits = u8::from_str_radix(flags, 16).ok()?;
        (flags.len() == 2 && bits > 0x01).then(|| format!("{rest}-{:02x}", bits & 0x01))
    }

    impl Extractor for Headers<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            if key == "traceparent"
                && let Some(t) = &self.traceparent
            {
                return Some(t);
            }
            self.headers?.inner().get(key).and_then(text_of)
        }

        fn keys(&self) -> Vec<&str> {
            self.headers
                .map(|h| h.inner().keys().map(|k| k.as_str()).collect())
                .unwrap_or_default()
        }
    }

    struct HeadersMut<'a>(&'a mut FieldTable);

    impl Injector for HeadersMut<'_> {
        fn set(&mut self, key: &str, value: String) {
            self.0
                .insert(key.into(), AMQPValue::LongString(value.into()));
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn flags_beyond_sampled_are_cleared() {
            let id = "00-3be713a5b0cea810f74ee7408bd3edd2-2334db5efd03a3d0";
            assert_eq!(
                only_sampled_flag(&format!("{id}-03")),
                Some(format!("{id}-01"))
            );
            assert_eq!(
                only_sampled_flag(&format!("{id}-02")),
                Some(format!("{id}-00"))
            );
            assert_eq!(
                only_sampled_flag(&format!("{id}-ff")),
                Some(format!("{id}-01"))
            );
            assert_eq!(only_sampled_flag(&format!("{id}-01")), None);
            assert_eq!(only_sampled_flag(&format!("{id}-00")), None);
            assert_eq!(only_sampled_flag(&format!("{id}-x3")), None);
            assert_eq!(only_sampled_flag("nothing"), None);
        }

        /// A Python peer's `traceparent` (flags `03`) continues its trace.
        #[test]
        fn a_level_2_traceparent_is_continued() {
            use opentelemetry::trace::TraceContextExt;
            let mut headers = FieldTable::default();
            headers.insert(
                "traceparent".into(),
                AMQPValue::LongString(
                    "00-3be713a5b0cea810f74ee7408bd3edd2-2334db5efd03a3d0-03".into(),
                ),
            );
            let cx = TraceContextPropagator::new().extract(&Headers::new(Some(&headers)));
            let span = cx.span();
            let sc = span.span_context();
            assert!(sc.is_valid() && sc.is_remote() && sc.is_sampled());
            assert_eq!(
                sc.trace_id().to_string(),
                "3be713a5b0cea810f74ee7408bd3edd2"
            );
            assert_eq!(sc.span_id().to_string(), "2334db5efd03a3d0");
        }
    }
}
