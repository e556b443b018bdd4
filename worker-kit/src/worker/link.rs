//! What the consume loop does with the broker, behind a small trait ([`BrokerLink`]): wait
//! for a connection, open a consuming channel, consume a queue, cancel a consumer, close
//! the channel. [`LapinLink`] is the one that runs; the loop's tests drive a scripted one
//! under Tokio's paused clock, so that the races between a pause, a lost connection and a
//! stop can be played in a chosen order.
//!
//! Settling a delivery (ack, requeue) is not part of the link: it goes through the
//! delivery's own acker, which lapin's mock deliveries have too.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use lapin::message::Delivery;
use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection};

use super::processor::Processor;
use crate::Error;
use crate::amqp::Broker;

/// A consumer's deliveries, until it is cancelled (the stream ends) or its channel is
/// lost (an error, then the end).
pub(crate) type Deliveries = BoxStream<'static, Result<Delivery, lapin::Error>>;

/// The broker as the consume loop uses it.
#[async_trait]
pub(crate) trait BrokerLink: Send + Sync + 'static {
    /// A connection consumed on.
    type Connection: Send + Sync;
    /// A channel of it, shared by the session's consumers and handed to each handler.
    type Channel: Clone + Send + Sync + 'static;

    /// Waits for a connection to consume on; `None` once there will be none (the broker
    /// handle was closed).
    async fn connection(&self) -> Option<Self::Connection>;

    /// Whether `conn` is still up.
    fn connection_up(&self, conn: &Self::Connection) -> bool;

    /// Opens a channel on `conn` with `prefetch` unacknowledged deliveries per consumer.
    async fn open(&self, conn: &Self::Connection, prefetch: u16) -> Result<Self::Channel, Error>;

    /// Whether `channel` is still open.
    fn channel_up(&self, channel: &Self::Channel) -> bool;

    /// Consumes `queue` on `channel` as consumer `tag`.
    async fn consume(
        &self,
        channel: &Self::Channel,
        queue: &str,
        tag: &str,
    ) -> Result<Deliveries, lapin::Error>;

    /// Cancels consumer `tag`: no new deliveries; those already sent still arrive, then
    /// its stream ends.
    async fn cancel(&self, channel: &Self::Channel, tag: &str) -> Result<(), lapin::Error>;

    /// Closes `channel` (its unacknowledged deliveries go back to their queues), waiting
    /// at most `within` for the broker's answer.
    async fn close(&self, channel: &Self::Channel, within: Duration);
}

/// The broker through lapin, on the connection the processor consumes on
/// ([`Processor::connection`]: the process's own, or the consume-only one).
pub(crate) struct LapinLink<P> {
    pub(crate) broker: Broker,
    pub(crate) processor: Arc<P>,
}

#[async_trait]
impl<P: Processor> BrokerLink for LapinLink<P> {
    type Connection = Arc<Connection>;
    type Channel = Channel;

    async fn connection(&self) -> Option<Arc<Connection>> {
        self.processor.connection(&self.broker).await
    }

    fn connection_up(&self, conn: &Arc<Connection>) -> bool {
        conn.status().connected()
    }

    async fn open(&self, conn: &Arc<Connection>, prefetch: u16) -> Result<Channel, Error> {
        let broker_err = |what: String| {
            move |e: lapin::Error| Error::Broker {
                message: what,
                source: Some(e),
            }
        };
        // Never in confirm mode: RPC replies go out without confirms (protocol v2: the ack
        // that follows on this channel is ordered after the reply, so the broker routed the
        // reply before it drops the request), and work-queue copies go out on a channel of
        // the publishing connection (a `ConfirmChannel`).
        let channel = conn
            .create_channel()
            .await
            .map_err(broker_err("opening a channel failed".into()))?;
        // Per consumer (not `global`, which RabbitMQ 4.3 refuses): the broker-side buffer of
        // each route. The worker's own bound on running handlers is the loop's `InFlight`.
        channel
            .basic_qos(prefetch, BasicQosOptions::default())
            .await
            .map_err(broker_err(format!("setting prefetch {prefetch} failed")))?;
        Ok(channel)
    }

    fn channel_up(&self, channel: &Channel) -> bool {
        channel.status().connected()
    }

    async fn consume(
        &self,
        channel: &Channel,
        queue: &str,
        tag: &str,
    ) -> Result<Deliveries, lapin::Error> {
        let consumer = channel
            .basic_consume(
                queue.into(),
                tag.into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok(consumer.boxed())
    }

    async fn cancel(&self, channel: &Channel, tag: &str) -> Result<(), lapin::Error> {
        channel
            .basic_cancel(tag.into(), BasicCancelOptions::default())
            .await
    }

    async fn close(&self, channel: &Channel, within: Duration) {
        if channel.status().connected() {
            let _ = tokio::time::timeout(within, channel.close(200, "worker stopped".into())).await;
        }
    }
}
