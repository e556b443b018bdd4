//! worker-kit: RPC and work-queue workers over RabbitMQ (AMQP 0-9-1), with PostgreSQL
//! clients, driven by one Runner on one Tokio runtime.
//!
//! Handlers are plain `async fn`s whose arguments are extractors ([`Payload`], [`State`],
//! [`Meta`]) and which return `Result<T: Serialize, E: IntoErrorReply>`. Routes are added
//! with the builder (`worker.route("name", handler)`) or the [`macro@rpc`] / [`macro@task`] macros,
//! which make a unit struct whose `register` is that builder call (see the macros' docs). The wire format is the Python seed's
//! (`gzip(json({"data": ...}))`), so Rust and Python services call each other.
//!
//! ```no_run
//! use std::convert::Infallible;
//! use worker_kit::{Payload, rpc::RpcWorker, runner::Setup};
//!
//! #[worker_kit::rpc("hello_world")]
//! async fn hello_world(Payload(_): Payload<serde_json::Value>) -> Result<String, Infallible> {
//!     Ok("Hello world!".to_owned())
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     worker_kit::runner::main("hello", |setup: Setup| async move {
//!         let rpc = RpcWorker::new().register(hello_world);
//!         Ok(setup.runner().register_worker(rpc))
//!     })
//! }
//! ```

#![warn(missing_docs)]

pub mod access;
pub mod amqp;
pub mod asyncapi;
pub(crate) mod backoff;
pub mod config;
pub mod db;
pub mod error;
pub mod events;
pub mod handler;
pub mod logging;
pub mod observe;
pub mod outbox;
pub mod queue;
pub mod redact;
pub mod rpc;
pub mod runner;
pub mod shutdown;
#[cfg(feature = "testing")]
pub mod testing;
pub mod wire;
pub mod worker;

pub use access::Caller;
pub use amqp::Broker;
pub use config::Config;
pub use db::Database;
pub use error::Error;
pub use handler::extract::{FromMessage, Meta, Payload, State};
pub use runner::{Runner, Setup};
/// The token a [`Setup`] and a task ([`Runner::register_task`]) are stopped by.
pub use tokio_util::sync::CancellationToken;
pub use wire::deadline::Deadline;
pub use wire::delivery::RETRY_COUNT_HEADER;
pub use wire::reply_error::{ErrorReply, IntoErrorReply};
pub use worker_kit_core::{Contract, EventContract, TaskContract};
pub use worker_kit_macros::{rpc, task};

/// The README's Rust examples, compiled and run as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

/// What the route macros expand to. Not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::queue::{QueueWorker, TaskRoute};
    pub use crate::rpc::{RpcRoute, RpcWorker};
}
