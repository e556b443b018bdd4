//! The `traces` section (built with the bench's `otel` feature): what OpenTelemetry tracing
//! costs the kit echo at 64 in flight. Four loads on fresh servers and clients each:
//! tracing off (no trace layer: the delivery log spans exist for the log subscriber only),
//! tracing off with callers that send `traceparent` (what propagation alone costs), every
//! trace sampled, none sampled (`parentbased_traceidratio` at 1.0 and 0.0, as
//! `OTEL_TRACES_SAMPLER` would set it).
//!
//! Each load runs on a Tokio runtime of its own whose threads use a subscriber of its own,
//! what a service running with `otel` has: the registry, an `info` filter, the log layer
//! (writing to nothing: the cost of formatting span fields is kept, the terminal's is not)
//! and, when traced, the kit's trace layer, whose provider makes the kit's messaging spans
//! while it is installed. Spans go through the kit's batch processor, as
//! `observe::trace::install` sets it up (exports run on the load's runtime), to an exporter
//! that only counts them (the cost of the wire and of a collector is not the kit's). Other sections run with no subscriber.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use anyhow::Context;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, SpanData, SpanExporter};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;

use crate::{Ctx, kit, names};

/// An exporter that counts the spans it is handed and drops them.
#[derive(Debug, Clone, Default)]
struct Counting(Arc<AtomicUsize>);

impl SpanExporter for Counting {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.0.fetch_add(batch.len(), Ordering::Relaxed);
        Ok(())
    }
}

/// The subscriber of one load: what a service running with `otel` has (the registry, an
/// `info` filter, the log layer writing to nothing) and, when traced, the kit's trace layer
/// with `provider`.
fn subscriber(provider: Option<&SdkTracerProvider>) -> tracing::Dispatch {
    tracing::Dispatch::new(
        tracing_subscriber::registry()
            .with(provider.map(worker_kit::observe::trace::layer))
            .with(LevelFilter::INFO)
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::sink)),
    )
}

/// Makes `slot`'s subscriber this thread's default, once it is set (a runtime thread's
/// start and wake-up hook).
fn adopt(slot: &OnceLock<tracing::Dispatch>) {
    thread_local! {
        static ADOPTED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    if ADOPTED.get() {
        return;
    }
    if let Some(dispatch) = slot.get() {
        // Kept until the thread ends, with the load's runtime.
        std::mem::forget(tracing::dispatcher::set_default(dispatch));
        ADOPTED.set(true);
    }
}

/// A provider sampling `ratio` of the traces it starts, exporting to `exported`.
fn provider(ratio: f64, exported: &Counting) -> SdkTracerProvider {
    // As a service exports (`observe::trace::install`): on the current runtime.
    let batches = worker_kit::observe::trace::batch_processor(exported.clone());
    SdkTracerProvider::builder()
        .with_span_processor(batches)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            ratio,
        ))))
        .build()
}

pub(crate) async fn section(ctx: &mut Ctx) {
    let mut loads = [
        (names::KIT_TRACES_OFF, Mode::Off),
        (names::KIT_TRACES_HEADER, Mode::OffWithTraceparent),
        (names::KIT_TRACES_ALL, Mode::Sampled(1.0)),
        (names::KIT_TRACES_NONE, Mode::Sampled(0.0)),
    ];
    // Each round starts with another load, so none always runs on the warmest machine.
    let first = (ctx.round - 1) % loads.len();
    loads.rotate_left(first);
    for (name, mode) in loads {
        if !ctx.wants_load(name) {
            continue;
        }
        if let Err(e) = load(ctx, name, mode).await {
            ctx.fail(name, &e);
        }
    }
}

/// How a load traces.
#[derive(Debug, Clone, Copy)]
enum Mode {
    /// No trace layer.
    Off,
    /// No trace layer, but the caller runs in an (unsampled) OpenTelemetry context, so every
    /// request carries `traceparent` and every reply echoes it: what propagation alone costs.
    OffWithTraceparent,
    /// The trace layer with `parentbased_traceidratio` at this ratio.
    Sampled(f64),
}

impl Mode {
    fn ratio(self) -> Option<f64> {
        match self {
            Mode::Sampled(r) => Some(r),
            Mode::Off | Mode::OffWithTraceparent => None,
        }
    }
}

/// An unsampled context of a caller from elsewhere, as a `traceparent` would bring it.
fn callers_context() -> opentelemetry::Context {
    use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId};
    let ids = uuid::Uuid::new_v4().as_u128();
    opentelemetry::Context::new().with_remote_span_context(SpanContext::new(
        TraceId::from(ids),
        SpanId::from(u64::try_from(ids >> 64).unwrap_or(1) | 1),
        TraceFlags::default(),
        true,
        Default::default(),
    ))
}

/// One load on a runtime of its own whose threads all use the load's subscriber: the kit's
/// trace layer has a per-layer filter, which a subscriber cannot swap in once built, so
/// each load gets a new subscriber, as each service process does.
async fn load(ctx: &mut Ctx, name: &str, mode: Mode) -> anyhow::Result<()> {
    let ratio = mode.ratio();
    let slot: Arc<OnceLock<tracing::Dispatch>> = Arc::default();
    let (on_start, on_unpark) = (slot.clone(), slot.clone());
    // Worker threads start before the subscriber exists (its provider's batch processor
    // is a task on this runtime): each adopts it when it first wakes for work.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_start(move || adopt(&on_start))
        .on_thread_unpark(move || adopt(&on_unpark))
        .build()
        .context("starting the load's runtime")?;
    tokio::task::block_in_place(|| {
        let exported = Counting::default();
        let provider = {
            let _on = runtime.enter();
            ratio.map(|r| provider(r, &exported))
        };
        let dispatch = subscriber(provider.as_ref());
        let _ = slot.set(dispatch.clone());
        // The client's calls run on this thread (the server's on the runtime's workers).
        let caller = matches!(mode, Mode::OffWithTraceparent).then(|| callers_context().attach());
        let result = tracing::dispatcher::with_default(&dispatch, || {
            runtime.block_on(echo(ctx, name, mode))
        });
        drop(caller);
        if let Some(p) = provider {
            // Blocks until the batch processor, a task on that runtime, has exported the rest.
            let flushed = runtime.block_on(tokio::task::spawn_blocking(move || p.shutdown()))?;
            flushed.context("flushing the spans")?;
        }
        runtime.shutdown_timeout(std::time::Duration::from_secs(10));
        let calls = result?;
        let spans = exported.0.load(Ordering::Relaxed);
        match ratio {
            // Per call: the client's `send` and the server's `process` and reply `send`.
            Some(r) if r > 0.0 => anyhow::ensure!(
                spans >= calls * 3,
                "{spans} spans exported for {calls} calls: the batch processor dropped some"
            ),
            _ => anyhow::ensure!(spans == 0, "{spans} spans exported while none is sampled"),
        }
        Ok(())
    })
}

/// The kit echo at 64 in flight on a fresh server and client; the calls made.
async fn echo(ctx: &mut Ctx, name: &str, mode: Mode) -> anyhow::Result<usize> {
    let what = match mode {
        Mode::Off => "kit-traces-off",
        Mode::OffWithTraceparent => "kit-traces-header",
        Mode::Sampled(r) if r > 0.0 => "kit-traces-all",
        Mode::Sampled(_) => "kit-traces-none",
    };
    let config = kit::config(&ctx.opts.amqp_url);
    crate::kit_echo_load(ctx, "traces", name, what, config, async |_| Ok(())).await
}
