//! Footprint of a real service process: the `example` binary's start-up time and RSS.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use tokio::process::{Child, Command};
use worker_kit::rpc::{CallError, CallOptions, RpcClient};

/// The example service's RPC route the footprint calls.
pub(crate) const ROUTE: &str = "hello_world";
/// Every queue the example service declares (deleted afterwards when unused and empty).
pub(crate) const QUEUES: &[&str] = &[
    "hello_world",
    "will-error",
    "dictionary",
    "queue-test",
    "queue-test.dead",
];

/// A spawned example service; killed on drop, stopped with SIGTERM by [`Service::stop`].
pub(crate) struct Service {
    child: Child,
    pub(crate) pid: u32,
}

/// Consumers already on `hello_world` before we start: another example service would
/// answer our calls and make the numbers meaningless.
pub(crate) async fn other_consumers(conn: &lapin::Connection) -> anyhow::Result<u32> {
    let ch = conn.create_channel().await?;
    let r = ch
        .queue_declare(
            ROUTE.into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await;
    let n = r.map(|q| q.consumer_count()).unwrap_or(0);
    let _ = ch.close(200, "done".into()).await;
    Ok(n)
}

/// Spawns `bin` on the database at `dsn`, then calls `hello_world` until it answers;
/// returns the service and the time from spawn to the first answer.
pub(crate) async fn start(
    bin: &Path,
    url: &str,
    dsn: &str,
    client: &RpcClient,
) -> anyhow::Result<(Service, Duration)> {
    if !bin.exists() {
        bail!(
            "{} not found: build it with `cargo build --release -p example` (scripts/bench does)",
            bin.display()
        );
    }
    let started = Instant::now();
    let child = Command::new(bin)
        .env("AMQP_URL", url)
        .env("DB_MAIN_DSN", dsn)
        .env("RUST_LOG", "warn")
        .env("LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let pid = child
        .id()
        .ok_or_else(|| anyhow!("example exited at once"))?;
    let service = Service { child, pid };
    let limit = started + Duration::from_secs(10);
    loop {
        let opts = CallOptions {
            timeout: Some(Duration::from_millis(500)),
            ..CallOptions::default()
        };
        match client.call_raw(ROUTE, &serde_json::Value::Null, opts).await {
            Ok(_) => return Ok((service, started.elapsed())),
            Err(CallError::NoRoute { .. } | CallError::Timeout { .. })
                if Instant::now() < limit =>
            {
                // The queue does not exist yet: the service is still starting.
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            Err(e) => bail!("the example service did not answer within 10 s: {e}"),
        }
    }
}

impl Service {
    /// Sends SIGTERM and waits (≤ 15 s) for a graceful exit.
    pub(crate) async fn stop(mut self) -> anyhow::Result<()> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .await;
        match tokio::time::timeout(Duration::from_secs(15), self.child.wait()).await {
            Ok(Ok(s)) if s.success() => Ok(()),
            Ok(Ok(s)) => bail!("example exited with {s} after SIGTERM"),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => {
                let _ = self.child.start_kill();
                bail!("example did not stop within 15 s of SIGTERM")
            }
        }
    }
}

/// Deletes the example's queues when nobody consumes them and they are empty (another
/// process may be using them; then they stay).
pub(crate) async fn cleanup(conn: &lapin::Connection) {
    for q in QUEUES {
        let Ok(ch) = conn.create_channel().await else {
            return;
        };
        let _ = ch
            .queue_delete(
                (*q).into(),
                lapin::options::QueueDeleteOptions {
                    if_unused: true,
                    if_empty: true,
                    ..Default::default()
                },
            )
            .await;
        let _ = ch.close(200, "done".into()).await;
    }
}
