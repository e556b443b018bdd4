//! Contracts of the `catalog` service: a read model of the `example` service's items, kept
//! in step by its events and therefore eventually consistent.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use worker_kit_core::Contract;

use crate::example::items::Item;

/// `catalog.items.search` → a [`CatalogPage`]: items whose name or tags match `text` (words,
/// as in a web search; empty for every item), in id order (keyset pagination).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SearchCatalog {
    /// What to look for in names and tags.
    #[serde(default)]
    pub text: String,
    /// The previous page's `last_reference`; absent for the first page.
    #[serde(default)]
    pub after: Option<i64>,
    /// Page size (default 100, at most 1000).
    #[serde(default)]
    pub limit: Option<u32>,
}

impl Contract for SearchCatalog {
    const ROUTE: &'static str = "catalog.items.search";
    type Response = CatalogPage;
}

/// A page of the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CatalogPage {
    /// The items of this page.
    pub items: Vec<Item>,
    /// Pass as `after` for the next page; absent on the last page.
    pub last_reference: Option<i64>,
    /// How far behind the catalog is.
    pub freshness: Freshness,
}

/// `catalog.items.get` → the [`Item`] as the catalog knows it; `NotFound` when it does not
/// (yet, or any more).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct GetCatalogItem {
    /// The item's id.
    pub id: i64,
}

impl Contract for GetCatalogItem {
    const ROUTE: &'static str = "catalog.items.get";
    type Response = Item;
}

/// `catalog.freshness` → [`Freshness`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct GetFreshness {}

impl Contract for GetFreshness {
    const ROUTE: &'static str = "catalog.freshness";
    type Response = Freshness;
}

/// How far the read model has come.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Freshness {
    /// The commit time of the newest event applied; absent before the first.
    pub last_event_at: Option<DateTime<Utc>>,
    /// Events applied so far (duplicates not counted).
    pub applied: i64,
}
