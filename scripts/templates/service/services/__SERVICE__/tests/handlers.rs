//! The routes called in-process (`worker_kit::testing::TestClient`): the real envelope,
//! gzip, payload validation, deadline and error mapping, without a broker. What only the
//! broker decides (redelivery, prefetch, dead-lettering) is in `tests/broker.rs`.

use std::time::Duration;

use __SERVICE__::{App, queue_worker, rpc_worker};
use stubs::__SERVICE__::{AddNote, Hello, HelloReply};
use worker_kit::db::{Client, DbConfig};
use worker_kit::testing::{TestClient, Worked};
use worker_kit::{Deadline, Meta};

/// The service's workers. The database pool connects on first use, and the cases here
/// never reach it: they need neither RabbitMQ nor PostgreSQL.
fn client() -> TestClient {
    let db = DbConfig::from_vars("main", __SERVICE__::SERVICE, Vec::new()).unwrap();
    let app = App {
        db: Client::new("main", &db).unwrap(),
    };
    TestClient::new()
        .rpc(rpc_worker().with_state(app.clone()))
        .queue(queue_worker().with_state(app))
}

#[tokio::test]
async fn hello_greets_the_name_or_the_world() {
    let c = client();
    let named = c
        .call(&Hello {
            name: Some("you".into()),
        })
        .await
        .unwrap();
    assert_eq!(named.message, "Hello, you! (__SERVICE__)");
    let nobody = c.call(&Hello::default()).await.unwrap();
    assert_eq!(nobody.message, "Hello, world! (__SERVICE__)");
    // Every field of `Hello` is optional, so no payload at all (`null`) means the defaults.
    let bare: HelloReply = c
        .call_route("__SERVICE__.hello", &serde_json::Value::Null, Meta::default())
        .await
        .unwrap();
    assert_eq!(bare, nobody);
}

#[tokio::test]
async fn a_payload_that_does_not_fit_is_a_validation_error() {
    let err = client()
        .call_route::<_, serde_json::Value>(
            "__SERVICE__.hello",
            &serde_json::json!({"name": 42}),
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
        .call_with(&Hello::default(), meta)
        .await
        .unwrap_err();
    assert_eq!(err.remote_type(), Some("Timeout"), "{err}");
}

#[tokio::test]
async fn a_blank_note_is_retried_then_parked() {
    let c = client();
    let blank = AddNote { text: " ".into() };
    assert_eq!(c.send(&blank).await.unwrap(), Worked::Retried { retry_count: 1 });
    let mut last = Meta::default();
    last.retry_count = 100;
    match c.send_with(&blank, last).await.unwrap() {
        Worked::Parked(e) => assert_eq!(e.error_type, "BadRequest"),
        other => panic!("expected parked, got {other:?}"),
    }
}

#[tokio::test]
async fn a_note_that_does_not_fit_is_parked_at_once() {
    let body = br#"{"data": {"text": 42}}"#;
    match client()
        .send_body("__SERVICE__.notes.add", body, Meta::default())
        .await
        .unwrap()
    {
        Worked::Parked(e) => assert_eq!(e.error_type, "ValidationError", "{}", e.message),
        other => panic!("expected parked, got {other:?}"),
    }
}
