//! The contract gate: compares the services' AsyncAPI documents (made by
//! `worker_kit::asyncapi` from the contract types) of a base revision with the working
//! tree's, route by route and event by event, and reports every change that would break
//! the other side of a rolling deploy ([`compat`] has the rules).
//!
//! ```
//! use serde_json::json;
//! use worker_kit_contracts::compat::{Schema, Side, compare};
//!
//! let doc = json!({});
//! let old = json!({"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"]});
//! let new = json!({"type": "object", "properties": {"id": {"type": "integer"}, "name": {"type": "string"}},
//!                  "required": ["id", "name"]});
//! let found = compare(Schema { doc: &doc, schema: &old }, Schema { doc: &doc, schema: &new }, Side::Read);
//! assert_eq!(found[0].rule, "new-required-field");
//! assert_eq!(found[0].path, "name");
//! ```

pub mod compat;
pub mod document;
pub mod gate;
pub mod git;
pub mod instance;
pub mod shape;
