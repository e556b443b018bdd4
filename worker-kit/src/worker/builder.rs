//! The public worker builder: routes, shared state, prefetch and concurrency, for either kind of worker
//! ([`RpcWorker`](crate::rpc::RpcWorker) or [`QueueWorker`](crate::queue::QueueWorker)).
//! What a worker does at run time lives in the consume loop (`worker::consume`).

use std::sync::Arc;
use std::time::Duration;

use super::consume::{Intake, Processor, run};
use super::handoff::{WorkerContext, sealed};
use crate::Error;
use crate::access::{AccessPolicy, AllowList};
use crate::handler::routes::{BoundHandler, RouteDoc, RouteTable};
use crate::handler::{Handler, boxed};

impl<K, S> sealed::Sealed for Worker<K, S> {}

/// Routes, then the state they share; `K` says what kind of worker it is:
/// [`Rpc`](crate::rpc::Rpc) ([`RpcWorker`](crate::rpc::RpcWorker)) or
/// [`Queue`](crate::queue::Queue) ([`QueueWorker`](crate::queue::QueueWorker)).
///
/// As with axum's `Router`, `S` is the state the routes still *need*: a worker starts as
/// `Worker<K, S>` with `S` inferred from its handlers' [`State`](crate::State) arguments,
/// and [`Worker::with_state`] hands it the state, giving a `Worker<K, ()>`, the only form
/// the [`Runner`](crate::runner::Runner) takes. A worker whose state was never given does
/// not compile when registered:
///
/// ```compile_fail
/// use std::convert::Infallible;
/// use worker_kit::{Payload, State, rpc::RpcWorker, runner::Setup};
///
/// async fn count(State(n): State<u32>, Payload(_): Payload<()>) -> Result<u32, Infallible> {
///     Ok(n)
/// }
///
/// fn build(setup: Setup) -> worker_kit::Runner {
///     // Missing `.with_state(7)`: `RpcWorker<u32>` is not `Runnable`.
///     setup.runner().register_worker(RpcWorker::new().route("count", count))
/// }
/// ```
///
/// With the state given, it does:
///
/// ```
/// # use std::convert::Infallible;
/// # use worker_kit::{Payload, State, rpc::RpcWorker, runner::Setup};
/// # async fn count(State(n): State<u32>, Payload(_): Payload<()>) -> Result<u32, Infallible> {
/// #     Ok(n)
/// # }
/// fn build(setup: Setup) -> worker_kit::Runner {
///     setup
///         .runner()
///         .register_worker(RpcWorker::new().route("count", count).with_state(7))
/// }
/// ```
///
/// Describing routes ([`Document::rpc`](crate::asyncapi::Document::rpc)) takes a worker
/// before its state is given, so the AsyncAPI document is made without the database or
/// broker the state is built from.
pub struct Worker<K, S = ()> {
    pub(crate) kind: K,
    routes: RouteTable<S>,
    prefetch: Option<u16>,
    concurrency: Option<u16>,
    handler_timeout: Option<Duration>,
}

impl<K: std::fmt::Debug, S> std::fmt::Debug for Worker<K, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("kind", &self.kind)
            .field("prefetch", &self.prefetch)
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

impl<K: Default, S> Worker<K, S> {
    /// A worker without routes; `S`, the state its routes need, is inferred from the
    /// handlers added (`()` when none takes [`State`](crate::State)).
    pub fn new() -> Self {
        Self {
            kind: K::default(),
            routes: RouteTable::default(),
            prefetch: None,
            concurrency: None,
            handler_timeout: None,
        }
    }
}

impl<K: Default, S> Default for Worker<K, S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K, S: Clone + Send + Sync + 'static> Worker<K, S> {
    /// Gives the routes their state: every handler taking [`State<S>`](crate::State) gets
    /// a clone of `state`. Call it last, after the routes; the worker it returns needs
    /// nothing more and can be registered with the [`Runner`](crate::runner::Runner).
    #[must_use]
    pub fn with_state(self, state: S) -> Worker<K> {
        Worker {
            kind: self.kind,
            routes: self.routes.with_state(state),
            prefetch: self.prefetch,
            concurrency: self.concurrency,
            handler_timeout: self.handler_timeout,
        }
    }
}

impl<K, S: Clone + Send + Sync + 'static> Worker<K, S> {
    /// Serves route `name` with `handler`. Its payload is documented as any JSON; a
    /// contract route ([`RpcWorker::contract`](crate::rpc::RpcWorker::contract)) documents its types.
    #[must_use]
    pub fn route<H, Args>(self, name: &str, handler: H) -> Self
    where
        H: Handler<Args, S>,
    {
        self.route_documented(name, handler, RouteDoc::default())
    }

    pub(crate) fn route_documented<H, Args>(mut self, name: &str, handler: H, doc: RouteDoc) -> Self
    where
        H: Handler<Args, S>,
    {
        self.routes.add(name, boxed(handler), doc);
        self
    }

    /// Restricts route `route` to `callers` (see [`AllowList`]): shared by
    /// [`RpcWorker::allow`](crate::rpc::RpcWorker::allow) and
    /// [`QueueWorker::allow`](crate::queue::QueueWorker::allow).
    pub(crate) fn allow_list(mut self, route: &str, callers: AllowList) -> Self {
        self.routes.allow(route, callers);
        self
    }

    /// Each route's name and documentation.
    pub(crate) fn docs(&self) -> Vec<(String, RouteDoc)> {
        self.routes.docs()
    }

    /// Unacknowledged deliveries the broker sends ahead to each of this worker's routes
    /// (default `AMQP_PREFETCH`): the broker-side buffer, and the most handlers one route
    /// runs at once.
    #[must_use]
    pub fn prefetch(mut self, n: u16) -> Self {
        self.prefetch = Some(n.max(1));
        self
    }

    /// Handlers this worker runs at once across all its routes (default
    /// `WORKER_CONCURRENCY`); deliveries beyond that wait in the routes' buffers.
    #[must_use]
    pub fn concurrency(mut self, n: u16) -> Self {
        self.concurrency = Some(n.max(1));
        self
    }

    /// The worker's intake: its own settings, else the process's.
    fn intake(&self, config: &crate::config::Config) -> Intake {
        Intake {
            prefetch: self.prefetch.unwrap_or(config.prefetch),
            concurrency: self.concurrency.unwrap_or(config.worker_concurrency),
        }
    }

    /// The longest one of this worker's handlers may run (default `HANDLER_TIMEOUT_MS`):
    /// every work-queue message, and every RPC request without a deadline of its own.
    #[must_use]
    pub fn handler_timeout(mut self, limit: Duration) -> Self {
        self.handler_timeout = Some(limit);
        self
    }

    /// The worker's own handler time limit, if set.
    pub(crate) fn handler_timeout_set(&self) -> Option<Duration> {
        self.handler_timeout
    }

    /// The worker's handler time limit, or `default` (`HANDLER_TIMEOUT_MS`).
    pub(crate) fn handler_timeout_or(&self, default: Duration) -> Duration {
        self.handler_timeout.unwrap_or(default)
    }

    pub(crate) fn names(&self) -> Vec<String> {
        self.routes.names()
    }
}

impl<K> Worker<K> {
    /// The routes with access checked as `policy` says, as the consume loop (or the
    /// in-process test client) calls them.
    pub(crate) fn into_bound(
        self,
        policy: &AccessPolicy,
    ) -> Result<Vec<(Arc<str>, BoundHandler)>, Error> {
        if let Some(d) = self.routes.duplicates().first() {
            return Err(Error::DuplicateRoute(d.clone()));
        }
        if let Some(r) = self.routes.allow_without_route() {
            return Err(Error::Config(format!(
                "an allow list names route {r}, which this worker does not serve"
            )));
        }
        Ok(self.routes.bind(policy))
    }

    /// Runs the consume loop with `processor` (what a worker kind does per message).
    pub(crate) async fn run_with<P: Processor>(
        self,
        ctx: WorkerContext,
        processor: P,
    ) -> Result<(), Error> {
        let intake = self.intake(&ctx.config);
        let routes = self.into_bound(&AccessPolicy::from_config(&ctx.config))?;
        run(ctx, Arc::new(processor), routes, intake).await
    }

    /// As [`Worker::run_with`], consuming route `name` from queue `queue_of(name)` (event
    /// subscriptions: a pattern's queue is named after the subscribing service). No call
    /// access check runs here (`RPC_ANONYMOUS` is about calls): event subscriptions admit
    /// publishers in their processor (`events::admission`).
    pub(crate) async fn run_renamed<P: Processor>(
        self,
        ctx: WorkerContext,
        processor: P,
        queue_of: impl Fn(&str) -> String,
    ) -> Result<(), Error> {
        let intake = self.intake(&ctx.config);
        let routes = self
            .into_bound(&AccessPolicy::default())?
            .into_iter()
            .map(|(name, h)| (Arc::from(queue_of(&name).as_str()), h))
            .collect();
        run(ctx, Arc::new(processor), routes, intake).await
    }
}
