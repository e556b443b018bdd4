//! The process lifecycle, through a real service process: signals during startup, and a
//! worker that ends while the process runs; and through a Runner in the test, a worker
//! that cannot start, and the consumers a route keeps across pauses and broker cancels.

use std::process::Stdio;
use std::time::Duration;

use e2e::{RawPeer, unique, wait_until};
use tokio::io::{AsyncBufReadExt, BufReader};

fn spawn(route: &str, envs: &[(&str, &str)]) -> tokio::process::Child {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_lifecycle-worker"));
    cmd.env("AMQP_URL", e2e::amqp_url())
        .env("LIFECYCLE_ROUTE", route)
        .env("RUST_LOG", "info")
        .env("LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.spawn().expect("lifecycle-worker starts")
}

/// SIGTERM while the database is still unreachable at startup (its retries would go on
/// for two minutes): the process exits at once instead of running until SIGKILL.
#[tokio::test]
async fn sigterm_during_database_startup_exits_promptly() {
    let route = unique("startup-signal");
    let mut child = spawn(
        &route,
        &[
            // Nothing listens on port 1: every attempt fails and is retried.
            ("LIFECYCLE_DSN", "postgres://postgres@127.0.0.1:1/nothing"),
            ("DB_STARTUP_TIMEOUT_MS", "120000"),
        ],
    );
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await.expect("read stderr") {
            if line.contains("database not reachable yet") {
                return;
            }
        }
        panic!("the service exited before retrying the database");
    })
    .await
    .expect("the service retries the database within 20 s");
    let pid = child.id().expect("running").to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    // Keep reading so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let status = tokio::time::timeout(Duration::from_secs(3), child.wait())
        .await
        .expect("SIGTERM during startup ends the process within seconds")
        .unwrap();
    assert!(status.success(), "a requested stop exits 0, got {status}");
}

/// A worker that ends while nothing asked it to (here: its broker handle was closed)
/// makes the process exit non-zero, so an orchestrator restarts it, instead of leaving a
/// process that looks healthy and consumes nothing.
#[tokio::test]
async fn a_worker_that_ends_unexpectedly_stops_the_process_with_an_error() {
    let route = unique("supervised");
    let mut child = spawn(&route, &[]);
    let stderr = child.stderr.take().expect("stderr");
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(_)) = lines.next_line().await {}
    });
    let peer = RawPeer::connect().await;
    wait_until(Duration::from_secs(20), "the service consumes", || {
        let (peer, route) = (&peer, &route);
        async move { peer.try_counts(route).await.is_ok_and(|(_, c)| c == 1) }
    })
    .await;
    // No reply_to: the handler closes the connection its reply would go out on.
    peer.publish(
        &route,
        br#"{"data": null}"#,
        lapin::BasicProperties::default(),
    )
    .await;
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("the process exits once its worker ended")
        .unwrap();
    assert!(
        !status.success(),
        "an unexpected end exits non-zero, got {status}"
    );
    peer.delete(&[&route]).await;
}

/// A clean start on a broker that has never seen the route (`RPC_QUEUE_DURABLE=auto`, the
/// default, asks the broker first whether the queue exists): nothing is logged at ERROR.
/// The broker's "no such queue" is the answer to that question, not a fault an operator
/// should be paged for.
#[tokio::test]
async fn a_clean_start_on_a_new_route_logs_no_error() {
    let route = unique("fresh-route");
    let mut child = spawn(&route, &[("RPC_QUEUE_DURABLE", "auto")]);
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let seen = tokio::time::timeout(Duration::from_secs(20), async {
        let mut seen = Vec::new();
        while let Some(line) = lines.next_line().await.expect("read stderr") {
            let ready = line.contains(r#""message":"ready""#);
            seen.push(line);
            if ready {
                return seen;
            }
        }
        panic!("the service exited before it was ready: {seen:#?}");
    })
    .await
    .expect("the service is ready within 20 s");
    let errors: Vec<&String> = seen
        .iter()
        .filter(|l| l.contains(r#""level":"ERROR""#))
        .collect();
    assert!(
        errors.is_empty(),
        "a clean start logged errors: {errors:#?}"
    );
    assert!(
        seen.iter().any(|l| l.contains(r#""level":"INFO""#)),
        "the log is read at all: {seen:#?}"
    );
    let _ = child.start_kill();
    let _ = child.wait().await;
    RawPeer::connect().await.delete(&[&route]).await;
}

async fn answer(
    worker_kit::Payload(n): worker_kit::Payload<u32>,
) -> Result<u32, worker_kit::ErrorReply> {
    Ok(n)
}

/// Two workers, one of which cannot run (an allow list names a route it does not serve): the start
/// fails at once with that worker's error, instead of waiting for a readiness report that
/// never comes, and the worker that did start consumes no longer.
#[tokio::test]
async fn a_worker_that_cannot_start_fails_the_start_at_once() {
    use worker_kit::rpc::RpcWorker;
    let served = unique("start-ok");
    let misallowed = unique("start-misallowed");
    let runner = e2e::runner("start-fails")
        .await
        .register_worker(RpcWorker::new().route(&served, answer))
        .register_worker(
            RpcWorker::new()
                .route(&misallowed, answer)
                .allow("a-route-nobody-serves", ["ops"]),
        );
    let err = tokio::time::timeout(Duration::from_secs(20), runner.start())
        .await
        .expect("a worker that cannot run ends the start (it hung waiting for readiness)")
        .expect_err("a worker that cannot run fails the start");
    assert!(
        matches!(&err, worker_kit::Error::Config(m) if m.contains("a-route-nobody-serves")),
        "the failed worker's own error: {err}"
    );
    let peer = RawPeer::connect().await;
    wait_until(
        Duration::from_secs(10),
        "the worker that did start stops consuming",
        || {
            let (peer, served) = (&peer, &served);
            async move { !matches!(peer.try_counts(served).await, Ok((_, c)) if c > 0) }
        },
    )
    .await;
    peer.delete(&[&served, &misallowed]).await;
}

/// A stand-in database whose health the test switches: it drives the Runner's pause on a
/// database outage without taking the shared PostgreSQL down.
#[derive(Clone, Default)]
struct Switch(std::sync::Arc<std::sync::atomic::AtomicBool>);

#[async_trait::async_trait]
impl worker_kit::Database for Switch {
    fn name(&self) -> &str {
        "switch"
    }
    async fn connect(&self) -> Result<(), worker_kit::Error> {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
    async fn is_ready(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
    async fn close(&self) {}
}

async fn slow_work(
    worker_kit::State(done): worker_kit::State<std::sync::Arc<std::sync::atomic::AtomicUsize>>,
    worker_kit::Payload(_): worker_kit::Payload<u32>,
) -> Result<(), worker_kit::ErrorReply> {
    // Work that takes a while, so that prefetched deliveries are still queued in the
    // cancelled consumer's stream when the worker resumes.
    tokio::time::sleep(Duration::from_millis(150)).await;
    done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    Ok(())
}

/// Short database outages under load pause and resume a work-queue worker again and again;
/// the consumer cancelled by a pause ends after the resume. That late end is not a broker
/// cancel: the route keeps exactly one consumer.
#[tokio::test]
async fn repeated_pause_and_resume_under_load_keeps_one_consumer_per_route() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use worker_kit::queue::{QueuePublisher, QueueWorker, parking_queue};
    // Two routes on one worker: their prefetch (4 each) is more than the worker runs at
    // once (concurrency 4), so deliveries wait in the cancelled consumers' streams.
    let routes = [unique("pause-flap-a"), unique("pause-flap-b")];
    let db = Switch::default();
    let done = Arc::new(AtomicUsize::new(0));
    let mut config = e2e::config();
    config.pause_on_db_outage = worker_kit::config::PausePolicy::Queue;
    config.db_health_interval = Duration::from_millis(20);
    let running = e2e::start(
        worker_kit::Runner::new(
            "pause-flap",
            Arc::new(config),
            e2e::broker("pause-flap").await,
        )
        .register_shared_database(Arc::new(db.clone()))
        .register_worker(
            QueueWorker::new()
                .prefetch(4)
                .concurrency(4)
                .route(&routes[0], slow_work)
                .route(&routes[1], slow_work)
                .with_state(done.clone()),
        ),
    )
    .await;
    let publisher = QueuePublisher::new(&e2e::broker("pause-flap-publisher").await);
    let total = 120u32;
    for i in 0..total {
        publisher
            .publish(&routes[(i % 2) as usize], &i)
            .await
            .unwrap();
    }
    let peer = RawPeer::connect().await;
    for _ in 0..6 {
        // Under load: something was handled since the last resume.
        let before = done.load(Ordering::SeqCst);
        wait_until(Duration::from_secs(10), "a message handled", || {
            let done = done.clone();
            async move { done.load(Ordering::SeqCst) > before }
        })
        .await;
        db.0.store(false, Ordering::SeqCst);
        wait_until(Duration::from_secs(10), "paused: no consumer", || {
            let (peer, routes) = (&peer, &routes);
            async move { peer.counts(&routes[0]).await.1 + peer.counts(&routes[1]).await.1 == 0 }
        })
        .await;
        db.0.store(true, Ordering::SeqCst);
        wait_until(Duration::from_secs(10), "resumed: consuming", || {
            let (peer, routes) = (&peer, &routes);
            async move { peer.counts(&routes[0]).await.1 >= 1 && peer.counts(&routes[1]).await.1 >= 1 }
        })
        .await;
    }
    wait_until(Duration::from_secs(60), "every message handled", || {
        let done = done.clone();
        async move { done.load(Ordering::SeqCst) >= total as usize }
    })
    .await;
    for route in &routes {
        assert_eq!(
            peer.counts(route).await.1,
            1,
            "exactly one consumer on {route} after repeated pause/resume"
        );
    }
    running.stop().await.unwrap();
    for route in &routes {
        peer.delete(&[route, &parking_queue(route)]).await;
    }
}

/// A work queue deleted under its running worker (the broker cancels the consumer) is
/// declared and consumed again, by exactly one consumer.
#[tokio::test]
async fn a_deleted_work_queue_is_consumed_again_once() {
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;
    use worker_kit::queue::{QueueWorker, parking_queue};
    let route = unique("deleted-work");
    let running = e2e::start(
        e2e::runner("deleted-work").await.register_worker(
            QueueWorker::new()
                .route(&route, slow_work)
                .with_state(Arc::new(AtomicUsize::new(0))),
        ),
    )
    .await;
    let peer = RawPeer::connect().await;
    assert_eq!(peer.counts(&route).await.1, 1, "the worker consumes");
    peer.delete(&[&route]).await;
    wait_until(
        Duration::from_secs(10),
        "the queue is consumed again",
        || {
            let (peer, route) = (&peer, &route);
            async move { matches!(peer.try_counts(route).await, Ok((_, 1))) }
        },
    )
    .await;
    running.stop().await.unwrap();
    peer.delete(&[&route, &parking_queue(&route)]).await;
}

/// The broker connection drops during the worker's first declarations (a broker blip
/// before the process is ready): the start retries within `AMQP_CONNECT_TIMEOUT_MS`, like
/// a first connect, and the process becomes ready; no thread panics at any point (lapin's
/// I/O thread did, "Task did not complete", once the failed start ended the runtime).
#[tokio::test]
async fn a_broker_blip_during_the_first_declarations_is_retried() {
    let proxy =
        e2e::proxy::Proxy::start_dropping_first_declaration("127.0.0.1:5672".parse().unwrap())
            .await;
    let route = unique("declare-blip");
    let url = format!("amqp://guest:guest@127.0.0.1:{}/%2f", proxy.port());
    let mut child = spawn(
        &route,
        &[("AMQP_URL", &url), ("AMQP_CONNECT_TIMEOUT_MS", "15000")],
    );
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let seen = tokio::time::timeout(Duration::from_secs(30), async {
        let mut seen = Vec::new();
        while let Some(line) = lines.next_line().await.expect("read stderr") {
            let ready = line.contains(r#""message":"ready""#);
            seen.push(line);
            if ready {
                return Ok(seen);
            }
        }
        Err(seen)
    })
    .await
    .expect("the service is ready or exits within 30 s");
    let seen = match seen {
        Ok(seen) => seen,
        Err(seen) => {
            let status = child.wait().await.unwrap();
            panic!("a blip during the first declarations ended the start ({status}): {seen:#?}");
        }
    };
    assert_eq!(
        proxy.refused_declarations(),
        1,
        "the proxy dropped a connection at its first declaration"
    );
    // A clean stop; then everything the process wrote, start to exit: no thread panicked.
    let pid = child.id().expect("running").to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let mut rest = Vec::new();
    while let Ok(Some(line)) = lines.next_line().await {
        rest.push(line);
    }
    let status = child.wait().await.unwrap();
    assert!(
        status.success(),
        "a requested stop exits 0, got {status}: {rest:#?}"
    );
    let panics: Vec<&String> = seen
        .iter()
        .chain(&rest)
        .filter(|l| l.contains("panicked"))
        .collect();
    assert!(panics.is_empty(), "a thread panicked: {panics:#?}");
    RawPeer::connect().await.delete(&[&route]).await;
}

/// An RPC worker with many routes, started twice (first on queues nobody declared yet,
/// then on queues that exist): its route queues are probed on the process's own
/// connection, and whether the broker refuses transient queues is asked once per
/// connection, not on a connection of its own per route and session.
#[tokio::test]
async fn a_multi_route_rpc_worker_opens_no_connection_per_route() {
    use worker_kit::rpc::RpcWorker;
    let proxy = e2e::proxy::Proxy::start("127.0.0.1:5672".parse().unwrap()).await;
    let url = format!("amqp://guest:guest@127.0.0.1:{}/%2f", proxy.port());
    let routes: Vec<String> = (0..6).map(|i| unique(&format!("probe-{i}"))).collect();
    let start = || async {
        let broker = worker_kit::Broker::connect(&url, "probe-count", Duration::from_secs(10))
            .await
            .expect("connects through the proxy");
        let mut worker = RpcWorker::new();
        for route in &routes {
            worker = worker.route(route, answer);
        }
        let mut config = e2e::config();
        config.amqp_url = url.parse().expect("the proxy URL parses");
        config.rpc_queue_durable = worker_kit::config::RpcQueueDurable::Auto;
        e2e::start(
            worker_kit::Runner::new("probe-count", std::sync::Arc::new(config), broker)
                .register_worker(worker),
        )
        .await
    };
    let running = start().await;
    let first = proxy.accepted();
    running.stop().await.unwrap();
    let running = start().await;
    let second = proxy.accepted() - first;
    running.stop().await.unwrap();
    eprintln!("connections opened: {first} on new route queues, {second} on existing ones");
    // The process's connection, and at most one more to ask whether the broker takes
    // transient queues (a refusal closes the connection it came on).
    assert!(
        first <= 2,
        "a start on {} new route queues opened {first} connections",
        routes.len()
    );
    assert_eq!(
        second,
        1,
        "a start on {} existing route queues opened {second} connections",
        routes.len()
    );
    let refs: Vec<&str> = routes.iter().map(String::as_str).collect();
    RawPeer::connect().await.delete(&refs).await;
}

async fn always_fails(
    worker_kit::Payload(_): worker_kit::Payload<u32>,
) -> Result<(), worker_kit::ErrorReply> {
    Err(worker_kit::ErrorReply::bad_request("never works"))
}

/// Runs `rabbitmqctl` with `args`; panics with its error output when it fails.
fn rabbitmqctl(args: &[&str]) {
    let out = std::process::Command::new("rabbitmqctl")
        .arg("-q")
        .args(args)
        .output()
        .expect("rabbitmqctl runs on the broker's host");
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// How many deliveries `route` received, from the process's metrics.
fn received(metrics: &worker_kit::observe::Metrics, route: &str) -> u64 {
    let prefix = format!("worker_kit_messages_received_total{{route=\"{route}\",");
    metrics
        .encode()
        .lines()
        .find(|l| l.starts_with(&prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// A parked copy the broker will not store (a policy makes the parking queue refuse every
/// message): the original goes back to its queue after a pause that grows with each
/// failure, instead of coming straight back in a deliver → requeue loop; once the parking
/// queue takes messages again, the message is parked.
#[tokio::test]
async fn a_copy_that_cannot_be_stored_is_requeued_after_a_growing_pause() {
    use worker_kit::queue::{QueuePublisher, QueueWorker, parking_queue};
    let route = unique("unstorable");
    let parked = parking_queue(&route);
    let policy = format!("{route}.refuse");
    let mut config = e2e::config();
    // Recording on: the test counts deliveries in the process's metrics.
    config.metrics_addr = Some("127.0.0.1:0".parse().unwrap());
    let broker = e2e::broker("unstorable").await;
    let metrics = broker.metrics().clone();
    let running = e2e::start(
        worker_kit::Runner::new("unstorable", std::sync::Arc::new(config), broker).register_worker(
            QueueWorker::new()
                .max_retries(0)
                .route(&route, always_fails),
        ),
    )
    .await;
    rabbitmqctl(&[
        "set_policy",
        "--apply-to",
        "queues",
        "--priority",
        "999",
        &policy,
        &format!("^{}$", parked.replace('.', "\\.")),
        r#"{"max-length":0,"overflow":"reject-publish"}"#,
    ]);
    QueuePublisher::new(&e2e::broker("unstorable-publisher").await)
        .publish(&route, &1u32)
        .await
        .unwrap();
    wait_until(
        Duration::from_secs(20),
        "the message came back after its copy was refused",
        || async { received(&metrics, &route) >= 2 },
    )
    .await;
    // An observation window, not a synchronization: how many times the message comes
    // back in it is what is asserted (without a pause: thousands).
    let before = received(&metrics, &route);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during = received(&metrics, &route) - before;
    eprintln!("deliveries in the 3 s window while the copy could not be stored: {during}");
    assert!(
        during <= 20,
        "the message came back {during} times in 3 s while its copy could not be stored"
    );
    rabbitmqctl(&["clear_policy", &policy]);
    let peer = RawPeer::connect().await;
    wait_until(
        Duration::from_secs(30),
        "the message is parked once the parking queue takes it",
        || {
            let (peer, parked) = (&peer, &parked);
            async move { peer.counts(parked).await.0 == 1 }
        },
    )
    .await;
    running.stop().await.unwrap();
    peer.delete(&[&route, &parked]).await;
}

async fn record_work(
    worker_kit::State(seen): worker_kit::State<
        std::sync::Arc<std::sync::Mutex<std::collections::HashSet<u32>>>,
    >,
    worker_kit::Payload(n): worker_kit::Payload<u32>,
) -> Result<(), worker_kit::ErrorReply> {
    // Slow enough that a backlog waits in the broker, and in the worker's buffers, at the
    // stop.
    tokio::time::sleep(Duration::from_millis(200)).await;
    seen.lock().unwrap().insert(n);
    Ok(())
}

/// A busy work-queue service restarted with `QUEUE_MAX_RETRIES=0`: the deliveries it held
/// but never started (the broker's buffer beyond what it runs at once) cost no attempt,
/// so the next process runs every message and parks none as `Redelivered`.
#[tokio::test]
async fn restarting_a_busy_worker_parks_nothing_that_never_ran() {
    use std::collections::HashSet;
    use std::sync::{Arc, Mutex};
    use worker_kit::queue::{QueuePublisher, QueueWorker, parking_queue};
    let routes = [unique("restart-busy-a"), unique("restart-busy-b")];
    let seen = Arc::new(Mutex::new(HashSet::new()));
    let start = || async {
        let mut config = e2e::config();
        config.max_retries = 0;
        // Two routes (four deliveries buffered each) on a worker that runs four handlers
        // at once: at the stop, deliveries wait unstarted.
        config.prefetch = 4;
        config.worker_concurrency = 4;
        let worker = QueueWorker::new()
            .route(&routes[0], record_work)
            .route(&routes[1], record_work)
            .with_state(seen.clone());
        e2e::start(
            worker_kit::Runner::new(
                "restart-busy",
                Arc::new(config),
                e2e::broker("restart-busy").await,
            )
            .register_worker(worker),
        )
        .await
    };
    let running = start().await;
    let total = 60u32;
    let publisher = QueuePublisher::new(&e2e::broker("restart-busy-publisher").await);
    for i in 0..total {
        publisher
            .publish(&routes[(i % 2) as usize], &i)
            .await
            .unwrap();
    }
    wait_until(Duration::from_secs(20), "some work done", || {
        let seen = seen.clone();
        async move { seen.lock().unwrap().len() >= 8 }
    })
    .await;
    running.stop().await.unwrap();
    let running = start().await;
    let peer = RawPeer::connect().await;
    wait_until(
        Duration::from_secs(60),
        "every message run or parked",
        || {
            let (peer, routes, seen) = (&peer, &routes, seen.clone());
            async move {
                let mut parked = 0;
                for route in routes {
                    parked += peer.counts(&parking_queue(route)).await.0;
                }
                seen.lock().unwrap().len() + parked as usize >= total as usize
            }
        },
    )
    .await;
    running.stop().await.unwrap();
    for route in &routes {
        let parked = peer.counts(&parking_queue(route)).await.0;
        assert_eq!(
            parked, 0,
            "{route}: messages parked after a restart (deliveries that never ran counted as failed attempts)"
        );
    }
    assert_eq!(
        seen.lock().unwrap().len(),
        total as usize,
        "every message ran"
    );
    let refs: Vec<&str> = routes.iter().map(String::as_str).collect();
    peer.delete_routes(&refs).await;
}
