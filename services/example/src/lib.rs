//! The `example` service: the Python seed's routes in Rust.
//!
//! - `hello_world` (RPC) answers `"Hello world!"`;
//! - `will-error` (RPC) answers with an error envelope of type `WillError`;
//! - `dictionary` (RPC) answers a JSON object;
//! - `queue-test` (work queue) logs its message, and fails on `"fail"` to show retries
//!   and parking.

use std::collections::BTreeMap;
use std::convert::Infallible;

use serde_json::json;
use stubs::example::{Dictionary, HelloWorld, QueueTest, WILL_ERROR_TYPE, WillError};
use worker_kit::queue::QueueWorker;
use worker_kit::rpc::RpcWorker;
use worker_kit::{ErrorReply, IntoErrorReply, Meta, Payload, Runner, Setup, rpc, task};

/// The service's name: its connection name and its database's name.
pub const SERVICE: &str = "example";

/// Errors of this service's handlers, each with its own `error.type`.
#[derive(Debug, thiserror::Error)]
pub enum ExampleError {
    /// What `will-error` always answers.
    #[error("this route always fails, on purpose")]
    WillError,
    /// A `queue-test` message asked to fail.
    #[error("queue-test was asked to fail")]
    AskedToFail,
}

impl IntoErrorReply for ExampleError {
    fn into_error_reply(self) -> ErrorReply {
        match self {
            ExampleError::WillError => ErrorReply::new(WILL_ERROR_TYPE, self.to_string()),
            ExampleError::AskedToFail => ErrorReply::new("AskedToFail", self.to_string()),
        }
    }
}

/// Answers `"Hello world!"` whatever the payload.
#[rpc(contract = HelloWorld)]
pub async fn hello_world(Payload(_): Payload<HelloWorld>) -> Result<String, Infallible> {
    Ok("Hello world!".to_owned())
}

/// Always fails, to show an error envelope.
#[rpc(contract = WillError)]
pub async fn will_error(Payload(_): Payload<WillError>) -> Result<(), ExampleError> {
    Err(ExampleError::WillError)
}

/// Answers a JSON object.
#[rpc(contract = Dictionary)]
pub async fn dictionary(
    Payload(_): Payload<Dictionary>,
) -> Result<BTreeMap<String, serde_json::Value>, Infallible> {
    Ok(BTreeMap::from([
        ("first".to_owned(), json!(1)),
        ("second".to_owned(), json!("two")),
        ("third".to_owned(), json!([3.0, "three"])),
        ("fourth".to_owned(), json!({"four": 4})),
    ]))
}

/// Logs the message; `"fail"` fails (and is retried, then parked).
#[task(contract = QueueTest)]
pub async fn queue_test(
    Payload(QueueTest(text)): Payload<QueueTest>,
    meta: Meta,
) -> Result<(), ExampleError> {
    if text == "fail" {
        return Err(ExampleError::AskedToFail);
    }
    tracing::info!(%text, redelivered = meta.redelivered, "queue-test message");
    Ok(())
}

/// The service's RPC routes.
pub fn rpc_worker() -> RpcWorker {
    RpcWorker::new()
        .register(hello_world)
        .register(will_error)
        .register(dictionary)
}

/// The service's work-queue routes.
pub fn queue_worker() -> QueueWorker {
    QueueWorker::new().register(queue_test)
}

/// Builds the service on `setup`: what `main` runs and what tests start in-process.
///
/// # Errors
///
/// None today; the signature leaves room for clients that must connect first.
pub async fn build(setup: Setup) -> Result<Runner, worker_kit::Error> {
    Ok(setup
        .runner()
        .register_worker(rpc_worker())
        .register_worker(queue_worker()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hello_world_answers() {
        assert_eq!(
            hello_world::handler(Payload(HelloWorld(None)))
                .await
                .unwrap(),
            "Hello world!"
        );
    }

    #[tokio::test]
    async fn will_error_fails_with_its_type() {
        let err = will_error::handler(Payload(WillError(None)))
            .await
            .unwrap_err();
        assert_eq!(err.into_error_reply().error_type, "WillError");
    }

    #[test]
    fn routes_are_the_seeds() {
        assert_eq!(hello_world::ROUTE, "hello_world");
        assert_eq!(will_error::ROUTE, "will-error");
        assert_eq!(dictionary::ROUTE, "dictionary");
        assert_eq!(queue_test::ROUTE, "queue-test");
    }
}
