//! Contracts of the `example` service.

pub mod items;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use worker_kit_core::{Contract, TaskContract};

/// `hello_world`: answers `"Hello world!"`. The payload is any string (or null), as in the
/// Python seed, and is ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelloWorld(pub Option<String>);

impl Contract for HelloWorld {
    const ROUTE: &'static str = "hello_world";
    type Response = String;
}

/// `will-error`: always answers with an error of type [`WILL_ERROR_TYPE`], to show what a
/// handler's own error looks like on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WillError(pub Option<String>);

/// The `error.type` that `will-error` answers with.
pub const WILL_ERROR_TYPE: &str = "WillError";

impl Contract for WillError {
    const ROUTE: &'static str = "will-error";
    type Response = ();
}

/// `dictionary`: answers a JSON object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dictionary(pub Option<serde_json::Value>);

impl Contract for Dictionary {
    const ROUTE: &'static str = "dictionary";
    type Response = BTreeMap<String, serde_json::Value>;
}

/// `queue-test`: a work-queue message; the handler fails (and so retries, then parks) a
/// message whose text is `"fail"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueTest(pub String);

impl TaskContract for QueueTest {
    const ROUTE: &'static str = "queue-test";
}
