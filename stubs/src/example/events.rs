//! Events of the `example` service, published through its outbox to the `events` exchange.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use worker_kit_core::EventContract;

use super::items::Item;

/// `example.item.created`: an item was created; carries the whole item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ItemCreated(pub Item);

impl EventContract for ItemCreated {
    const ROUTING_KEY: &'static str = "example.item.created";
    fn aggregate_id(&self) -> String {
        self.0.id.to_string()
    }
}

/// `example.item.updated`: an item changed; carries the whole item as it is now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ItemUpdated(pub Item);

impl EventContract for ItemUpdated {
    const ROUTING_KEY: &'static str = "example.item.updated";
    fn aggregate_id(&self) -> String {
        self.0.id.to_string()
    }
}

/// `example.item.deleted`: an item was deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ItemDeleted {
    /// The deleted item's id.
    pub id: i64,
}

impl EventContract for ItemDeleted {
    const ROUTING_KEY: &'static str = "example.item.deleted";
    fn aggregate_id(&self) -> String {
        self.id.to_string()
    }
}
