//! Typed contracts between services: each request type names its route and its response
//! type, so a caller depends on this crate, never on the serving service's crate, and a
//! changed message shape breaks both sides at compile time.
//!
//! ```no_run
//! # async fn demo(client: worker_kit::rpc::RpcClient) -> Result<(), worker_kit::rpc::CallError> {
//! let greeting: String = client.call(&stubs::example::HelloWorld(None)).await?;
//! assert_eq!(greeting, "Hello world!");
//! # Ok(()) }
//! ```

pub mod example;
pub mod greeter;
