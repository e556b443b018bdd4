//! The hook through which the Runner drives database clients.

use std::sync::Arc;

use async_trait::async_trait;

pub use crate::observe::metrics::PoolStats;

/// A database client the [`Runner`](crate::runner::Runner) connects before workers start
/// consuming and closes after they have drained.
#[async_trait]
pub trait Database: Send + Sync + 'static {
    /// A short name for logs (e.g. `main`); never a DSN.
    fn name(&self) -> &str;

    /// Connects (retrying with backoff) and checks that the database answers.
    ///
    /// # Errors
    ///
    /// Returns an error when the database cannot be reached within the configured retries;
    /// the Runner then stops without consuming anything.
    async fn connect(&self) -> Result<(), crate::Error>;

    /// Whether the database answers right now (used to pause consuming during an outage).
    async fn is_ready(&self) -> bool;

    /// Closes the client's connections. Called once, after every worker has drained.
    async fn close(&self);

    /// Whether the client is connected as a database superuser (`None`: unknown). In
    /// production the Runner warns about it: a superuser can read and change every
    /// database on the server, not just the service's own.
    async fn is_superuser(&self) -> Option<bool> {
        None
    }

    /// The state of the client's connection pool, for the process's metrics (`None`: the
    /// client has no pool to report).
    fn pool_stats(&self) -> Option<PoolStats> {
        None
    }
}

/// The metrics read each registered database's pool at every scrape.
impl crate::observe::metrics::PoolSource for Arc<dyn Database> {
    fn name(&self) -> &str {
        Database::name(&**self)
    }

    fn pool_stats(&self) -> Option<PoolStats> {
        Database::pool_stats(&**self)
    }
}
