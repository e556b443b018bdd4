//! The `example` service: the Python seed's routes in Rust.
//!
//! - `hello_world` (RPC) answers `"Hello world!"`;
//! - `will-error` (RPC) answers with an error envelope of type `WillError`;
//! - `dictionary` (RPC) answers a JSON object;
//! - `queue-test` (work queue) logs its message, and fails on `"fail"` to show retries
//!   and parking;
//! - `example.items.*` (RPC): CRUD over PostgreSQL with keyset paging and a search kept in
//!   `models/example/queries.sql`; `example.orders.place`: idempotent create.

pub mod store;

use std::collections::BTreeMap;
use std::convert::Infallible;

use serde_json::json;
use stubs::example::items::{
    CreateItem, DeleteItem, GetItem, Item, ItemPage, ListItems, PlaceOrder, PlacedOrder,
    SearchItems, UpdateItem,
};
use stubs::example::{Dictionary, HelloWorld, QueueTest, WILL_ERROR_TYPE, WillError};
use worker_kit::db::{Client, DbConfig, DbError};
use worker_kit::queue::QueueWorker;
use worker_kit::rpc::RpcWorker;
use worker_kit::{ErrorReply, IntoErrorReply, Meta, Payload, Runner, Setup, State, rpc, task};

use crate::store::Store;

/// The service's name: its connection name and its database's name.
pub const SERVICE: &str = "example";

/// Errors of this service's handlers, each with its own `error.type`.
#[derive(Debug, thiserror::Error)]
pub enum ExampleError {
    /// What `will-error` always answers.
    #[error("this route always fails, on purpose")]
    WillError,
    /// A `queue-test` message asked to fail.
    #[error("queue-test was asked to fail")]
    AskedToFail,
}

impl IntoErrorReply for ExampleError {
    fn into_error_reply(self) -> ErrorReply {
        match self {
            ExampleError::WillError => ErrorReply::new(WILL_ERROR_TYPE, self.to_string()),
            ExampleError::AskedToFail => ErrorReply::new("AskedToFail", self.to_string()),
        }
    }
}

/// Answers `"Hello world!"` whatever the payload.
#[rpc(contract = HelloWorld)]
pub async fn hello_world(Payload(_): Payload<HelloWorld>) -> Result<String, Infallible> {
    Ok("Hello world!".to_owned())
}

/// Always fails, to show an error envelope.
#[rpc(contract = WillError)]
pub async fn will_error(Payload(_): Payload<WillError>) -> Result<(), ExampleError> {
    Err(ExampleError::WillError)
}

/// Answers a JSON object.
#[rpc(contract = Dictionary)]
pub async fn dictionary(
    Payload(_): Payload<Dictionary>,
) -> Result<BTreeMap<String, serde_json::Value>, Infallible> {
    Ok(BTreeMap::from([
        ("first".to_owned(), json!(1)),
        ("second".to_owned(), json!("two")),
        ("third".to_owned(), json!([3.0, "three"])),
        ("fourth".to_owned(), json!({"four": 4})),
    ]))
}

/// Logs the message; `"fail"` fails (and is retried, then parked).
#[task(contract = QueueTest)]
pub async fn queue_test(
    Payload(QueueTest(text)): Payload<QueueTest>,
    meta: Meta,
) -> Result<(), ExampleError> {
    if text == "fail" {
        return Err(ExampleError::AskedToFail);
    }
    tracing::info!(%text, redelivered = meta.redelivered, "queue-test message");
    Ok(())
}

/// Shared state of the handlers.
#[derive(Clone, Debug)]
pub struct App {
    /// The service's data.
    pub store: Store,
}

/// Creates an item.
#[rpc(contract = CreateItem)]
pub async fn create_item(
    State(app): State<App>,
    Payload(req): Payload<CreateItem>,
) -> Result<Item, DbError> {
    app.store.create_item(&req).await
}

/// One item.
#[rpc(contract = GetItem)]
pub async fn get_item(
    State(app): State<App>,
    Payload(req): Payload<GetItem>,
) -> Result<Item, DbError> {
    app.store.get_item(req.id).await
}

/// A page of items.
#[rpc(contract = ListItems)]
pub async fn list_items(
    State(app): State<App>,
    Payload(req): Payload<ListItems>,
) -> Result<ItemPage, DbError> {
    let page = app.store.list_items(req.after, req.limit).await?;
    Ok(ItemPage {
        items: page.items,
        last_reference: page.last_reference,
    })
}

/// Changes the given fields of an item.
#[rpc(contract = UpdateItem)]
pub async fn update_item(
    State(app): State<App>,
    Payload(req): Payload<UpdateItem>,
) -> Result<Item, DbError> {
    app.store.update_item(&req).await
}

/// Deletes an item.
#[rpc(contract = DeleteItem)]
pub async fn delete_item(
    State(app): State<App>,
    Payload(req): Payload<DeleteItem>,
) -> Result<Item, DbError> {
    app.store.delete_item(req.id).await
}

/// Searches items by name.
#[rpc(contract = SearchItems)]
pub async fn search_items(
    State(app): State<App>,
    Payload(req): Payload<SearchItems>,
) -> Result<Vec<Item>, DbError> {
    app.store.search_items(&req.text, req.limit).await
}

/// Places an order, once per idempotency key.
#[rpc(contract = PlaceOrder)]
pub async fn place_order(
    State(app): State<App>,
    Payload(req): Payload<PlaceOrder>,
) -> Result<PlacedOrder, DbError> {
    let (order, created) = app.store.place_order(&req).await?;
    Ok(PlacedOrder { order, created })
}

/// The service's RPC routes.
pub fn rpc_worker(app: App) -> RpcWorker<App> {
    RpcWorker::with_state(app)
        .register(hello_world)
        .register(will_error)
        .register(dictionary)
        .register(create_item)
        .register(get_item)
        .register(list_items)
        .register(update_item)
        .register(delete_item)
        .register(search_items)
        .register(place_order)
}

/// The service's work-queue routes.
pub fn queue_worker() -> QueueWorker {
    QueueWorker::new().register(queue_test)
}

/// Builds the service on `setup` with its database from the environment (`DB_MAIN_DSN`,
/// or the `example` database on the `PGHOST` server): what `main` runs.
///
/// # Errors
///
/// A malformed database setting.
pub async fn build(setup: Setup) -> Result<Runner, worker_kit::Error> {
    let db = DbConfig::from_env("main", SERVICE)?;
    build_with(setup, &db).await
}

/// Builds the service on `setup` with the database `db` (tests pass their own).
///
/// # Errors
///
/// A DSN that does not parse.
pub async fn build_with(setup: Setup, db: &DbConfig) -> Result<Runner, worker_kit::Error> {
    let client = Client::new("main", db).map_err(|e| worker_kit::Error::Database(e.to_string()))?;
    let app = App {
        store: Store::new(client.clone()),
    };
    Ok(setup
        .runner()
        .register_database(client)
        .register_worker(rpc_worker(app))
        .register_worker(queue_worker()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hello_world_answers() {
        assert_eq!(
            hello_world::handler(Payload(HelloWorld(None)))
                .await
                .unwrap(),
            "Hello world!"
        );
    }

    #[tokio::test]
    async fn will_error_fails_with_its_type() {
        let err = will_error::handler(Payload(WillError(None)))
            .await
            .unwrap_err();
        assert_eq!(err.into_error_reply().error_type, "WillError");
    }

    #[test]
    fn routes_are_the_seeds() {
        assert_eq!(hello_world::ROUTE, "hello_world");
        assert_eq!(will_error::ROUTE, "will-error");
        assert_eq!(dictionary::ROUTE, "dictionary");
        assert_eq!(queue_test::ROUTE, "queue-test");
    }
}
