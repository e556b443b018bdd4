//! Contracts of the `example` service.

pub mod events;
pub mod items;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use worker_kit_core::{Contract, TaskContract};

/// `hello_world`: answers `"Hello world!"`. The payload is any string (or null), as in the
/// Python seed, and is ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HelloWorld(pub Option<String>);

impl Contract for HelloWorld {
    const ROUTE: &'static str = "hello_world";
    type Response = String;
}

/// `will-error`: always answers with an error of type [`WILL_ERROR_TYPE`] whose message
/// contains `"Just an exception"` and the request's data (any JSON value), as the Python
/// seed's route does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WillError(pub Value);

/// The `error.type` that `will-error` answers with (the Python seed's exception class).
pub const WILL_ERROR_TYPE: &str = "Exception";

impl Contract for WillError {
    const ROUTE: &'static str = "will-error";
    type Response = ();
}

/// `dictionary`: answers the JSON object it is sent with `"bar": "baz"` added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Dictionary(pub Map<String, Value>);

impl Contract for Dictionary {
    const ROUTE: &'static str = "dictionary";
    type Response = Map<String, Value>;
}

/// `test`: answers its text followed by `" that took forever"`, after a short pause (the
/// Python seed's slow route).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SlowEcho(pub String);

impl Contract for SlowEcho {
    const ROUTE: &'static str = "test";
    type Response = String;
}

/// `db`: the names of the tables in the service database's `public` schema, sorted; the
/// payload (any JSON value) is ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Tables(pub Value);

impl Contract for Tables {
    const ROUTE: &'static str = "db";
    type Response = Vec<String>;
}

/// `example-items`: the rows of `example_item` whose `string` equals the payload; `[]` when
/// none. A missing or null payload is answered with a `BadRequest` error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ExampleItems(pub Option<String>);

impl Contract for ExampleItems {
    const ROUTE: &'static str = "example-items";
    type Response = Vec<ExampleItem>;
}

/// A row of the Python seed's `example_item` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ExampleItem {
    /// The row's `_id`, a plain UUID string on the wire.
    #[serde(rename = "_id")]
    pub id: uuid::Uuid,
    /// What `example-items` matches on.
    pub string: Option<String>,
    /// Any integer.
    pub integer: Option<i32>,
    /// Any JSON value.
    pub json: Option<Value>,
}

/// `queue-test`: a work-queue message of any JSON value, logged; the string `"fail"` fails
/// (and so is retried, then parked), to show retries and parking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct QueueTest(pub Value);

impl TaskContract for QueueTest {
    const ROUTE: &'static str = "queue-test";
}
