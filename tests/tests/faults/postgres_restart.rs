use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use e2e::wait_until;
use stubs::example::items::{CreateItem, GetItem};
use worker_kit::rpc::{CallError, CallOptions, RpcClient};

/// `pg_ctlcluster <version> main <action>` for the local cluster.
fn pg_ctl(action: &str) -> std::process::ExitStatus {
    let version = std::fs::read_dir("/etc/postgresql")
        .ok()
        .and_then(|mut d| d.next())
        .and_then(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .expect("a local PostgreSQL cluster under /etc/postgresql (the test restarts it)");
    std::process::Command::new("pg_ctlcluster")
        .args([
            "--skip-systemctl-redirect",
            &version,
            "main",
            action,
            "-m",
            "fast",
        ])
        .status()
        .expect("pg_ctlcluster runs")
}

/// Starts PostgreSQL again however the test ends, so a failure does not leave it down.
struct RestartOnDrop;

impl Drop for RestartOnDrop {
    fn drop(&mut self) {
        let _ = pg_ctl("start");
    }
}

#[derive(Default)]
struct Tally {
    ok: AtomicUsize,
    unavailable: AtomicUsize,
    other: AtomicUsize,
}

/// PostgreSQL stopped and started under RPC load: during the outage handlers answer
/// `Unavailable` (quickly: no call times out), afterwards they succeed again — the same
/// process, the same pool.
#[tokio::test]
async fn postgres_restart_under_rpc_load() {
    let _serial = crate::serial().await;
    let _example = e2e::example_service_lock().await;
    let (running, db) = e2e::start_example(|s| {
        s.with_var("DB_ACQUIRE_TIMEOUT_MS", "1000")
            .with_var("DB_CONNECT_TIMEOUT_MS", "1000")
    })
    .await;
    let client = RpcClient::new(&e2e::broker("caller").await, &e2e::config())
        .await
        .unwrap();
    let item = client
        .call(&CreateItem {
            name: "survivor".into(),
            price_cents: 1,
            tags: vec![],
        })
        .await
        .unwrap();

    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = (0..8)
        .map(|_| {
            let (client, tally, stop) = (client.clone(), tally.clone(), stop.clone());
            tokio::spawn(async move {
                let opts = CallOptions {
                    timeout: Some(Duration::from_secs(10)),
                    ..CallOptions::default()
                };
                while !stop.load(Ordering::SeqCst) {
                    match client.call_with(&GetItem { id: item.id }, opts).await {
                        Ok(_) => tally.ok.fetch_add(1, Ordering::SeqCst),
                        Err(CallError::Remote { error, .. })
                            if error.error_type == "Unavailable" =>
                        {
                            tally.unavailable.fetch_add(1, Ordering::SeqCst)
                        }
                        Err(other) => {
                            eprintln!("unexpected: {other}");
                            tally.other.fetch_add(1, Ordering::SeqCst)
                        }
                    };
                }
            })
        })
        .collect();
    wait_until(Duration::from_secs(10), "load is flowing", || {
        let t = tally.clone();
        async move { t.ok.load(Ordering::SeqCst) > 50 }
    })
    .await;

    let restart = RestartOnDrop;
    assert!(pg_ctl("stop").success(), "PostgreSQL stops");
    wait_until(
        Duration::from_secs(15),
        "Unavailable replies during the outage",
        || {
            let t = tally.clone();
            async move { t.unavailable.load(Ordering::SeqCst) >= 20 }
        },
    )
    .await;
    assert!(pg_ctl("start").success(), "PostgreSQL starts");
    drop(restart);
    let ok_before = tally.ok.load(Ordering::SeqCst);
    wait_until(Duration::from_secs(30), "success after the restart", || {
        let t = tally.clone();
        async move { t.ok.load(Ordering::SeqCst) > ok_before + 50 }
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    for l in load {
        l.await.unwrap();
    }
    assert_eq!(
        tally.other.load(Ordering::SeqCst),
        0,
        "only Unavailable during the outage: no timeouts, no internal errors"
    );
    running.stop().await.unwrap();
    db.drop_db().await;
}
