//! One run of the generator: services up, cases sent, invariants checked at checkpoints and
//! at the end, a summary printed; a failure names the seed and the cases to replay.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use e2e::users::BrokerUsers;
use worker_kit::queue::QueuePublisher;

use crate::attacker::Attacker;
use crate::broker_view::{self, Holdings};
use crate::cases::{self, Case, Context, Family, What};
use crate::ordinary::Caller;
use crate::services::{self, SERVICES, Services};
use crate::settings::Settings;

/// Cases between two looks at the broker's lists (each look takes about a second).
const CHECK_EVERY: usize = 400;

/// How long the queues get to drain at the end (retry waits are at most 400 ms here).
const DRAIN: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Stats {
    sent: BTreeMap<Family, usize>,
    refused: BTreeMap<Family, usize>,
    /// The broker's reasons, a few of each family's.
    reasons: BTreeMap<Family, std::collections::BTreeSet<String>>,
    /// Time spent sending each family's cases.
    took: BTreeMap<Family, Duration>,
    /// Time spent making each family's cases.
    made: BTreeMap<Family, Duration>,
    /// Time of each phase.
    phases: Vec<(&'static str, Duration)>,
    ordinary_answered: usize,
    checkpoints: usize,
}

/// The services' broker connections as the process sees them, compared to the first: a
/// change is noted with the last case sent before it was seen.
fn watch_connections(
    brokers: &[(&'static str, worker_kit::Broker)],
    last_sent: Arc<AtomicUsize>,
) -> (
    tokio::task::JoinHandle<()>,
    Arc<std::sync::Mutex<Vec<String>>>,
) {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let brokers = brokers.to_vec();
    let noted = seen.clone();
    let task = tokio::spawn(async move {
        let first: Vec<_> = brokers
            .iter()
            .map(|(_, b)| b.connection_now().map(|c| Arc::as_ptr(&c) as usize))
            .collect();
        let mut reported = vec![false; brokers.len()];
        loop {
            for (i, (name, b)) in brokers.iter().enumerate() {
                let now = b.connection_now().map(|c| Arc::as_ptr(&c) as usize);
                let up = b.connection_now().is_some_and(|c| c.status().connected());
                if !reported[i] && (now != first[i] || !up) {
                    reported[i] = true;
                    noted.lock().unwrap().push(format!(
                        "{name}'s broker connection was lost or replaced; the last case sent before it was seen: {}",
                        last_sent.load(Ordering::SeqCst)
                    ));
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    (task, seen)
}

fn peak_rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

/// Waits (≤ 60 s) until the services' queues hold nothing but parked messages; `Err` lists
/// what is still there.
async fn drained(vhost: &str, reply_queue: &str) -> Result<(), String> {
    let deadline = Instant::now() + DRAIN;
    loop {
        let left: Vec<String> = broker_view::queues(vhost)
            .await
            .into_iter()
            .filter(|(name, ready, unacked)| {
                !name.ends_with(".dead") && name != reply_queue && ready + unacked > 0
            })
            .map(|(name, ready, unacked)| {
                format!("{name}: {ready} ready, {unacked} unacknowledged")
            })
            .collect();
        if left.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "queues still hold messages after {DRAIN:?}: {}",
                left.join("; ")
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Cases `from..to`, one line each (what a checkpoint failure prints to narrow it down).
fn list_cases(cx: &Context, from: usize, to: usize) -> String {
    let mut s = String::new();
    for k in from..to {
        let case = cases::make(cx, k);
        let what = match &case.what {
            What::Ordinary(op) => format!("{op:?}"),
            What::Message(m) => format!("{:?}, {}", m.target, m.body.recipe),
        };
        let _ = writeln!(s, "  case {k}: {} — {what}", case.family.name());
    }
    s
}

struct Failure(String);

/// Runs the generator with `settings`; panics with a report naming the seed and the cases
/// when an invariant does not hold.
pub(crate) async fn run(settings: &Settings) {
    let started = Instant::now();
    let Services {
        mut fx,
        write,
        read,
        brokers,
    } = services::start().await;
    println!(
        "hostile generator: services up in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let vhost = fx.vhost().to_owned();
    let mut users = BrokerUsers::new("hostile");
    let base_url = fx.config().amqp_url.clone();
    let (mallory_url, broker_max_message) = tokio::join!(
        async { users.add_on(&base_url, "mallory", [".*", ".*", ".*"]) },
        broker_view::max_message_size()
    );
    let mut attacker = Attacker::connect(&mallory_url).await;
    let rpc = fx
        .client()
        .await
        .expect("an RPC client on the services' vhost");
    let tasks_setup = fx
        .setup("ordinary-tasks")
        .await
        .expect("a publisher connection");
    let caller = Caller {
        rpc,
        tasks: QueuePublisher::new(&tasks_setup.broker),
    };
    let config = services::settings();
    let cx = Context {
        seed: settings.seed,
        families: settings.families.clone(),
        reply_queue: attacker.reply_queue.clone(),
        user: users.name("mallory"),
        others: vec![
            services::service_user(&fx.config()),
            "example".into(),
            "catalog".into(),
        ],
        broker_max_message,
        max_message_bytes: config.max_message_bytes,
    };
    // Every service consumes before the baseline is taken.
    let deadline = Instant::now() + Duration::from_secs(20);
    let baseline = loop {
        let h = broker_view::holdings(&vhost, &SERVICES).await;
        if SERVICES
            .iter()
            .all(|s| h.consuming_channels.contains_key(*s))
            || Instant::now() > deadline
        {
            break h;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!(
        "hostile generator: started in {:.1} s, watching {baseline:?}",
        started.elapsed().as_secs_f64()
    );
    let last_sent = Arc::new(AtomicUsize::new(0));
    let (watcher, lost) = watch_connections(&brokers, last_sent.clone());

    let mut stats = Stats::default();
    stats.phases.push(("start", started.elapsed()));
    let sending = Instant::now();
    let outcome = send_and_check(
        settings,
        &cx,
        &baseline,
        &mut attacker,
        &caller,
        &mut stats,
        &last_sent,
        &lost,
    )
    .await;
    stats.phases.push(("send and check", sending.elapsed()));
    let ending = Instant::now();
    let outcome = match outcome {
        Ok(()) => {
            final_checks(
                &vhost, &baseline, &attacker, &write, &read, &lost, &mut stats,
            )
            .await
        }
        failed => failed,
    };
    stats
        .phases
        .push(("drain and final checks", ending.elapsed()));
    watcher.abort();
    let summary = summary(settings, &cx, &stats, &baseline, started);
    println!("{summary}");

    attacker.close().await;
    drop(caller);
    tasks_setup.broker.close().await;
    let finished = fx.finish().await;
    drop(users);
    write.drop_db().await;
    read.drop_db().await;
    if let Err(Failure(report)) = outcome {
        panic!(
            "an invariant did not hold (seed {}):\n{report}",
            settings.seed
        );
    }
    finished.expect("the services stop cleanly and leave nothing on their vhost");
}

/// The cases to send: all of them, or the one asked for.
fn indices(settings: &Settings) -> std::ops::Range<usize> {
    match settings.case {
        Some(k) => k..k + 1,
        None => 0..settings.cases,
    }
}

#[allow(clippy::too_many_arguments)]
async fn send_and_check(
    settings: &Settings,
    cx: &Context,
    baseline: &Holdings,
    attacker: &mut Attacker,
    caller: &Caller,
    stats: &mut Stats,
    last_sent: &AtomicUsize,
    lost: &std::sync::Mutex<Vec<String>>,
) -> Result<(), Failure> {
    let range = indices(settings);
    let rss_mib = settings.rss_bound(cx.broker_max_message);
    let mut batch_start = range.start;
    for k in range.clone() {
        let t = Instant::now();
        let case = cases::make(cx, k);
        *stats.made.entry(case.family).or_default() += t.elapsed();
        *stats.sent.entry(case.family).or_default() += 1;
        last_sent.store(k, Ordering::SeqCst);
        let t = Instant::now();
        if let Err(e) = send(&case, cx, attacker, caller, stats).await {
            let seen = lost.lock().unwrap().join("\n  ");
            return Err(Failure(format!(
                "{e}\n{}{}the cases since the last checkpoint:\n{}",
                cases::describe(&case, cx.seed),
                if seen.is_empty() {
                    String::new()
                } else {
                    format!("seen from inside the process:\n  {seen}\n")
                },
                list_cases(cx, batch_start, k + 1)
            )));
        }
        *stats.took.entry(case.family).or_default() += t.elapsed();
        if (k + 1 - range.start).is_multiple_of(CHECK_EVERY) || k + 1 == range.end {
            checkpoint(
                cx,
                baseline,
                attacker,
                stats,
                lost,
                rss_mib,
                batch_start,
                k + 1,
            )
            .await?;
            batch_start = k + 1;
        }
    }
    Ok(())
}

async fn send(
    case: &Case,
    cx: &Context,
    attacker: &mut Attacker,
    caller: &Caller,
    stats: &mut Stats,
) -> Result<(), String> {
    match &case.what {
        What::Ordinary(op) => {
            caller
                .call(*op, case.index)
                .await
                .map_err(|e| format!("an ordinary call was not answered as it should be: {e}"))?;
            stats.ordinary_answered += 1;
        }
        What::Message(m) => {
            let (exchange, key) = m.target.address();
            let confirm = m.may_be_refused(&cx.user);
            for i in 0..m.repeat {
                // Each copy of a repeated message is its own request: one answer each.
                let mut props = m.props.clone();
                if i > 0
                    && let Some(id) = props.correlation_id().clone()
                {
                    props = props.with_correlation_id(format!("{id}.{i}").into());
                }
                if let Err(why) = attacker
                    .publish(exchange, key, &m.body.bytes, props, confirm)
                    .await
                {
                    *stats.refused.entry(case.family).or_default() += 1;
                    let reasons = stats.reasons.entry(case.family).or_default();
                    if reasons.len() < 4 {
                        reasons.insert(why);
                    }
                }
            }
        }
    }
    Ok(())
}

/// The invariants that can be checked while cases are still being handled.
#[allow(clippy::too_many_arguments)]
async fn checkpoint(
    cx: &Context,
    baseline: &Holdings,
    attacker: &Attacker,
    stats: &mut Stats,
    lost: &std::sync::Mutex<Vec<String>>,
    rss_mib: u64,
    from: usize,
    to: usize,
) -> Result<(), Failure> {
    stats.checkpoints += 1;
    let mut problems = Vec::new();
    problems.extend(lost.lock().unwrap().iter().cloned());
    let now = broker_view::holdings_of(&broker_view::owners(baseline)).await;
    problems.extend(broker_view::closed(baseline, &now));
    let twice: Vec<String> = attacker
        .replies
        .lock()
        .unwrap()
        .iter()
        // Only the generator's own ids (`h<case>`) are unique to one request.
        .filter(|(cid, n)| {
            **n > 1
                && cid
                    .strip_prefix('h')
                    .is_some_and(|k| k.parse::<usize>().is_ok())
        })
        .map(|(cid, n)| format!("{cid} answered {n} times"))
        .collect();
    if !twice.is_empty() {
        problems.push(format!(
            "requests answered more than once (run again, or redelivered): {}",
            twice.join(", ")
        ));
    }
    let peak = peak_rss_mib();
    if peak > rss_mib {
        problems.push(format!(
            "peak resident memory {peak} MiB is over the bound of {rss_mib} MiB"
        ));
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(Failure(format!(
        "after cases {from}..{to}:\n  {}\nthe cases of this stretch (replay one with --case K, or the stretch with --cases {to}):\n{}",
        problems.join("\n  "),
        list_cases(cx, from, to)
    )))
}

/// At the end: every queue drained, nothing closed, the read model in step with the write
/// model (no forged event applied).
async fn final_checks(
    vhost: &str,
    baseline: &Holdings,
    attacker: &Attacker,
    write: &e2e::pg::TestDb,
    read: &e2e::pg::TestDb,
    lost: &std::sync::Mutex<Vec<String>>,
    stats: &mut Stats,
) -> Result<(), Failure> {
    drained(vhost, &attacker.reply_queue)
        .await
        .map_err(Failure)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (w, r) = e2e::read_model::items(write, read).await;
        if w == r {
            break;
        }
        if Instant::now() >= deadline {
            let forged: Vec<i64> = r.iter().filter(|i| !w.contains(i)).map(|i| i.id).collect();
            return Err(Failure(format!(
                "the read model differs from the write model after 30 s: {} items against {}; items only the read model has (or has differently): {forged:?}",
                r.len(),
                w.len()
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stats.checkpoints += 1;
    let now = broker_view::holdings_of(&broker_view::owners(baseline)).await;
    let mut problems: Vec<String> = lost.lock().unwrap().clone();
    problems.extend(broker_view::closed(baseline, &now));
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Failure(format!("at the end:\n  {}", problems.join("\n  "))))
    }
}

fn summary(
    settings: &Settings,
    cx: &Context,
    stats: &Stats,
    baseline: &Holdings,
    started: Instant,
) -> String {
    let mut s = format!(
        "hostile generator: seed {}, {} case(s){}, {:.1} s\n",
        settings.seed,
        stats.sent.values().sum::<usize>(),
        settings
            .case
            .map(|k| format!(" (case {k} only)"))
            .unwrap_or_default(),
        started.elapsed().as_secs_f64()
    );
    let _ = writeln!(
        s,
        "  {:<14} {:>6} {:>18} {:>9} {:>9}",
        "family", "cases", "refused by broker", "make (s)", "send (s)"
    );
    for f in &cx.families {
        let _ = writeln!(
            s,
            "  {:<14} {:>6} {:>18} {:>9.1} {:>9.1}",
            f.name(),
            stats.sent.get(f).copied().unwrap_or(0),
            stats.refused.get(f).copied().unwrap_or(0),
            stats.made.get(f).map_or(0.0, Duration::as_secs_f64),
            stats.took.get(f).map_or(0.0, Duration::as_secs_f64)
        );
    }
    for (f, reasons) in &stats.reasons {
        for r in reasons {
            let _ = writeln!(s, "  refused ({}): {r}", f.name());
        }
    }
    let off: Vec<&str> = Family::ALL
        .iter()
        .filter(|f| !cx.families.contains(f))
        .map(|f| f.name())
        .collect();
    if !off.is_empty() {
        let _ = writeln!(s, "  switched off: {}", off.join(", "));
    }
    let phases: Vec<String> = stats
        .phases
        .iter()
        .map(|(p, d)| format!("{p} {:.1} s", d.as_secs_f64()))
        .collect();
    let _ = writeln!(s, "  phases: {}", phases.join(", "));
    let conns: usize = baseline.connections.values().map(|p| p.len()).sum();
    let chans: usize = baseline.consuming_channels.values().map(|p| p.len()).sum();
    let _ = writeln!(
        s,
        "  checks: {} look(s) at the broker's lists ({conns} service connections, {chans} consuming channels watched), {} ordinary call(s) answered, queues drained, read model in step; peak resident memory {} MiB (bound {} MiB); broker max_message_size {} bytes",
        stats.checkpoints,
        stats.ordinary_answered,
        peak_rss_mib(),
        settings.rss_bound(cx.broker_max_message),
        cx.broker_max_message
    );
    s
}
