//! Request/response over AMQP: [`RpcWorker`] answers routes, [`RpcClient`] calls them.

pub(crate) mod answer;
mod client;
mod processor;
mod redeliveries;
mod reply;

pub use client::{CallError, CallOptions, MIN_BUDGET, RpcClient};
pub use processor::{RPC_DLX, Rpc, RpcRoute, RpcWorker};
