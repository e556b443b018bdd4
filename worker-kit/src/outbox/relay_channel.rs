//! The confirm-mode channel a relay publishes on: opened when first needed and again after
//! the broker was lost, waiting for the reconnect (a relay has nothing else to do meanwhile,
//! and it opens the channel before its transaction, so the wait holds no lock).

use std::time::Duration;

use lapin::Channel;
use lapin::options::ConfirmSelectOptions;

use crate::amqp::Broker;

pub(super) struct RelayChannel {
    pub(super) broker: Broker,
    channel: Option<Channel>,
}

impl RelayChannel {
    pub(super) fn new(broker: Broker) -> Self {
        Self {
            broker,
            channel: None,
        }
    }

    /// The channel, and whether it was opened just now (so the caller declares what it
    /// publishes to once per channel); `unavailable` makes the caller's error for a broker
    /// handle that was closed.
    pub(super) async fn get<E: From<lapin::Error>>(
        &mut self,
        unavailable: fn(String) -> E,
    ) -> Result<(Channel, bool), E> {
        if let Some(ch) = self.channel.as_ref().filter(|c| c.status().connected()) {
            return Ok((ch.clone(), false));
        }
        let conn = self
            .broker
            .connection()
            .await
            .ok_or_else(|| unavailable("broker handle closed".into()))?;
        let ch = conn.create_channel().await?;
        ch.confirm_select(ConfirmSelectOptions::default()).await?;
        self.channel = Some(ch.clone());
        Ok((ch, true))
    }

    /// Closes the channel if it is open, waiting at most `limit` (a silent broker never
    /// answers the close).
    pub(super) async fn close(self, limit: Duration) {
        if let Some(ch) = self.channel.filter(|c| c.status().connected()) {
            let _ = tokio::time::timeout(limit, ch.close(200, "relay stopped".into())).await;
        }
    }
}
