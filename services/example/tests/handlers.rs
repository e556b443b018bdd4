//! The example's routes called in-process (`worker_kit::testing::TestClient`): the real
//! envelope, gzip, payload validation, deadline and error mapping, without a broker.

use std::time::Duration;

use example::store::Store;
use example::{App, queue_worker, rpc_worker};
use serde_json::json;
use stubs::example::{Dictionary, HelloWorld, QueueTest, WILL_ERROR_TYPE, WillError};
use worker_kit::db::{Client, DbConfig};
use worker_kit::testing::{TestClient, Worked};
use worker_kit::{Deadline, Meta};

/// The example's workers; the store's pool connects lazily and these routes never use it.
fn client() -> TestClient {
    let db = DbConfig::from_vars("main", "example", Vec::new()).unwrap();
    let app = App {
        store: Store::new(Client::new("main", &db).unwrap()),
    };
    TestClient::new()
        .rpc(rpc_worker().with_state(app))
        .queue(queue_worker())
}

#[tokio::test]
async fn hello_world_and_dictionary_answer() {
    let c = client();
    assert_eq!(c.call(&HelloWorld(None)).await.unwrap(), "Hello world!");
    let mut sent = serde_json::Map::new();
    sent.insert("foo".into(), json!(1));
    let dict = c.call(&Dictionary(sent)).await.unwrap();
    assert_eq!(
        serde_json::Value::Object(dict),
        json!({"foo": 1, "bar": "baz"})
    );
}

#[tokio::test]
async fn will_error_answers_its_own_error_type() {
    let err = client().call(&WillError(json!("data"))).await.unwrap_err();
    assert_eq!(err.remote_type(), Some(WILL_ERROR_TYPE));
    assert!(err.to_string().contains("Just an exception"), "{err}");
}

#[tokio::test]
async fn a_payload_that_does_not_fit_is_a_validation_error() {
    let err = client()
        .call_route::<_, String>(
            "hello_world",
            &serde_json::json!({"not": "a string"}),
            Meta::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.remote_type(), Some("ValidationError"), "{err}");
}

#[tokio::test]
async fn a_past_deadline_is_answered_with_timeout() {
    let mut meta = Meta::default();
    meta.deadline = Some(Deadline::after(Duration::ZERO));
    let err = client()
        .call_with(&HelloWorld(None), meta)
        .await
        .unwrap_err();
    assert_eq!(err.remote_type(), Some("Timeout"), "{err}");
}

#[tokio::test]
async fn queue_test_acks_retries_and_parks() {
    let c = client();
    assert_eq!(
        c.send(&QueueTest(json!({"a": 1}))).await.unwrap(),
        Worked::Acked
    );
    assert_eq!(
        c.send(&QueueTest(json!("fail"))).await.unwrap(),
        Worked::Retried { retry_count: 1 }
    );
    let mut last = Meta::default();
    last.retry_count = 100;
    match c.send_with(&QueueTest(json!("fail")), last).await.unwrap() {
        Worked::Parked(e) => assert_eq!(e.error_type, "AskedToFail"),
        other => panic!("expected parked, got {other:?}"),
    }
}
