//! Replicas of a work-queue service and of an RPC service on the cluster, a producer that
//! keeps publishing through node failures, and an RPC caller that checks every call ends
//! in time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use e2e::cluster::Cluster;
use e2e::handled;
use futures::StreamExt;
use tokio::sync::Mutex;
use worker_kit::queue::{QueuePublisher, QueueType, QueueWorker};
use worker_kit::rpc::{CallError, CallOptions, RpcClient, RpcWorker};
use worker_kit::runner::Running;
use worker_kit::{Broker, ErrorReply, Payload, Runner, State};

pub(crate) const REPLICA_NAMES: [&str; 3] = ["replica-1", "replica-2", "replica-3"];

/// Settings for a process on the cluster: every node in `AMQP_URL`, quorum work queues.
pub(crate) fn config(cluster: &Cluster, prefetch: u16) -> worker_kit::Config {
    let mut config = e2e::config();
    config.amqp_url = cluster.amqp_url().parse().unwrap();
    config.queue_type = QueueType::Quorum;
    config.prefetch = prefetch;
    config
}

/// A connection to any node of the cluster, as a service makes it.
pub(crate) async fn broker(cluster: &Cluster, name: &str) -> Broker {
    Broker::connect(&cluster.amqp_url(), name, Duration::from_secs(30))
        .await
        .expect("the cluster answers")
}

#[derive(Clone)]
struct Work {
    pool: Pool,
    mine: Arc<AtomicU64>,
    pause: Duration,
}

/// The idempotent handler: one row per message id, counting how often it ran.
async fn record(State(w): State<Work>, Payload(id): Payload<i64>) -> Result<(), ErrorReply> {
    // Work that takes a little time, so that a node stopped in the middle of the load
    // finds messages in flight.
    tokio::time::sleep(w.pause).await;
    handled::record(&w.pool, id).await?;
    w.mine.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// One replica of the work-queue service.
pub(crate) struct Replica {
    pub(crate) broker: Broker,
    pub(crate) running: Running,
    /// Messages this replica handled.
    pub(crate) handled: Arc<AtomicU64>,
}

impl Replica {
    pub(crate) fn handled(&self) -> u64 {
        self.handled.load(Ordering::Relaxed)
    }
}

/// Starts `n` replicas consuming quorum route `route`, each on its own connection.
pub(crate) async fn replicas(
    cluster: &Cluster,
    route: &str,
    dsn: &str,
    n: usize,
    prefetch: u16,
    pause: Duration,
) -> Vec<Replica> {
    let mut out = Vec::with_capacity(n);
    for name in &REPLICA_NAMES[..n] {
        let broker = broker(cluster, name).await;
        let handled = Arc::new(AtomicU64::new(0));
        let work = Work {
            pool: handled::pool(dsn, 4),
            mine: handled.clone(),
            pause,
        };
        let running = Runner::new(name, Arc::new(config(cluster, prefetch)), broker.clone())
            .register_worker(QueueWorker::new().route(route, record).with_state(work))
            .start()
            .await
            .expect("replica starts");
        out.push(Replica {
            broker,
            running,
            handled,
        });
    }
    out
}

/// Publishes message ids `ids` to `route`, each until the broker confirms it (a publish
/// that fails while a node goes away is sent again: at least once, which the idempotent
/// handler absorbs). Returns how many publishes had to be repeated.
pub(crate) async fn produce(
    publisher: QueuePublisher,
    route: String,
    ids: std::ops::Range<i64>,
) -> u64 {
    let repeated = Arc::new(AtomicU64::new(0));
    futures::stream::iter(ids)
        .for_each_concurrent(32, |id| {
            let (publisher, route, repeated) = (publisher.clone(), route.clone(), repeated.clone());
            async move {
                let give_up = Instant::now() + Duration::from_secs(90);
                loop {
                    match publisher.publish(&route, &id).await {
                        Ok(()) => return,
                        Err(e) => {
                            assert!(
                                Instant::now() < give_up,
                                "message {id} not stored for 90 s: {e}"
                            );
                            repeated.fetch_add(1, Ordering::Relaxed);
                            // Back off before the next try; not a synchronization.
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
            }
        })
        .await;
    repeated.load(Ordering::Relaxed)
}

/// A publisher on a connection of its own, waiting at most 5 s per publish.
pub(crate) async fn publisher(cluster: &Cluster) -> QueuePublisher {
    QueuePublisher::new(&broker(cluster, "producer").await).with_timeout(Duration::from_secs(5))
}

/// Distinct ids recorded and handler runs in total.
pub(crate) async fn recorded(pg: &tokio_postgres::Client) -> (i64, i64) {
    let row = pg
        .query_one(
            "SELECT count(*), coalesce(sum(times), 0)::bigint FROM handled",
            &[],
        )
        .await
        .expect("count handled");
    (row.get(0), row.get(1))
}

async fn echo(Payload(n): Payload<u64>) -> Result<u64, ErrorReply> {
    Ok(n)
}

/// `n` replicas of an RPC service answering `route` with its argument.
pub(crate) async fn rpc_servers(cluster: &Cluster, route: &str, n: usize) -> Vec<Running> {
    let mut out = Vec::with_capacity(n);
    for name in &["rpc-1", "rpc-2", "rpc-3"][..n] {
        let running = Runner::new(
            name,
            Arc::new(config(cluster, 16)),
            broker(cluster, name).await,
        )
        .register_worker(RpcWorker::new().route(route, echo))
        .start()
        .await
        .expect("RPC replica starts");
        out.push(running);
    }
    out
}

/// How the calls of an [`RpcLoad`] ended.
#[derive(Debug, Default, Clone)]
pub(crate) struct Outcomes {
    pub(crate) ok: u64,
    pub(crate) connection_lost: u64,
    pub(crate) no_route: u64,
    pub(crate) timeout: u64,
    /// Requests the broker nacked (a quorum queue's leader moving while its node restarts).
    pub(crate) refused: u64,
    /// The longest a call took.
    pub(crate) slowest: Duration,
}

/// Callers calling `route` back to back until stopped, each call with `timeout`. Any
/// other outcome than an answer, `ConnectionLost`, `NoRoute`, `Timeout` or `Refused`
/// (each a fast, clear error a caller can act on), and any call
/// that outlives its deadline by more than `SLACK`, fails the test.
pub(crate) struct RpcLoad {
    broker: Broker,
    outcomes: Arc<Mutex<Outcomes>>,
    stop: tokio_util::sync::CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// How much later than its deadline a call may return (scheduling on a loaded machine).
pub(crate) const SLACK: Duration = Duration::from_millis(1500);

impl RpcLoad {
    pub(crate) async fn start(
        cluster: &Cluster,
        route: &str,
        callers: usize,
        timeout: Duration,
    ) -> Self {
        let broker = broker(cluster, "rpc-caller").await;
        let client = RpcClient::new(&broker, &config(cluster, 16))
            .await
            .expect("RPC client");
        let outcomes = Arc::new(Mutex::new(Outcomes::default()));
        let stop = tokio_util::sync::CancellationToken::new();
        let tasks = (0..callers)
            .map(|c| {
                let (client, route, outcomes, stop) = (
                    client.clone(),
                    route.to_owned(),
                    outcomes.clone(),
                    stop.clone(),
                );
                tokio::spawn(async move {
                    let mut n = c as u64 * 1_000_000;
                    while !stop.is_cancelled() {
                        n += 1;
                        let started = Instant::now();
                        let call = client.call_route::<u64, u64>(
                            &route,
                            &n,
                            CallOptions {
                                timeout: Some(timeout),
                                ..CallOptions::default()
                            },
                        );
                        let result = tokio::time::timeout(timeout + SLACK, call)
                            .await
                            .unwrap_or_else(|_| {
                                panic!(
                                    "a call hung: no outcome {:?} past its {timeout:?} deadline",
                                    SLACK
                                )
                            });
                        let took = started.elapsed();
                        let failed = result.is_err();
                        let mut o = outcomes.lock().await;
                        o.slowest = o.slowest.max(took);
                        match result {
                            Ok(m) => {
                                assert_eq!(m, n, "the answer to this call");
                                o.ok += 1;
                            }
                            Err(CallError::ConnectionLost { .. }) => o.connection_lost += 1,
                            Err(CallError::NoRoute { .. }) => o.no_route += 1,
                            Err(CallError::Timeout { .. }) => o.timeout += 1,
                            Err(CallError::Refused { .. }) => o.refused += 1,
                            Err(e) => panic!("a call failed otherwise than fast and clearly: {e}"),
                        }
                        drop(o);
                        if failed && took < Duration::from_millis(5) {
                            // A caller whose calls fail at once must not spin.
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                })
            })
            .collect();
        Self {
            broker,
            outcomes,
            stop,
            tasks,
        }
    }

    /// The node the callers' connection is on.
    pub(crate) fn node(&self) -> String {
        self.broker.node()
    }

    pub(crate) async fn outcomes(&self) -> Outcomes {
        self.outcomes.lock().await.clone()
    }

    /// Stops the callers; a panic in one of them (a hung or badly failed call) fails here.
    pub(crate) async fn finish(self) -> Outcomes {
        self.stop.cancel();
        for t in self.tasks {
            if let Err(e) = t.await {
                std::panic::resume_unwind(e.into_panic());
            }
        }
        self.outcomes.lock().await.clone()
    }
}

/// Waits until `calls` consecutive calls all answer, starting within `limit`.
pub(crate) async fn all_answer(cluster: &Cluster, route: &str, calls: u64, limit: Duration) {
    let broker = broker(cluster, "rpc-check").await;
    let client = RpcClient::new(&broker, &config(cluster, 16))
        .await
        .expect("RPC client");
    let options = CallOptions {
        timeout: Some(Duration::from_secs(2)),
        ..CallOptions::default()
    };
    e2e::wait_until(limit, "an RPC call answers after recovery", || {
        let client = client.clone();
        async move {
            client
                .call_route::<u64, u64>(route, &7, options)
                .await
                .is_ok()
        }
    })
    .await;
    for n in 0..calls {
        let answer = client
            .call_route::<u64, u64>(route, &n, options)
            .await
            .unwrap_or_else(|e| panic!("call {n} after recovery: {e}"));
        assert_eq!(answer, n);
    }
    broker.close().await;
}
