//! The hook through which the Runner drives database clients.

use async_trait::async_trait;

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

/// A connection pool's state at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStats {
    /// The most connections the pool opens (`DB_POOL_SIZE`).
    pub max_size: usize,
    /// Connections open now.
    pub size: usize,
    /// Connections checked out now.
    pub in_use: usize,
    /// Callers waiting for a connection now.
    pub waiting: usize,
    /// Waits that ended at `DB_ACQUIRE_TIMEOUT_MS` without a connection, since the start.
    pub acquire_timeouts: u64,
}

impl PoolStats {
    /// A pool's state.
    pub fn new(
        max_size: usize,
        size: usize,
        in_use: usize,
        waiting: usize,
        acquire_timeouts: u64,
    ) -> Self {
        Self {
            max_size,
            size,
            in_use,
            waiting,
            acquire_timeouts,
        }
    }
}
