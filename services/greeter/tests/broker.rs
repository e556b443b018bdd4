//! greeter on the real RabbitMQ (`worker_kit::testing::BrokerFixture`): each test on a vhost
//! of its own, so the route it calls (`hello_world`) is served by the test's stand-in or by
//! nobody, whatever else runs on the broker.

use std::convert::Infallible;
use std::time::Duration;

use stubs::example::HelloWorld;
use stubs::greeter::Greet;
use worker_kit::rpc::{CallError, RpcWorker};
use worker_kit::testing::BrokerFixture;
use worker_kit::{Payload, Runner, Setup};

/// Stands in for the `example` service's `hello_world`, with an answer of its own so the test
/// sees that greeter uses what it was told.
async fn stand_in(setup: Setup) -> Result<Runner, worker_kit::Error> {
    async fn hello(Payload(_): Payload<HelloWorld>) -> Result<String, Infallible> {
        Ok("Hi there".to_owned())
    }
    Ok(setup
        .runner()
        .register_worker(RpcWorker::new().contract::<HelloWorld, _, _, _>(hello)))
}

#[tokio::test]
async fn greets_with_the_hello_of_the_service_it_calls() {
    let mut fx = BrokerFixture::from_env().unwrap();
    fx.start("example", stand_in).await.unwrap();
    fx.start(greeter::SERVICE, greeter::build).await.unwrap();
    let greeting = fx
        .client()
        .await
        .unwrap()
        .call(&Greet { name: "Ada".into() })
        .await
        .unwrap();
    assert_eq!(greeting.message, "Hi there (to Ada)");
    fx.finish().await.unwrap();
}

#[tokio::test]
async fn answers_unavailable_at_once_when_nobody_serves_hello_world() {
    let mut fx = BrokerFixture::from_env().unwrap();
    fx.start(greeter::SERVICE, greeter::build).await.unwrap();
    let client = fx.client().await.unwrap();
    // The nested call is refused by the broker (mandatory, no queue): greeter says so in its
    // reply instead of waiting for its deadline.
    let err = tokio::time::timeout(
        Duration::from_secs(10),
        client.call(&Greet { name: "Bob".into() }),
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
    fx.finish().await.unwrap();
}
