//! The Python seed's example API, as its own end-to-end suite checks it (the
//! request/response and the service-to-service tests), against the Rust `example` service:
//! a team moving from the seed keeps its callers working.

use std::time::Duration;

use e2e::{RawPeer, gzip, reply_json, wait_until};
use serde_json::{Value, json};
use worker_kit::queue::{QueuePublisher, parking_queue};
use worker_kit::rpc::{CallError, RpcClient};

async fn caller() -> RpcClient {
    RpcClient::new(&e2e::broker("seed-api-caller").await, &e2e::config())
        .await
        .unwrap()
}

fn remote(err: CallError) -> worker_kit::wire::envelope::RemoteError {
    match err {
        CallError::Remote { error, .. } => error,
        other => panic!("expected an error reply, got {other:?}"),
    }
}

#[tokio::test]
async fn the_seeds_request_and_response_routes() {
    let _serial = e2e::example_service_lock().await;
    let (running, db) = e2e::start_example(|s| s).await;
    let c = caller().await;

    assert_eq!(
        c.call_json("test", json!("message")).await.unwrap(),
        json!("message that took forever")
    );

    let error = remote(
        c.call_json("will-error", json!("some data"))
            .await
            .unwrap_err(),
    );
    assert_eq!(error.error_type, "Exception");
    assert!(error.message.contains("Just an exception"), "{error:?}");
    assert!(error.message.contains("some data"), "{error:?}");

    assert_eq!(
        c.call_json("dictionary", json!({"foo": "bar", "n": [1, 2]}))
            .await
            .unwrap(),
        json!({"foo": "bar", "n": [1, 2], "bar": "baz"})
    );
    let error = remote(
        c.call_json("dictionary", json!("not an object"))
            .await
            .unwrap_err(),
    );
    assert_eq!(error.error_type, "ValidationError");

    for payload in [Value::Null, json!("anything")] {
        let tables = c.call_json("db", payload).await.unwrap();
        let tables: Vec<&str> = tables
            .as_array()
            .expect("a list of table names")
            .iter()
            .map(|t| t.as_str().expect("a name"))
            .collect();
        assert!(tables.contains(&"simple"), "{tables:?}");
        assert!(tables.contains(&"example_item"), "{tables:?}");
    }

    let pg = db.client().await;
    pg.batch_execute(
        r#"INSERT INTO example_item (string, integer, json) VALUES
               ('wanted', 1, '{"a": 1}'), ('wanted', 2, NULL), ('other', 3, '[]')"#,
    )
    .await
    .unwrap();
    let items = c.call_json("example-items", json!("wanted")).await.unwrap();
    let items = items.as_array().expect("a list of items");
    assert_eq!(items.len(), 2, "{items:?}");
    let mut integers: Vec<i64> = items
        .iter()
        .map(|i| i["integer"].as_i64().unwrap())
        .collect();
    integers.sort_unstable();
    assert_eq!(integers, [1, 2]);
    for item in items {
        assert_eq!(item["string"], json!("wanted"));
        let id = item["_id"].as_str().expect("_id is a string");
        uuid::Uuid::parse_str(id).expect("_id is a plain UUID");
    }
    assert!(items.iter().any(|i| i["json"] == json!({"a": 1})));
    assert_eq!(
        c.call_json("example-items", json!("nobody")).await.unwrap(),
        json!([])
    );
    let error = remote(c.call_json("example-items", Value::Null).await.unwrap_err());
    assert_eq!(error.error_type, "BadRequest", "{error:?}");
    // A request without a payload at all gets an error reply too.
    let mut peer = RawPeer::connect().await;
    let reply = peer
        .request("example-items", &gzip(br#"{}"#), "no-payload")
        .await;
    assert_eq!(reply_json(&reply)["success"], json!(false));

    // The routes the kit added stay.
    assert_eq!(
        c.call_json("hello_world", json!("x")).await.unwrap(),
        json!("Hello world!")
    );
    running.stop().await.unwrap();
    db.drop_db().await;
}

/// Messages in `queue`, ready or delivered and not yet acked.
async fn messages_in(queue: &str) -> u64 {
    let out = tokio::process::Command::new("rabbitmqctl")
        .args(["list_queues", "-q", "name", "messages"])
        .output()
        .await
        .expect("rabbitmqctl is installed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .find(|(name, _)| *name == queue)
        .map_or(0, |(_, n)| n.trim().parse().unwrap_or(0))
}

#[tokio::test]
async fn the_seeds_work_queue_takes_any_json_value() {
    let _serial = e2e::example_service_lock().await;
    let (running, db) = e2e::start_example(|s| s).await;
    let peer = RawPeer::connect().await;
    let parked_before = peer.ready_count(&parking_queue("queue-test")).await;
    let publisher = QueuePublisher::new(&e2e::broker("seed-api-publisher").await);
    for message in [json!({"a": 1}), json!("text"), json!([1, 2]), Value::Null] {
        publisher.publish("queue-test", &message).await.unwrap();
    }
    wait_until(Duration::from_secs(20), "queue-test worked off", || async {
        messages_in("queue-test").await == 0
    })
    .await;
    // Copies are parked before their original is acked: none were.
    assert_eq!(
        peer.ready_count(&parking_queue("queue-test")).await,
        parked_before,
        "nothing parked"
    );
    running.stop().await.unwrap();
    db.drop_db().await;
}
