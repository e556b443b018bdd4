//! Contracts of the `greeter` service.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use worker_kit_core::Contract;

/// `greeter.greet`: greets `name`, using the `example` service's `hello_world`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Greet {
    /// Who to greet.
    pub name: String,
}

/// The answer to [`Greet`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Greeting {
    /// The greeting.
    pub message: String,
}

impl Contract for Greet {
    const ROUTE: &'static str = "greeter.greet";
    type Response = Greeting;
}
