use stubs::example::{Dictionary, HelloWorld, WillError};
use worker_kit::rpc::RpcClient;

#[tokio::test]
async fn example_answers_the_seed_routes() {
    let _serial = e2e::example_service_lock().await;
    let (example, db) = e2e::start_example(|s| s).await;
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
