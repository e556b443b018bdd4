//! The cluster tier: services on a local 3-node RabbitMQ cluster (scripts/lib/cluster.sh),
//! with nodes stopped under load. Run with `scripts/pj test cluster`, which starts the
//! cluster, sets `CLUSTER_AMQP_URLS` and fails when the cluster is missing; without the
//! cluster (a plain `cargo test --all-features`) every test here is skipped with a line
//! saying so. The tests run one at a time: they stop nodes the others would be using.

mod harness;
mod rolling;
mod rpc;
mod work;

/// Held by every test in this binary.
pub(crate) async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}
