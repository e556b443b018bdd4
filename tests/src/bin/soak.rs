//! Soak benchmark (not a test): N RPC calls against the `example` service binary, with the
//! server's RSS sampled at the start, every tenth of the run, and the end. Memory that
//! keeps growing is a leak.
//!
//! ```text
//! cargo build --release -p example -p e2e
//! target/release/soak --calls 1000000 --concurrency 64
//! ```

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use stubs::example::HelloWorld;
use worker_kit::rpc::RpcClient;

/// Soak the example service with RPC calls and watch its memory.
#[derive(Parser)]
struct Opts {
    /// Number of calls.
    #[arg(long, default_value_t = 1_000_000)]
    calls: u64,
    /// Calls in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: u64,
    /// The service binary to run.
    #[arg(long, default_value = "target/release/example")]
    server: PathBuf,
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let opts = Opts::parse();
    let mut server = tokio::process::Command::new(&opts.server)
        .env("AMQP_URL", e2e::amqp_url())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot start {}: {e} (build it with cargo build --release -p example)",
                opts.server.display()
            )
        })?;
    let pid = server
        .id()
        .ok_or_else(|| anyhow::anyhow!("server exited"))?;
    let client = RpcClient::connect(&e2e::amqp_url()).await?;
    let started = Instant::now();
    while client.call(&HelloWorld(None)).await.is_err() {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(30),
            "the service did not answer within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("{:>12} {:>10} {:>12}", "calls", "rss KiB", "calls/s");
    println!("{:>12} {:>10} {:>12}", 0, rss_kib(pid), "-");
    let done = Arc::new(AtomicU64::new(0));
    let step = (opts.calls / 10).max(1);
    let mut tasks = Vec::new();
    for _ in 0..opts.concurrency {
        let (client, done, total) = (client.clone(), done.clone(), opts.calls);
        tasks.push(tokio::spawn(async move {
            while done.fetch_add(1, Ordering::Relaxed) < total {
                client.call(&HelloWorld(None)).await.expect("call answered");
            }
        }));
    }
    let t0 = Instant::now();
    let mut samples = Vec::new();
    let mut next = step;
    while next <= opts.calls {
        while done.load(Ordering::Relaxed).min(opts.calls) < next {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let rss = rss_kib(pid);
        samples.push(rss);
        println!(
            "{next:>12} {rss:>10} {:>12.0}",
            next as f64 / t0.elapsed().as_secs_f64()
        );
        next += step;
    }
    for t in tasks {
        t.await?;
    }
    server.kill().await?;
    if let (Some(mid), Some(end)) = (samples.get(samples.len() / 2), samples.last()) {
        let growth = (*end as f64 / *mid as f64 - 1.0) * 100.0;
        println!("RSS middle → end: {mid} → {end} KiB ({growth:+.1}%)");
    }
    Ok(())
}
