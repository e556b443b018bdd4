//! Typed contracts between services: each request type names its route and its response
//! type, so a caller depends on this crate, never on the serving service's crate, and a
//! changed message shape breaks both sides at compile time.
//!
//! A caller holds a `worker_kit::rpc::RpcClient` and calls
//! `client.call(&stubs::example::HelloWorld(None)).await?`, which the compiler types as
//! `String` through the contract:
//!
//! ```
//! use worker_kit_core::Contract;
//!
//! assert_eq!(<stubs::example::HelloWorld as Contract>::ROUTE, "hello_world");
//! let _typed: Option<<stubs::example::HelloWorld as Contract>::Response> = Some(String::new());
//! ```
//!
//! This crate depends on `worker-kit-core` (the traits) and `serde` only, never on the
//! runtime: a caller that needs the types alone does not link lapin or tokio-postgres.

pub mod catalog;
pub mod example;
pub mod greeter;
