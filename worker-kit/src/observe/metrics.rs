//! The process's Prometheus metrics, built on `prometheus-client` with a registry of the
//! process's own (no global registry, so two services in one test process, or a service
//! and a tool, never mix their numbers).
//!
//! The hot path touches only handles resolved once per route or worker (`RouteMetrics`,
//! `WorkerMetrics`, the RPC client's per-route cache): an atomic add per counter, one
//! histogram observation per settled message, no label allocation.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::decode_budget::{BudgetSource, DecodeBudgetGauges};
use super::disposition::Disposition;
use super::labels::Bounded;

/// Handler and call durations, in seconds: the OpenTelemetry messaging buckets, plus 30 and
/// 60 s for handlers that run up to `HANDLER_TIMEOUT_MS` (60 s by default).
pub const DURATION_BUCKETS: [f64; 16] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 30.0, 60.0,
];

/// Distinct error types kept as label values before the rest count as `other`.
const MAX_ERROR_TYPES: usize = 64;
/// Distinct routes an RPC client labels its calls with before the rest count as `other`.
const MAX_CLIENT_ROUTES: usize = 256;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    route: String,
    kind: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    route: String,
    kind: &'static str,
    error_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkerLabels {
    worker: String,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    route: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConnectionLabels {
    connection: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DatabaseLabels {
    database: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

/// The process's metrics; cheap to clone (clones share the registry). Every
/// [`Broker`](crate::Broker) has one ([`Broker::metrics`](crate::Broker::metrics)), so the
/// workers, RPC clients and database pools of a process report into one registry.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    received: Family<RouteLabels, Counter>,
    duration: Histograms<OutcomeLabels>,
    errors: Family<ErrorLabels, Counter>,
    retries: Family<RouteLabels, Counter>,
    parked: Family<RouteLabels, Counter>,
    in_flight: Family<WorkerLabels, Gauge>,
    in_flight_limit: Family<WorkerLabels, Gauge>,
    consuming: Family<WorkerLabels, Gauge>,
    calls: Family<CallLabels, Counter>,
    call_duration: Histograms<CallLabels>,
    broker_connected: Family<ConnectionLabels, Gauge>,
    broker_reconnects: Family<ConnectionLabels, Counter>,
    error_types: Bounded,
    client_routes: Bounded,
    databases: DatabasePools,
    decode_budget: DecodeBudgetGauges,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// An empty registry with every metric of the kit registered.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let received = Family::<RouteLabels, Counter>::default();
        registry.register(
            "worker_kit_messages_received",
            "Deliveries taken off a route's queue",
            received.clone(),
        );
        let duration: Histograms<OutcomeLabels> =
            Family::new_with_constructor(duration_histogram as fn() -> Histogram);
        registry.register(
            "worker_kit_handler_duration_seconds",
            "Time from delivery to settlement (reply sent, acked, retried or parked), by outcome",
            duration.clone(),
        );
        let errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "worker_kit_handler_errors",
            "Messages whose handling ended in an error, by the error's type",
            errors.clone(),
        );
        let retries = Family::<RouteLabels, Counter>::default();
        registry.register(
            "worker_kit_queue_retries",
            "Work messages stored again with a higher retry count",
            retries.clone(),
        );
        let parked = Family::<RouteLabels, Counter>::default();
        registry.register(
            "worker_kit_queue_parked",
            "Work messages moved to their route's parking queue",
            parked.clone(),
        );
        let in_flight = Family::<WorkerLabels, Gauge>::default();
        registry.register(
            "worker_kit_worker_in_flight",
            "Handlers running now in a worker",
            in_flight.clone(),
        );
        let in_flight_limit = Family::<WorkerLabels, Gauge>::default();
        registry.register(
            "worker_kit_worker_in_flight_limit",
            "The most handlers a worker runs at once (its prefetch); in_flight / limit is its saturation",
            in_flight_limit.clone(),
        );
        let consuming = Family::<WorkerLabels, Gauge>::default();
        registry.register(
            "worker_kit_worker_consuming",
            "1 while a worker consumes its routes, 0 while it is paused, reconnecting or stopped",
            consuming.clone(),
        );
        let calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "worker_kit_rpc_client_calls",
            "RPC calls made by this process, by route and outcome",
            calls.clone(),
        );
        let call_duration: Histograms<CallLabels> =
            Family::new_with_constructor(duration_histogram as fn() -> Histogram);
        registry.register(
            "worker_kit_rpc_client_duration_seconds",
            "Duration of RPC calls made by this process, by route and outcome",
            call_duration.clone(),
        );
        let broker_connected = Family::<ConnectionLabels, Gauge>::default();
        registry.register(
            "worker_kit_broker_connected",
            "1 while a broker connection of the process is up (main; consume: the work and event consumers')",
            broker_connected.clone(),
        );
        let broker_reconnects = Family::<ConnectionLabels, Counter>::default();
        registry.register(
            "worker_kit_broker_reconnects",
            "Times a broker connection was lost and opened again",
            broker_reconnects.clone(),
        );
        let databases = DatabasePools::default();
        registry.register_collector(Box::new(databases.clone()));
        let decode_budget = DecodeBudgetGauges::default();
        registry.register_collector(Box::new(decode_budget.clone()));
        Self {
            inner: Arc::new(Inner {
                registry,
                received,
                duration,
                errors,
                retries,
                parked,
                in_flight,
                in_flight_limit,
                consuming,
                calls,
                call_duration,
                broker_connected,
                broker_reconnects,
                error_types: Bounded::new(MAX_ERROR_TYPES),
                client_routes: Bounded::new(MAX_CLIENT_ROUTES),
                databases,
                decode_budget,
            }),
        }
    }

    /// The exposition in the OpenMetrics text format (what `/metrics` serves).
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.inner.registry);
        out
    }

    /// The handles of one served route; with `on` false they record nothing (a process
    /// without `METRICS_ADDR` has nobody to read them).
    pub(crate) fn route(&self, route: &str, kind: &'static str, on: bool) -> RouteMetrics {
        let labels = RouteLabels {
            route: route.to_owned(),
            kind,
        };
        RouteMetrics {
            on,
            received: self.inner.received.get_or_create_owned(&labels),
            durations: Default::default(),
            labels,
            metrics: self.clone(),
        }
    }

    /// The handles of one worker, named after its first route.
    pub(crate) fn worker(&self, worker: &str, kind: &'static str, limit: u16) -> WorkerMetrics {
        let labels = WorkerLabels {
            worker: worker.to_owned(),
            kind,
        };
        self.inner
            .in_flight_limit
            .get_or_create(&labels)
            .set(i64::from(limit));
        WorkerMetrics {
            in_flight: self.inner.in_flight.get_or_create_owned(&labels),
            consuming: self.inner.consuming.get_or_create_owned(&labels),
        }
    }

    /// The RPC client's per-route call metrics (recording nothing unless `on`).
    pub(crate) fn client(&self, on: bool) -> ClientMetrics {
        ClientMetrics {
            on,
            metrics: self.clone(),
            routes: Arc::new(RwLock::new(HashMap::new())),
        }
    }

    pub(crate) fn broker_up(&self, connection: &'static str, up: bool) {
        let labels = ConnectionLabels { connection };
        self.inner
            .broker_connected
            .get_or_create(&labels)
            .set(i64::from(up));
        // Present (at 0) from the start, so that rate() and increase() see the first one.
        let _ = self.inner.broker_reconnects.get_or_create(&labels);
    }

    pub(crate) fn broker_reconnected(&self, connection: &'static str) {
        self.inner
            .broker_reconnects
            .get_or_create(&ConnectionLabels { connection })
            .inc();
    }

    /// The decode budget whose use is reported (the Runner's).
    pub(crate) fn report_decode_budget(&self, budget: impl BudgetSource) {
        self.inner.decode_budget.report(Arc::new(budget));
    }

    /// The databases whose pools are reported (the Runner's registered ones).
    pub(crate) fn report_databases<P: PoolSource>(&self, databases: Vec<P>) {
        let databases = databases
            .into_iter()
            .map(|p| Arc::new(p) as Arc<dyn PoolSource>)
            .collect();
        *self
            .inner
            .databases
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = databases;
    }
}

/// The metrics of one served route.
pub(crate) struct RouteMetrics {
    on: bool,
    received: Counter,
    /// One histogram per [`Disposition`], made on first use.
    durations: [OnceLock<Histogram>; Disposition::COUNT],
    labels: RouteLabels,
    metrics: Metrics,
}

impl RouteMetrics {
    pub(crate) fn received(&self) {
        if self.on {
            self.received.inc();
        }
    }

    /// A delivery was settled as `outcome` after `elapsed`; `error_type` is the type of
    /// the error it ended with, if any.
    pub(crate) fn settled(
        &self,
        outcome: Disposition,
        elapsed: Duration,
        error_type: Option<&str>,
    ) {
        if !self.on {
            return;
        }
        let inner = &self.metrics.inner;
        self.durations[outcome.index()]
            .get_or_init(|| {
                inner.duration.get_or_create_owned(&OutcomeLabels {
                    route: self.labels.route.clone(),
                    kind: self.labels.kind,
                    outcome: outcome.as_str(),
                })
            })
            .observe(elapsed.as_secs_f64());
        match outcome {
            Disposition::Retried => {
                inner.retries.get_or_create(&self.labels).inc();
            }
            Disposition::Parked => {
                inner.parked.get_or_create(&self.labels).inc();
            }
            _ => {}
        }
        if let Some(t) = error_type {
            inner
                .errors
                .get_or_create(&ErrorLabels {
                    route: self.labels.route.clone(),
                    kind: self.labels.kind,
                    error_type: inner.error_types.admit(t),
                })
                .inc();
        }
    }
}

/// The metrics of one worker.
#[derive(Clone)]
pub(crate) struct WorkerMetrics {
    pub(crate) in_flight: Gauge,
    consuming: Gauge,
}

impl WorkerMetrics {
    pub(crate) fn consuming(&self, yes: bool) {
        self.consuming.set(i64::from(yes));
    }
}

/// How an RPC call ended, as its `outcome` label: `ok` or the [`CallError`] variant.
///
/// [`CallError`]: crate::rpc::CallError
pub(crate) const CALL_OUTCOMES: [&str; 9] = [
    "ok",
    "Remote",
    "Timeout",
    "NoRoute",
    "ConnectionLost",
    "Refused",
    "TooLarge",
    "Codec",
    "UserIdRefused",
];

type CallHandles = [OnceLock<(Counter, Histogram)>; CALL_OUTCOMES.len()];
/// Per route called: its label value (bounded) and its handles per outcome.
type CallRoutes = HashMap<String, Arc<(String, CallHandles)>>;

/// An RPC client's call metrics, with the handles of each route it called cached.
#[derive(Clone)]
pub(crate) struct ClientMetrics {
    on: bool,
    metrics: Metrics,
    routes: Arc<RwLock<CallRoutes>>,
}

impl ClientMetrics {
    /// A call to `route` ended with outcome number `outcome` (an index into
    /// [`CALL_OUTCOMES`]) after `elapsed`.
    pub(crate) fn call(&self, route: &str, outcome: usize, elapsed: Duration) {
        if !self.on {
            return;
        }
        let known = self
            .routes
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(route)
            .cloned();
        let entry = known.unwrap_or_else(|| {
            let label = self.metrics.inner.client_routes.admit(route);
            let entry = Arc::new((label, CallHandles::default()));
            self.routes
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .entry(route.to_owned())
                .or_insert(entry)
                .clone()
        });
        let (label, handles) = &*entry;
        let (count, duration) = handles[outcome].get_or_init(|| {
            let labels = CallLabels {
                route: label.clone(),
                outcome: CALL_OUTCOMES[outcome],
            };
            (
                self.metrics.inner.calls.get_or_create_owned(&labels),
                self.metrics
                    .inner
                    .call_duration
                    .get_or_create_owned(&labels),
            )
        });
        count.inc();
        duration.observe(elapsed.as_secs_f64());
    }
}

/// What the metrics read of a registered database at each scrape. Defined here and
/// implemented by [`db`](crate::db), which sits above observe and feeds it.
pub(crate) trait PoolSource: Send + Sync + 'static {
    /// The database's short name (the `database` label).
    fn name(&self) -> &str;
    /// Its pool now, when it has one.
    fn pool_stats(&self) -> Option<PoolStats>;
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

/// The pools of the registered databases, read at each scrape.
#[derive(Clone, Default)]
struct DatabasePools(Arc<Mutex<Vec<Arc<dyn PoolSource>>>>);

impl std::fmt::Debug for DatabasePools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DatabasePools")
    }
}

impl Collector for DatabasePools {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let max_size = Family::<DatabaseLabels, Gauge>::default();
        let size = Family::<DatabaseLabels, Gauge>::default();
        let in_use = Family::<DatabaseLabels, Gauge>::default();
        let waiting = Family::<DatabaseLabels, Gauge>::default();
        let timeouts = Family::<DatabaseLabels, Counter>::default();
        let databases = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        for db in &databases {
            let Some(s) = db.pool_stats() else { continue };
            let labels = DatabaseLabels {
                database: db.name().to_owned(),
            };
            max_size.get_or_create(&labels).set(to_i64(s.max_size));
            size.get_or_create(&labels).set(to_i64(s.size));
            in_use.get_or_create(&labels).set(to_i64(s.in_use));
            waiting.get_or_create(&labels).set(to_i64(s.waiting));
            timeouts.get_or_create(&labels).inc_by(s.acquire_timeouts);
        }
        for (name, help, family) in [
            (
                "worker_kit_db_pool_max_size",
                "Connections a database pool may open",
                &max_size,
            ),
            (
                "worker_kit_db_pool_size",
                "Connections a database pool holds open",
                &size,
            ),
            (
                "worker_kit_db_pool_in_use",
                "Connections of a pool checked out by handlers now",
                &in_use,
            ),
            (
                "worker_kit_db_pool_waiting",
                "Handlers waiting for a pool connection now",
                &waiting,
            ),
        ] {
            family.encode(encoder.encode_descriptor(name, help, None, family.metric_type())?)?;
        }
        timeouts.encode(encoder.encode_descriptor(
            "worker_kit_db_pool_acquire_timeouts",
            "Waits for a pool connection that ended at DB_ACQUIRE_TIMEOUT_MS",
            None,
            timeouts.metric_type(),
        )?)?;
        Ok(())
    }
}

fn to_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::db::Database;

    struct FakeDb;

    #[async_trait::async_trait]
    impl Database for FakeDb {
        fn name(&self) -> &str {
            "main"
        }
        async fn connect(&self) -> Result<(), crate::Error> {
            Ok(())
        }
        async fn is_ready(&self) -> bool {
            true
        }
        async fn close(&self) {}
        fn pool_stats(&self) -> Option<PoolStats> {
            Some(PoolStats::new(16, 3, 2, 1, 4))
        }
    }

    struct FakeBudget;

    impl BudgetSource for FakeBudget {
        fn in_use(&self) -> usize {
            3 << 20
        }
        fn limit(&self) -> usize {
            128 << 20
        }
    }

    /// A registry with a sample in every family.
    fn busy() -> Metrics {
        let m = Metrics::new();
        let r = m.route("orders.create", "rpc", true);
        r.received();
        r.settled(Disposition::Ok, Duration::from_millis(3), None);
        r.settled(
            Disposition::Error,
            Duration::from_millis(40),
            Some("NotFound"),
        );
        let q = m.route("resize", "queue", true);
        q.settled(
            Disposition::Retried,
            Duration::from_millis(1),
            Some("Flaky"),
        );
        q.settled(Disposition::Parked, Duration::from_millis(1), Some("Flaky"));
        let w = m.worker("orders.create", "rpc", 64);
        w.in_flight.inc();
        w.consuming(true);
        m.client(true)
            .call("stock.reserve", 2, Duration::from_secs(1));
        let off = m.route("not.recorded", "rpc", false);
        off.received();
        off.settled(Disposition::Ok, Duration::from_millis(1), None);
        m.client(false)
            .call("not.recorded", 0, Duration::from_secs(1));
        m.broker_up("main", true);
        m.broker_reconnected("main");
        m.report_databases(vec![Arc::new(FakeDb) as Arc<dyn Database>]);
        m.report_decode_budget(FakeBudget);
        m
    }

    fn sample_names(exposition: &str) -> HashSet<String> {
        exposition
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| l.split(['{', ' ']).next().unwrap_or_default().to_owned())
            .collect()
    }

    #[test]
    fn the_exposition_holds_what_was_recorded() {
        let text = super::super::exposition::to_prometheus_text(&busy().encode());
        let want = [
            "worker_kit_messages_received_total{route=\"orders.create\",kind=\"rpc\"} 1",
            "worker_kit_handler_errors_total{route=\"orders.create\",kind=\"rpc\",error_type=\"NotFound\"} 1",
            "worker_kit_queue_retries_total{route=\"resize\",kind=\"queue\"} 1",
            "worker_kit_queue_parked_total{route=\"resize\",kind=\"queue\"} 1",
            "worker_kit_worker_in_flight{worker=\"orders.create\",kind=\"rpc\"} 1",
            "worker_kit_worker_in_flight_limit{worker=\"orders.create\",kind=\"rpc\"} 64",
            "worker_kit_rpc_client_calls_total{route=\"stock.reserve\",outcome=\"Timeout\"} 1",
            "worker_kit_broker_connected{connection=\"main\"} 1",
            "worker_kit_broker_reconnects_total{connection=\"main\"} 1",
            "worker_kit_db_pool_in_use{database=\"main\"} 2",
            "worker_kit_db_pool_acquire_timeouts_total{database=\"main\"} 4",
            "worker_kit_decode_budget_in_use_bytes 3145728",
            "worker_kit_decode_budget_bytes 134217728",
            "worker_kit_handler_duration_seconds_bucket{le=\"0.05\",route=\"orders.create\",kind=\"rpc\",outcome=\"error\"} 1",
            "worker_kit_handler_duration_seconds_bucket{le=\"60.0\",route=\"orders.create\",kind=\"rpc\",outcome=\"ok\"} 1",
        ];
        for line in want {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line} in:\n{text}"
            );
        }
        // Handles made with `on` false record nothing.
        assert!(
            !text
                .lines()
                .any(|l| l.contains("not.recorded") && !l.ends_with(" 0")),
            "{text}"
        );
    }

    /// The Grafana dashboard in deploy/ asks only for metrics the kit exposes.
    #[test]
    fn the_dashboard_uses_only_exposed_metric_names() {
        let dashboard = include_str!("../../../deploy/grafana/worker-kit.json");
        let exposed = sample_names(&super::super::exposition::to_prometheus_text(
            &busy().encode(),
        ));
        let used: HashSet<&str> = dashboard
            .match_indices("worker_kit_")
            .map(|(i, _)| {
                let rest = &dashboard[i..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
                    .unwrap_or(rest.len());
                &rest[..end]
            })
            .collect();
        assert!(used.len() >= 12, "{used:?}");
        for name in used {
            assert!(
                exposed.contains(name),
                "the dashboard uses {name}, which is not exposed"
            );
        }
    }
}
