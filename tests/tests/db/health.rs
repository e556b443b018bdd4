//! The health check the Runner uses to pause consumers: a saturated pool is not an outage.

use std::time::Duration;

use worker_kit::Database;
use worker_kit::db::Client;

/// Every pooled connection is busy (handlers hold them): the database still reads as
/// healthy, so consumers are not paused and resumed under load.
#[tokio::test]
async fn a_saturated_pool_is_not_an_outage() {
    let (db, _) = crate::model::setup().await;
    let mut config = db.config();
    config.pool_size = 1;
    config.acquire_timeout = Duration::from_millis(300);
    let client = Client::new("main", &config).unwrap();
    client.connect().await.unwrap();
    let held = client.connection().await.unwrap();
    assert!(
        client.connection().await.is_err(),
        "the pool is saturated (its one connection is held)"
    );
    assert!(
        client.is_ready().await,
        "a busy database is not an unreachable one"
    );
    drop(held);
    client.close().await;
    db.drop_db().await;
}
