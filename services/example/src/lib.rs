//! The `example` service: the Python seed's routes in Rust.
//!
//! - `hello_world` (RPC) answers `"Hello world!"`;
//! - `test` (RPC) answers `"<text> that took forever"` after a short pause;
//! - `will-error` (RPC) answers with an error of type `Exception` whose message contains
//!   `"Just an exception"` and the request's data;
//! - `dictionary` (RPC) answers the JSON object it is sent with `"bar": "baz"` added;
//! - `db` (RPC) answers the names of the tables in the database's `public` schema;
//! - `example-items` (RPC) answers the `example_item` rows whose `string` equals the payload;
//! - `queue-test` (work queue) logs its message (any JSON value), and fails on `"fail"` to
//!   show retries and parking;
//! - `example.items.*` (RPC): CRUD over PostgreSQL with keyset paging and a search kept in
//!   `models/example/queries.sql`; `example.orders.place`: idempotent create;
//!   `example.items.create.v2` takes and answers the price as a currency amount, served
//!   beside `example.items.create` (version 1, upcast to it) during the rollout.
//! - item changes emit `example.item.created|updated|deleted` events through the
//!   transactional outbox (`models/example/outbox.sql`); the outbox relay runs in the
//!   service and publishes them to the `events` exchange.
//! - an item created with `expires_in_ms` (`example.items.create.v2`) gets an
//!   `example.items.expire` work message scheduled in the same transaction
//!   (`models/example/scheduled.sql`); the service's scheduled relay publishes it when due
//!   and the `example.items.expire` route deletes the item.

pub mod store;

use std::convert::Infallible;
use std::time::Duration;

use serde_json::{Map, Value, json};
use stubs::example::events::{ItemCreated, ItemDeleted, ItemUpdated};
use stubs::example::items::{
    CreateItem, CreateItemV2, DeleteItem, ExpireItem, GetItem, Item, ItemPage, ItemV2, ListItems,
    PlaceOrder, PlacedOrder, SearchItems, UpdateItem,
};
use stubs::example::{
    Dictionary, ExampleItem, ExampleItems, HelloWorld, QueueTest, SlowEcho, Tables,
    WILL_ERROR_TYPE, WillError,
};
use worker_kit::asyncapi::Document;
use worker_kit::db::{Client, DbError};
use worker_kit::outbox::{Relay, ScheduledRelay};
use worker_kit::queue::QueueWorker;
use worker_kit::rpc::RpcWorker;
use worker_kit::{ErrorReply, IntoErrorReply, Meta, Payload, Runner, Setup, State, rpc, task};

use crate::store::Store;

/// The service's name: its connection name and its database's name.
pub const SERVICE: &str = "example";

/// Errors of this service's handlers, each with its own `error.type`.
#[derive(Debug, thiserror::Error)]
pub enum ExampleError {
    /// What `will-error` always answers: the seed's exception, with the request's data.
    #[error("Just an exception (this route always fails, on purpose); data: {0}")]
    WillError(Value),
    /// `example-items` was sent no string to match.
    #[error("example-items needs a string to match `example_item.string` against, not null")]
    NothingToMatch,
    /// A `queue-test` message asked to fail.
    #[error("queue-test was asked to fail")]
    AskedToFail,
}

impl IntoErrorReply for ExampleError {
    fn into_error_reply(self) -> ErrorReply {
        match self {
            ExampleError::WillError(_) => ErrorReply::new(WILL_ERROR_TYPE, self.to_string()),
            ExampleError::NothingToMatch => ErrorReply::bad_request(self.to_string()),
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
pub async fn will_error(Payload(WillError(data)): Payload<WillError>) -> Result<(), ExampleError> {
    Err(ExampleError::WillError(data))
}

/// Answers the object it is sent, with `"bar": "baz"` added.
#[rpc(contract = Dictionary)]
pub async fn dictionary(
    Payload(Dictionary(mut object)): Payload<Dictionary>,
) -> Result<Map<String, Value>, Infallible> {
    object.insert("bar".to_owned(), json!("baz"));
    Ok(object)
}

/// How long `test` pauses: the seed's route sleeps to look slow; a short pause keeps the
/// point without slowing tests.
const TEST_PAUSE: Duration = Duration::from_millis(20);

/// Answers `"<text> that took forever"`, after a short pause.
#[rpc(contract = SlowEcho)]
pub async fn slow_echo(Payload(SlowEcho(text)): Payload<SlowEcho>) -> Result<String, Infallible> {
    tokio::time::sleep(TEST_PAUSE).await;
    Ok(format!("{text} that took forever"))
}

/// The names of the tables in the database's `public` schema.
#[rpc(contract = Tables)]
pub async fn tables(
    State(app): State<App>,
    Payload(_): Payload<Tables>,
) -> Result<Vec<String>, DbError> {
    app.store.public_tables().await
}

/// The `example_item` rows whose `string` equals the payload.
#[rpc(contract = ExampleItems)]
pub async fn example_items(
    State(app): State<App>,
    Payload(ExampleItems(string)): Payload<ExampleItems>,
) -> Result<Vec<ExampleItem>, ErrorReply> {
    let string = string.ok_or_else(|| ExampleError::NothingToMatch.into_error_reply())?;
    Ok(app.store.example_items(&string).await?)
}

/// Logs the message (any JSON value); the string `"fail"` fails (and is retried, then
/// parked).
#[task(contract = QueueTest)]
pub async fn queue_test(
    Payload(QueueTest(message)): Payload<QueueTest>,
    meta: Meta,
) -> Result<(), ExampleError> {
    if message == json!("fail") {
        return Err(ExampleError::AskedToFail);
    }
    tracing::info!(%message, redelivered = meta.redelivered, "queue-test message");
    Ok(())
}

/// Deletes an item whose time is up (scheduled when it was created with `expires_in_ms`);
/// an item gone already is no error: the message comes at least once.
#[task(contract = ExpireItem)]
pub async fn expire_item(
    State(app): State<App>,
    Payload(ExpireItem { id }): Payload<ExpireItem>,
) -> Result<(), DbError> {
    let expired = app.store.expire_item(id).await?;
    tracing::info!(id, expired, "item expiry");
    Ok(())
}

/// Shared state of the handlers.
#[derive(Clone, Debug)]
pub struct App {
    /// The service's data.
    pub store: Store,
}

/// Creates an item: the one handler behind both versions of the route.
#[rpc(contract = CreateItemV2)]
pub async fn create_item_v2(
    State(app): State<App>,
    Payload(req): Payload<CreateItemV2>,
) -> Result<ItemV2, DbError> {
    // The store keeps prices in euro cents, the service's one currency so far.
    let row = CreateItem {
        name: req.name,
        price_cents: req.price.as_eur_cents(),
        tags: req.tags,
    };
    let expires_in = req.expires_in_ms.map(Duration::from_millis);
    Ok(app
        .store
        .create_item_expiring(&row, expires_in)
        .await?
        .into())
}

/// `example.items.create`, version 1, served beside version 2 until every caller moved:
/// the request is upcast, handled by [`create_item_v2`], and its reply given the old shape.
#[rpc(contract = CreateItem)]
pub async fn create_item(
    state: State<App>,
    Payload(req): Payload<CreateItem>,
) -> Result<Item, DbError> {
    let item = create_item_v2::handler(state, Payload(req.into())).await?;
    Ok(item.into())
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

/// The service's RPC routes, still needing their [`App`] (given last, with
/// `.with_state(app)`; the AsyncAPI document describes them without it).
pub fn rpc_worker() -> RpcWorker<App> {
    RpcWorker::new()
        .register(hello_world)
        .register(will_error)
        .register(dictionary)
        .register(slow_echo)
        .register(tables)
        .register(example_items)
        .register(create_item)
        .register(create_item_v2)
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

/// The route that expires items (its handler needs the store, so it is a worker of its own
/// beside the stateless [`queue_worker`]), still needing its [`App`] (`.with_state(app)`).
pub fn expiry_worker() -> QueueWorker<App> {
    QueueWorker::new().register(expire_item)
}

/// The service's AsyncAPI 3.0 document (what `example asyncapi` prints): made from the
/// route tables, without a broker or a database.
pub fn asyncapi() -> Document {
    Document::new(SERVICE)
        .version(env!("CARGO_PKG_VERSION"))
        .rpc(&rpc_worker())
        .queue(&queue_worker())
        .queue(&expiry_worker())
        .publishes::<ItemCreated>()
        .publishes::<ItemUpdated>()
        .publishes::<ItemDeleted>()
}

/// Builds the service on `setup`: its database from `DB_MAIN_DSN` (or the `example`
/// database on the `PGHOST` server), its events on `EVENTS_EXCHANGE` with the `OUTBOX_*`
/// settings, all read from the setup's variables (the environment, or what a test gives
/// with [`Setup::with_var`]).
///
/// # Errors
///
/// A malformed setting.
pub async fn build(setup: Setup) -> Result<Runner, worker_kit::Error> {
    let db = setup.db_config("main")?;
    let settings = setup.outbox_settings()?;
    let client = Client::new("main", &db)?;
    let app = App {
        store: Store::new(client.clone()),
    };
    Ok(setup
        .runner()
        .register_database(client.clone())
        .register_worker(rpc_worker().with_state(app.clone()))
        .register_worker(queue_worker())
        .register_worker(expiry_worker().with_state(app))
        .register_worker(Relay::new(&client, &db).settings(&settings))
        .register_worker(ScheduledRelay::new(&client)))
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
        let err = will_error::handler(Payload(WillError(json!({"x": 1}))))
            .await
            .unwrap_err();
        let reply = err.into_error_reply();
        assert_eq!(reply.error_type, "Exception");
        assert!(
            reply.message.contains("Just an exception"),
            "{}",
            reply.message
        );
        assert!(reply.message.contains(r#"{"x":1}"#), "{}", reply.message);
    }

    #[tokio::test]
    async fn dictionary_adds_bar() {
        let mut object = Map::new();
        object.insert("foo".to_owned(), json!(1));
        let out = dictionary::handler(Payload(Dictionary(object)))
            .await
            .unwrap();
        assert_eq!(Value::Object(out), json!({"foo": 1, "bar": "baz"}));
    }

    #[test]
    fn routes_are_the_seeds() {
        assert_eq!(hello_world::ROUTE, "hello_world");
        assert_eq!(will_error::ROUTE, "will-error");
        assert_eq!(dictionary::ROUTE, "dictionary");
        assert_eq!(queue_test::ROUTE, "queue-test");
        assert_eq!(slow_echo::ROUTE, "test");
        assert_eq!(tables::ROUTE, "db");
        assert_eq!(example_items::ROUTE, "example-items");
    }
}
