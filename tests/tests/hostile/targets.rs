//! Where the generator sends: every RPC route, work queue and event subscription of the
//! `example`, `greeter` and `catalog` services.

use stubs::catalog::{GetCatalogItem, GetFreshness, SearchCatalog};
use stubs::example::items::{
    CreateItem, CreateItemV2, DeleteItem, GetItem, ListItems, PlaceOrder, SearchItems, UpdateItem,
};
use stubs::example::{
    Dictionary, ExampleItems, HelloWorld, QueueTest, SlowEcho, Tables, WillError,
};
use stubs::greeter::Greet;
use worker_kit::events::subscription_queue;
use worker_kit::{Contract, TaskContract};

/// The exchange the services publish and subscribe events on (their default).
pub(crate) const EVENTS_EXCHANGE: &str = "events";

/// The events `catalog` subscribes to.
pub(crate) const EVENTS: [&str; 3] = [
    "example.item.created",
    "example.item.updated",
    "example.item.deleted",
];

/// Every RPC route of the three services.
pub(crate) fn rpc_routes() -> Vec<&'static str> {
    vec![
        HelloWorld::ROUTE,
        WillError::ROUTE,
        Dictionary::ROUTE,
        SlowEcho::ROUTE,
        Tables::ROUTE,
        ExampleItems::ROUTE,
        CreateItem::ROUTE,
        CreateItemV2::ROUTE,
        GetItem::ROUTE,
        ListItems::ROUTE,
        UpdateItem::ROUTE,
        DeleteItem::ROUTE,
        SearchItems::ROUTE,
        PlaceOrder::ROUTE,
        Greet::ROUTE,
        SearchCatalog::ROUTE,
        GetCatalogItem::ROUTE,
        GetFreshness::ROUTE,
    ]
}

/// Every work-queue route.
pub(crate) fn work_routes() -> Vec<&'static str> {
    vec![QueueTest::ROUTE]
}

/// Where one message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// An RPC route, through the default exchange.
    Rpc(&'static str),
    /// A work queue, through the default exchange.
    Work(&'static str),
    /// An event name, through the events exchange.
    Event(&'static str),
    /// A subscription queue itself, through the default exchange.
    SubscriptionQueue(String),
}

impl Target {
    /// `(exchange, routing key)` to publish to.
    pub(crate) fn address(&self) -> (&str, &str) {
        match self {
            Self::Rpc(r) | Self::Work(r) => ("", r),
            Self::Event(name) => (EVENTS_EXCHANGE, name),
            Self::SubscriptionQueue(q) => ("", q),
        }
    }
}

/// Any target, RPC routes most often (they are most of the routes).
pub(crate) fn any(rng: &mut crate::rng::Rng) -> Target {
    match rng.below(10) {
        0 => Target::Work(rng.choose(&work_routes())),
        1 => Target::Event(rng.choose(&EVENTS)),
        2 => Target::SubscriptionQueue(subscription_queue(catalog::SERVICE, rng.choose(&EVENTS))),
        _ => Target::Rpc(rng.choose(&rpc_routes())),
    }
}
