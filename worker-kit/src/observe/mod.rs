//! What a running service tells the outside about itself: Prometheus metrics
//! ([`Metrics`], one registry per process connection, never a global one), readiness
//! ([`Health`]) and the small HTTP listener that serves both on `METRICS_ADDR`
//! (`/metrics`, `/livez`, `/readyz`).
//!
//! Labels are bounded: route names come from the route tables and the code's contracts,
//! error types from the code's error names; anything else a peer could choose (a remote
//! error type, a route called by name) passes through a bounded set (`labels::Bounded`), which keeps the
//! number of distinct values small. Correlation ids and payload values are never labels.

pub(crate) mod decode_budget;
pub(crate) mod disposition;
pub(crate) mod error_type;
pub(crate) mod exposition;
pub mod health;
pub(crate) mod labels;
pub(crate) mod link;
pub mod metrics;
pub(crate) mod probe;
pub(crate) mod server;
pub mod trace;
#[cfg(feature = "otel")]
mod traceparent;

pub use health::Health;
pub use metrics::Metrics;
