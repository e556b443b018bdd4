//! Tests that break things for real: the broker going away (through a proxy we cut, and a
//! real RabbitMQ restart), SIGTERM under load, a database outage, SIGKILL of the outbox's
//! relay and of an event subscriber. They run one at a time (a broker restart would disturb
//! any test running beside it).

mod alarm;
mod broker_outage;
mod broker_restart;
mod outbox_kill;
mod pause;
mod postgres_restart;
mod sigterm;

/// Held by every test in this binary.
pub(crate) async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}
