//! `bench`: measures worker-kit against a lean lapin ceiling and the Python seed's aio-pika
//! stack in one run, prints one table, checks the targets as ratios from that run, and
//! writes everything as JSON for comparison between commits.
//!
//! Sections: `lean` (the ceiling), `kit` (RpcClient → RpcWorker), `python` (aio-pika),
//! `queue` (work queue), `footprint` (the example service's process), `crud` (one INSERT
//! and one SELECT per call through the broker: kit, lean, aio-pika + asyncpg), `outbox`
//! (emitting's cost on the writing route, commit to read model: events/s and lag), `metrics`
//! (the kit echo with and without `METRICS_ADDR`: the cost of recording the metrics),
//! `scheduled` (the lateness of scheduled messages at 1,000 due per second),
//! `decode` (what decoding a request costs by size, against the hop to the blocking pool),
//! `traces` (only when named, in a build with the `otel` feature: the kit echo with
//! OpenTelemetry tracing off, sampling every trace and sampling none).

mod crud;
mod decode;
mod footprint;
mod kit;
mod lean;
mod measure;
mod outbox;
mod python;
mod report;
mod scheduled;
#[cfg(feature = "otel")]
mod traces;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use serde_json::value::RawValue;

use lean::Guarantees;
use measure::{CpuProbe, Run};
use report::{Footprint, Report, Row};

/// Benchmarks worker-kit against a lean lapin ceiling and the Python seed's stack, in one
/// run, against the local RabbitMQ.
#[derive(Debug, Parser)]
#[command(name = "bench", version)]
struct Opts {
    /// A short smoke run: a tenth of the calls and messages.
    #[arg(long)]
    quick: bool,
    /// Run only these sections (comma-separated): lean, kit, python, queue, footprint, crud,
    /// outbox, scheduled, metrics, decode; traces runs only when named (a build with `--features otel`).
    #[arg(long, value_delimiter = ',')]
    only: Vec<Section>,
    /// The broker (a secret: it may hold a password; never printed unredacted).
    #[arg(long, env = "AMQP_URL", default_value = worker_kit::config::DEFAULT_AMQP_URL, hide_env_values = true)]
    amqp_url: String,
    /// Where the JSON results go (a file named after the start time).
    #[arg(long, default_value = "bench-results")]
    out: PathBuf,
    /// The example service's release binary (default: next to this binary).
    #[arg(long)]
    example_bin: Option<PathBuf>,
    /// The virtualenv for aio-pika (created when missing; default target/bench-venv).
    #[arg(long)]
    venv: Option<PathBuf>,
    /// Rounds of the lean, kit and queue loads (the table shows each load's median round;
    /// the machine is shared and noisy). Default 3, or 1 with --quick.
    #[arg(long)]
    repeat: Option<usize>,
    /// Run only the loads whose name contains this text (e.g. "64 in flight, 100 B").
    #[arg(long)]
    filter: Option<String>,
    /// Calls/messages in flight for the concurrent loads.
    #[arg(long, default_value_t = 64)]
    in_flight: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Section {
    Lean,
    Kit,
    Python,
    Queue,
    Footprint,
    Crud,
    Outbox,
    Scheduled,
    Metrics,
    Decode,
    Traces,
}

/// Row names the targets refer to.
mod names {
    pub(crate) const LEAN_SEQ: &str = "lean echo, sequential, 100 B";
    pub(crate) const LEAN_PAR: &str = "lean echo, 64 in flight, 100 B";
    pub(crate) const LEAN_SEQ_PROTOCOL: &str = "lean echo + protocol guarantees, sequential, 100 B";
    pub(crate) const LEAN_PAR_PROTOCOL: &str =
        "lean echo + protocol guarantees, 64 in flight, 100 B";
    pub(crate) const KIT_SEQ: &str = "kit echo, sequential, 100 B";
    pub(crate) const KIT_PAR: &str = "kit echo, 64 in flight, 100 B";
    pub(crate) const PY_PAR: &str = "aio-pika server <- aio-pika client, 64 in flight";
    pub(crate) const LEAN_QUEUE: &str = "lean queue, persistent + confirms";
    pub(crate) const LEAN_QUEUE_TRANSIENT: &str = "lean queue, transient, no confirms";
    pub(crate) const KIT_QUEUE: &str = "kit queue: QueuePublisher -> QueueWorker";
    pub(crate) const KIT_CRUD: &str = "kit CRUD (INSERT + SELECT), 64 in flight";
    pub(crate) const LEAN_CRUD: &str = "lean CRUD (INSERT + SELECT), 64 in flight";
    pub(crate) const LEAN_CRUD_PROTOCOL: &str =
        "lean CRUD + protocol guarantees (INSERT + SELECT), 64 in flight";
    pub(crate) const PY_CRUD: &str = "aio-pika + asyncpg CRUD <- kit RpcClient, 64 in flight";
    pub(crate) const OUTBOX_PLAIN: &str = "outbox: create without emit, 64 in flight";
    pub(crate) const OUTBOX_EMIT: &str = "outbox: create + emit, 64 in flight";
    pub(crate) const OUTBOX_LAG: &str = "outbox: commit -> read model lag at 500 changes/s";
    pub(crate) const SCHEDULED_LATENESS: &str = "scheduled: lateness at 1,000 due/s";
    pub(crate) const KIT_METRICS_OFF: &str = "kit echo, 64 in flight, 100 B, metrics off";
    pub(crate) const KIT_METRICS_ON: &str = "kit echo, 64 in flight, 100 B, metrics on";
    pub(crate) const KIT_TRACES_OFF: &str = "kit echo, 64 in flight, 100 B, tracing off";
    pub(crate) const KIT_TRACES_ALL: &str = "kit echo, 64 in flight, 100 B, traces sampled 100 %";
    pub(crate) const KIT_TRACES_NONE: &str = "kit echo, 64 in flight, 100 B, traces sampled 0 %";
    pub(crate) const KIT_TRACES_HEADER: &str =
        "kit echo, 64 in flight, 100 B, tracing off, callers send traceparent";
}

struct Ctx {
    opts: Opts,
    scale: usize,
    ticks: f64,
    broker_pid: Option<u32>,
    run_id: String,
    round: usize,
    report: Report,
}

impl Ctx {
    fn n(&self, full: usize) -> usize {
        (full / self.scale).max(10)
    }

    fn wants_load(&self, name: &str) -> bool {
        self.opts.filter.as_deref().is_none_or(|f| name.contains(f))
    }

    fn wants(&self, s: Section) -> bool {
        self.opts.only.is_empty() || self.opts.only.contains(&s)
    }

    fn queue(&self, what: &str) -> String {
        format!("bench.{}.{what}", self.run_id)
    }

    fn probe(&self, spawned: &[u32]) -> CpuProbe {
        CpuProbe::start(self.ticks, spawned, self.broker_pid)
    }

    fn push(&mut self, section: &str, name: &str, run: &Run, probe: &CpuProbe, note: &str) {
        let mut row = Row::from_run(section, name, run, probe.finish(), note);
        row.round = self.round;
        row.print();
        self.report.rows.push(row);
    }

    fn fail(&mut self, name: &str, e: &anyhow::Error) {
        eprintln!("bench: {name} failed: {e:#}");
        self.report.failures.push(format!("{name}: {e:#}"));
    }
}

/// A JSON array of customer-like records, about `len` bytes long (at least one record,
/// about 100 bytes): the kind of body services pass around, repeated keys and varied values,
/// so gzip does what it does on real traffic.
fn payload(len: usize) -> Box<RawValue> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut out = String::from("[");
    for i in 0u64.. {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let rec = format!(
            r#"{{"id":{i},"name":"customer {}","email":"c{}@example.com","balance":{}.{:02},"active":{}}}"#,
            x % 100_000,
            x % 9973,
            x % 10_000,
            x % 100,
            x.is_multiple_of(2)
        );
        if i > 0 && out.len() + rec.len() + 2 > len {
            break;
        }
        if i > 0 {
            out.push(',');
        }
        out.push_str(&rec);
    }
    out.push(']');
    RawValue::from_string(out).unwrap_or_else(|_| Box::default())
}

const LIMIT: Duration = Duration::from_secs(300);

fn main() -> std::process::ExitCode {
    let opts = Opts::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bench: cannot start the Tokio runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(opts)) {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::from(3),
        Err(e) => {
            eprintln!("bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Runs the chosen sections; `Ok(false)` when any measurement failed.
async fn run(opts: Opts) -> anyhow::Result<bool> {
    let started = chrono::Utc::now();
    let scale = if opts.quick { 10 } else { 1 };
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
    let mut ctx = Ctx {
        report: Report::new(
            started,
            opts.quick,
            &worker_kit::redact::url(&opts.amqp_url),
        ),
        opts,
        scale,
        ticks: measure::ticks_per_sec(),
        broker_pid: measure::broker_pid(),
        run_id,
        round: 1,
    };
    if ctx.broker_pid.is_none() {
        eprintln!("bench: no local beam.smp found; broker CPU is not shown");
    }
    let rounds = ctx
        .opts
        .repeat
        .unwrap_or(if ctx.opts.quick { 1 } else { 3 })
        .max(1);
    for round in 1..=rounds {
        ctx.round = round;
        if rounds > 1 {
            println!("\nround {round} of {rounds}");
        }
        report::print_header();
        if ctx.wants(Section::Lean) {
            lean_section(&mut ctx).await;
        }
        if ctx.wants(Section::Kit) {
            kit_section(&mut ctx).await;
        }
        if ctx.wants(Section::Queue) {
            queue_section(&mut ctx).await;
        }
        if ctx.wants(Section::Crud) {
            crud_section(&mut ctx).await;
        }
        if ctx.wants(Section::Outbox) {
            outbox_section(&mut ctx).await;
        }
        if ctx.wants(Section::Scheduled) {
            scheduled_section(&mut ctx).await;
        }
        if ctx.wants(Section::Metrics) {
            metrics_section(&mut ctx).await;
        }
        // Not part of a full run: it needs the `otel` build.
        if ctx.opts.only.contains(&Section::Traces) {
            traces_section(&mut ctx).await;
        }
        if round == 1 && ctx.wants(Section::Decode) {
            decode_section(&ctx).await;
        }
        // These two spawn processes and take long; once is enough for their figures.
        if round == 1 && ctx.wants(Section::Python) {
            python_section(&mut ctx).await;
        }
        if round == 1 && ctx.wants(Section::Footprint) {
            footprint_section(&mut ctx).await;
        }
    }
    if rounds > 1 {
        ctx.report.keep_medians();
        println!(
            "\nmedian of {rounds} rounds (lean, kit, queue, crud, outbox); python and footprint ran once"
        );
        report::print_header();
        for row in &ctx.report.rows {
            row.print();
        }
        if let Some(fp) = &ctx.report.footprint {
            fp.print();
        }
    }
    ctx.report.finish();
    ctx.report.print_targets();
    let path = ctx
        .report
        .write(&ctx.opts.out)
        .context("writing the JSON results")?;
    println!("\nresults: {}", path.display());
    Ok(ctx.report.failures.is_empty())
}

async fn lean_section(ctx: &mut Ctx) {
    if let Err(e) = lean_rpc(ctx).await {
        ctx.fail("lean echo", &e);
    }
}

async fn lean_rpc(ctx: &mut Ctx) -> anyhow::Result<()> {
    let url = ctx.opts.amqp_url.clone();
    let route = ctx.queue("lean-echo");
    let protocol_route = ctx.queue("lean-echo-protocol");
    let server_conn = lean::connect(&url, "bench lean server").await?;
    let client_conn = lean::connect(&url, "bench lean client").await?;
    lean::echo_server(&server_conn, &route, Guarantees::Bare).await?;
    lean::echo_server(&server_conn, &protocol_route, Guarantees::Protocol).await?;
    let bare = (
        lean::EchoClient::new(&client_conn, Guarantees::Bare).await?,
        route.as_str(),
    );
    let protocol = (
        lean::EchoClient::new(&client_conn, Guarantees::Protocol).await?,
        protocol_route.as_str(),
    );
    let result = async {
        let par = ctx.opts.in_flight;
        let loads = [
            (names::LEAN_SEQ, 100, 2_000, 1, &bare),
            (names::LEAN_PAR, 100, 20_000, par, &bare),
            (names::LEAN_SEQ_PROTOCOL, 100, 2_000, 1, &protocol),
            (names::LEAN_PAR_PROTOCOL, 100, 20_000, par, &protocol),
            ("lean echo, 64 in flight, 4 KiB", 4096, 20_000, par, &bare),
            ("lean echo, 64 in flight, 64 KiB", 65536, 5_000, par, &bare),
        ];
        for (name, size, n, in_flight, (client, route)) in loads {
            if !ctx.wants_load(name) {
                continue;
            }
            let body = payload(size).get().as_bytes().to_vec();
            anyhow::ensure!(!body.is_empty(), "empty payload");
            let (c, r, b) = (client, *route, body.as_slice());
            let call = |_| async move {
                let back = c.call(r, b).await?;
                anyhow::ensure!(back.len() == b.len(), "echo changed the body's length");
                Ok(())
            };
            measure::drive(200, in_flight, LIMIT, call).await?;
            let probe = ctx.probe(&[]);
            let run = measure::drive(ctx.n(n), in_flight, LIMIT, call).await?;
            ctx.push(
                "ceiling",
                name,
                &run,
                &probe,
                "server+client in this process",
            );
        }
        Ok::<_, anyhow::Error>(())
    }
    .await;
    lean::delete_queues(&server_conn, &[&route, &protocol_route]).await;
    let _ = client_conn.close(200, "done".into()).await;
    let _ = server_conn.close(200, "done".into()).await;
    result
}

async fn kit_section(ctx: &mut Ctx) {
    if let Err(e) = kit_rpc(ctx).await {
        ctx.fail("kit echo", &e);
    }
}

async fn kit_rpc(ctx: &mut Ctx) -> anyhow::Result<()> {
    let url = ctx.opts.amqp_url.clone();
    let route = ctx.queue("kit-echo");
    let server = kit::echo_server(&url, &route).await?;
    let client = kit::client(&url).await?;
    let result = async {
        let par = ctx.opts.in_flight;
        let loads = [
            (names::KIT_SEQ, 100, 2_000, 1),
            (names::KIT_PAR, 100, 20_000, par),
            ("kit echo, sequential, 4 KiB", 4096, 2_000, 1),
            ("kit echo, 64 in flight, 4 KiB", 4096, 20_000, par),
            ("kit echo, sequential, 64 KiB", 65536, 1_000, 1),
            ("kit echo, 64 in flight, 64 KiB", 65536, 5_000, par),
        ];
        for (name, size, n, in_flight) in loads {
            if !ctx.wants_load(name) {
                continue;
            }
            let p = payload(size);
            let (c, r, p) = (&client, route.as_str(), &*p);
            let call = |_| kit::call(c, r, p, true);
            measure::drive(200, in_flight, LIMIT, call).await?;
            let probe = ctx.probe(&[]);
            let run = measure::drive(ctx.n(n), in_flight, LIMIT, call).await?;
            ctx.push("kit", name, &run, &probe, "server+client in this process");
        }
        Ok::<_, anyhow::Error>(())
    }
    .await;
    let stopped = server.stop().await;
    if let Ok(conn) = lean::connect(&url, "bench cleanup").await {
        lean::delete_queues(&conn, &[&route]).await;
        let _ = conn.close(200, "done".into()).await;
    }
    result?;
    stopped.context("stopping the kit's echo server")
}

/// The kit echo at 64 in flight with the metrics off (no `METRICS_ADDR`) and on (recorded
/// on both sides and served, scraped once per load), on fresh servers and clients each; the
/// order alternates between rounds so neither always runs on a warmer machine.
async fn metrics_section(ctx: &mut Ctx) {
    let mut loads = [
        (names::KIT_METRICS_OFF, false),
        (names::KIT_METRICS_ON, true),
    ];
    if ctx.round.is_multiple_of(2) {
        loads.reverse();
    }
    for (name, on) in loads {
        if !ctx.wants_load(name) {
            continue;
        }
        if let Err(e) = kit_metrics(ctx, name, on).await {
            ctx.fail(name, &e);
        }
    }
}

async fn kit_metrics(ctx: &mut Ctx, name: &str, on: bool) -> anyhow::Result<()> {
    let mut config = kit::config(&ctx.opts.amqp_url);
    if on {
        config.metrics_addr = Some(([127, 0, 0, 1], 0).into());
    }
    let what = if on {
        "kit-metrics-on"
    } else {
        "kit-metrics-off"
    };
    kit_echo_load(ctx, "metrics", name, what, config, async |server| {
        if let Some(addr) = server.metrics_addr() {
            // The scrape is part of what "on" costs; it also proves the counts are there.
            let body = kit::scrape(addr).await?;
            anyhow::ensure!(
                body.contains("worker_kit_messages_received_total"),
                "the scrape has no received counter"
            );
        }
        Ok(())
    })
    .await
    .map(drop)
}

/// The kit echo at 64 in flight, 100 B, on a fresh server and client made from `config`
/// (route `what` of this run): 200 warm-up calls, then the measured load, pushed as row
/// `name` of `section`. `check` looks at the running server after the load, before it
/// stops. The calls made, warm-up included.
pub(crate) async fn kit_echo_load(
    ctx: &mut Ctx,
    section: &str,
    name: &str,
    what: &str,
    config: worker_kit::Config,
    check: impl AsyncFnOnce(&worker_kit::runner::Running) -> anyhow::Result<()>,
) -> anyhow::Result<usize> {
    let url = ctx.opts.amqp_url.clone();
    let route = ctx.queue(what);
    let server = kit::echo_server_with(&route, config.clone()).await?;
    let client = kit::client_with(&config).await?;
    let result = async {
        let par = ctx.opts.in_flight;
        let p = payload(100);
        let (c, r, p) = (&client, route.as_str(), &*p);
        let call = |_| kit::call(c, r, p, true);
        let warm = measure::drive(200, par, LIMIT, call).await?;
        let probe = ctx.probe(&[]);
        let run = measure::drive(ctx.n(20_000), par, LIMIT, call).await?;
        check(&server).await?;
        ctx.push(section, name, &run, &probe, "server+client in this process");
        Ok::<_, anyhow::Error>(warm.latencies.len() + run.latencies.len())
    }
    .await;
    let stopped = server.stop().await;
    if let Ok(conn) = lean::connect(&url, "bench cleanup").await {
        lean::delete_queues(&conn, &[&route]).await;
        let _ = conn.close(200, "done".into()).await;
    }
    let calls = result?;
    stopped.context("stopping the kit's echo server")?;
    Ok(calls)
}

#[cfg(feature = "otel")]
async fn traces_section(ctx: &mut Ctx) {
    traces::section(ctx).await;
}

#[cfg(not(feature = "otel"))]
async fn traces_section(ctx: &mut Ctx) {
    ctx.fail(
        "traces",
        &anyhow::anyhow!(
            "built without the otel feature (scripts/bench --only traces builds with it)"
        ),
    );
}

async fn crud_section(ctx: &mut Ctx) {
    let mut loads = [
        (names::LEAN_CRUD, crud_lean as CrudRun),
        (names::LEAN_CRUD_PROTOCOL, crud_lean_protocol as CrudRun),
        (names::KIT_CRUD, crud_kit as CrudRun),
    ];
    // Each round starts with another load: whatever a load leaves behind in PostgreSQL
    // (WAL to recycle, a checkpoint under way) does not always fall on the same one.
    let first = (ctx.round - 1) % loads.len();
    loads.rotate_left(first);
    let python = [(names::PY_CRUD, crud_python as CrudRun)];
    for (name, run) in loads.into_iter().chain(python) {
        // The Python server is a spawned process and slow: once is enough.
        if !ctx.wants_load(name) || (name == names::PY_CRUD && ctx.round > 1) {
            continue;
        }
        let db = format!("bench_{}_crud_{}", ctx.run_id, ctx.round);
        let result = async {
            let dsn = crud::create_db(&db).await?;
            run(ctx, name, dsn).await
        }
        .await;
        crud::drop_db(&db).await;
        if let Err(e) = result {
            ctx.fail(name, &e);
        }
    }
}

type CrudFuture<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>> + 'a>>;
type CrudRun = for<'a> fn(&'a mut Ctx, &'static str, String) -> CrudFuture<'a>;

/// Warms up, then measures `n` calls of the CRUD route through `call`.
async fn crud_measure<F, Fut>(
    ctx: &mut Ctx,
    name: &str,
    spawned: &[u32],
    note: &str,
    call: F,
) -> anyhow::Result<()>
where
    F: Fn(&'static str, usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let par = ctx.opts.in_flight;
    measure::drive(200, par, LIMIT, |i| call("warm", i)).await?;
    let probe = ctx.probe(spawned);
    let run = measure::drive(ctx.n(10_000), par, LIMIT, |i| call("run", i)).await?;
    let section = if name == names::PY_CRUD {
        "python"
    } else {
        "crud"
    };
    ctx.push(section, name, &run, &probe, note);
    Ok(())
}

fn crud_kit<'a>(ctx: &'a mut Ctx, name: &'static str, dsn: String) -> CrudFuture<'a> {
    Box::pin(async move {
        let url = ctx.opts.amqp_url.clone();
        let route = ctx.queue("crud-kit");
        let server = crud::kit_server(&url, &route, &dsn).await?;
        let client = kit::client(&url).await?;
        let result = crud_measure(ctx, name, &[], "server+client in this process", |tag, i| {
            let (c, r) = (&client, route.as_str());
            async move {
                let item: stubs::example::items::Item = c
                    .call_route(
                        r,
                        &crud::request(tag, i),
                        worker_kit::rpc::CallOptions::default(),
                    )
                    .await?;
                anyhow::ensure!(item.name == crud::request(tag, i).name, "wrong item back");
                Ok(())
            }
        })
        .await;
        let stopped = server.stop().await;
        delete_queue(&url, &route).await;
        result?;
        stopped.context("stopping the kit's CRUD server")
    })
}

fn crud_lean<'a>(ctx: &'a mut Ctx, name: &'static str, dsn: String) -> CrudFuture<'a> {
    Box::pin(crud_lean_with(ctx, name, dsn, Guarantees::Bare))
}

fn crud_lean_protocol<'a>(ctx: &'a mut Ctx, name: &'static str, dsn: String) -> CrudFuture<'a> {
    Box::pin(crud_lean_with(ctx, name, dsn, Guarantees::Protocol))
}

async fn crud_lean_with(
    ctx: &mut Ctx,
    name: &'static str,
    dsn: String,
    guarantees: Guarantees,
) -> anyhow::Result<()> {
    let url = ctx.opts.amqp_url.clone();
    let route = ctx.queue(match guarantees {
        Guarantees::Bare => "crud-lean",
        Guarantees::Protocol => "crud-lean-protocol",
    });
    // Server and client on connections of their own, as in the lean echo and the kit.
    let conn = lean::connect(&url, "bench lean crud server").await?;
    let client_conn = lean::connect(&url, "bench lean crud client").await?;
    crud::lean_server(&conn, &route, &dsn, guarantees).await?;
    let client = lean::EchoClient::new(&client_conn, guarantees).await?;
    let result = crud_measure(ctx, name, &[], "server+client in this process", |tag, i| {
        let (c, r) = (&client, route.as_str());
        async move {
            let body = serde_json::to_vec(&crud::request(tag, i))?;
            let reply: serde_json::Value = serde_json::from_slice(&c.call(r, &body).await?)?;
            anyhow::ensure!(reply["id"].is_i64(), "lean CRUD failed: {reply}");
            Ok(())
        }
    })
    .await;
    lean::delete_queues(&conn, &[&route]).await;
    let _ = client_conn.close(200, "done".into()).await;
    let _ = conn.close(200, "done".into()).await;
    result
}

fn crud_python<'a>(ctx: &'a mut Ctx, name: &'static str, dsn: String) -> CrudFuture<'a> {
    Box::pin(async move {
        let url = ctx.opts.amqp_url.clone();
        let venv = ctx.opts.venv.clone().unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-venv")
        });
        let py = tokio::task::spawn_blocking(move || python::ensure_venv(&venv)).await??;
        let route = ctx.queue("crud-py");
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python/seed_crud.py");
        let server = python::serve_script(&py, &script, &["serve", &url, &route, &dsn]).await?;
        let spid: Vec<u32> = server.pid().into_iter().collect();
        let client = kit::client(&url).await?;
        let result = crud_measure(
            ctx,
            name,
            &spid,
            "spawned = aio-pika + asyncpg server",
            |tag, i| {
                let (c, r) = (&client, route.as_str());
                async move {
                    let item: serde_json::Value = c
                        .call_route(
                            r,
                            &crud::request(tag, i),
                            worker_kit::rpc::CallOptions::default(),
                        )
                        .await?;
                    anyhow::ensure!(item["id"].is_i64(), "python CRUD failed: {item}");
                    Ok(())
                }
            },
        )
        .await;
        drop(server);
        delete_queue(&url, &route).await;
        result
    })
}

async fn decode_section(ctx: &Ctx) {
    let budget = Duration::from_millis(if ctx.opts.quick { 50 } else { 500 });
    match decode::measure(payload, budget).await {
        Ok((rows, hop)) => {
            println!("\ndecoding a gzip request inline (gunzip, envelope, payload as JSON)");
            println!("{:>12} {:>14} {:>10}", "decoded", "per decode", "MB/s");
            for r in rows {
                println!(
                    "{:>9} KiB {:>11.1} µs {:>10.0}",
                    r.bytes / 1024,
                    r.inline.as_secs_f64() * 1e6,
                    r.mb_per_sec
                );
            }
            println!(
                "hop to the blocking pool and back: {:.1} µs",
                hop.as_secs_f64() * 1e6
            );
        }
        Err(e) => eprintln!("bench: decode failed: {e:#}"),
    }
}

async fn outbox_section(ctx: &mut Ctx) {
    let (write, read) = (
        format!("bench_{}_outbox_w{}", ctx.run_id, ctx.round),
        format!("bench_{}_outbox_r{}", ctx.run_id, ctx.round),
    );
    let result = async {
        let write_dsn = crud::create_db_with_models(&write, "example").await?;
        let read_dsn = crud::create_db_with_models(&read, "catalog").await?;
        outbox_measure(ctx, &write_dsn, &read_dsn).await
    }
    .await;
    crud::drop_db(&write).await;
    crud::drop_db(&read).await;
    if let Err(e) = result {
        ctx.fail("outbox", &e);
    }
}

async fn outbox_measure(ctx: &mut Ctx, write_dsn: &str, read_dsn: &str) -> anyhow::Result<()> {
    let url = ctx.opts.amqp_url.clone();
    let tag = ctx.queue(&format!("outbox{}", ctx.round));
    let p = outbox::Pipeline::start(&url, &tag, write_dsn, read_dsn).await?;
    let result = async {
        let par = ctx.opts.in_flight;
        let n = ctx.n(5_000);
        measure::drive(200, par, LIMIT, |i| {
            p.create(&p.emitting, format!("warm {i}"))
        })
        .await?;
        p.wait_applied(200, Duration::from_secs(60)).await?;
        // The writing route with and without its event; alternate which goes first.
        let mut writes = [(names::OUTBOX_PLAIN, false), (names::OUTBOX_EMIT, true)];
        writes.rotate_left((ctx.round - 1) % 2);
        for (name, emit) in writes {
            let route = if emit { &p.emitting } else { &p.plain };
            let probe = ctx.probe(&[]);
            let before = p.applied().await?;
            let started = std::time::Instant::now();
            let run = measure::drive(n, par, LIMIT, |i| {
                p.create(route, format!("{name} {} {i}", ctx.round))
            })
            .await?;
            let note = if emit {
                // From the first call to the last event applied in the read model.
                p.wait_applied(before + i64::try_from(n)?, Duration::from_secs(300))
                    .await?;
                let to_read_model = started.elapsed();
                format!(
                    "relay + catalog running; all {n} in the read model at {:.0} events/s",
                    n as f64 / to_read_model.as_secs_f64()
                )
            } else {
                "the same transaction without the event".to_owned()
            };
            ctx.push("outbox", name, &run, &probe, &note);
        }
        // Commit-to-visible lag at a steady rate.
        let per_sec = 500;
        let probe = ctx.probe(&[]);
        let started = std::time::Instant::now();
        let lags = p.lag_at(per_sec, ctx.n(5_000)).await?;
        let run = measure::Run {
            latencies: lags,
            elapsed: started.elapsed(),
        };
        ctx.push(
            "outbox",
            names::OUTBOX_LAG,
            &run,
            &probe,
            "p50/p99: writer's reply to the row in catalog's read model",
        );
        Ok(())
    }
    .await;
    p.stop(&url).await;
    result
}

async fn scheduled_section(ctx: &mut Ctx) {
    let name = format!("bench_{}_scheduled{}", ctx.run_id, ctx.round);
    let result = async {
        let dsn = crud::create_db_with_models(&name, "example").await?;
        let url = ctx.opts.amqp_url.clone();
        let probe = ctx.probe(&[]);
        let (run, early) = scheduled::lateness(&url, &dsn, 1_000, ctx.n(10_000)).await?;
        anyhow::ensure!(
            early == 0,
            "{early} scheduled messages arrived before they were due"
        );
        ctx.push(
            "scheduled",
            names::SCHEDULED_LATENESS,
            &run,
            &probe,
            "p50/p99: due time to arrival at a consumer; send_at 1 s ahead, relay in process",
        );
        Ok(())
    }
    .await;
    crud::drop_db(&name).await;
    if let Err(e) = result {
        ctx.fail("scheduled", &e);
    }
}

async fn delete_exchange(url: &str, exchange: &str) {
    if let Ok(conn) = lean::connect(url, "bench cleanup").await {
        if let Ok(ch) = conn.create_channel().await {
            let _ = ch
                .exchange_delete(
                    exchange.into(),
                    lapin::options::ExchangeDeleteOptions::default(),
                )
                .await;
        }
        let _ = conn.close(200, "done".into()).await;
    }
}

async fn delete_queue(url: &str, route: &str) {
    if let Ok(conn) = lean::connect(url, "bench cleanup").await {
        lean::delete_queues(&conn, &[route]).await;
        let _ = conn.close(200, "done".into()).await;
    }
}

async fn python_section(ctx: &mut Ctx) {
    if let Err(e) = python_rpc(ctx).await {
        ctx.fail("aio-pika", &e);
    }
}

async fn python_rpc(ctx: &mut Ctx) -> anyhow::Result<()> {
    let url = ctx.opts.amqp_url.clone();
    let venv = ctx.opts.venv.clone().unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-venv")
    });
    let py = tokio::task::spawn_blocking(move || python::ensure_venv(&venv)).await??;
    let route = ctx.queue("py-echo");
    let server = python::serve(&py, &url, &route).await?;
    let spid: Vec<u32> = server.pid().into_iter().collect();
    let payload_file = std::env::temp_dir().join(format!("bench-{}-payload.json", ctx.run_id));
    let p = payload(100);
    std::fs::write(&payload_file, p.get())?;
    let result = async {
        let client = kit::client(&url).await?;
        let par = ctx.opts.in_flight;
        {
            let (c, r, p) = (&client, route.as_str(), &*p);
            let call = |_| kit::call(c, r, p, false);
            measure::drive(200, par, LIMIT, call).await?;
            let probe = ctx.probe(&spid);
            let run = measure::drive(ctx.n(20_000), par, LIMIT, call).await?;
            ctx.push(
                "python",
                "aio-pika server <- kit RpcClient, 64 in flight",
                &run,
                &probe,
                "spawned = aio-pika server",
            );
        }
        for (name, n, in_flight) in [
            (names::PY_PAR, 20_000, par),
            ("aio-pika server <- aio-pika client, sequential", 2_000, 1),
        ] {
            let probe = ctx.probe(&spid);
            let rep =
                python::call(&py, &url, &route, ctx.n(n), in_flight, &payload_file, LIMIT).await?;
            let mut row = report::Row::from_python(
                "python",
                name,
                &rep,
                probe.finish(),
                "spawned = aio-pika server + client",
            );
            if let Some(s) = row.cpu.spawned.as_mut() {
                *s += rep.cpu_seconds / rep.seconds * 100.0;
            }
            row.print();
            ctx.report.rows.push(row);
        }
        Ok::<_, anyhow::Error>(())
    }
    .await;
    drop(server);
    let _ = std::fs::remove_file(&payload_file);
    if let Ok(conn) = lean::connect(&url, "bench cleanup").await {
        lean::delete_queues(&conn, &[&route]).await;
        let _ = conn.close(200, "done".into()).await;
    }
    result
}

async fn queue_section(ctx: &mut Ctx) {
    let url = ctx.opts.amqp_url.clone();
    let n = ctx.n(100_000);
    let p = payload(100);
    let body = p.get().as_bytes().to_vec();
    let in_flight = 256;
    for (name, durability) in [
        (names::LEAN_QUEUE_TRANSIENT, lean::Durability::Transient),
        (names::LEAN_QUEUE, lean::Durability::Persistent),
    ] {
        let queue = ctx.queue("lean-queue");
        let probe = ctx.probe(&[]);
        match lean::one_way(&url, &queue, n, in_flight, &body, durability, LIMIT).await {
            Ok(run) => ctx.push(
                "queue",
                name,
                &run,
                &probe,
                "p50/p99 = publish (confirm) latency",
            ),
            Err(e) => ctx.fail(name, &e),
        }
    }
    let route = ctx.queue("kit-queue");
    let probe = ctx.probe(&[]);
    match kit::work_queue(&url, &route, n, in_flight, &p, LIMIT).await {
        Ok(run) => ctx.push(
            "queue",
            names::KIT_QUEUE,
            &run,
            &probe,
            "p50/p99 = publish confirm latency",
        ),
        Err(e) => ctx.fail(names::KIT_QUEUE, &e),
    }
}

async fn footprint_section(ctx: &mut Ctx) {
    if let Err(e) = footprint_run(ctx).await {
        ctx.fail("footprint", &e);
    }
}

async fn footprint_run(ctx: &mut Ctx) -> anyhow::Result<()> {
    let url = ctx.opts.amqp_url.clone();
    let bin = match ctx.opts.example_bin.clone() {
        Some(b) => b,
        None => std::env::current_exe()?
            .parent()
            .map(|d| d.join("example"))
            .context("no directory for the bench binary")?,
    };
    let conn = lean::connect(&url, "bench footprint").await?;
    let others = footprint::other_consumers(&conn).await?;
    if others > 0 {
        anyhow::bail!(
            "{others} consumer(s) already serve `{}` (another example service is running): it would answer our calls; stop it and run again",
            footprint::ROUTE
        );
    }
    let client = kit::client(&url).await?;
    // A database of its own with the example schema, so the service starts on any machine
    // (and leaves a developer's `example` database alone).
    let db = format!("bench_{}_footprint", ctx.run_id);
    let result = async {
        let dsn = crud::create_db(&db).await?;
        let (service, first) = footprint::start(&bin, &url, &dsn, &client).await?;
        let mut fp = Footprint {
            first_call_ms: first.as_secs_f64() * 1000.0,
            ..Footprint::default()
        };
        // Idle: answered one call, then left alone for a moment.
        tokio::time::sleep(Duration::from_millis(500)).await;
        fp.idle_rss_kib = measure::rss_kib(service.pid);
        let par = ctx.opts.in_flight;
        let c = &client;
        let call = |_| async move {
            c.call_raw(
                footprint::ROUTE,
                &serde_json::Value::Null,
                Default::default(),
            )
            .await?;
            Ok(())
        };
        let first_n = ctx.n(10_000);
        let probe = ctx.probe(&[service.pid]);
        let run = measure::drive(first_n, par, LIMIT, call).await?;
        ctx.push(
            "footprint",
            &format!("example service, first {first_n} calls, {par} in flight"),
            &run,
            &probe,
            "spawned = example service",
        );
        fp.rss_after_10k_kib = measure::rss_kib(service.pid);
        let probe = ctx.probe(&[service.pid]);
        let rest = ctx.n(100_000) - first_n;
        let run = measure::drive(rest, par, LIMIT, call).await?;
        ctx.push(
            "footprint",
            &format!("example service, next {rest} calls, {par} in flight"),
            &run,
            &probe,
            "spawned = example service",
        );
        fp.rss_after_100k_kib = measure::rss_kib(service.pid);
        fp.print();
        ctx.report.footprint = Some(fp);
        service.stop().await
    }
    .await;
    footprint::cleanup(&conn).await;
    crud::drop_db(&db).await;
    let _ = conn.close(200, "done".into()).await;
    result
}
