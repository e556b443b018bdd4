//! Load generation, latency percentiles and CPU accounting from `/proc`.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use serde::Serialize;

/// What one load run produced: latencies of every call and the wall time.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) latencies: Vec<Duration>,
    pub(crate) elapsed: Duration,
}

impl Run {
    pub(crate) fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    /// The `q`-quantile (0..=1) in milliseconds, nearest-rank on the sorted latencies.
    pub(crate) fn percentile_ms(&self, q: f64) -> f64 {
        percentile_ms(&self.latencies, q)
    }
}

pub(crate) fn percentile_ms(latencies: &[Duration], q: f64) -> f64 {
    if latencies.is_empty() {
        return f64::NAN;
    }
    let mut v = latencies.to_vec();
    v.sort_unstable();
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1].as_secs_f64() * 1000.0
}

/// Runs `n` calls of `call`, at most `in_flight` at once, and fails when any call fails
/// or the whole run takes longer than `limit`.
pub(crate) async fn drive<F, Fut>(
    n: usize,
    in_flight: usize,
    limit: Duration,
    call: F,
) -> anyhow::Result<Run>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let started = Instant::now();
    let all = futures::stream::iter(0..n)
        .map(|i| {
            let fut = call(i);
            async move {
                let t = Instant::now();
                fut.await.with_context(|| format!("call {i}"))?;
                Ok::<_, anyhow::Error>(t.elapsed())
            }
        })
        .buffer_unordered(in_flight.max(1))
        .collect::<Vec<_>>();
    let Ok(results) = tokio::time::timeout(limit, all).await else {
        bail!("{n} calls did not finish within {limit:?}");
    };
    let elapsed = started.elapsed();
    let latencies = results.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Run { latencies, elapsed })
}

/// CPU time of a set of processes, sampled before and after a run.
#[derive(Debug, Clone)]
pub(crate) struct CpuProbe {
    ticks_per_sec: f64,
    started: Instant,
    own: u64,
    spawned: Vec<(u32, u64)>,
    broker: Option<(u32, u64)>,
}

/// CPU use over a run, in percent of one core (200% = both cores of a 2-core machine).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(crate) struct CpuUse {
    /// This process (in-process servers and clients).
    pub(crate) bench: f64,
    /// Processes the harness spawned for this run (Python peers, the example service).
    pub(crate) spawned: Option<f64>,
    /// The broker's `beam.smp`.
    pub(crate) broker: Option<f64>,
}

impl CpuProbe {
    pub(crate) fn start(ticks_per_sec: f64, spawned: &[u32], broker: Option<u32>) -> Self {
        Self {
            ticks_per_sec,
            started: Instant::now(),
            own: proc_ticks("self").unwrap_or(0),
            spawned: spawned
                .iter()
                .map(|p| (*p, proc_ticks(&p.to_string()).unwrap_or(0)))
                .collect(),
            broker: broker.map(|p| (p, proc_ticks(&p.to_string()).unwrap_or(0))),
        }
    }

    pub(crate) fn finish(&self) -> CpuUse {
        let wall = self.started.elapsed().as_secs_f64().max(1e-9);
        let pct = |before: u64, after: Option<u64>| {
            after.map(|a| a.saturating_sub(before) as f64 / self.ticks_per_sec / wall * 100.0)
        };
        let spawned = if self.spawned.is_empty() {
            None
        } else {
            Some(
                self.spawned
                    .iter()
                    .filter_map(|(p, b)| pct(*b, proc_ticks(&p.to_string())))
                    .sum(),
            )
        };
        CpuUse {
            bench: pct(self.own, proc_ticks("self")).unwrap_or(f64::NAN),
            spawned,
            broker: self
                .broker
                .and_then(|(p, b)| pct(b, proc_ticks(&p.to_string()))),
        }
    }
}

/// utime + stime of `/proc/<pid>/stat`, in clock ticks.
fn proc_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces; the fields after it are fixed.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3 of stat(5), so utime (14) and stime (15) are at 11 and 12.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// The kernel's clock ticks per second (`getconf CLK_TCK`; 100 on Linux in practice).
pub(crate) fn ticks_per_sec() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// The pid of the local RabbitMQ's Erlang VM, if one runs on this machine.
pub(crate) fn broker_pid() -> Option<u32> {
    let mut found = None;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if comm.trim() == "beam.smp" {
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains("rabbit") {
                return Some(pid);
            }
            found.get_or_insert(pid);
        }
    }
    found
}

/// Resident set size of `pid` in KiB (`VmRSS` of `/proc/<pid>/status`).
pub(crate) fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert!((percentile_ms(&v, 0.5) - 50.0).abs() < 1e-9);
        assert!((percentile_ms(&v, 0.99) - 99.0).abs() < 1e-9);
        assert!((percentile_ms(&v, 1.0) - 100.0).abs() < 1e-9);
        assert!(percentile_ms(&[], 0.5).is_nan());
    }

    #[test]
    fn reads_own_cpu_and_rss() {
        assert!(proc_ticks("self").is_some());
        assert!(rss_kib(std::process::id()).is_some_and(|k| k > 0));
    }
}
