//! worker-kit-core: the typed contracts between services, without the runtime.
//!
//! A contract ties a request type to its route name and its response type. The `stubs`
//! crate holds them, so a caller depends on the contract, never on the serving crate, and a
//! changed message shape breaks both sides at compile time. This crate depends on `serde`
//! and `schemars` only, so a crate of contracts does not pull in lapin, tokio-postgres or deadpool
//! (`worker-kit` re-exports both traits).
//!
//! ```
//! use schemars::JsonSchema;
//! use serde::{Deserialize, Serialize};
//! use worker_kit_core::Contract;
//!
//! #[derive(Serialize, Deserialize, JsonSchema)]
//! pub struct GetItem {
//!     pub id: i64,
//! }
//!
//! #[derive(Serialize, Deserialize, JsonSchema)]
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

pub use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// An RPC request type with its route and response type.
///
/// Both types describe themselves as JSON Schema ([`JsonSchema`], derived with
/// `#[derive(schemars::JsonSchema)]`): the service's AsyncAPI document is made from them.
pub trait Contract: Serialize + DeserializeOwned + JsonSchema + Send + Sync + 'static {
    /// The route (queue) that answers this request.
    const ROUTE: &'static str;
    /// What a successful call returns.
    type Response: Serialize + DeserializeOwned + JsonSchema + Send + 'static;
}

/// A work-queue message type with its route (and, like [`Contract`], its JSON Schema).
pub trait TaskContract: Serialize + DeserializeOwned + JsonSchema + Send + Sync + 'static {
    /// The route (queue) that works off this message.
    const ROUTE: &'static str;
}

/// An event type with its routing key: what a service tells every subscriber after a
/// change it committed (published through the transactional outbox, see `worker_kit::outbox`).
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use worker_kit_core::EventContract;
///
/// #[derive(Serialize, Deserialize)]
/// pub struct ItemCreated {
///     pub id: i64,
///     pub name: String,
/// }
///
/// impl EventContract for ItemCreated {
///     const ROUTING_KEY: &'static str = "example.item.created";
///     fn aggregate_id(&self) -> String {
///         self.id.to_string()
///     }
/// }
/// ```
pub trait EventContract: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// `<service>.<aggregate>.<event>` on the `events` topic exchange; also the event's
    /// name (its AMQP `type`).
    const ROUTING_KEY: &'static str;
    /// The id of the entity the event is about (its `x-aggregate-id`); events of one
    /// aggregate are published in the order their transactions committed.
    fn aggregate_id(&self) -> String;
}
