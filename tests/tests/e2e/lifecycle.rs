//! The process lifecycle, through a real service process: signals during startup, and a
//! worker that ends while the process runs; and through a Runner in the test, a worker
//! that cannot start.

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

/// Two workers, one of which cannot run (made only to describe its routes): the start
/// fails at once with that worker's error, instead of waiting for a readiness report that
/// never comes, and the worker that did start consumes no longer.
#[tokio::test]
async fn a_worker_that_cannot_start_fails_the_start_at_once() {
    use worker_kit::rpc::RpcWorker;
    let served = unique("start-ok");
    let described = unique("start-docs-only");
    let runner = e2e::runner("start-fails")
        .await
        .register_worker(RpcWorker::new().route(&served, answer))
        .register_worker(RpcWorker::<()>::for_docs().route(&described, answer));
    let err = tokio::time::timeout(Duration::from_secs(20), runner.start())
        .await
        .expect("a worker that cannot run ends the start (it hung waiting for readiness)")
        .expect_err("a worker that cannot run fails the start");
    assert!(
        matches!(&err, worker_kit::Error::Config(m) if m.contains("for_docs")),
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
    peer.delete(&[&served, &described]).await;
}
