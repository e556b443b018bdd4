//! The table, the targets (ratios within one run) and the JSON file.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::measure::{CpuUse, Run};
use crate::names;

#[derive(Debug, Serialize)]
pub(crate) struct Row {
    /// Which round of `--repeat` (1-based).
    pub(crate) round: usize,
    pub(crate) section: String,
    pub(crate) name: String,
    pub(crate) calls: usize,
    pub(crate) seconds: f64,
    pub(crate) per_sec: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) cpu: CpuUse,
    pub(crate) note: String,
}

impl Row {
    pub(crate) fn from_run(section: &str, name: &str, run: &Run, cpu: CpuUse, note: &str) -> Self {
        Self {
            round: 1,
            section: section.into(),
            name: name.into(),
            calls: run.latencies.len(),
            seconds: run.elapsed.as_secs_f64(),
            per_sec: run.rate(),
            p50_ms: run.percentile_ms(0.5),
            p99_ms: run.percentile_ms(0.99),
            cpu,
            note: note.into(),
        }
    }

    pub(crate) fn from_python(
        section: &str,
        name: &str,
        rep: &crate::python::ClientReport,
        cpu: CpuUse,
        note: &str,
    ) -> Self {
        Self {
            round: 1,
            section: section.into(),
            name: name.into(),
            calls: rep.calls,
            seconds: rep.seconds,
            per_sec: rep.calls as f64 / rep.seconds,
            p50_ms: rep.p50_ms,
            p99_ms: rep.p99_ms,
            cpu,
            note: note.into(),
        }
    }

    pub(crate) fn print(&self) {
        let opt = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.0}%"));
        let us = |v: f64| {
            if v.is_finite() {
                format!("{v:.0}")
            } else {
                "-".to_owned()
            }
        };
        println!(
            "{:<62} {:>7} {:>9.0} {:>8.2} {:>8.2} {:>7} {:>8} {:>7} {:>8} {:>7}",
            self.name,
            self.calls,
            self.per_sec,
            self.p50_ms,
            self.p99_ms,
            format!("{:.0}%", self.cpu.bench),
            opt(self.cpu.spawned),
            opt(self.cpu.broker),
            us(self.cpu_us_per_call()),
            us(self.broker_us_per_call()),
        );
    }

    /// CPU per call in µs, this process and the peer it spawned (client + server).
    pub(crate) fn cpu_us_per_call(&self) -> f64 {
        (self.cpu.bench + self.cpu.spawned.unwrap_or(0.0)) * 1e4 / self.per_sec
    }

    /// The broker's CPU per call in µs (NaN when the broker's process was not found).
    pub(crate) fn broker_us_per_call(&self) -> f64 {
        self.cpu.broker.map_or(f64::NAN, |b| b * 1e4 / self.per_sec)
    }
}

/// The table's columns: CPU as a share of one core over the load (this process, a peer
/// process it spawned, RabbitMQ), then per call in µs (this process + peer, RabbitMQ),
/// steadier than the rate on a shared machine.
pub(crate) fn print_header() {
    println!(
        "{:<62} {:>7} {:>9} {:>8} {:>8} {:>7} {:>8} {:>7} {:>8} {:>7}",
        "what",
        "calls",
        "calls/s",
        "p50 ms",
        "p99 ms",
        "CPU me",
        "CPU peer",
        "CPU mq",
        "µs/call",
        "mq µs"
    );
    println!("{}", "-".repeat(140));
}

/// The example service's process.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Footprint {
    pub(crate) first_call_ms: f64,
    pub(crate) idle_rss_kib: Option<u64>,
    pub(crate) rss_after_10k_kib: Option<u64>,
    pub(crate) rss_after_100k_kib: Option<u64>,
}

fn mib(k: Option<u64>) -> String {
    k.map_or_else(|| "?".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
}

impl Footprint {
    pub(crate) fn print(&self) {
        println!(
            "example service: first call answered {:.0} ms after spawn; RSS idle {}, after 10k calls {}, after 100k calls {}",
            self.first_call_ms,
            mib(self.idle_rss_kib),
            mib(self.rss_after_10k_kib),
            mib(self.rss_after_100k_kib)
        );
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct Target {
    pub(crate) what: String,
    pub(crate) value: f64,
    pub(crate) goal: String,
    pub(crate) met: bool,
}

#[derive(Debug, Serialize)]
pub(crate) struct Report {
    pub(crate) started: String,
    pub(crate) commit: Option<String>,
    pub(crate) quick: bool,
    pub(crate) broker: String,
    pub(crate) cpus: usize,
    /// One row per load: the median round when there were several.
    pub(crate) rows: Vec<Row>,
    /// Every round's rows, when there were several.
    pub(crate) rounds: Vec<Row>,
    pub(crate) footprint: Option<Footprint>,
    pub(crate) targets: Vec<Target>,
    pub(crate) failures: Vec<String>,
}

impl Report {
    pub(crate) fn new(started: chrono::DateTime<chrono::Utc>, quick: bool, broker: &str) -> Self {
        let commit = std::process::Command::new("git")
            .args(["rev-parse", "--short", "HEAD"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
        Self {
            started: started.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            commit,
            quick,
            broker: broker.to_owned(),
            cpus: std::thread::available_parallelism().map_or(0, usize::from),
            rows: Vec::new(),
            rounds: Vec::new(),
            footprint: None,
            targets: Vec::new(),
            failures: Vec::new(),
        }
    }

    /// Replaces the rows by one per load: the round with the median calls/s, and the
    /// median of each latency and CPU figure over the rounds.
    pub(crate) fn keep_medians(&mut self) {
        self.rounds = std::mem::take(&mut self.rows);
        let mut names: Vec<&str> = Vec::new();
        for r in &self.rounds {
            if !names.contains(&r.name.as_str()) {
                names.push(&r.name);
            }
        }
        let median = |mut v: Vec<f64>| -> f64 {
            v.sort_by(f64::total_cmp);
            v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
        };
        let opt_median = |v: Vec<Option<f64>>| -> Option<f64> {
            let v: Vec<f64> = v.into_iter().flatten().collect();
            (!v.is_empty()).then(|| median(v))
        };
        let mut rows = Vec::new();
        for name in names {
            let all: Vec<&Row> = self.rounds.iter().filter(|r| r.name == name).collect();
            let Some(first) = all.first() else { continue };
            rows.push(Row {
                round: 0,
                section: first.section.clone(),
                name: name.to_owned(),
                calls: first.calls,
                seconds: median(all.iter().map(|r| r.seconds).collect()),
                per_sec: median(all.iter().map(|r| r.per_sec).collect()),
                p50_ms: median(all.iter().map(|r| r.p50_ms).collect()),
                p99_ms: median(all.iter().map(|r| r.p99_ms).collect()),
                cpu: CpuUse {
                    bench: median(all.iter().map(|r| r.cpu.bench).collect()),
                    spawned: opt_median(all.iter().map(|r| r.cpu.spawned).collect()),
                    broker: opt_median(all.iter().map(|r| r.cpu.broker).collect()),
                },
                note: if all.len() > 1 {
                    format!("{} (median of {} rounds)", first.note, all.len())
                } else {
                    first.note.clone()
                },
            });
        }
        self.rows = rows;
    }

    /// Computes the targets (docs/performance.md) from the rows present.
    #[expect(
        clippy::too_many_lines,
        reason = "one target after another, in docs/performance.md's order, each a few lines"
    )]
    pub(crate) fn finish(&mut self) {
        let mut t = Vec::new();
        // With several rounds, each ratio is taken within a round (both sides measured
        // under the same load from the rest of the machine) and the median kept.
        let source: &[Row] = if self.rounds.is_empty() {
            &self.rows
        } else {
            &self.rounds
        };
        let per_round = |a: &str, b: &str, metric: fn(&Row) -> f64| -> Option<f64> {
            let mut v: Vec<f64> = source
                .iter()
                .filter(|r| r.name == a)
                .filter_map(|ra| {
                    let rb = source
                        .iter()
                        .find(|r| r.name == b && (r.round == ra.round || r.section == "python"))?;
                    Some(metric(ra) / metric(rb))
                })
                .collect();
            v.sort_by(f64::total_cmp);
            v.get(v.len() / 2).copied()
        };
        let mut ratio = |what: &str, v: Option<f64>, goal: &str, ok: fn(f64) -> bool| {
            if let Some(v) = v {
                t.push(Target {
                    what: what.into(),
                    value: v,
                    goal: goal.into(),
                    met: ok(v),
                });
            }
        };
        let rate = |r: &Row| r.per_sec;
        let p50 = |r: &Row| r.p50_ms;
        let p99 = |r: &Row| r.p99_ms;
        ratio(
            "kit echo calls/s, metrics on / off, 64 in flight",
            per_round(names::KIT_METRICS_ON, names::KIT_METRICS_OFF, rate),
            ">= 0.97",
            |v| v >= 0.97,
        );
        ratio(
            "kit echo calls/s, traces sampled 100 % / tracing off",
            per_round(names::KIT_TRACES_ALL, names::KIT_TRACES_OFF, rate),
            ">= 0.90",
            |v| v >= 0.90,
        );
        ratio(
            "kit echo calls/s, traces sampled 0 % / tracing off",
            per_round(names::KIT_TRACES_NONE, names::KIT_TRACES_OFF, rate),
            ">= 0.98",
            |v| v >= 0.98,
        );
        ratio(
            "(info) calls/s, tracing off with traceparent sent / off",
            per_round(names::KIT_TRACES_HEADER, names::KIT_TRACES_OFF, rate),
            ">= 0.98",
            |v| v >= 0.98,
        );
        ratio(
            "(info) calls/s, traces sampled 0 % / off with traceparent",
            per_round(names::KIT_TRACES_NONE, names::KIT_TRACES_HEADER, rate),
            ">= 0.98",
            |v| v >= 0.98,
        );
        let cpu_per_call = Row::cpu_us_per_call;
        ratio(
            "(info) bench CPU per call, traces sampled 100 % / off",
            per_round(names::KIT_TRACES_ALL, names::KIT_TRACES_OFF, cpu_per_call),
            "<= 1.10",
            |v| v <= 1.10,
        );
        ratio(
            "(info) bench CPU per call, traces sampled 0 % / off",
            per_round(names::KIT_TRACES_NONE, names::KIT_TRACES_OFF, cpu_per_call),
            "<= 1.02",
            |v| v <= 1.02,
        );
        // Protocol v2's targets (docs/performance.md): against the lean peers keeping the
        // same broker-side guarantees, and against the bare ones as the stretch.
        let broker_per_call = Row::broker_us_per_call;
        ratio(
            "kit / lean + protocol guarantees calls/s, 64 in flight",
            per_round(names::KIT_PAR, names::LEAN_PAR_PROTOCOL, rate),
            ">= 0.95",
            |v| v >= 0.95,
        );
        ratio(
            "kit / bare lean calls/s, 64 in flight",
            per_round(names::KIT_PAR, names::LEAN_PAR, rate),
            ">= 0.85",
            |v| v >= 0.85,
        );
        ratio(
            "RabbitMQ CPU per call, kit / bare lean, 64 in flight",
            per_round(names::KIT_PAR, names::LEAN_PAR, broker_per_call),
            "<= 1.15",
            |v| v <= 1.15,
        );
        ratio(
            "(info) RabbitMQ CPU per call, kit / lean + guarantees",
            per_round(names::KIT_PAR, names::LEAN_PAR_PROTOCOL, broker_per_call),
            "<= 1.15",
            |v| v <= 1.15,
        );
        ratio(
            "(info) RabbitMQ CPU per call, lean + guarantees / bare",
            per_round(names::LEAN_PAR_PROTOCOL, names::LEAN_PAR, broker_per_call),
            "<= 1.15",
            |v| v <= 1.15,
        );
        ratio(
            "(info) client + server CPU per call, kit / lean + guarantees",
            per_round(
                names::KIT_PAR,
                names::LEAN_PAR_PROTOCOL,
                Row::cpu_us_per_call,
            ),
            "<= 1.05",
            |v| v <= 1.05,
        );
        ratio(
            "kit / lean + protocol guarantees p50, sequential",
            per_round(names::KIT_SEQ, names::LEAN_SEQ_PROTOCOL, p50),
            "<= 1.1",
            |v| v <= 1.1,
        );
        ratio(
            "(info) kit / lean p99, 64 in flight",
            per_round(names::KIT_PAR, names::LEAN_PAR, p99),
            "<= 1.5",
            |v| v <= 1.5,
        );
        ratio(
            "kit / aio-pika calls/s, 64 in flight",
            per_round(names::KIT_PAR, names::PY_PAR, rate),
            ">= 10",
            |v| v >= 10.0,
        );
        ratio(
            "CRUD: kit / lean + protocol guarantees calls/s",
            per_round(names::KIT_CRUD, names::LEAN_CRUD_PROTOCOL, rate),
            ">= 0.95",
            |v| v >= 0.95,
        );
        ratio(
            "(info) CRUD: kit / bare lean calls/s",
            per_round(names::KIT_CRUD, names::LEAN_CRUD, rate),
            ">= 0.9",
            |v| v >= 0.9,
        );
        ratio(
            "CRUD: kit / aio-pika + asyncpg calls/s",
            per_round(names::KIT_CRUD, names::PY_CRUD, rate),
            ">= 5",
            |v| v >= 5.0,
        );
        ratio(
            "kit queue / lean queue (persistent + confirms) msgs/s",
            per_round(names::KIT_QUEUE, names::LEAN_QUEUE, rate),
            ">= 0.8",
            |v| v >= 0.8,
        );
        ratio(
            "kit queue / lean queue (transient, no confirms) msgs/s",
            per_round(names::KIT_QUEUE, names::LEAN_QUEUE_TRANSIENT, rate),
            ">= 0.8",
            |v| v >= 0.8,
        );
        if let Some(fp) = &self.footprint {
            if let Some(idle) = fp.idle_rss_kib {
                t.push(Target {
                    what: "idle RSS (MiB)".into(),
                    value: idle as f64 / 1024.0,
                    goal: "<= 20".into(),
                    met: idle <= 20 * 1024,
                });
            }
            if let (Some(a), Some(b)) = (fp.rss_after_100k_kib, fp.rss_after_10k_kib) {
                let v = a as f64 / b as f64;
                t.push(Target {
                    what: "RSS after 100k / after 10k calls".into(),
                    value: v,
                    goal: "<= 1.10".into(),
                    met: v <= 1.10,
                });
            }
            t.push(Target {
                what: "first call answered after start (ms)".into(),
                value: fp.first_call_ms,
                goal: "<= 300".into(),
                met: fp.first_call_ms <= 300.0,
            });
        }
        self.targets = t;
    }

    pub(crate) fn print_targets(&self) {
        if self.targets.is_empty() {
            return;
        }
        println!("\ntargets (ratios from this run)");
        for t in &self.targets {
            println!(
                "  {:<58} {:>8.2}  goal {:<7} {}",
                t.what,
                t.value,
                t.goal,
                if t.met { "met" } else { "NOT met" }
            );
        }
        for f in &self.failures {
            println!("  FAILED: {f}");
        }
    }

    /// Writes `<dir>/<start time>.json`; returns its path.
    ///
    /// # Errors
    ///
    /// When the directory cannot be created or the file written.
    pub(crate) fn write(&self, dir: &Path) -> anyhow::Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("{}.json", self.started.replace(':', "-")));
        std::fs::write(&path, serde_json::to_vec_pretty(self)?)?;
        Ok(path)
    }
}
