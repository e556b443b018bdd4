//! The `traces` section (built with the bench's `otel` feature): what OpenTelemetry tracing
//! costs the kit echo at 64 in flight. Three loads on fresh servers and clients each:
//! tracing off (the spans exist for the log subscriber only), every trace sampled, none
//! sampled (`parentbased_traceidratio` at 1.0 and 0.0, as `OTEL_TRACES_SAMPLER` would set
//! it).
//!
//! The process's subscriber is what a service running with `otel` has: the registry, an
//! `info` filter, the log layer (writing to nothing: the cost of formatting span fields is
//! kept, the terminal's is not) and the OpenTelemetry layer; spans go through the batch
//! processor on the Tokio runtime, as `observe::trace::install` sets it up, to an exporter
//! that only counts them (the cost of the wire and of a collector is not the kit's). The
//! filter is off outside this section, so sections run after it in later rounds see no
//! subscriber at work.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use anyhow::Context;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, SpanData, SpanExporter};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{Registry, reload};

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

type OtelLayer =
    tracing_opentelemetry::OpenTelemetryLayer<Registry, opentelemetry_sdk::trace::SdkTracer>;

/// The switches of the process's subscriber: its level filter and its OpenTelemetry layer.
struct Switches {
    filter: reload::Handle<
        LevelFilter,
        tracing_subscriber::layer::Layered<reload::Layer<Option<OtelLayer>, Registry>, Registry>,
    >,
    otel: reload::Handle<Option<OtelLayer>, Registry>,
}

/// Installs the process's subscriber (once), off.
fn switches() -> anyhow::Result<&'static Switches> {
    static SWITCHES: OnceLock<Switches> = OnceLock::new();
    if let Some(s) = SWITCHES.get() {
        return Ok(s);
    }
    let (otel, otel_handle) = reload::Layer::new(None::<OtelLayer>);
    let (filter, filter_handle) = reload::Layer::new(LevelFilter::OFF);
    let subscriber = tracing_subscriber::registry()
        .with(otel)
        .with(filter)
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::sink));
    tracing::subscriber::set_global_default(subscriber)
        .context("another global tracing subscriber is installed")?;
    Ok(SWITCHES.get_or_init(|| Switches {
        filter: filter_handle,
        otel: otel_handle,
    }))
}

/// `Some(ratio)`: traced with that sampling ratio; `None`: tracing off.
fn provider(ratio: f64, exported: &Counting) -> SdkTracerProvider {
    let batches =
        opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(
            exported.clone(),
            opentelemetry_sdk::runtime::Tokio,
        )
        .build();
    SdkTracerProvider::builder()
        .with_span_processor(batches)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            ratio,
        ))))
        .build()
}

pub(crate) async fn section(ctx: &mut Ctx) {
    let mut loads = [
        (names::KIT_TRACES_OFF, None),
        (names::KIT_TRACES_ALL, Some(1.0)),
        (names::KIT_TRACES_NONE, Some(0.0)),
    ];
    // Each round starts with another load, so none always runs on the warmest machine.
    let first = (ctx.round - 1) % loads.len();
    loads.rotate_left(first);
    for (name, ratio) in loads {
        if !ctx.wants_load(name) {
            continue;
        }
        if let Err(e) = load(ctx, name, ratio).await {
            ctx.fail(name, &e);
        }
    }
}

async fn load(ctx: &mut Ctx, name: &str, ratio: Option<f64>) -> anyhow::Result<()> {
    let switches = switches()?;
    let exported = Counting::default();
    let provider = ratio.map(|r| provider(r, &exported));
    switches
        .otel
        .reload(provider.as_ref().map(worker_kit::observe::trace::layer))
        .context("switching the OpenTelemetry layer")?;
    switches
        .filter
        .reload(LevelFilter::INFO)
        .context("switching the filter on")?;
    let result = echo(ctx, name, ratio).await;
    let _ = switches.filter.reload(LevelFilter::OFF);
    let _ = switches.otel.reload(None);
    if let Some(p) = provider {
        // Blocks until the batch processor, a task on this runtime, has exported the rest.
        let flushed = tokio::task::spawn_blocking(move || p.shutdown()).await?;
        flushed.context("flushing the spans")?;
    }
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
}

/// The kit echo at 64 in flight on a fresh server and client; the calls made.
async fn echo(ctx: &mut Ctx, name: &str, ratio: Option<f64>) -> anyhow::Result<usize> {
    let what = match ratio {
        None => "kit-traces-off",
        Some(r) if r > 0.0 => "kit-traces-all",
        Some(_) => "kit-traces-none",
    };
    let config = kit::config(&ctx.opts.amqp_url);
    crate::kit_echo_load(ctx, "traces", name, what, config, async |_| Ok(())).await
}
