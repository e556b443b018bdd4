//! The real-broker test tier (`worker_kit::testing::BrokerFixture`): a vhost per test, the
//! services' Runners in-process on it, and a leak check on the way out.

use stubs::example::HelloWorld;
use stubs::greeter::Greet;
use worker_kit::Setup;
use worker_kit::db::{Client, DbConfig};
use worker_kit::rpc::{CallError, RpcClient};
use worker_kit::testing::{BrokerFixture, FixtureError};

/// The example service without its database (the routes called here never touch it).
async fn example_without_db(setup: Setup) -> Result<worker_kit::Runner, worker_kit::Error> {
    let db = DbConfig::from_vars("main", "example", Vec::new())?;
    let app = example::App {
        store: example::store::Store::new(
            Client::new("main", &db).map_err(|e| worker_kit::Error::Database(e.to_string()))?,
        ),
    };
    Ok(setup
        .runner()
        .register_worker(example::rpc_worker().with_state(app))
        .register_worker(example::queue_worker()))
}

#[tokio::test]
async fn greeter_calls_example_on_a_vhost_of_its_own_and_nothing_leaks() {
    let mut fx = BrokerFixture::from_env().unwrap();
    fx.start("example", example_without_db).await.unwrap();
    fx.start("greeter", greeter::build).await.unwrap();
    let client = fx.client().await.unwrap();
    let greeting = client
        .call(&Greet {
            name: "fixture".into(),
        })
        .await
        .unwrap();
    assert_eq!(greeting.message, "Hello world! (to fixture)");
    // Mandatory publish on a vhost where nobody serves the route: the broker says so.
    let err = client
        .call_json("nobody.serves.this", serde_json::Value::Null)
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::NoRoute { .. }), "{err}");
    let vhost = fx.vhost().to_owned();
    fx.finish().await.unwrap();
    let vhosts = std::process::Command::new("rabbitmqctl")
        .args(["list_vhosts", "-q", "--no-table-headers"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&vhosts.stdout)
            .lines()
            .any(|l| l == vhost),
        "vhost {vhost} still exists"
    );
}

#[tokio::test]
async fn a_connection_left_open_fails_the_test() {
    let mut fx = BrokerFixture::from_env().unwrap();
    fx.start("example", example_without_db).await.unwrap();
    // A client the fixture does not know about, never closed: a leak.
    let leaked = RpcClient::connect(&fx.config().amqp_url).await.unwrap();
    assert_eq!(
        leaked.call(&HelloWorld(None)).await.unwrap(),
        "Hello world!"
    );
    match fx.finish().await {
        Err(FixtureError::Leaked { what, .. }) => {
            assert!(what.starts_with("1 connection(s)"), "{what}");
        }
        other => panic!("expected a leak, got {other:?}"),
    }
    drop(leaked);
}

/// A publisher made from the broker handle a service is given sends no more than the
/// service's `MAX_MESSAGE_BYTES` (not the default 8 MiB).
#[tokio::test]
async fn a_queue_publisher_from_setup_honours_max_message_bytes() {
    let mut config = e2e::config();
    config.max_message_bytes = 1024;
    let fx = BrokerFixture::new(&config).unwrap();
    let setup = fx.setup("publisher-limit").await.unwrap();
    let body = serde_json::to_vec(&"x".repeat(2048)).unwrap();
    let err = worker_kit::queue::QueuePublisher::new(&setup.broker)
        .publish_body("publisher-limit", &body, None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            worker_kit::queue::PublishError::TooLarge { limit: 1024, .. }
        ),
        "{err}"
    );
    setup.broker.close().await;
    fx.finish().await.unwrap();
}
