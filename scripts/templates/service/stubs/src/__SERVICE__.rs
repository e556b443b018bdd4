//! Contracts of the `__SERVICE__` service: what callers send it and what it answers.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use worker_kit_core::{Contract, TaskContract};

/// `__SERVICE__.hello` (RPC): says hello to `name`, or to the world.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Hello {
    /// Who to greet; the world when missing.
    #[serde(default)]
    pub name: Option<String>,
}

/// The answer to [`Hello`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HelloReply {
    /// The greeting.
    pub message: String,
}

impl Contract for Hello {
    const ROUTE: &'static str = "__SERVICE__.hello";
    type Response = HelloReply;
}

/// `__SERVICE__.notes.add` (work queue): stores a note in the service's `notes` table.
/// A failed attempt is retried, then parked in `__SERVICE__.notes.add.dead`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AddNote {
    /// The note; not blank.
    pub text: String,
}

impl TaskContract for AddNote {
    const ROUTE: &'static str = "__SERVICE__.notes.add";
}
