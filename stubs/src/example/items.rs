//! The example service's CRUD over items, and idempotent orders.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use worker_kit_core::Contract;

/// An item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Item {
    /// Assigned by the database.
    pub id: i64,
    /// Unique, not blank.
    pub name: String,
    /// Not negative.
    pub price_cents: i64,
    /// Free-form labels.
    pub tags: Vec<String>,
    /// RFC 3339.
    pub created_at: DateTime<Utc>,
    /// RFC 3339; changes with every update.
    pub updated_at: DateTime<Utc>,
}

/// `example.items.create` → the new [`Item`]; `Conflict` when the name is taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CreateItem {
    /// Unique, not blank, at most 256 bytes (longer is refused with `ValidationError`).
    pub name: String,
    /// Defaults to 0.
    #[serde(default)]
    pub price_cents: i64,
    /// Defaults to none; at most 16, each at most 64 bytes (more is refused with
    /// `ValidationError`).
    #[serde(default)]
    pub tags: Vec<String>,
}

impl Contract for CreateItem {
    const ROUTE: &'static str = "example.items.create";
    type Response = Item;
}

/// `example.items.get` → the [`Item`]; `NotFound` when there is none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct GetItem {
    /// The item's id.
    pub id: i64,
}

impl Contract for GetItem {
    const ROUTE: &'static str = "example.items.get";
    type Response = Item;
}

/// `example.items.list` → an [`ItemPage`] in id order (keyset pagination).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ListItems {
    /// The previous page's `last_reference`; absent for the first page.
    #[serde(default)]
    pub after: Option<i64>,
    /// Items per page: 1 to 1000 (others are refused with `ValidationError`), default 100. A
    /// page is also cut at 1 MiB of items as JSON (then `last_reference` is set), so a reply
    /// stays within what the broker accepts whatever the items hold.
    #[serde(default)]
    pub limit: Option<u32>,
}

/// One page of items.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ItemPage {
    /// The items.
    pub items: Vec<Item>,
    /// Pass as `after` for the next page; `null` on the last page.
    pub last_reference: Option<i64>,
}

impl Contract for ListItems {
    const ROUTE: &'static str = "example.items.list";
    type Response = ItemPage;
}

/// `example.items.update` → the updated [`Item`]. Only the fields given change; giving
/// none is a `BadRequest`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct UpdateItem {
    /// The item's id.
    pub id: i64,
    /// New name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// New price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_cents: Option<i64>,
    /// New tags (replacing the old ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
}

impl Contract for UpdateItem {
    const ROUTE: &'static str = "example.items.update";
    type Response = Item;
}

/// `example.items.delete` → the deleted [`Item`]; `Conflict` while orders refer to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DeleteItem {
    /// The item's id.
    pub id: i64,
}

impl Contract for DeleteItem {
    const ROUTE: &'static str = "example.items.delete";
    type Response = Item;
}

/// `example.items.search` → items whose name contains `text` (a query kept in
/// `models/example/queries.sql`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SearchItems {
    /// Case-insensitive substring.
    pub text: String,
    /// At most this many (1 to 1000, others refused with `ValidationError`; default 100).
    #[serde(default)]
    pub limit: Option<u32>,
}

impl Contract for SearchItems {
    const ROUTE: &'static str = "example.items.search";
    type Response = Vec<Item>;
}

/// An order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Order {
    /// Assigned by the database.
    pub id: Uuid,
    /// The key the client chose.
    pub idempotency_key: String,
    /// The item ordered.
    pub item_id: i64,
    /// At least 1.
    pub quantity: i32,
    /// RFC 3339.
    pub created_at: DateTime<Utc>,
}

/// `example.orders.place` → a [`PlacedOrder`]. Idempotent: the same `idempotency_key`
/// returns the order the first call created (`created: false`), also under concurrent
/// retries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PlaceOrder {
    /// Chosen by the client, unique per intended order.
    pub idempotency_key: String,
    /// The item.
    pub item_id: i64,
    /// At least 1.
    pub quantity: i32,
}

/// The answer to [`PlaceOrder`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PlacedOrder {
    /// The order.
    pub order: Order,
    /// Whether this call created it.
    pub created: bool,
}

impl Contract for PlaceOrder {
    const ROUTE: &'static str = "example.orders.place";
    type Response = PlacedOrder;
}
