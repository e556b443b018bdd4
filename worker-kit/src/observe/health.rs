//! Readiness: whether this replica should get traffic. It is ready when the Runner has
//! started, the broker connection is up, every worker consumes, every registered database
//! answers, and no drain has begun. The drain check reads the shutdown token itself, so
//! `/readyz` turns false the moment a signal arrives, before any consumer is cancelled.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use super::metrics::WorkerMetrics;

/// What readiness needs to know of the broker connections: implemented by
/// [`Broker`](crate::amqp::Broker), which sits above observe and feeds it.
pub(crate) trait Connections: Send + Sync + 'static {
    /// Whether every connection the process opened is up now.
    fn all_connected(&self) -> bool;
}

/// The readiness of one Runner; cheap to clone.
#[derive(Clone)]
pub struct Health {
    inner: Arc<Inner>,
}

struct Inner {
    broker: Box<dyn Connections>,
    shutdown: CancellationToken,
    started: AtomicBool,
    workers: Mutex<Vec<(String, Arc<AtomicBool>)>>,
    /// The registered databases that did not answer the last check.
    databases_down: Mutex<Vec<String>>,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health")
            .field("ready", &self.readiness().is_ok())
            .finish_non_exhaustive()
    }
}

impl Health {
    /// The readiness of a Runner on `broker` that stops when `shutdown` is cancelled.
    pub(crate) fn new(broker: impl Connections, shutdown: CancellationToken) -> Self {
        Self {
            inner: Arc::new(Inner {
                broker: Box::new(broker),
                shutdown,
                started: AtomicBool::new(false),
                workers: Mutex::new(Vec::new()),
                databases_down: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Every worker reported consuming once: from now on readiness follows the parts.
    pub(crate) fn started(&self) {
        self.inner.started.store(true, Ordering::Release);
    }

    /// Registers a worker (named after its first route), not consuming yet.
    pub(crate) fn worker(&self, name: &str, metrics: WorkerMetrics) -> WorkerHealth {
        let flag = Arc::new(AtomicBool::new(false));
        lock(&self.inner.workers).push((name.to_owned(), flag.clone()));
        WorkerHealth { flag, metrics }
    }

    /// Records the result of a database check.
    pub(crate) fn database(&self, name: &str, reachable: bool) {
        let mut down = lock(&self.inner.databases_down);
        down.retain(|d| d != name);
        if !reachable {
            down.push(name.to_owned());
        }
    }

    /// `Ok` when ready, otherwise every reason it is not, one per line.
    ///
    /// # Errors
    ///
    /// The reasons, e.g. `broker disconnected` or `database main unreachable`.
    pub fn readiness(&self) -> Result<(), String> {
        let mut why = Vec::new();
        if self.inner.shutdown.is_cancelled() {
            why.push("draining".to_owned());
        } else if !self.inner.started.load(Ordering::Acquire) {
            why.push("starting".to_owned());
        }
        if !self.inner.broker.all_connected() {
            why.push("broker disconnected".to_owned());
        }
        for (name, flag) in lock(&self.inner.workers).iter() {
            if !flag.load(Ordering::Acquire) {
                why.push(format!("worker {name} not consuming"));
            }
        }
        for name in lock(&self.inner.databases_down).iter() {
            why.push(format!("database {name} unreachable"));
        }
        if why.is_empty() {
            Ok(())
        } else {
            Err(why.join("\n"))
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A worker's part of readiness, and its metrics.
#[derive(Clone)]
pub(crate) struct WorkerHealth {
    flag: Arc<AtomicBool>,
    pub(crate) metrics: WorkerMetrics,
}

impl WorkerHealth {
    /// Whether the worker consumes its routes now.
    pub(crate) fn consuming(&self, yes: bool) {
        self.flag.store(yes, Ordering::Release);
        self.metrics.consuming(yes);
    }
}
