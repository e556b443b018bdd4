//! The Runner: connects databases, starts workers on one Tokio runtime, and shuts down
//! gracefully (in the manner of mini-redis: one cancellation signal that every task
//! watches, then a wait until all have drained).
//!
//! Shutdown order on SIGINT/SIGTERM: stop consuming → wait for in-flight handlers (up to
//! `DRAIN_TIMEOUT_MS`) → close channels → close database pools → close the connection.
//! A second signal exits at once.

use std::future::Future;
use std::process::ExitCode;
use std::sync::Arc;

use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::Error;
use crate::amqp::broker::Broker;
use crate::config::{Config, PausePolicy};
use crate::db::Database;
use crate::handler::routes::find_duplicates;
use crate::shutdown::shutdown_signal;
use crate::worker::{Runnable, WorkerContext};

/// What a service's build function gets: settings and the process's broker connection.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The service's name (for logs and the connection name).
    pub service: &'static str,
    /// Settings from the environment.
    pub config: Arc<Config>,
    /// The process's broker connection (share it with [`RpcClient::new`](crate::rpc::RpcClient::new)).
    pub broker: Broker,
}

impl Setup {
    /// A Runner for this service.
    pub fn runner(&self) -> Runner {
        Runner::new(self.service, self.config.clone(), self.broker.clone())
    }
}

/// Drives database clients and workers.
pub struct Runner {
    service: &'static str,
    config: Arc<Config>,
    broker: Broker,
    databases: Vec<Arc<dyn Database>>,
    workers: Vec<Box<dyn Runnable>>,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("service", &self.service)
            .field("databases", &self.databases.len())
            .field("workers", &self.workers.len())
            .finish_non_exhaustive()
    }
}

impl Runner {
    /// A Runner for `service` on `broker`.
    pub fn new(service: &'static str, config: Arc<Config>, broker: Broker) -> Self {
        Self {
            service,
            config,
            broker,
            databases: Vec::new(),
            workers: Vec::new(),
        }
    }

    /// Adds a database client: connected before any worker consumes, closed after all
    /// have drained.
    #[must_use]
    pub fn register_database(mut self, db: impl Database) -> Self {
        self.databases.push(Arc::new(db));
        self
    }

    /// Adds a shared database client (one that handlers also hold).
    #[must_use]
    pub fn register_shared_database(mut self, db: Arc<dyn Database>) -> Self {
        self.databases.push(db);
        self
    }

    /// Adds a worker.
    #[must_use]
    pub fn register_worker(mut self, worker: impl Runnable) -> Self {
        self.workers.push(Box::new(worker));
        self
    }

    /// Connects the databases and starts every worker; returns once all consume.
    ///
    /// # Errors
    ///
    /// [`Error::DuplicateRoute`] when a route name is registered twice (in one worker or
    /// across workers, since a route is a queue); a database or broker error when one
    /// cannot be set up. Nothing keeps running after an error.
    pub async fn start(self) -> Result<Running, Error> {
        let names: Vec<String> = self.workers.iter().flat_map(|w| w.route_names()).collect();
        if let Some(dup) = find_duplicates(&names).into_iter().next() {
            return Err(Error::DuplicateRoute(dup));
        }
        for db in &self.databases {
            db.connect().await?;
            info!(database = db.name(), "database ready");
        }
        let shutdown = CancellationToken::new();
        let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
        let (paused_tx, paused) = watch::channel(false);
        if !self.databases.is_empty() && self.config.pause_on_db_outage != PausePolicy::Off {
            tokio::spawn(watch_databases(
                self.databases.clone(),
                paused_tx,
                self.config.db_health_interval,
                shutdown.clone(),
            ));
        }
        let ctx = WorkerContext {
            broker: self.broker.clone(),
            config: self.config.clone(),
            shutdown: shutdown.clone(),
            ready: ready_tx,
            paused,
            service: Arc::from(self.service),
            served: Arc::new(
                names
                    .iter()
                    .flat_map(|n| [n.clone(), crate::queue::parking_queue(n)])
                    .collect(),
            ),
        };
        let mut tasks = JoinSet::new();
        let count = self.workers.len();
        for w in self.workers {
            let ctx = ctx.clone();
            tasks.spawn(async move { w.run(ctx).await });
        }
        drop(ctx);
        let running = Running {
            service: self.service,
            broker: self.broker,
            databases: self.databases,
            shutdown,
            tasks,
        };
        for _ in 0..count {
            match ready_rx.recv().await {
                Some(Ok(what)) => info!(service = running.service, "{what}"),
                Some(Err(e)) => {
                    let _ = running.stop().await;
                    return Err(e);
                }
                None => break,
            }
        }
        Ok(running)
    }

    /// Starts, then runs until SIGINT or SIGTERM, then shuts down gracefully.
    ///
    /// # Errors
    ///
    /// As [`Runner::start`].
    pub async fn run(self) -> Result<(), Error> {
        let running = self.start().await?;
        info!(service = running.service, "ready");
        shutdown_signal().await;
        info!(
            service = running.service,
            "shutting down (a second signal exits at once)"
        );
        tokio::spawn(async {
            shutdown_signal().await;
            warn!("second signal: exiting without draining");
            std::process::exit(130);
        });
        running.stop().await
    }
}

/// A started Runner.
#[derive(Debug)]
pub struct Running {
    service: &'static str,
    broker: Broker,
    databases: Vec<Arc<dyn Database>>,
    shutdown: CancellationToken,
    tasks: JoinSet<Result<(), Error>>,
}

impl std::fmt::Debug for dyn Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Database({})", self.name())
    }
}

impl Running {
    /// The broker this Runner uses.
    pub fn broker(&self) -> &Broker {
        &self.broker
    }

    /// Stops consuming, drains in-flight messages, closes databases and the connection.
    ///
    /// # Errors
    ///
    /// The first error a worker ended with.
    pub async fn stop(mut self) -> Result<(), Error> {
        self.shutdown.cancel();
        let mut first_err = None;
        while let Some(r) = self.tasks.join_next().await {
            match r {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    error!(error = %e, "worker failed");
                    first_err.get_or_insert(e);
                }
                Err(e) => error!(error = %e, "worker task panicked"),
            }
        }
        for db in &self.databases {
            db.close().await;
        }
        self.broker.close().await;
        info!(service = self.service, "stopped");
        first_err.map_or(Ok(()), Err)
    }
}

/// Checks the databases every `interval` and tells the workers to pause while any of
/// them does not answer.
async fn watch_databases(
    databases: Vec<Arc<dyn Database>>,
    paused: watch::Sender<bool>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        let mut down = None;
        for db in &databases {
            if !db.is_ready().await {
                down = Some(db.name().to_owned());
                break;
            }
        }
        let now_paused = down.is_some();
        if now_paused != *paused.borrow() {
            match &down {
                Some(name) => warn!(database = %name, "database unreachable"),
                None => info!("databases reachable again"),
            }
            paused.send_replace(now_paused);
        }
    }
}

/// The whole `main` of a service: settings, logs, broker connection, `build`, run until a
/// signal. Exit codes: 0 after a graceful stop, 2 for a bad setting (one line on stderr
/// naming the variable), 1 for anything else.
///
/// ```no_run
/// use worker_kit::{Payload, rpc::RpcWorker, runner::Setup};
///
/// async fn hello(Payload(_): Payload<serde_json::Value>) -> Result<&'static str, std::convert::Infallible> {
///     Ok("Hello world!")
/// }
///
/// fn main() -> std::process::ExitCode {
///     worker_kit::runner::main("hello", |setup: Setup| async move {
///         Ok(setup.runner().register_worker(RpcWorker::new().route("hello_world", hello)))
///     })
/// }
/// ```
pub fn main<F, Fut>(service: &'static str, build: F) -> ExitCode
where
    F: FnOnce(Setup) -> Fut,
    Fut: Future<Output = Result<Runner, Error>>,
{
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{service}: {e}");
            return ExitCode::from(2);
        }
    };
    crate::logging::init(&config);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{service}: cannot start the Tokio runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async move {
        let config = Arc::new(config);
        let broker = tokio::select! {
            b = Broker::connect(&config.amqp_url, service, config.connect_timeout) => b?,
            () = shutdown_signal() => return Ok(()),
        };
        let setup = Setup {
            service,
            config,
            broker,
        };
        build(setup).await?.run().await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Error::Config(msg)) => {
            eprintln!("{service}: configuration: {msg}");
            ExitCode::from(2)
        }
        Err(e) => {
            error!(error = %e, source = ?std::error::Error::source(&e).map(ToString::to_string), "{service} stopped with an error");
            eprintln!(
                "{service}: {e}{}",
                std::error::Error::source(&e)
                    .map(|s| format!(": {s}"))
                    .unwrap_or_default()
            );
            ExitCode::from(1)
        }
    }
}
