//! The Runner: connects databases, starts workers on one Tokio runtime, and shuts down
//! gracefully (in the manner of mini-redis: one cancellation signal that every task
//! watches, then a wait until all have drained).
//!
//! One shutdown token, created first in [`main`], is honoured by every phase: the broker
//! connect, the service's build, the database startup retries, and running. A signal
//! during startup stops it at once (exit 0); once running, the shutdown order is: stop
//! consuming → wait for in-flight handlers (up to `DRAIN_TIMEOUT_MS`, then abort the
//! rest) → close channels → close database pools → close the connection. A second signal
//! exits at once.
//!
//! The Runner also supervises its workers: one that ends while nothing asked it to stops
//! the process with an error (exit 1), so an orchestrator restarts it instead of keeping
//! a process that looks healthy and consumes nothing.

use std::collections::BTreeMap;
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
use crate::config::{Config, Mode, PausePolicy};
use crate::db::{Database, DbConfig};
use crate::handler::routes::find_duplicates;
use crate::observe::Health;
use crate::outbox::OutboxSettings;
use crate::shutdown::shutdown_signal;
use crate::worker::{Runnable, Task, WorkerContext};

/// What a service's build function gets: settings, the process's broker connection, its
/// shutdown token, and the settings variables it was started with (the environment after
/// `.env`), from which the service reads its own settings ([`Setup::db_config`],
/// [`Setup::outbox_settings`], [`Setup::var`]).
///
/// Tests give a service its database, exchange or any other setting through the variables,
/// so a service has one `build`:
///
/// ```no_run
/// # async fn build(setup: worker_kit::Setup) -> Result<worker_kit::Runner, worker_kit::Error> { Ok(setup.runner()) }
/// # async fn test(setup: worker_kit::Setup, dsn: &str) -> Result<(), worker_kit::Error> {
/// let runner = build(
///     setup
///         .with_var("DB_MAIN_DSN", dsn)
///         .with_var("EVENTS_EXCHANGE", "t.events.1"),
/// )
/// .await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Setup {
    /// The service's name (for logs and the connection name).
    pub service: &'static str,
    /// Settings from the environment.
    pub config: Arc<Config>,
    /// The process's broker connection (share it with [`RpcClient::new`](crate::rpc::RpcClient::new)).
    pub broker: Broker,
    /// Cancelled on the first SIGINT/SIGTERM: a build step that may wait (a connection, a
    /// cache warm-up) should give up when it is.
    pub shutdown: CancellationToken,
    /// The settings variables the service's own settings are read from. Shared, since a
    /// setup is cloned into every step of a build.
    vars: Arc<BTreeMap<String, String>>,
}

impl std::fmt::Debug for Setup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Variables are named, never shown: any of them may hold a password.
        f.debug_struct("Setup")
            .field("service", &self.service)
            .field("config", &self.config)
            .field("vars", &self.vars.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Setup {
    /// A setup for `service` whose settings variables are the process environment's (read
    /// now; [`Config::from_env`] loads `.env` into it first), with a shutdown token of its own.
    pub fn new(service: &'static str, config: Arc<Config>, broker: Broker) -> Self {
        Self {
            service,
            config,
            broker,
            shutdown: CancellationToken::new(),
            vars: Arc::new(std::env::vars().collect()),
        }
    }

    /// The same setup, stopped by `shutdown`.
    #[must_use]
    pub fn with_shutdown(mut self, shutdown: CancellationToken) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// The same setup with exactly these settings variables instead of the environment's
    /// (a test that must not depend on how the machine running it is set up).
    #[must_use]
    pub fn with_vars(mut self, vars: impl IntoIterator<Item = (String, String)>) -> Self {
        self.vars = Arc::new(vars.into_iter().collect());
        self
    }

    /// The same setup with variable `name` set to `value` (the service reads it as if it
    /// were in the environment): how a test gives a service its database
    /// (`DB_MAIN_DSN`), its event exchange (`EVENTS_EXCHANGE`) or a setting of its own.
    #[must_use]
    pub fn with_var(mut self, name: &str, value: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.vars).insert(name.to_owned(), value.into());
        self
    }

    /// Settings variable `name`, if set: for a service's own settings.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    /// Every settings variable, as `(name, value)` pairs (for readers such as
    /// [`DbConfig::from_vars`]).
    pub fn vars(&self) -> impl Iterator<Item = (String, String)> + '_ {
        self.vars.iter().map(|(k, v)| (k.clone(), v.clone()))
    }

    /// The settings of database kind `kind` (e.g. `main`: `DB_MAIN_DSN`, else the
    /// service's own database on the `PGHOST` server; `DB_POOL_SIZE` and the rest).
    ///
    /// # Errors
    ///
    /// As [`DbConfig::from_vars`]: [`Error::Config`] naming the malformed variable.
    pub fn db_config(&self, kind: &str) -> Result<DbConfig, Error> {
        DbConfig::from_vars(kind, self.service, self.vars())
    }

    /// The outbox relay's and the event consumers' settings (`EVENTS_EXCHANGE`,
    /// `OUTBOX_*`, `PROCESSED_EVENTS_RETENTION_SECS`).
    ///
    /// # Errors
    ///
    /// As [`OutboxSettings::from_vars`].
    pub fn outbox_settings(&self) -> Result<OutboxSettings, Error> {
        OutboxSettings::from_vars(self.vars())
    }

    /// A Runner for this service, stopped by this setup's shutdown token.
    pub fn runner(&self) -> Runner {
        Runner::new(self.service, self.config.clone(), self.broker.clone())
            .with_shutdown(self.shutdown.clone())
    }
}

/// Drives database clients and workers.
pub struct Runner {
    service: &'static str,
    config: Arc<Config>,
    broker: Broker,
    databases: Vec<Arc<dyn Database>>,
    workers: Vec<Box<dyn Runnable>>,
    shutdown: CancellationToken,
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
            shutdown: CancellationToken::new(),
        }
    }

    /// Stops this Runner when `shutdown` is cancelled: during startup (database retries
    /// give up, [`Runner::start`] returns [`Error::Interrupted`]) and once running
    /// ([`Runner::run`] drains and returns). [`runner::main`](main) passes the token its
    /// signal handler cancels.
    #[must_use]
    pub fn with_shutdown(mut self, shutdown: CancellationToken) -> Self {
        self.shutdown = shutdown;
        self
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

    /// Adds a background task of the service's own (a cache refresh, a periodic report),
    /// run beside the workers and supervised as they are: `task` is called once the
    /// databases are connected, with a token that is cancelled when the Runner stops; it
    /// runs until then.
    ///
    /// - Ending on its own while nothing asked it to (`Ok` or `Err`) stops the process
    ///   with an error naming it ([`Error::Task`], as [`Error::WorkerEnded`] once running),
    ///   for an orchestrator to restart it.
    /// - On stop, it is waited for up to `DRAIN_TIMEOUT_MS` after its token is cancelled,
    ///   then dropped (it ends at its next `.await`); an `Err` it returns then is the
    ///   stop's error.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use worker_kit::{CancellationToken, runner::Setup};
    ///
    /// # fn build(setup: Setup) -> worker_kit::Runner {
    /// setup.runner().register_task("heartbeat", |stop: CancellationToken| async move {
    ///     loop {
    ///         tokio::select! {
    ///             () = stop.cancelled() => return Ok::<_, worker_kit::Error>(()),
    ///             () = tokio::time::sleep(Duration::from_secs(30)) => tracing::info!("alive"),
    ///         }
    ///     }
    /// })
    /// # }
    /// ```
    #[must_use]
    pub fn register_task<F, Fut, E>(mut self, name: &str, task: F) -> Self
    where
        F: FnOnce(CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        self.workers.push(Box::new(Task::new(name, task)));
        self
    }

    /// Connects the databases and starts every worker; returns once all consume.
    ///
    /// # Errors
    ///
    /// [`Error::DuplicateRoute`] when a route name is registered twice (in one worker or
    /// across workers, since a route is a queue); a database or broker error when one
    /// cannot be set up; [`Error::Interrupted`] when the shutdown token is cancelled
    /// first. Nothing keeps running after an error.
    pub async fn start(self) -> Result<Running, Error> {
        let names: Vec<String> = self.workers.iter().flat_map(|w| w.route_names()).collect();
        if let Some(dup) = find_duplicates(&names).into_iter().next() {
            return Err(Error::DuplicateRoute(dup));
        }
        for (route, _) in &self.config.route_allow {
            // An event subscription's name is keyed `events:<pattern>`.
            if !names.contains(route) && !names.contains(&format!("events:{route}")) {
                // One setting may serve several services; a misspelt route, though, stays
                // open, so say so.
                warn!(
                    route = route.as_str(),
                    "ROUTE_ALLOW names a route this process does not serve; the list has no effect here"
                );
            }
        }
        let shutdown = self.shutdown.clone();
        let health = Health::new(self.broker.clone(), shutdown.clone());
        // Stops the listener if starting fails; `Running` holds it until it has stopped.
        let listening = CancellationToken::new();
        let listener = listening.clone().drop_guard();
        let metrics_addr = match self.config.metrics_addr {
            Some(addr) => Some(
                crate::observe::server::start(
                    addr,
                    self.broker.metrics().clone(),
                    health.clone(),
                    listening,
                )
                .await?,
            ),
            None => None,
        };
        self.broker
            .metrics()
            .report_databases(self.databases.clone());
        for db in &self.databases {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => {
                    for db in &self.databases {
                        db.close().await;
                    }
                    return Err(Error::Interrupted);
                }
                r = db.connect() => r?,
            }
            info!(database = db.name(), "database ready");
        }
        if self.config.mode == Mode::Production {
            let mut superuser = Vec::new();
            for db in &self.databases {
                if db.is_superuser().await == Some(true) {
                    superuser.push(db.name().to_owned());
                }
            }
            for w in unsafe_defaults(&self.config.amqp_url, &superuser) {
                warn!("{w}");
            }
        }
        let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
        let (paused_tx, paused) = watch::channel(false);
        if !self.databases.is_empty() {
            // Readiness follows the databases whatever the pause policy; only the pause
            // itself depends on it (without a sender the workers never pause).
            let pauses = (self.config.pause_on_db_outage != PausePolicy::Off).then_some(paused_tx);
            tokio::spawn(watch_databases(
                self.databases.clone(),
                pauses,
                health.clone(),
                self.config.db_health_interval,
                shutdown.clone(),
            ));
        }
        let budget = crate::handler::budget::DecodeBudget::new(self.config.decode_budget_bytes);
        self.broker.metrics().report_decode_budget(budget.clone());
        let ctx = WorkerContext {
            broker: self.broker.clone(),
            config: self.config.clone(),
            shutdown: shutdown.clone(),
            ready: ready_tx,
            paused,
            health: health.clone(),
            budget,
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
        let mut running = Running {
            service: self.service,
            broker: self.broker,
            databases: self.databases,
            shutdown,
            tasks,
            health,
            metrics_addr,
            // The drain, then closing the workers' channels (each close is time-boxed by
            // the connect timeout) with the same again as margin.
            stop_within: self.config.drain_timeout + self.config.connect_timeout * 2,
            _listener: listener,
        };
        for _ in 0..count {
            // A worker that ends before it reports (its routes could not be bound, its
            // connection went away) never will: its end is the start's answer.
            let ready = tokio::select! {
                biased;
                () = running.shutdown.cancelled() => Some(Err(Error::Interrupted)),
                r = ready_rx.recv() => r,
                Some(ended) = running.tasks.join_next() => Some(Err(ended_before_ready(ended))),
            };
            match ready {
                Some(Ok(what)) => info!(service = running.service, "{what}"),
                Some(Err(e)) => {
                    error!(service = running.service, error = %e, "a worker could not start; stopping the others");
                    let _ = running.stop().await;
                    return Err(e);
                }
                None => break,
            }
        }
        running.health.started();
        Ok(running)
    }

    /// Starts, then runs until its shutdown token is cancelled (by [`runner::main`](main)
    /// on SIGINT or SIGTERM), then shuts down gracefully.
    ///
    /// # Errors
    ///
    /// As [`Runner::start`]; [`Error::WorkerEnded`] when a worker ends while nothing asked
    /// it to (the others are stopped first).
    pub async fn run(self) -> Result<(), Error> {
        let running = self.start().await?;
        info!(service = running.service, "ready");
        running.supervise().await
    }
}

/// The error a worker task that ended before reporting readiness stands for.
fn ended_before_ready(ended: Result<Result<(), Error>, tokio::task::JoinError>) -> Error {
    match ended {
        Ok(Err(e)) => e,
        Ok(Ok(())) => Error::WorkerEnded(
            "a worker stopped before it consumed (its broker handle was closed?)".to_owned(),
        ),
        Err(e) if e.is_panic() => {
            Error::WorkerEnded("a worker task panicked while starting".to_owned())
        }
        Err(e) => Error::WorkerEnded(format!("a worker task was cancelled while starting: {e}")),
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
    health: Health,
    metrics_addr: Option<std::net::SocketAddr>,
    /// How long [`Running::stop`] waits for the workers before it aborts them.
    stop_within: Duration,
    /// Stops the `METRICS_ADDR` listener when the Runner has stopped (or is dropped).
    _listener: tokio_util::sync::DropGuard,
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

    /// Where `/metrics`, `/livez` and `/readyz` are served (`METRICS_ADDR`, with the port
    /// picked when it was `0`), if anywhere.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.metrics_addr
    }

    /// The readiness `/readyz` reports.
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// The token whose cancellation stops this Runner (what a signal cancels).
    pub fn shutdown_token(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// Runs until the shutdown token is cancelled, then stops gracefully. A worker that
    /// ends before that (its task returned or panicked) stops the others and is reported:
    /// a process whose workers are gone must not look healthy.
    ///
    /// # Errors
    ///
    /// [`Error::WorkerEnded`] naming what ended; otherwise as [`Running::stop`].
    pub async fn supervise(mut self) -> Result<(), Error> {
        let ended = tokio::select! {
            biased;
            () = self.shutdown.cancelled() => None,
            Some(r) = self.tasks.join_next() => Some(r),
        };
        let Some(ended) = ended else {
            info!(
                service = self.service,
                "shutting down (a second signal exits at once)"
            );
            return self.stop().await;
        };
        let what = match ended {
            Ok(Ok(())) => "a worker stopped consuming (its broker handle was closed?)".to_owned(),
            Ok(Err(e @ Error::Task { .. })) => e.to_string(),
            Ok(Err(e)) => format!("a worker failed: {e}"),
            Err(e) if e.is_panic() => "a worker task panicked".to_owned(),
            Err(e) => format!("a worker task was cancelled: {e}"),
        };
        error!(
            service = self.service,
            "{what}; stopping the others and exiting with an error"
        );
        if let Err(e) = self.stop().await {
            warn!(error = %e, "another worker failed while stopping");
        }
        Err(Error::WorkerEnded(what))
    }

    /// Stops consuming, drains in-flight messages, closes databases and the connection.
    /// Workers still running `DRAIN_TIMEOUT_MS` plus twice `AMQP_CONNECT_TIMEOUT_MS` after
    /// the stop began (one waiting for an unreachable broker) are aborted: a stop never
    /// waits for the broker to come back.
    ///
    /// # Errors
    ///
    /// The first error a worker ended with.
    pub async fn stop(mut self) -> Result<(), Error> {
        self.shutdown.cancel();
        let deadline = tokio::time::Instant::now() + self.stop_within;
        let mut first_err = None;
        loop {
            let r = match tokio::time::timeout_at(deadline, self.tasks.join_next()).await {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(_) => {
                    warn!(
                        service = self.service,
                        still_running = self.tasks.len(),
                        stop_within_ms = self.stop_within.as_millis() as u64,
                        "workers did not stop in time (the broker unreachable?); aborting them"
                    );
                    self.tasks.abort_all();
                    // Aborted tasks end at their next await: this wait is short.
                    while self.tasks.join_next().await.is_some() {}
                    break;
                }
            };
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

/// Checks the databases every `interval`, reports each to readiness, and (with `paused`)
/// tells the workers to pause while any of them does not answer.
async fn watch_databases(
    databases: Vec<Arc<dyn Database>>,
    paused: Option<watch::Sender<bool>>,
    health: Health,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut was_down = false;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        let mut down = None;
        for db in &databases {
            let ready = db.is_ready().await;
            health.database(db.name(), ready);
            if !ready && down.is_none() {
                down = Some(db.name().to_owned());
            }
        }
        let now_down = down.is_some();
        if now_down != was_down {
            match &down {
                Some(name) => warn!(database = %name, "database unreachable"),
                None => info!("databases reachable again"),
            }
            was_down = now_down;
        }
        if let Some(paused) = &paused
            && now_down != *paused.borrow()
        {
            paused.send_replace(now_down);
        }
    }
}

/// The whole `main` of a service: settings, logs, broker connection, `build`, run until a
/// signal. Exit codes: 0 after a graceful stop, 2 for a bad setting (one line on stderr
/// naming the variable), 1 for anything else. `SERVICE healthcheck [readyz|livez]` asks the
/// running process's `METRICS_ADDR` listener instead and exits 0 when it answers 200.
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
    if std::env::args().nth(1).as_deref() == Some("healthcheck") {
        return healthcheck(service);
    }
    if std::env::args().nth(1).as_deref() == Some("asyncapi") {
        eprintln!(
            "{service}: this service does not describe its routes (its main calls runner::main; runner::main_with_docs takes a function that returns its AsyncAPI document)"
        );
        return ExitCode::from(2);
    }
    run_main(service, build)
}

/// As [`main`], and `SERVICE asyncapi` prints the service's AsyncAPI 3.0 document (made by
/// `docs`, without connecting to the broker or a database) and exits.
///
/// ```no_run
/// use worker_kit::{Payload, asyncapi::Document, rpc::RpcWorker, runner::Setup};
///
/// async fn hello(Payload(_): Payload<serde_json::Value>) -> Result<&'static str, std::convert::Infallible> {
///     Ok("Hello world!")
/// }
///
/// fn rpc() -> RpcWorker {
///     RpcWorker::new().route("hello_world", hello)
/// }
///
/// fn main() -> std::process::ExitCode {
///     worker_kit::runner::main_with_docs(
///         "hello",
///         || Document::new("hello").rpc(&rpc()),
///         |setup: Setup| async move { Ok(setup.runner().register_worker(rpc())) },
///     )
/// }
/// ```
pub fn main_with_docs<D, F, Fut>(service: &'static str, docs: D, build: F) -> ExitCode
where
    D: FnOnce() -> crate::asyncapi::Document,
    F: FnOnce(Setup) -> Fut,
    Fut: Future<Output = Result<Runner, Error>>,
{
    match std::env::args().nth(1).as_deref() {
        Some("asyncapi") => {
            let doc = docs().to_json();
            match serde_json::to_string_pretty(&doc) {
                Ok(text) => {
                    println!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{service}: cannot print the AsyncAPI document: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Some("healthcheck") => healthcheck(service),
        Some(other) => {
            eprintln!(
                "{service}: unknown argument {other:?}; usage: {service} [asyncapi | healthcheck [readyz|livez]] (settings come from the environment, see .env.example)"
            );
            ExitCode::from(2)
        }
        None => run_main(service, build),
    }
}

/// Logs, and traces exported as the `OTEL_*` variables say (the exporter runs on the
/// service's runtime); the tracer provider, to flush at exit, when traces are on.
#[cfg(feature = "otel")]
fn init_traced_logs(
    service: &str,
    config: &Config,
    runtime: &tokio::runtime::Runtime,
) -> Option<opentelemetry_sdk::trace::SdkTracerProvider> {
    let _inside = runtime.enter();
    let provider = crate::observe::trace::install(service);
    match &provider {
        Some(p) => crate::logging::init_with_traces(config, p),
        None => crate::logging::init(config),
    }
    provider
}

/// `SERVICE healthcheck [readyz|livez]`: exit 0 when the running process's listener on
/// `METRICS_ADDR` answers 200 (what a container `HEALTHCHECK` runs).
fn healthcheck(service: &str) -> ExitCode {
    let path = std::env::args()
        .nth(2)
        .unwrap_or_else(|| "readyz".to_owned());
    crate::observe::probe::run(service, &path)
}

fn run_main<F, Fut>(service: &'static str, build: F) -> ExitCode
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
    #[cfg(feature = "otel")]
    let traced = init_traced_logs(service, &config, &runtime);
    #[cfg(not(feature = "otel"))]
    crate::logging::init(&config);
    let result = runtime.block_on(async move {
        // First, so that a signal at any later point (connect, build, database startup)
        // is honoured.
        let shutdown = CancellationToken::new();
        tokio::spawn({
            let shutdown = shutdown.clone();
            async move {
                shutdown_signal().await;
                info!(service, "signal received; stopping");
                shutdown.cancel();
                shutdown_signal().await;
                warn!("second signal: exiting without draining");
                std::process::exit(130);
            }
        });
        let config = Arc::new(config);
        let broker = tokio::select! {
            biased;
            () = shutdown.cancelled() => return Err(Error::Interrupted),
            b = Broker::connect_configured(&config, service) => b?,
        };
        let setup = Setup::new(service, config, broker.clone()).with_shutdown(shutdown.clone());
        let runner = tokio::select! {
            biased;
            () = shutdown.cancelled() => Err(Error::Interrupted),
            r = build(setup) => r,
        };
        let result = match runner {
            Ok(runner) => runner.with_shutdown(shutdown).run().await,
            Err(e) => Err(e),
        };
        if !matches!(result, Ok(())) {
            // The Runner closes the broker when it stops; on a failure before that the
            // connection would otherwise outlive its use (and hold up the exit).
            broker.close().await;
        }
        result
    });
    #[cfg(feature = "otel")]
    if traced.is_some() {
        // Spans still batched go out before the process exits.
        runtime.block_on(async {
            let _ = tokio::task::spawn_blocking(crate::observe::trace::shutdown).await;
        });
    }
    match result {
        Ok(()) | Err(Error::Interrupted) => ExitCode::SUCCESS,
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

/// What a production service runs with that it should not: the broker's `guest` account
/// (every local client knows its password) or a database superuser (`postgres`, the
/// default without `PGUSER`), each with how to fix it.
pub(crate) fn unsafe_defaults(
    amqp_url: &crate::config::AmqpUrl,
    superuser_databases: &[String],
) -> Vec<String> {
    let mut found = Vec::new();
    // Every node of the list logs in as the same user (the list is refused otherwise).
    if amqp_url.user() == "guest" {
        found.push(
            "UNSAFE: connected to RabbitMQ as `guest`, whose password everyone knows; give the service a user of its own with permissions on its own queues only (rabbitmq-configs/definitions.json) and put it in AMQP_URL".to_owned(),
        );
    }
    for db in superuser_databases {
        found.push(format!(
            "UNSAFE: database `{db}` is used as a PostgreSQL superuser, who can read and change every database on the server; set PGUSER (or the user in DB_{}_DSN) to a role that owns only this service's database",
            db.to_ascii_uppercase()
        ));
    }
    found
}

#[cfg(test)]
mod unsafe_default_tests {
    use super::unsafe_defaults;

    #[test]
    fn guest_and_superusers_are_named() {
        let w = unsafe_defaults(
            &crate::config::Config::default().amqp_url,
            &["main".to_owned()],
        );
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].contains("`guest`") && w[0].contains("AMQP_URL"),
            "{w:?}"
        );
        assert!(w[1].contains("`main`") && w[1].contains("PGUSER"), "{w:?}");
        // lapin's default user, when the URL names none, is guest too.
        assert_eq!(
            unsafe_defaults(&"amqp://127.0.0.1:5672/%2f".parse().unwrap(), &[]).len(),
            1
        );
        assert!(
            unsafe_defaults(&"amqp://orders:pw@rabbit:5672/%2f".parse().unwrap(), &[]).is_empty()
        );
    }
}
