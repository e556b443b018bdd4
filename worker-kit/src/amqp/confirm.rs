//! The confirm-mode channel every publisher of the kit sends on: opened on the publishing
//! connection when first needed and again after it failed, shared by the tasks of one
//! publisher, and closed within a bound. Publishers differ only in whether they wait for
//! the broker to come back ([`Wait`]).

use std::sync::Arc;
use std::time::Duration;

use lapin::options::ConfirmSelectOptions;
use lapin::{Channel, Connection};

use super::Broker;

/// Whether [`ConfirmChannel::get`] waits for the publishing connection while it is down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Wait until the broker is back (or the handle is closed). For publishers with
    /// nothing better to do meanwhile, whose caller bounds the wait:
    /// [`QueuePublisher`](crate::queue::QueuePublisher) (its caller asked for the message
    /// to be stored, and its timeout bounds the wait, so a broker blip makes a slower
    /// publish instead of an error) and the outbox and scheduled relays (they open the
    /// channel before their transaction, so the wait holds no lock, and a stop cancels it).
    ForReconnect,
    /// Fail at once while the connection is down. For publishers that have something to
    /// fall back on: a work-queue or event worker storing a retry or parked copy keeps the
    /// original message instead (it is requeued after a pause) rather than holding a
    /// handler slot through an outage, and the RPC client's reply loop waits for the
    /// reconnect itself, because a request channel must live on the connection of the
    /// reply queue it names (an exclusive queue that dies with its connection).
    No,
}

/// Why no channel could be had.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OpenError {
    /// The broker handle was closed ([`Broker::close`]): there is no connection to wait for.
    #[error("broker handle closed")]
    Closed,
    /// The connection is down and the policy is [`Wait::No`].
    #[error("the publishing connection is down")]
    Down,
    /// The broker did not open a channel.
    #[error("opening a channel for {purpose} failed: {error}")]
    Channel {
        /// Who the channel is for.
        purpose: &'static str,
        /// What the broker (or the connection) said.
        error: lapin::Error,
    },
    /// The broker did not put the new channel in confirm mode.
    #[error("enabling publisher confirms for {purpose} failed: {error}")]
    Confirms {
        /// Who the channel is for.
        purpose: &'static str,
        /// What the broker (or the connection) said.
        error: lapin::Error,
    },
}

impl OpenError {
    /// What failed, without the AMQP error, and that error: for errors that carry the
    /// cause as their source instead of in their message.
    pub(crate) fn split(self) -> (String, Option<lapin::Error>) {
        match self {
            Self::Channel { purpose, error } => (
                format!("opening a channel for {purpose} failed"),
                Some(error),
            ),
            Self::Confirms { purpose, error } => (
                format!("enabling publisher confirms for {purpose} failed"),
                Some(error),
            ),
            other => (other.to_string(), None),
        }
    }
}

/// A channel from [`ConfirmChannel::get`].
pub(crate) struct Ready {
    pub(crate) channel: Channel,
    /// The channel was opened by this call (so that the caller declares what it publishes
    /// to once per channel).
    pub(crate) opened_now: bool,
}

/// A confirm-mode channel on the broker's publishing connection, opened on first use and
/// again after it failed (a closed connection, or a channel the broker closed over a
/// refused message); cheap to share by reference, one opening at a time.
pub(crate) struct ConfirmChannel {
    broker: Broker,
    wait: Wait,
    /// Who publishes on it, for error messages ("retry and parked copies").
    purpose: &'static str,
    slot: tokio::sync::Mutex<Option<Channel>>,
}

impl std::fmt::Debug for ConfirmChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfirmChannel")
            .field("broker", &self.broker)
            .field("purpose", &self.purpose)
            .field("wait", &self.wait)
            .finish_non_exhaustive()
    }
}

impl ConfirmChannel {
    pub(crate) fn new(broker: Broker, wait: Wait, purpose: &'static str) -> Self {
        Self {
            broker,
            wait,
            purpose,
            slot: tokio::sync::Mutex::new(None),
        }
    }

    /// The broker whose publishing connection the channel lives on.
    pub(crate) fn broker(&self) -> &Broker {
        &self.broker
    }

    /// The open channel, or a new one (waiting for the connection as [`Wait`] says).
    /// Callers that fail together on a closed channel open one new channel between them.
    pub(crate) async fn get(&self) -> Result<Ready, OpenError> {
        let mut slot = self.slot.lock().await;
        if let Some(ch) = slot.as_ref().filter(|c| c.status().connected()) {
            return Ok(Ready {
                channel: ch.clone(),
                opened_now: false,
            });
        }
        let conn = connection(self.wait, &self.broker).await?;
        let purpose = self.purpose;
        let ch = conn
            .create_channel()
            .await
            .map_err(|error| OpenError::Channel { purpose, error })?;
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|error| OpenError::Confirms { purpose, error })?;
        *slot = Some(ch.clone());
        Ok(Ready {
            channel: ch,
            opened_now: true,
        })
    }

    /// [`ConfirmChannel::get`]'s channel alone.
    pub(crate) async fn channel(&self) -> Result<Channel, OpenError> {
        Ok(self.get().await?.channel)
    }

    /// Closes the channel if it is open, waiting at most `limit` (a silent broker never
    /// answers the close); the next [`ConfirmChannel::get`] opens a new one.
    pub(crate) async fn close(&self, limit: Duration) {
        let open = self.slot.lock().await.take();
        if let Some(ch) = open.filter(|c| c.status().connected()) {
            let _ = tokio::time::timeout(limit, ch.close(200, "publisher stopped".into())).await;
        }
    }
}

/// Where a connection comes from: the broker handle, or a stand-in in tests.
trait Connections {
    /// The connection if it is up right now.
    fn now(&self) -> Option<Arc<Connection>>;
    /// The connection once it is up; `None` once the handle is closed.
    async fn when_up(&self) -> Option<Arc<Connection>>;
    fn is_closed(&self) -> bool;
}

impl Connections for Broker {
    fn now(&self) -> Option<Arc<Connection>> {
        self.connection_now()
    }

    async fn when_up(&self) -> Option<Arc<Connection>> {
        self.connection().await
    }

    fn is_closed(&self) -> bool {
        Broker::is_closed(self)
    }
}

/// The connection to open a channel on, as `wait` says.
async fn connection(wait: Wait, from: &impl Connections) -> Result<Arc<Connection>, OpenError> {
    match wait {
        Wait::ForReconnect => from.when_up().await.ok_or(OpenError::Closed),
        Wait::No => match from.now() {
            Some(conn) => Ok(conn),
            None if from.is_closed() => Err(OpenError::Closed),
            None => Err(OpenError::Down),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::watch;

    /// A broker that is down: no connection (a real one needs a broker), and a handle that
    /// can be closed.
    struct Down {
        closed: watch::Sender<bool>,
    }

    impl Down {
        fn new() -> Self {
            Self {
                closed: watch::channel(false).0,
            }
        }
    }

    impl Connections for Down {
        fn now(&self) -> Option<Arc<Connection>> {
            None
        }

        async fn when_up(&self) -> Option<Arc<Connection>> {
            let mut closed = self.closed.subscribe();
            let _ = closed.wait_for(|c| *c).await;
            None
        }

        fn is_closed(&self) -> bool {
            *self.closed.borrow()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn no_wait_fails_at_once_while_the_connection_is_down() {
        let broker = Down::new();
        let started = tokio::time::Instant::now();
        let got = tokio::time::timeout(Duration::from_secs(1), connection(Wait::No, &broker))
            .await
            .expect("returned without waiting for the broker");
        assert!(matches!(got, Err(OpenError::Down)), "{got:?}");
        assert_eq!(started.elapsed(), Duration::ZERO, "did not wait");
        assert_eq!(
            got.unwrap_err().to_string(),
            "the publishing connection is down"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_for_the_reconnect_waits_until_the_handle_is_closed() {
        let broker = Down::new();
        let waiting = connection(Wait::ForReconnect, &broker);
        tokio::pin!(waiting);
        // An hour of (paused, auto-advanced) time: still waiting for the broker.
        let early = tokio::time::timeout(Duration::from_secs(3600), &mut waiting).await;
        assert!(early.is_err(), "returned while the broker was down");
        broker.closed.send_replace(true);
        let got = waiting.await;
        assert!(matches!(got, Err(OpenError::Closed)), "{got:?}");
    }

    #[tokio::test]
    async fn a_closed_handle_is_closed_under_either_policy() {
        let broker = Down::new();
        broker.closed.send_replace(true);
        for wait in [Wait::No, Wait::ForReconnect] {
            let got = connection(wait, &broker).await;
            assert!(matches!(got, Err(OpenError::Closed)), "{wait:?}: {got:?}");
            assert_eq!(got.unwrap_err().to_string(), "broker handle closed");
        }
    }

    #[test]
    fn errors_name_who_the_channel_is_for_and_keep_the_cause() {
        let e = OpenError::Confirms {
            purpose: "retry and parked copies",
            error: lapin::ErrorKind::InvalidChannelState(lapin::ChannelState::Closed, "test")
                .into(),
        };
        assert!(
            e.to_string()
                .starts_with("enabling publisher confirms for retry and parked copies failed: "),
            "{e}"
        );
        let (what, cause) = e.split();
        assert_eq!(
            what,
            "enabling publisher confirms for retry and parked copies failed"
        );
        assert!(cause.is_some());
        assert_eq!(
            OpenError::Down.split().0,
            "the publishing connection is down"
        );
    }
}
