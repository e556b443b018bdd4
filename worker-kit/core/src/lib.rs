//! worker-kit-core: the typed contracts between services, without the runtime.
//!
//! A contract ties a request type to its route name and its response type. The `stubs`
//! crate holds them, so a caller depends on the contract, never on the serving crate, and a
//! changed message shape breaks both sides at compile time. This crate depends on `serde`
//! only, so a crate of contracts does not pull in lapin, tokio-postgres or deadpool
//! (`worker-kit` re-exports both traits).
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use worker_kit_core::Contract;
//!
//! #[derive(Serialize, Deserialize)]
//! pub struct GetItem {
//!     pub id: i64,
//! }
//!
//! #[derive(Serialize, Deserialize)]
//! pub struct Item {
//!     pub id: i64,
//!     pub name: String,
//! }
//!
//! impl Contract for GetItem {
//!     const ROUTE: &'static str = "example.items.get";
//!     type Response = Item;
//! }
//! ```

use serde::Serialize;
use serde::de::DeserializeOwned;

/// An RPC request type with its route and response type.
pub trait Contract: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The route (queue) that answers this request.
    const ROUTE: &'static str;
    /// What a successful call returns.
    type Response: Serialize + DeserializeOwned + Send + 'static;
}

/// A work-queue message type with its route.
pub trait TaskContract: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The route (queue) that works off this message.
    const ROUTE: &'static str;
}
