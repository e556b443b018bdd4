//! The hand-off between the [`Runner`](crate::runner::Runner) and what it drives: what
//! each worker is given ([`WorkerContext`]) and what it must be ([`Runnable`], sealed so
//! that only the kit's workers and tasks are).

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::amqp::Broker;
use crate::config::Config;

/// What the Runner hands each worker.
#[derive(Clone)]
pub struct WorkerContext {
    pub(crate) broker: Broker,
    pub(crate) config: Arc<Config>,
    pub(crate) shutdown: CancellationToken,
    pub(crate) ready: mpsc::UnboundedSender<Result<String, Error>>,
    pub(crate) paused: watch::Receiver<bool>,
    pub(crate) service: Arc<str>,
    /// Every queue the process's workers consume or park into (replies never go there).
    pub(crate) served: Arc<std::collections::HashSet<String>>,
    /// The Runner's readiness, which each worker reports into.
    pub(crate) health: crate::observe::Health,
    /// The process's memory for decoded bodies (`DECODE_BUDGET_BYTES`), shared by every
    /// worker.
    pub(crate) budget: crate::handler::budget::DecodeBudget,
}

impl std::fmt::Debug for WorkerContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerContext")
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

/// Implemented by the kit's workers and tasks only (each next to its own type), so that
/// [`Runnable`] can change without breaking anyone.
pub(crate) mod sealed {
    pub trait Sealed {}
}

/// A worker the [`Runner`](crate::runner::Runner) can drive: an
/// [`RpcWorker`](crate::rpc::RpcWorker), a [`QueueWorker`](crate::queue::QueueWorker) or an
/// [`EventWorker`](crate::events::EventWorker) whose state is given (`Worker<K, ()>`), or a
/// task ([`Runner::register_task`](crate::runner::Runner::register_task)).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be registered with the Runner",
    note = "a worker whose handlers take `State<S>` is registered once its state is given, last: `RpcWorker::new().register(a).register(b).with_state(state)`"
)]
#[async_trait]
pub trait Runnable: sealed::Sealed + Send + 'static {
    /// What kind of worker or task it is, for logs.
    fn kind(&self) -> WorkerKind;
    /// The names of the routes registered (duplicates included, so they can be reported).
    fn route_names(&self) -> Vec<String>;
    /// Runs until shutdown is requested and in-flight messages are drained.
    #[doc(hidden)]
    async fn run(self: Box<Self>, ctx: WorkerContext) -> Result<(), Error>;
}

/// What kind of worker (or supervised task) a [`Runnable`] is: it decides the consume
/// loop's pause policy, and its [`WorkerKind::as_str`] is the `kind` label of the metrics
/// and the `worker` field of the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WorkerKind {
    /// An [`RpcWorker`](crate::rpc::RpcWorker): answers calls.
    Rpc,
    /// A [`QueueWorker`](crate::queue::QueueWorker): settles work messages.
    Queue,
    /// An [`EventWorker`](crate::events::EventWorker): settles events as work messages.
    Events,
    /// The outbox relay: publishes committed events.
    Outbox,
    /// The scheduled-message relay: publishes work messages when due.
    Scheduled,
    /// The pruner of processed-event records.
    Pruner,
    /// A service's own task ([`Runner::register_task`](crate::Runner::register_task)).
    Task,
}

impl WorkerKind {
    /// The label value: `rpc`, `queue`, `events`, `outbox`, `scheduled`, `pruner` or `task`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Rpc => "rpc",
            Self::Queue => "queue",
            Self::Events => "events",
            Self::Outbox => "outbox",
            Self::Scheduled => "scheduled",
            Self::Pruner => "pruner",
            Self::Task => "task",
        }
    }
}

impl std::fmt::Display for WorkerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
