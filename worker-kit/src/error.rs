//! The library's error type.

/// Everything worker-kit itself can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting from the environment is missing or malformed.
    #[error("configuration: {0}")]
    Config(String),

    /// The broker could not be reached or the connection broke.
    #[error("broker: {message}")]
    Broker {
        /// What failed, with the redacted URL.
        message: String,
        /// The underlying AMQP error.
        #[source]
        source: Option<lapin::Error>,
    },

    /// A database error.
    #[error("database: {0}")]
    Database(String),

    /// A shutdown was requested (SIGINT/SIGTERM) before the service was ready; nothing
    /// was left running. Not a failure: `runner::main` exits 0.
    #[error("stopped on request before the service was ready")]
    Interrupted,

    /// A worker ended while nothing asked it to (its task returned or panicked), so the
    /// process stopped the others and reports it, for an orchestrator to restart it.
    #[error("worker ended unexpectedly: {0}")]
    WorkerEnded(String),

    /// A service's own task ([`Runner::register_task`](crate::runner::Runner::register_task))
    /// returned an error, or ended while nothing asked it to.
    #[error("task `{task}` {problem}")]
    Task {
        /// The name it was registered with.
        task: String,
        /// What happened to it.
        problem: String,
    },

    /// Two routes with the same name were registered.
    #[error("duplicate route `{0}`: each route name may be registered once per process")]
    DuplicateRoute(String),
}
