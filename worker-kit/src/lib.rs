//! worker-kit: RPC and work-queue workers over RabbitMQ (AMQP 0-9-1), with PostgreSQL
//! clients, driven by one Runner on one Tokio runtime.
//!
//! Handlers are plain `async fn`s whose arguments are extractors ([`Payload`], [`State`],
//! [`Meta`]) and which return `Result<T: Serialize, E: IntoErrorReply>`. Routes are added
//! with the builder (`worker.route("name", handler)`) or the [`macro@rpc`] / [`macro@task`] macros,
//! which expand to the same builder call. The wire format is the Python seed's
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

pub mod broker;
pub mod config;
pub mod contract;
pub mod database;
pub mod db;
pub mod deadline;
mod delivery;
pub mod envelope;
pub mod error;
pub mod extract;
mod gzip;
pub mod handler;
pub mod logging;
mod publish;
pub mod queue;
pub mod redact;
pub mod reply_error;
pub mod routes;
pub mod rpc;
pub mod runner;
pub mod worker;

pub use broker::Broker;
pub use config::Config;
pub use contract::{Contract, TaskContract};
pub use database::Database;
pub use deadline::Deadline;
pub use delivery::RETRY_COUNT_HEADER;
pub use error::Error;
pub use extract::{FromMessage, Meta, Payload, State};
pub use reply_error::{ErrorReply, IntoErrorReply};
pub use runner::{Runner, Setup};
pub use worker_kit_macros::{rpc, task};

/// The README's Rust examples, compiled and run as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

/// What the route macros expand to. Not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::queue::QueueWorker;
    pub use crate::routes::{RpcRoute, TaskRoute};
    pub use crate::rpc::RpcWorker;
}
