//! Request/response over AMQP: [`RpcWorker`] answers routes, [`RpcClient`] calls them.

mod client;
mod processor;

pub use client::{CallError, CallOptions, MIN_BUDGET, RpcClient};
pub use processor::{RPC_DLX, Rpc, RpcWorker};
