//! Testing services: two tiers, for two kinds of question.
//!
//! | | [`TestClient`] (in-process) | [`BrokerFixture`] (real broker) |
//! |---|---|---|
//! | needs | nothing | RabbitMQ (and `rabbitmqctl` on its host) |
//! | per call | microseconds to milliseconds | a few milliseconds |
//! | runs | the route's handler with its state, through the real envelope, gzip, payload validation, deadline and error-mapping code | the service's [`Runner`](crate::Runner) in-process, on a throw-away vhost |
//! | shows | what a handler answers (or whether a task is acked, retried or parked: [`Worked`]) for a payload, state and [`Meta`](crate::Meta) you choose | mandatory/`NoRoute`, prefetch, requeue, parking copies, expiration, reconnects: everything the broker does |
//! | cannot show | redelivery, prefetch, dead-lettering, confirms, anything between two processes | — (it is slower; use it for what only the broker decides) |
//!
//! The in-process tier does not emulate a broker, on purpose: a fake broker is where test
//! brokers go wrong (it agrees with the code instead of with RabbitMQ). It calls the same
//! functions the RPC and queue workers call per delivery, minus AMQP.
//!
//! ```
//! use std::convert::Infallible;
//! use serde::{Deserialize, Serialize};
//! use worker_kit::{Contract, Payload, rpc::RpcWorker, testing::TestClient};
//!
//! #[derive(Serialize, Deserialize, schemars::JsonSchema)]
//! struct Double(i64);
//! impl Contract for Double {
//!     const ROUTE: &'static str = "math.double";
//!     type Response = i64;
//! }
//!
//! async fn double(Payload(Double(n)): Payload<Double>) -> Result<i64, Infallible> {
//!     Ok(2 * n)
//! }
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let client = TestClient::new().rpc(RpcWorker::new().contract::<Double, _, _, _>(double));
//! assert_eq!(client.call(&Double(21)).await.unwrap(), 42);
//! # });
//! ```

mod broker;
mod client;

pub use crate::queue::Worked;
pub use broker::{BrokerFixture, FixtureError};
pub use client::{TestClient, TestReply};

/// A client or publisher whose messages claim another broker user than the one it
/// logged in as: what a forger would send. For tests that show the broker refuses it
/// ([`CallError::UserIdRefused`](crate::rpc::CallError::UserIdRefused),
/// [`PublishError::UserIdRefused`](crate::queue::PublishError::UserIdRefused)); a service
/// has no way to choose its `user_id`.
pub trait ForgeUserId {
    /// `self`, sending `user` as its `user_id`.
    #[must_use]
    fn forging_user_id(self, user: &str) -> Self;
}

impl ForgeUserId for crate::rpc::RpcClient {
    fn forging_user_id(self, user: &str) -> Self {
        self.claiming_user_id(user)
    }
}

impl ForgeUserId for crate::queue::QueuePublisher {
    fn forging_user_id(self, user: &str) -> Self {
        self.claiming_user_id(user)
    }
}
