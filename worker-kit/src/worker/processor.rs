//! What differs between the kinds of worker the consume loop drives ([`Processor`]): where
//! they consume, what they declare, and how they settle a delivery.

use std::sync::Arc;

use async_trait::async_trait;
use lapin::message::Delivery;
use lapin::options::BasicNackOptions;
use lapin::{Channel, Connection};
use tracing::{error, warn};

use super::handoff::WorkerKind;
use crate::backoff::Pauses;
use crate::handler::routes::BoundHandler;
use crate::observe::disposition::Disposition;
use crate::observe::link::Link;

/// The parts that differ between RPC, work-queue and event workers.
///
/// `C` is the channel the loop consumes on, as its [`BrokerLink`](super::link::BrokerLink)
/// opens it: lapin's [`Channel`] for every worker that runs, a scripted one in the loop's
/// tests. A type parameter with that default (rather than an associated type, or the loop
/// generic over lapin) is the smallest change that lets a test processor run on a scripted
/// broker: the kit's processors implement `Processor` as they did.
#[async_trait]
pub(crate) trait Processor<C: Send + Sync + 'static = Channel>:
    Send + Sync + 'static
{
    fn kind(&self) -> WorkerKind;
    /// The connection this kind of worker consumes on (through lapin).
    async fn connection(&self, broker: &crate::amqp::Broker) -> Option<Arc<Connection>> {
        broker.connection().await
    }
    /// Which of the process's connections [`Processor::connection`] is, for traces.
    fn link(&self) -> Link {
        Link::Main
    }
    /// Whether a delivery whose handling panicked (outside the handler, which has its own
    /// guard) goes back to its queue (`true`) or is dead-lettered.
    fn requeue_after_panic(&self) -> bool;
    /// Declares what `route` needs (its queue, exchanges, parking queue).
    async fn declare(&self, channel: &C, route: &str) -> Result<(), lapin::Error>;
    /// Gives back a delivery that was never started (buffered when the worker stopped), so
    /// that it costs no attempt where it can: by default it goes back to its queue
    /// (`basic.nack` with requeue, which the broker marks redelivered).
    async fn give_back(&self, delivery: Delivery, _route: &Arc<str>) {
        requeue(&delivery).await;
    }
    /// Handles one delivery to the end (reply/ack/retry/park) and says how it was settled.
    async fn handle(
        &self,
        channel: &C,
        delivery: Delivery,
        route: &Arc<str>,
        handler: BoundHandler,
    ) -> Disposition;
}

/// Returns `delivery` to its queue (the broker marks it redelivered).
pub(crate) async fn requeue(delivery: &Delivery) {
    if let Err(e) = delivery
        .acker
        .nack(BasicNackOptions {
            multiple: false,
            requeue: true,
        })
        .await
    {
        warn!(error = %e, "returning a delivery to its queue failed; it returns when the channel closes");
    }
}

/// Returns `delivery` to its queue after the next of `pauses`, because the retry or parked
/// copy that was to replace it could not be stored (`problem`): at once, the broker would
/// hand it straight back and the copy would fail again, a spin that lasts as long as the
/// publishing connection is away while the consuming one stays up.
pub(crate) async fn requeue_after_a_pause(pauses: &Pauses, delivery: &Delivery, problem: &str) {
    let pause = pauses.next();
    error!(
        %problem,
        failures_in_a_row = pauses.failures(),
        requeue_in_ms = pause.as_millis() as u64,
        "could not store the retry/parked copy; requeueing the original"
    );
    tokio::time::sleep(pause).await;
    requeue(delivery).await;
}
