//! Metrics and health through the real broker and database: the `METRICS_ADDR` listener
//! of a running service is scraped and asked for readiness while its broker connection,
//! its database and its drain change under it. Nothing here stops the shared RabbitMQ or
//! PostgreSQL: the broker connection is closed by the broker on request (on a vhost of the
//! test's own), and the database lost is one made and dropped for the test.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use e2e::http::{get, sample};
use e2e::{RawPeer, gzip, unique, wait_until};
use tokio::sync::Notify;
use worker_kit::config::Config;
use worker_kit::queue::{QueueWorker, parking_queue};
use worker_kit::rpc::{CallError, CallOptions, RpcClient, RpcWorker};
use worker_kit::runner::Running;
use worker_kit::testing::BrokerFixture;
use worker_kit::{ErrorReply, Payload, Runner, State};

const WAIT: Duration = Duration::from_secs(30);

/// The process's main broker connection (work and event consumers have one of their own).
const MAIN: [(&str, &str); 1] = [("connection", "main")];

/// The test settings with the listener on a free local port.
fn metrics_config() -> Config {
    let mut c = e2e::config();
    c.metrics_addr = Some(([127, 0, 0, 1], 0).into());
    c.db_health_interval = Duration::from_millis(100);
    c
}

/// A service name no other test uses, so its broker connection can be told apart.
fn service_name(prefix: &str) -> &'static str {
    Box::leak(unique(prefix).into_boxed_str())
}

async fn runner(service: &'static str, config: Config) -> Runner {
    let broker = worker_kit::Broker::connect(&config.amqp_url, service, Duration::from_secs(10))
        .await
        .expect("RabbitMQ must be running for the integration tests");
    Runner::new(service, Arc::new(config), broker)
}

fn addr(running: &Running) -> std::net::SocketAddr {
    running.metrics_addr().expect("METRICS_ADDR was set")
}

async fn readyz(running: &Running) -> (u16, String) {
    get(addr(running), "/readyz").await
}

/// Every fourth number is not found; the rest are echoed.
async fn lookup(Payload(n): Payload<u32>) -> Result<u32, ErrorReply> {
    if n % 4 == 0 {
        Err(ErrorReply::not_found(format!("{n} is not there")))
    } else {
        Ok(n)
    }
}

async fn flaky(Payload(_): Payload<serde_json::Value>) -> Result<(), ErrorReply> {
    Err(ErrorReply::new("Flaky", "this work always fails"))
}

/// N calls in, exactly N counted: received, settled by outcome, errors by type, on the
/// serving side; calls by outcome on the calling side; retries and parking on a work queue.
#[tokio::test]
#[expect(
    clippy::too_many_lines,
    reason = "one scrape checked against every count the calls made, side by side"
)]
async fn a_scrape_after_n_calls_counts_exactly_n() {
    const N: u32 = 20;
    let route = unique("obs.lookup");
    let work = unique("obs.work");
    let running = runner(service_name("obs-count"), metrics_config())
        .await
        .register_worker(RpcWorker::new().concurrency(8).route(&route, lookup))
        .register_worker(QueueWorker::new().max_retries(1).route(&work, flaky))
        .start()
        .await
        .expect("starts");
    let caller = e2e::broker("obs-caller").await;
    let client = RpcClient::new(&caller, &metrics_config()).await.unwrap();
    let calls = (0..N).map(|n| {
        let (client, route) = (client.clone(), route.clone());
        async move {
            client
                .call_route::<_, u32>(&route, &n, CallOptions::default())
                .await
        }
    });
    let results = futures::future::join_all(calls).await;
    let not_found = results
        .iter()
        .filter(|r| matches!(r, Err(e) if e.remote_type() == Some("NotFound")))
        .count();
    assert_eq!(not_found, 5, "{results:?}");
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 15);
    let nobody = unique("obs.nobody");
    let missing = client.call_json(&nobody, serde_json::json!(1)).await;
    assert!(
        matches!(missing, Err(CallError::NoRoute { .. })),
        "{missing:?}"
    );

    let peer = RawPeer::connect().await;
    peer.publish(
        &work,
        &gzip(br#"{"data": "x"}"#),
        lapin::BasicProperties::default().with_delivery_mode(2),
    )
    .await;
    let at = addr(&running);
    wait_until(WAIT, "the work message was parked", || {
        let work = work.clone();
        async move {
            let (_, body) = get(at, "/metrics").await;
            sample(&body, "worker_kit_queue_parked_total", &[("route", &work)]) == Some(1.0)
        }
    })
    .await;

    let (status, body) = get(at, "/metrics").await;
    assert_eq!(status, 200);
    let rpc = |name: &str, extra: &[(&str, &str)]| {
        let mut labels = vec![("route", route.as_str()), ("kind", "rpc")];
        labels.extend_from_slice(extra);
        sample(&body, name, &labels)
    };
    assert_eq!(
        rpc("worker_kit_messages_received_total", &[]),
        Some(f64::from(N))
    );
    assert_eq!(
        rpc(
            "worker_kit_handler_duration_seconds_count",
            &[("outcome", "ok")]
        ),
        Some(15.0)
    );
    assert_eq!(
        rpc(
            "worker_kit_handler_duration_seconds_count",
            &[("outcome", "error")]
        ),
        Some(5.0)
    );
    assert_eq!(
        rpc(
            "worker_kit_handler_errors_total",
            &[("error_type", "NotFound")]
        ),
        Some(5.0)
    );
    let queue = |name: &str, extra: &[(&str, &str)]| {
        let mut labels = vec![("route", work.as_str()), ("kind", "queue")];
        labels.extend_from_slice(extra);
        sample(&body, name, &labels)
    };
    assert_eq!(
        queue("worker_kit_messages_received_total", &[]),
        Some(2.0),
        "first try and one retry"
    );
    assert_eq!(queue("worker_kit_queue_retries_total", &[]), Some(1.0));
    assert_eq!(queue("worker_kit_queue_parked_total", &[]), Some(1.0));
    assert_eq!(
        queue(
            "worker_kit_handler_errors_total",
            &[("error_type", "Flaky")]
        ),
        Some(2.0)
    );
    let worker = [("worker", route.as_str()), ("kind", "rpc")];
    assert_eq!(
        sample(&body, "worker_kit_worker_in_flight_limit", &worker),
        Some(8.0)
    );
    assert_eq!(
        sample(&body, "worker_kit_worker_in_flight", &worker),
        Some(0.0)
    );
    assert_eq!(
        sample(&body, "worker_kit_worker_consuming", &worker),
        Some(1.0)
    );
    assert_eq!(
        sample(&body, "worker_kit_broker_connected", &MAIN),
        Some(1.0)
    );
    assert_eq!(
        sample(&body, "worker_kit_broker_reconnects_total", &MAIN),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &body,
            "worker_kit_broker_connected",
            &[("connection", "consume")]
        ),
        Some(1.0),
        "the work queue's consume-only connection"
    );
    assert!(
        !body.contains("correlation"),
        "no correlation ids as labels"
    );

    // The caller's own registry: its calls by outcome.
    let calls = caller.metrics().encode();
    let call = |r: &str, outcome: &str| {
        sample(
            &calls,
            "worker_kit_rpc_client_calls_total",
            &[("route", r), ("outcome", outcome)],
        )
    };
    assert_eq!(call(&route, "ok"), Some(15.0));
    assert_eq!(call(&route, "Remote"), Some(5.0));
    assert_eq!(call(&nobody, "NoRoute"), Some(1.0));
    assert_eq!(
        sample(
            &calls,
            "worker_kit_rpc_client_duration_seconds_count",
            &[("route", &route), ("outcome", "ok")]
        ),
        Some(15.0)
    );

    assert_eq!(get(at, "/livez").await.0, 200);
    assert_eq!(readyz(&running).await, (200, "ready\n".to_owned()));
    running.stop().await.unwrap();
    caller.close().await;
    peer.delete(&[&work, &parking_queue(&work)]).await;
}

/// The exposition of a service with every kind of metric in it (RPC and work routes, a
/// client, a database pool) passes `promtool check metrics`.
#[tokio::test]
async fn the_exposition_passes_promtool() {
    let promtool = which("promtool").unwrap_or_else(|| {
        panic!(
            "promtool is not installed: it comes with Debian's `prometheus` package (apt-get install prometheus; scripts/test installs it)"
        )
    });
    let db = e2e::pg::TestDb::create("obs_promtool", "").await;
    let route = unique("obs.lint");
    let running = runner(service_name("obs-lint"), metrics_config())
        .await
        .register_database(worker_kit::db::Client::new("main", &db.config()).unwrap())
        .register_worker(RpcWorker::new().route(&route, lookup))
        .start()
        .await
        .expect("starts");
    let client = RpcClient::new(running.broker(), &e2e::config())
        .await
        .unwrap();
    for n in 0..4u32 {
        let _ = client
            .call_route::<_, u32>(&route, &n, CallOptions::default())
            .await;
    }
    let (_, body) = get(addr(&running), "/metrics").await;
    for name in [
        "worker_kit_db_pool_max_size",
        "worker_kit_db_pool_size",
        "worker_kit_db_pool_in_use",
        "worker_kit_db_pool_waiting",
        "worker_kit_db_pool_acquire_timeouts_total",
    ] {
        assert!(
            sample(&body, name, &[("database", "main")]).is_some(),
            "{name} missing:\n{body}"
        );
    }
    assert_eq!(
        sample(
            &body,
            "worker_kit_db_pool_max_size",
            &[("database", "main")]
        ),
        Some(16.0)
    );
    let out = run_with_stdin(&promtool, &["check", "metrics"], &body);
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\non:\n{body}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // What a Prometheus server asks for: OpenMetrics, with the same samples.
    let (_, om) = e2e::http::request(
        hyper::Method::GET,
        &format!("http://{}/metrics", addr(&running)),
        &[(
            "accept",
            "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
        )],
    )
    .await;
    assert!(om.ends_with("# EOF\n"), "{om}");
    assert!(
        om.contains("# TYPE worker_kit_messages_received counter"),
        "{om}"
    );
    running.stop().await.unwrap();
    db.drop_db().await;
}

/// The broker connection closed (by the broker, on an operator's `close_connection`, as a
/// network fault would) and kept from coming back (the user's permissions on the test's vhost
/// taken away): not ready while it is down, ready again once it reconnects.
#[tokio::test]
async fn readiness_follows_the_broker_connection() {
    let service = service_name("obs-broker");
    let fx = BrokerFixture::new(&metrics_config()).expect("a vhost for the test");
    let vhost = fx.vhost().to_owned();
    let route = unique("obs.broker");
    let running = fx
        .setup(service)
        .await
        .unwrap()
        .runner()
        .register_worker(RpcWorker::new().route(&route, lookup))
        .start()
        .await
        .expect("starts");
    assert_eq!(readyz(&running).await.0, 200);
    let user = e2e::amqp_url()
        .parse::<lapin::uri::AMQPUri>()
        .unwrap()
        .authority
        .userinfo
        .username;
    // The broker lists a connection once it is open; the service has one on this vhost.
    let found = std::sync::Mutex::new(Vec::new());
    wait_until(WAIT, "the broker lists the service's connection", || {
        let (vhost, found) = (&vhost, &found);
        async move {
            let listed = rabbitmqctl(&[
                "list_connections",
                "-q",
                "--no-table-headers",
                "pid",
                "vhost",
            ]);
            let pids: Vec<String> = listed
                .lines()
                .filter_map(|l| l.split_once('\t'))
                .filter(|(_, v)| v == vhost)
                .map(|(pid, _)| pid.to_owned())
                .collect();
            let one = pids.len() == 1;
            *found.lock().unwrap() = pids;
            one
        }
    })
    .await;
    let pid = found.into_inner().unwrap().remove(0);
    // Kept from coming back until the permissions return.
    let _ = rabbitmqctl(&["clear_permissions", "-p", &vhost, &user]);
    let _ = rabbitmqctl(&["close_connection", &pid, "readiness test"]);
    wait_until(WAIT, "/readyz says the broker is gone", || async {
        let (status, body) = readyz(&running).await;
        status == 503 && body.contains("broker disconnected")
    })
    .await;
    let (_, metrics) = get(addr(&running), "/metrics").await;
    assert_eq!(
        sample(&metrics, "worker_kit_broker_connected", &MAIN),
        Some(0.0)
    );
    // Still down while the broker refuses it.
    let (status, body) = readyz(&running).await;
    assert_eq!(status, 503, "{body}");
    let _ = rabbitmqctl(&["set_permissions", "-p", &vhost, &user, ".*", ".*", ".*"]);
    wait_until(
        WAIT,
        "/readyz is ready again after the reconnect",
        || async { readyz(&running).await.0 == 200 },
    )
    .await;
    let (_, metrics) = get(addr(&running), "/metrics").await;
    assert_eq!(
        sample(&metrics, "worker_kit_broker_connected", &MAIN),
        Some(1.0)
    );
    assert_eq!(
        sample(&metrics, "worker_kit_broker_reconnects_total", &MAIN),
        Some(1.0)
    );
    running.stop().await.unwrap();
    fx.finish().await.unwrap();
}

/// A registered database that goes away (dropped: connections refused) makes the service
/// not ready; once it is back, ready again.
#[tokio::test]
async fn readiness_follows_the_database() {
    let db = e2e::pg::TestDb::create("obs_ready", "").await;
    let route = unique("obs.db");
    let running = runner(service_name("obs-db"), metrics_config())
        .await
        .register_database(worker_kit::db::Client::new("main", &db.config()).unwrap())
        .register_worker(RpcWorker::new().route(&route, lookup))
        .start()
        .await
        .expect("starts");
    assert_eq!(readyz(&running).await.0, 200);
    let admin = admin().await;
    admin
        .batch_execute(&format!("DROP DATABASE \"{}\" WITH (FORCE)", db.name))
        .await
        .unwrap();
    wait_until(WAIT, "/readyz says the database is unreachable", || async {
        let (status, body) = readyz(&running).await;
        status == 503 && body.contains("database main unreachable")
    })
    .await;
    admin
        .batch_execute(&format!("CREATE DATABASE \"{}\"", db.name))
        .await
        .unwrap();
    wait_until(WAIT, "/readyz is ready again", || async {
        readyz(&running).await.0 == 200
    })
    .await;
    running.stop().await.unwrap();
    db.drop_db().await;
}

#[derive(Clone, Default)]
struct Gate {
    started: Arc<AtomicUsize>,
    open: Arc<Notify>,
}

async fn gated(State(g): State<Gate>, Payload(n): Payload<u32>) -> Result<u32, ErrorReply> {
    g.started.fetch_add(1, Ordering::SeqCst);
    g.open.notified().await;
    Ok(n)
}

/// A drain (what SIGTERM starts, through the Runner's shutdown token) makes the service not
/// ready at once, before its consumers are cancelled, and the listener keeps answering
/// while the handler in flight finishes.
#[tokio::test]
async fn readiness_turns_false_as_soon_as_a_drain_starts() {
    let gate = Gate::default();
    let route = unique("obs.drain");
    let running = runner(service_name("obs-drain"), metrics_config())
        .await
        .register_worker(
            RpcWorker::new()
                .route(&route, gated)
                .with_state(gate.clone()),
        )
        .start()
        .await
        .expect("starts");
    let at = addr(&running);
    let client = RpcClient::new(&e2e::broker("obs-drain-caller").await, &e2e::config())
        .await
        .unwrap();
    let call = tokio::spawn({
        let (client, route) = (client.clone(), route.clone());
        async move {
            client
                .call_route::<_, u32>(&route, &7, CallOptions::default())
                .await
        }
    });
    wait_until(WAIT, "the handler is in flight", || {
        let g = gate.clone();
        async move { g.started.load(Ordering::SeqCst) == 1 }
    })
    .await;
    let (_, metrics) = get(at, "/metrics").await;
    assert_eq!(
        sample(
            &metrics,
            "worker_kit_worker_in_flight",
            &[("worker", &route)]
        ),
        Some(1.0)
    );
    assert_eq!(get(at, "/readyz").await.0, 200);
    let peer = RawPeer::connect().await;
    assert_eq!(peer.counts(&route).await.1, 1, "consuming");
    running.shutdown_token().cancel();
    // Synchronously after the signal: no task has run yet, so no consumer was cancelled.
    assert_eq!(running.health().readiness(), Err("draining".to_owned()));
    let stopping = tokio::spawn(running.stop());
    let (status, body) = get(at, "/readyz").await;
    assert_eq!(status, 503);
    assert!(body.starts_with("draining\n"), "{body}");
    assert!(!stopping.is_finished(), "the handler holds the drain");
    wait_until(WAIT, "the handler finished", || {
        let g = gate.clone();
        let call = &call;
        async move {
            g.open.notify_waiters();
            call.is_finished()
        }
    })
    .await;
    assert_eq!(
        call.await.unwrap().unwrap(),
        7,
        "the call in flight was answered"
    );
    stopping.await.unwrap().unwrap();
    assert!(
        tokio::net::TcpStream::connect(at).await.is_err(),
        "the listener stops with the Runner"
    );
}

async fn admin() -> tokio_postgres::Client {
    let (client, conn) =
        tokio_postgres::connect(&e2e::pg::server_dsn("postgres"), tokio_postgres::NoTls)
            .await
            .expect("PostgreSQL must be running for the integration tests");
    tokio::spawn(conn);
    client
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
    })
}

fn run_with_stdin(program: &std::path::Path, args: &[&str], input: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn rabbitmqctl(args: &[&str]) -> String {
    let out = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .expect("rabbitmqctl");
    assert!(
        out.status.success(),
        "rabbitmqctl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `SERVICE healthcheck` (what the Docker `HEALTHCHECK` runs) asks a real service process's
/// listener: 0 once it is ready, 1 once it is gone, 2 without `METRICS_ADDR`.
#[tokio::test]
async fn the_healthcheck_command_asks_the_running_process() {
    let exe = env!("CARGO_BIN_EXE_lifecycle-worker");
    // A free port for the listener (healthcheck reads the same METRICS_ADDR).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let metrics_addr = format!("127.0.0.1:{port}");
    let probe = |what: &'static str| {
        let metrics_addr = metrics_addr.clone();
        async move {
            tokio::process::Command::new(exe)
                .args(["healthcheck", what])
                .env("METRICS_ADDR", metrics_addr)
                .output()
                .await
                .expect("run the healthcheck")
        }
    };
    let unset = tokio::process::Command::new(exe)
        .arg("healthcheck")
        .env_remove("METRICS_ADDR")
        .output()
        .await
        .unwrap();
    assert_eq!(unset.status.code(), Some(2), "{unset:?}");
    let mut child = tokio::process::Command::new(exe)
        .env("AMQP_URL", e2e::amqp_url())
        .env("LIFECYCLE_ROUTE", unique("obs.health"))
        .env("METRICS_ADDR", &metrics_addr)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("lifecycle-worker starts");
    wait_until(WAIT, "healthcheck readyz succeeds", || async {
        probe("readyz").await.status.success()
    })
    .await;
    assert!(probe("livez").await.status.success());
    let pid = child.id().expect("running").to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("stops")
        .unwrap();
    assert!(status.success(), "{status}");
    let gone = probe("readyz").await;
    assert_eq!(gone.status.code(), Some(1), "{gone:?}");
    assert!(
        String::from_utf8_lossy(&gone.stderr).contains("/readyz"),
        "{gone:?}"
    );
}
