use std::time::{Duration, Instant};

use e2e::proxy::Proxy;
use worker_kit::Database;
use worker_kit::db::{Client, DbError, Executor};

/// PostgreSQL "goes away" (a proxy in front of it cuts every connection and refuses new
/// ones): queries answer Unavailable within the acquire timeout, and the same client works
/// again once the server is back — no restart, no new client.
#[tokio::test]
async fn unavailable_during_an_outage_and_recovers_after() {
    let (db, _) = crate::model::setup().await;
    let proxy = Proxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let mut config = db.config();
    let through_proxy =
        config
            .dsn
            .replacen("127.0.0.1:5432", &format!("127.0.0.1:{}", proxy.port()), 1);
    assert_ne!(through_proxy, config.dsn, "the DSN points at the proxy");
    config.dsn = through_proxy.into();
    config.acquire_timeout = Duration::from_secs(1);
    config.connect_timeout = Duration::from_secs(1);
    let client = Client::new("main", &config).unwrap();
    client.connect().await.unwrap();
    assert!(client.is_ready().await);
    client.execute("SELECT 1", &[]).await.unwrap();

    proxy.cut().await;
    for _ in 0..3 {
        let started = Instant::now();
        let err = client.execute("SELECT 1", &[]).await.unwrap_err();
        assert!(matches!(err, DbError::Unavailable(_)), "{err:?}");
        // Bounded by the acquire/connect timeouts (1 s each), not hanging.
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "took {:?}",
            started.elapsed()
        );
    }
    assert!(!client.is_ready().await);

    proxy.restore();
    e2e::wait_until(Duration::from_secs(10), "the pool recovers", || {
        let client = client.clone();
        async move { client.execute("SELECT 1", &[]).await.is_ok() }
    })
    .await;
    assert!(client.is_ready().await);
    client.close().await;
    db.drop_db().await;
}
