//! Request/response over AMQP: [`RpcWorker`] answers routes, [`RpcClient`] calls them.

mod client;
mod server;

pub use client::{CallError, CallOptions, RpcClient};
pub use server::{RPC_DLX, Rpc, RpcWorker};
