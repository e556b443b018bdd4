//! The real binary against the real broker: it answers, and SIGTERM stops it cleanly.

use std::process::Stdio;
use std::time::Duration;

use stubs::example::HelloWorld;
use worker_kit::rpc::{CallOptions, RpcClient};

#[tokio::test]
async fn answers_then_stops_on_sigterm_with_exit_0() {
    let url =
        std::env::var("AMQP_URL").unwrap_or_else(|_| worker_kit::config::DEFAULT_AMQP_URL.into());
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_example"))
        .env("AMQP_URL", &url)
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
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("exits")
        .unwrap();
    assert_eq!(status.code(), Some(0));
}
