//! The example service's CRUD over items, and idempotent orders.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use worker_kit_core::{Contract, TaskContract};

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

/// The currencies the service prices in: euros only for now (the one currency its
/// `price_cents` always meant).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Currency {
    /// Euro; minor unit: the cent.
    #[serde(rename = "EUR")]
    Eur,
}

/// A price: an amount in the minor unit of its currency (cents for euros).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Money {
    /// The currency.
    pub currency: Currency,
    /// In the currency's minor unit; not negative.
    pub amount_minor: i64,
}

impl Money {
    /// `cents` euro cents.
    pub fn eur(cents: i64) -> Self {
        Self {
            currency: Currency::Eur,
            amount_minor: cents,
        }
    }

    /// The amount in euro cents, what version 1 of the contracts carries (`price_cents`).
    /// Exact while euros are the only currency.
    pub fn as_eur_cents(self) -> i64 {
        match self.currency {
            Currency::Eur => self.amount_minor,
        }
    }
}

/// An item as version 2 of the contracts shows it: the price as a currency amount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ItemV2 {
    /// Assigned by the database.
    pub id: i64,
    /// Unique, not blank.
    pub name: String,
    /// Not negative.
    pub price: Money,
    /// Free-form labels.
    pub tags: Vec<String>,
    /// RFC 3339.
    pub created_at: DateTime<Utc>,
    /// RFC 3339; changes with every update.
    pub updated_at: DateTime<Utc>,
}

impl From<Item> for ItemV2 {
    fn from(item: Item) -> Self {
        Self {
            id: item.id,
            name: item.name,
            price: Money::eur(item.price_cents),
            tags: item.tags,
            created_at: item.created_at,
            updated_at: item.updated_at,
        }
    }
}

/// Version 1's reply made from version 2's (what `example.items.create` answers).
impl From<ItemV2> for Item {
    fn from(item: ItemV2) -> Self {
        Self {
            id: item.id,
            name: item.name,
            price_cents: item.price.as_eur_cents(),
            tags: item.tags,
            created_at: item.created_at,
            updated_at: item.updated_at,
        }
    }
}

/// `example.items.create.v2` → the new [`ItemV2`]; `Conflict` when the name is taken.
/// Version 2 of [`CreateItem`]: the price is a currency amount. Both versions are served
/// during the rollout (README: Evolving a contract).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CreateItemV2 {
    /// Unique, not blank.
    pub name: String,
    /// The price.
    pub price: Money,
    /// Defaults to none.
    #[serde(default)]
    pub tags: Vec<String>,
    /// When set, the item expires (is deleted, with its `example.item.deleted` event) this
    /// many milliseconds after it was created; absent, it is kept until deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_ms: Option<u64>,
}

impl Contract for CreateItemV2 {
    const ROUTE: &'static str = "example.items.create.v2";
    type Response = ItemV2;
}

/// The upcaster: a version 1 request as version 2 reads it (`price_cents` were euro cents).
impl From<CreateItem> for CreateItemV2 {
    fn from(req: CreateItem) -> Self {
        Self {
            name: req.name,
            price: Money::eur(req.price_cents),
            tags: req.tags,
            expires_in_ms: None,
        }
    }
}

/// `example.items.expire` (work queue): deletes item `id` if it still exists. The service
/// schedules it for an item created with `expires_in_ms`; delivered at least once, so a
/// second delivery (or an item deleted already) changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ExpireItem {
    /// The item's id.
    pub id: i64,
}

impl TaskContract for ExpireItem {
    const ROUTE: &'static str = "example.items.expire";
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
