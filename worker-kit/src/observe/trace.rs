//! Traces across services (cargo feature `otel`): W3C trace context in plain `traceparent` /
//! `tracestate` AMQP headers (what aio-pika's OpenTelemetry instrumentation reads and
//! writes), spans after the OpenTelemetry messaging conventions, exported over OTLP/gRPC as
//! the standard `OTEL_*` variables say.
//!
//! The kit's messaging spans (`send {route}`, `process {route}`, the reply's `send`) are
//! OpenTelemetry spans made directly with the tracer of the installed [`layer`], not
//! `tracing` spans: the sampler decides when a span starts, and a span it drops costs an id
//! and a context, not a builder with a dozen attributes (the messaging attributes are only
//! made for a sampled span). A dropped span's context still travels in `traceparent` (with
//! the sampled flag clear), so the services downstream keep the decision. The span is the
//! current OpenTelemetry context while its work is polled, so the handler's own `tracing`
//! spans (through the same layer) are its children, and `tracing` events in the delivery's
//! log span (retries, parking, the handler's own) are its span events.
//!
//! The `send {route}`, `process {route}` and reply `send` spans carry `server.address` and
//! `server.port`: the host and port of the broker node, as its URL names them (noted at each
//! connect and reconnect), of the connection the message went over: the publishing
//! connection for sends, RPC requests and replies, the consume-only one for work-queue and
//! event deliveries (in a cluster the two may be on different nodes). A `traceparent`
//! with W3C level-2 flags (`03`, what Python's SDK writes) is continued: only its sampled
//! bit is kept before the propagator reads it.
//!
//! Without the feature every function here is a no-op (or the plain log span) and nothing
//! of OpenTelemetry is linked.

use std::future::Future;

use lapin::types::FieldTable;

/// The target of [`process_span`] (this module's path, `tracing`'s default).
#[cfg(feature = "otel")]
const DELIVERY_SPAN_TARGET: &str = module_path!();

/// The log span a delivery is handled in: worker, route, correlation id, outcome, duration.
/// The same span with and without `otel` (the OpenTelemetry span is a [`Traced`] beside it).
pub(crate) fn process_span(kind: &'static str, route: &str, correlation_id: &str) -> tracing::Span {
    tracing::info_span!(
        "message",
        worker = kind,
        %route,
        correlation_id,
        outcome = tracing::field::Empty,
        duration_ms = tracing::field::Empty,
    )
}

/// One of the kit's messaging spans (with `otel` and an installed [`layer`]); nothing
/// otherwise. The span ends when the last handle to it is dropped.
#[derive(Clone, Default)]
pub(crate) struct Traced {
    #[cfg(feature = "otel")]
    cx: Option<opentelemetry::Context>,
}

impl Traced {
    /// The `process {route}` CONSUMER span of a delivery that came over `link`, parented on
    /// the context its `headers` carry.
    pub(crate) fn process(
        route: &str,
        correlation_id: &str,
        headers: Option<&FieldTable>,
        link: Link,
    ) -> Self {
        #[cfg(feature = "otel")]
        {
            Self {
                cx: otel::process(route, correlation_id, headers, link),
            }
        }
        #[cfg(not(feature = "otel"))]
        {
            let _ = (route, correlation_id, headers, link);
            Self {}
        }
    }

    /// A `send {route}` PRODUCER span for a publish (an RPC call, a work message), a child of
    /// the current context (the handler's span, the caller's, or none).
    pub(crate) fn send(route: &str) -> Self {
        #[cfg(feature = "otel")]
        {
            Self {
                cx: otel::send(Some(route)),
            }
        }
        #[cfg(not(feature = "otel"))]
        {
            let _ = route;
            Self {}
        }
    }

    /// The reply's `send` PRODUCER span, inside the `process` span.
    pub(crate) fn reply() -> Self {
        #[cfg(feature = "otel")]
        {
            Self {
                cx: otel::send(None),
            }
        }
        #[cfg(not(feature = "otel"))]
        Self {}
    }

    /// Marks the span as failed with the kit's error type name.
    pub(crate) fn failed(&self, error_type: &str) {
        #[cfg(feature = "otel")]
        if let Some(cx) = &self.cx {
            otel::failed(cx, error_type);
        }
        #[cfg(not(feature = "otel"))]
        let _ = error_type;
    }

    /// Runs `work` with this span as the current OpenTelemetry context while it is polled.
    pub(crate) async fn run<F: Future>(&self, work: F) -> F::Output {
        #[cfg(feature = "otel")]
        if let Some(cx) = &self.cx {
            use opentelemetry::context::FutureExt as _;
            return work.with_context(cx.clone()).await;
        }
        work.await
    }
}

pub(crate) use super::link::Link;

/// Notes the broker node `link` is now on (at each connect and reconnect): the
/// `server.address` / `server.port` of later spans over it. Without `otel` nothing is kept.
pub(crate) fn connected(link: Link, host: &str, port: u16) {
    #[cfg(feature = "otel")]
    otel::connected(link, host, port);
    #[cfg(not(feature = "otel"))]
    let _ = (link, host, port);
}

/// Writes the current OpenTelemetry context into `headers` as `traceparent` (and
/// `tracestate`), sampled or not; nothing when there is none (always without `otel`).
pub(crate) fn inject(headers: &mut FieldTable) {
    #[cfg(feature = "otel")]
    otel::inject(headers);
    #[cfg(not(feature = "otel"))]
    let _ = headers;
}

#[cfg(feature = "otel")]
pub use otel::{DeliverySpans, TraceLayer, batch_processor, install, layer, shutdown};

#[cfg(feature = "otel")]
mod otel {
    use std::borrow::Cow;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, OnceLock, PoisonError, RwLock};

    use lapin::types::FieldTable;
    use opentelemetry::trace::{
        Span as _, SpanBuilder, SpanKind, Status, TraceContextExt as _, Tracer as _,
        TracerProvider as _,
    };
    use opentelemetry::{Context, KeyValue, StringValue, Value};
    use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
    use opentelemetry_sdk::trace::{
        BatchSpanProcessor, SdkTracer, SdkTracerProvider, SpanData, SpanExporter,
    };
    use tracing::{Event, Metadata, Subscriber};
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::filter::{FilterFn, Filtered, filter_fn};
    use tracing_subscriber::layer::Context as LayerContext;
    use tracing_subscriber::registry::LookupSpan;

    use super::Link;

    static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

    /// The tracer of the live [`TraceLayer`] (tagged with the layer's number), which the
    /// kit's messaging spans are made with; `None` while no layer is installed.
    static TRACER: RwLock<Option<(u64, SdkTracer)>> = RwLock::new(None);
    static LAYERS: AtomicU64 = AtomicU64::new(0);

    /// `server.address` and `server.port` of the broker node each [`Link`] is on, in
    /// `Link` order; written at each (re)connect, read by every sampled span.
    static SERVERS: [RwLock<Option<(StringValue, i64)>>; 2] =
        [RwLock::new(None), RwLock::new(None)];

    fn server(link: Link) -> &'static RwLock<Option<(StringValue, i64)>> {
        match link {
            Link::Main => &SERVERS[0],
            Link::Consume => &SERVERS[1],
        }
    }

    pub(super) fn connected(link: Link, host: &str, port: u16) {
        *server(link).write().unwrap_or_else(PoisonError::into_inner) =
            Some((StringValue::from(Arc::<str>::from(host)), i64::from(port)));
    }

    /// Whether `parent` is a span of this process that was not sampled. Every sampler
    /// `OTEL_TRACES_SAMPLER` can name gives such a span's children the same answer (the
    /// `parentbased_*` ones by rule, `traceidratio` by the shared trace id, `always_off`
    /// always), so the kit starts none: nothing would be recorded, and the parent's
    /// context already says "not sampled" to the services downstream.
    fn unsampled_here(parent: &Context) -> bool {
        let span = parent.span();
        let sc = span.span_context();
        sc.is_valid() && !sc.is_remote() && !sc.is_sampled()
    }

    /// Runs `f` with the live layer's tracer; `None` while no layer is installed (one read of
    /// the lock per message).
    fn with_tracer<R>(f: impl FnOnce(&SdkTracer) -> R) -> Option<R> {
        let tracer = TRACER.read().unwrap_or_else(PoisonError::into_inner);
        tracer.as_ref().map(|(_, tracer)| f(tracer))
    }

    /// Starts a messaging span named `name` in `parent` with `tracer` (the sampler decides
    /// here), for a message over `link`. `attributes` are only made for a span the sampler
    /// keeps.
    fn start(
        tracer: &SdkTracer,
        name: &'static str,
        kind: SpanKind,
        link: Link,
        parent: &Context,
        named: impl FnOnce() -> Option<String>,
        attributes: impl FnOnce(&mut Vec<KeyValue>),
    ) -> Context {
        let mut span =
            tracer.build_with_context(SpanBuilder::from_name(name).with_kind(kind), parent);
        if !span.is_recording() {
            // Only its context is needed (to propagate): keeping that alone saves boxing
            // the SDK's span, which is sized for all of a recorded span's data.
            let sc = span.span_context().clone();
            return parent.with_remote_span_context(sc);
        }
        if let Some(name) = named() {
            span.update_name(name);
        }
        let mut kvs = Vec::with_capacity(10);
        kvs.push(KeyValue::new("messaging.system", "rabbitmq"));
        attributes(&mut kvs);
        if let Some((address, port)) = &*server(link).read().unwrap_or_else(PoisonError::into_inner)
        {
            kvs.push(KeyValue::new("server.address", address.clone()));
            kvs.push(KeyValue::new("server.port", *port));
        }
        span.set_attributes(kvs);
        parent.with_span(span)
    }

    pub(super) fn process(
        route: &str,
        correlation_id: &str,
        headers: Option<&FieldTable>,
        link: Link,
    ) -> Option<Context> {
        // Without a layer nothing is read: the closure does not run.
        with_tracer(|tracer| {
            let parent = crate::observe::traceparent::extract(headers);
            start(
                tracer,
                "process",
                SpanKind::Consumer,
                link,
                &parent,
                || Some(format!("process {route}")),
                |kvs| {
                    let route = StringValue::from(Arc::<str>::from(route));
                    kvs.extend([
                        KeyValue::new("messaging.destination.name", route.clone()),
                        KeyValue::new("messaging.rabbitmq.destination.routing_key", route),
                        KeyValue::new(
                            "messaging.message.conversation_id",
                            correlation_id.to_owned(),
                        ),
                        KeyValue::new("messaging.operation.name", "process"),
                        KeyValue::new("messaging.operation.type", "process"),
                    ]);
                },
            )
        })
    }

    /// A `send {route}` span, or the reply's `send` (no route: replies go to the caller's
    /// own queue).
    pub(super) fn send(route: Option<&str>) -> Option<Context> {
        // Without a layer the current context stays as it is (and is what a publish carries).
        with_tracer(|tracer| {
            let parent = Context::current();
            if unsampled_here(&parent) {
                // A publish still carries the parent's context (a reply carries none of its own).
                return route.is_some().then_some(parent);
            }
            Some(start(
                tracer,
                "send",
                SpanKind::Producer,
                Link::Main,
                &parent,
                || route.map(|r| format!("send {r}")),
                |kvs| {
                    if let Some(route) = route {
                        let route = StringValue::from(Arc::<str>::from(route));
                        kvs.extend([
                            KeyValue::new("messaging.destination.name", route.clone()),
                            KeyValue::new("messaging.rabbitmq.destination.routing_key", route),
                        ]);
                    }
                    kvs.extend([
                        KeyValue::new("messaging.operation.name", "send"),
                        KeyValue::new("messaging.operation.type", "send"),
                    ]);
                },
            ))
        })
        .flatten()
    }

    pub(super) fn failed(cx: &Context, error_type: &str) {
        let span = cx.span();
        if span.is_recording() {
            span.set_attribute(KeyValue::new("error.type", error_type.to_owned()));
            span.set_status(Status::error(error_type.to_owned()));
        }
    }

    /// Whatever the current context is: the kit's span, the handler's, or one the
    /// application attached with `opentelemetry`'s own API (propagated even without the
    /// kit's layer).
    pub(super) fn inject(headers: &mut FieldTable) {
        crate::observe::traceparent::inject(&Context::current(), headers);
    }

    /// The layer for the service's `tracing` subscriber: its spans (the handler's own, a
    /// caller's) become OpenTelemetry spans through `tracing-opentelemetry`, exported with
    /// `provider` (the service's: [`install`] makes it from the `OTEL_*` variables; tests
    /// pass one with an in-memory exporter). While it is alive, the kit's messaging spans
    /// are made with `provider` too; dropping it stops them.
    pub fn layer<S>(provider: &SdkTracerProvider) -> TraceLayer<S>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let tracer = provider.tracer("worker-kit");
        let number = LAYERS.fetch_add(1, Ordering::Relaxed) + 1;
        *TRACER.write().unwrap_or_else(PoisonError::into_inner) = Some((number, tracer.clone()));
        // Only the attributes a span sets itself: the defaults add the source file, line,
        // module, `tracing` target, thread and busy/idle times to every span, which say
        // nothing about the work and cost each span something even when it is dropped.
        tracing_opentelemetry::layer()
            .with_location(false)
            .with_target(false)
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_tracer(tracer)
            .with_filter(filter_fn(not_a_delivery_span as fn(&Metadata<'_>) -> bool))
            .and_then(DeliverySpans { number })
    }

    /// What [`layer`] returns: `tracing-opentelemetry`'s layer for every span but the kit's
    /// delivery log spans, then [`DeliverySpans`].
    ///
    /// The first part has a per-layer filter: swap the whole layer with
    /// `tracing_subscriber::reload` and the new filter is never registered with the
    /// subscriber; build a new subscriber instead.
    pub type TraceLayer<S> = tracing_subscriber::layer::Layered<
        DeliverySpans,
        Filtered<
            tracing_opentelemetry::OpenTelemetryLayer<S, SdkTracer>,
            FilterFn<fn(&Metadata<'_>) -> bool>,
            S,
        >,
        S,
    >;

    /// The part of [`TraceLayer`] for the kit's delivery log spans (`message`), whose
    /// OpenTelemetry span is the kit's `process {route}` span beside them (so
    /// `tracing-opentelemetry` does not see them): it makes the events logged in them events
    /// of the delivery's current OpenTelemetry span. Dropping it stops the kit's messaging
    /// spans.
    pub struct DeliverySpans {
        number: u64,
    }

    impl Drop for DeliverySpans {
        fn drop(&mut self) {
            let mut tracer = TRACER.write().unwrap_or_else(PoisonError::into_inner);
            if tracer.as_ref().is_some_and(|(n, _)| *n == self.number) {
                *tracer = None;
            }
        }
    }

    fn is_delivery_span(metadata: &Metadata<'_>) -> bool {
        metadata.is_span()
            && metadata.name() == "message"
            && metadata.target() == super::DELIVERY_SPAN_TARGET
    }

    fn not_a_delivery_span(metadata: &Metadata<'_>) -> bool {
        !is_delivery_span(metadata)
    }

    impl<S> tracing_subscriber::Layer<S> for DeliverySpans
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        fn on_event(&self, event: &Event<'_>, ctx: LayerContext<'_, S>) {
            if ctx
                .event_span(event)
                .is_some_and(|span| is_delivery_span(span.metadata()))
            {
                span_event(event);
            }
        }
    }

    /// An event in a delivery's log span, as an event of the current OpenTelemetry span (the
    /// delivery's `process` span, or a `send` inside it) when that span is sampled: the
    /// `message` field names it, the other fields and the level are its attributes.
    fn span_event(event: &Event<'_>) {
        let cx = Context::current();
        let span = cx.span();
        if !span.is_recording() {
            return;
        }
        let mut fields = EventFields {
            name: None,
            attributes: vec![KeyValue::new("level", event.metadata().level().as_str())],
        };
        event.record(&mut fields);
        let name = fields
            .name
            .map_or(Cow::Borrowed(event.metadata().name()), Cow::Owned);
        span.add_event(name, fields.attributes);
    }

    struct EventFields {
        name: Option<String>,
        attributes: Vec<KeyValue>,
    }

    impl EventFields {
        fn push(&mut self, field: &tracing::field::Field, value: Value) {
            if field.name() == "message" {
                self.name = Some(value.as_str().into_owned());
            } else {
                self.attributes.push(KeyValue::new(field.name(), value));
            }
        }
    }

    impl tracing::field::Visit for EventFields {
        fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
            self.push(field, Value::from(value.to_owned()));
        }
        fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
            self.push(field, Value::I64(value));
        }
        fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
            self.push(
                field,
                i64::try_from(value).map_or_else(|_| Value::from(value.to_string()), Value::I64),
            );
        }
        fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
            self.push(field, Value::F64(value));
        }
        fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
            self.push(field, Value::Bool(value));
        }
        fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
            self.push(field, Value::from(format!("{value:?}")));
        }
    }

    /// The service's tracer provider: OTLP over gRPC to `OTEL_EXPORTER_OTLP_ENDPOINT`
    /// (default `http://localhost:4317`), sampled as `OTEL_TRACES_SAMPLER` says, named by
    /// `OTEL_SERVICE_NAME` or else `service`; also the process's global provider, so spans
    /// made with `opentelemetry`'s own API go the same way. `None` with
    /// `OTEL_SDK_DISABLED=true` or when the exporter cannot be built (said on stderr: logs
    /// are not set up yet).
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
        let batches = batch_processor(exporter);
        let provider = SdkTracerProvider::builder()
            .with_span_processor(batches)
            .with_resource(
                opentelemetry_sdk::Resource::builder()
                    .with_service_name(name)
                    .build(),
            )
            .build();
        let _ = PROVIDER.set(provider.clone());
        opentelemetry::global::set_tracer_provider(provider.clone());
        Some(provider)
    }

    /// The span processor a service exports with: the SDK's batch processor, whose own
    /// thread collects spans and wakes once a batch is full (512, `OTEL_BSP_*`) or every
    /// 5 s, around `exporter`, whose exports run on the current Tokio runtime (gRPC through
    /// tonic needs one). A span costs a channel send. The SDK's processor on the async
    /// runtime instead hands every span to a task, a wake-up per span: at 100 % sampling
    /// that was most of what tracing cost.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub fn batch_processor<E: SpanExporter + 'static>(exporter: E) -> BatchSpanProcessor {
        BatchSpanProcessor::builder(OnRuntime {
            exporter: Arc::new(exporter),
            runtime: tokio::runtime::Handle::current(),
        })
        .build()
    }

    /// An exporter whose exports run as tasks on `runtime`.
    #[derive(Debug)]
    struct OnRuntime<E> {
        exporter: Arc<E>,
        runtime: tokio::runtime::Handle,
    }

    impl<E: SpanExporter + 'static> SpanExporter for OnRuntime<E> {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            let exporter = Arc::clone(&self.exporter);
            match self
                .runtime
                .spawn(async move { exporter.export(batch).await })
                .await
            {
                Ok(result) => result,
                Err(e) => Err(OTelSdkError::InternalFailure(format!(
                    "the export task ended without a result: {e}"
                ))),
            }
        }

        // The processor's thread calls these when no export runs, so the exporter is not
        // shared then.
        fn shutdown_with_timeout(&mut self, timeout: std::time::Duration) -> OTelSdkResult {
            Arc::get_mut(&mut self.exporter).map_or(Ok(()), |e| e.shutdown_with_timeout(timeout))
        }

        fn force_flush(&mut self) -> OTelSdkResult {
            Arc::get_mut(&mut self.exporter).map_or(Ok(()), SpanExporter::force_flush)
        }

        fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
            if let Some(e) = Arc::get_mut(&mut self.exporter) {
                e.set_resource(resource);
            }
        }
    }

    /// Flushes and stops the provider [`install`] made (at exit, on the runtime: spans
    /// still batched would be lost).
    pub fn shutdown() {
        if let Some(p) = PROVIDER.get() {
            let _ = p.shutdown();
        }
    }
}

#[cfg(all(test, feature = "otel"))]
mod tests {
    use std::sync::{Arc, Mutex};

    use lapin::types::FieldTable;
    use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId};
    use opentelemetry_sdk::error::OTelSdkResult;
    use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};

    use super::{Link, Traced};

    /// Keeps what it is given.
    #[derive(Debug, Clone, Default)]
    struct Kept(Arc<Mutex<Vec<SpanData>>>);

    impl SpanExporter for Kept {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            self.0.lock().unwrap().extend(batch);
            Ok(())
        }
    }

    /// A work-queue delivery comes over the consume-only connection, which in a cluster may
    /// be on another node than the publishing one: its `process` span names that node.
    #[test]
    fn a_span_names_the_node_of_the_connection_its_message_went_over() {
        let kept = Kept::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(kept.clone())
            .build();
        let layer = super::layer::<tracing_subscriber::Registry>(&provider);
        super::connected(Link::Main, "node-a", 5672);
        super::connected(Link::Consume, "node-b", 5673);
        drop(Traced::process("work", "c1", None, Link::Consume));
        drop(Traced::process("rpc", "c2", None, Link::Main));
        drop(Traced::send("rpc"));
        drop(layer);
        let spans = kept.0.lock().unwrap().clone();
        let node = |name: &str| {
            let span = spans
                .iter()
                .find(|s| s.name == name)
                .unwrap_or_else(|| panic!("no span {name}"));
            let attr = |key: &str| {
                span.attributes
                    .iter()
                    .find(|kv| kv.key.as_str() == key)
                    .map(|kv| kv.value.to_string())
            };
            (attr("server.address"), attr("server.port"))
        };
        let b = (Some("node-b".to_owned()), Some("5673".to_owned()));
        let a = (Some("node-a".to_owned()), Some("5672".to_owned()));
        assert_eq!(node("process work"), b);
        assert_eq!(node("process rpc"), a);
        assert_eq!(node("send rpc"), a);
    }

    /// A context the application attached itself travels, with or without the kit's layer.
    #[test]
    fn the_current_context_is_propagated_without_the_layer() {
        let cx = opentelemetry::Context::new().with_remote_span_context(SpanContext::new(
            TraceId::from(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736),
            SpanId::from(0x00f0_67aa_0ba9_02b7),
            TraceFlags::SAMPLED,
            true,
            Default::default(),
        ));
        let mut headers = FieldTable::default();
        {
            let _attached = cx.attach();
            super::inject(&mut headers);
        }
        assert_eq!(
            headers
                .inner()
                .get("traceparent")
                .and_then(crate::wire::headers::text_of),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        );
        let mut none = FieldTable::default();
        super::inject(&mut none);
        assert!(none.inner().is_empty(), "no context, no header");
    }
}
