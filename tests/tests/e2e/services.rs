use std::time::Duration;

use stubs::example::{Dictionary, HelloWorld, WillError};
use stubs::greeter::Greet;
use worker_kit::rpc::{CallError, RpcClient};
use worker_kit::{Runner, Setup};

async fn start(
    service: &'static str,
    build: impl AsyncFnOnce(Setup) -> Result<Runner, worker_kit::Error>,
) -> worker_kit::runner::Running {
    build(e2e::setup(service).await)
        .await
        .unwrap()
        .start()
        .await
        .unwrap()
}

#[tokio::test]
async fn example_answers_the_seed_routes() {
    let _serial = e2e::example_service_lock().await;
    let (example, db) = e2e::start_example(|_| {}).await;
    let c = RpcClient::new(&e2e::broker("caller").await, &e2e::config())
        .await
        .unwrap();
    assert_eq!(
        c.call(&HelloWorld(Some("hi".into()))).await.unwrap(),
        "Hello world!"
    );
    assert_eq!(c.call(&HelloWorld(None)).await.unwrap(), "Hello world!");
    let err = c
        .call(&WillError(serde_json::Value::Null))
        .await
        .unwrap_err();
    assert_eq!(err.remote_type(), Some("Exception"));
    let dict = c.call(&Dictionary(serde_json::Map::new())).await.unwrap();
    assert_eq!(dict["bar"], serde_json::json!("baz"));
    example.stop().await.unwrap();
    db.drop_db().await;
}

#[tokio::test]
async fn greeter_calls_example_through_stubs() {
    let _serial = e2e::example_service_lock().await;
    let (example, db) = e2e::start_example(|_| {}).await;
    let greeter = start("greeter", greeter::build).await;
    let c = RpcClient::new(&e2e::broker("caller").await, &e2e::config())
        .await
        .unwrap();
    let g = c.call(&Greet { name: "Ada".into() }).await.unwrap();
    assert_eq!(g.message, "Hello world! (to Ada)");

    // With example gone (and its queue deleted), greeter's nested call fails at once and
    // greeter says so in its reply instead of hanging.
    example.stop().await.unwrap();
    e2e::RawPeer::connect().await.delete(&["hello_world"]).await;
    let err = tokio::time::timeout(
        Duration::from_secs(10),
        c.call(&Greet { name: "Bob".into() }),
    )
    .await
    .expect("answered, not hung")
    .unwrap_err();
    match &err {
        CallError::Remote { error, .. } => {
            assert_eq!(error.error_type, "Unavailable", "{error:?}");
            assert!(error.message.contains("hello_world"), "{error:?}");
        }
        other => panic!("expected greeter's error reply, got {other:?}"),
    }
    greeter.stop().await.unwrap();
    db.drop_db().await;
}
