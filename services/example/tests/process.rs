//! The real binary against the real broker: it answers, and SIGTERM stops it cleanly.

use std::process::Stdio;
use std::time::Duration;

use stubs::example::HelloWorld;
use worker_kit::rpc::{CallOptions, RpcClient};

/// An empty database for the service to connect to (this test needs no tables).
async fn scratch_database() -> (tokio_postgres::Client, String, String) {
    let admin_dsn = worker_kit::db::DbConfig::from_env("main", "postgres")
        .unwrap()
        .dsn;
    let (admin, conn) = tokio_postgres::connect(&admin_dsn, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let name = format!("t_process_{}", std::process::id());
    // One statement per call: DROP/CREATE DATABASE refuse to run in a multi-statement batch.
    for sql in [
        format!("DROP DATABASE IF EXISTS \"{name}\""),
        format!("CREATE DATABASE \"{name}\""),
    ] {
        admin.batch_execute(&sql).await.unwrap();
    }
    let dsn = admin_dsn
        .rsplit_once('/')
        .map(|(base, _)| format!("{base}/{name}"))
        .unwrap();
    (admin, name, dsn)
}

#[tokio::test]
async fn answers_then_stops_on_sigterm_with_exit_0() {
    let url =
        std::env::var("AMQP_URL").unwrap_or_else(|_| worker_kit::config::DEFAULT_AMQP_URL.into());
    let (admin, db_name, dsn) = scratch_database().await;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_example"))
        .env("AMQP_URL", &url)
        .env("DB_MAIN_DSN", &dsn)
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let client = RpcClient::connect(&url).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let short = CallOptions {
            timeout: Some(Duration::from_millis(500)),
            ..CallOptions::default()
        };
        if let Ok(v) = client.call_with(&HelloWorld(None), short).await {
            assert_eq!(v, "Hello world!");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the service never answered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("exits")
        .unwrap();
    assert_eq!(status.code(), Some(0));
    admin
        .batch_execute(&format!(
            "DROP DATABASE IF EXISTS \"{db_name}\" WITH (FORCE)"
        ))
        .await
        .unwrap();
}

/// Starts that fail print no password: not on connect attempts, not in the exit message,
/// whatever the shape of the URL or DSN that holds it.
#[tokio::test]
async fn a_failing_start_logs_no_password() {
    let url =
        std::env::var("AMQP_URL").unwrap_or_else(|_| worker_kit::config::DEFAULT_AMQP_URL.into());
    let cases: [(&str, String, &str); 3] = [
        // An AMQP URL without `//` (a typo the URL parser still accepts).
        (
            "AmqpSecret1",
            "amqp:svc:AmqpSecret1@127.0.0.1:5672/%2f".to_owned(),
            "postgres://postgres@127.0.0.1:5432/postgres",
        ),
        // A wrong AMQP password, retried until AMQP_CONNECT_TIMEOUT_MS.
        (
            "AmqpSecret2",
            "amqp://guest:AmqpSecret2@127.0.0.1:5672/%2f".to_owned(),
            "postgres://postgres@127.0.0.1:5432/postgres",
        ),
        // A DSN with the password as a query parameter, to a server that is not there.
        (
            "DbSecret3",
            url.clone(),
            "postgres://postgres@127.0.0.1:1/example?password=DbSecret3&connect_timeout=1",
        ),
    ];
    for (secret, amqp_url, dsn) in cases {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_example"))
            .env("AMQP_URL", &amqp_url)
            .env("AMQP_CONNECT_TIMEOUT_MS", "1500")
            .env("DB_MAIN_DSN", dsn)
            .env("DB_CONNECT_TIMEOUT_MS", "500")
            .env("DB_STARTUP_TIMEOUT_MS", "1500")
            .env("LOG_FORMAT", "pretty")
            .env("RUST_LOG", "debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(Duration::from_secs(30), out)
            .await
            .expect("a failing start ends")
            .unwrap();
        assert!(!out.status.success(), "{secret}: the start should fail");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.lines().count() > 0, "{secret}: nothing logged");
        for line in text.lines() {
            assert!(!line.contains(secret), "{secret} logged: {line}");
        }
    }
}
