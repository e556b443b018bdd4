//! The Python seed's stack: aio-pika peers from a virtualenv the harness creates.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The script, next to this crate's sources.
pub(crate) fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("python")
        .join("seed_echo.py")
}

/// The virtualenv's python, creating `venv` (python3 -m venv, pip install aio-pika from
/// PyPI) when it is missing or broken.
///
/// # Errors
///
/// When python3 or pip fail; the message says which.
pub(crate) fn ensure_venv(venv: &Path) -> anyhow::Result<PathBuf> {
    let py = venv.join("bin").join("python");
    let works = |py: &Path| {
        std::process::Command::new(py)
            .args(["-c", "import aio_pika, asyncpg"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if py.exists() && works(&py) {
        return Ok(py);
    }
    eprintln!(
        "bench: creating a virtualenv with aio-pika and asyncpg in {}",
        venv.display()
    );
    let status = std::process::Command::new("python3")
        .args(["-m", "venv"])
        .arg(venv)
        .status()
        .context("running python3 -m venv (is python3 with the venv module installed?)")?;
    if !status.success() {
        bail!("python3 -m venv {} failed", venv.display());
    }
    let status = std::process::Command::new(venv.join("bin").join("pip"))
        .args(["install", "--quiet", "aio-pika>=9,<10", "asyncpg>=0.29"])
        .status()
        .context("running pip")?;
    if !status.success() || !works(&py) {
        bail!("pip install aio-pika asyncpg failed (is PyPI reachable?)");
    }
    Ok(py)
}

/// A running aio-pika echo server; killed on drop.
pub(crate) struct Server {
    child: Child,
}

impl Server {
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}

/// Starts the aio-pika echo server on `route` and waits (≤ 30 s) until it consumes.
pub(crate) async fn serve(py: &Path, url: &str, route: &str) -> anyhow::Result<Server> {
    serve_script(py, &script(), &["serve", url, route]).await
}

/// Starts `script` with `args` and waits (≤ 30 s) until it prints "ready".
pub(crate) async fn serve_script(
    py: &Path,
    script: &Path,
    args: &[&str],
) -> anyhow::Result<Server> {
    let mut child = Command::new(py)
        .arg(script)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("starting the aio-pika server")?;
    let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
    let mut lines = BufReader::new(stdout).lines();
    let ready = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await;
    match ready {
        Ok(Ok(Some(l))) if l.trim() == "ready" => Ok(Server { child }),
        Ok(other) => bail!("aio-pika server did not start: {other:?}"),
        Err(_) => bail!("aio-pika server not ready within 30 s"),
    }
}

/// What the aio-pika client reports.
#[derive(Debug, Deserialize)]
pub(crate) struct ClientReport {
    pub(crate) calls: usize,
    pub(crate) seconds: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    /// CPU seconds the client used during the calls (`time.process_time`).
    pub(crate) cpu_seconds: f64,
}

/// Runs the aio-pika client and returns what it measured.
pub(crate) async fn call(
    py: &Path,
    url: &str,
    route: &str,
    n: usize,
    in_flight: usize,
    payload_file: &Path,
    limit: Duration,
) -> anyhow::Result<ClientReport> {
    let child = Command::new(py)
        .arg(script())
        .args(["call", url, route, &n.to_string(), &in_flight.to_string()])
        .arg(payload_file)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("starting the aio-pika client")?;
    let out = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .map_err(|_| anyhow!("aio-pika client did not finish within {limit:?}"))??;
    if !out.status.success() {
        bail!("aio-pika client failed ({})", out.status);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or("");
    serde_json::from_str(line).with_context(|| format!("aio-pika client printed {line:?}"))
}
