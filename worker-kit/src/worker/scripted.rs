//! A broker the consume loop's tests script: connections that come and go when the test
//! says, consumers whose streams end when the test says (a cancelled consumer's stream
//! may end long after the cancel, as lapin's do), and a record of what the loop did.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use futures::channel::mpsc;
use futures::stream;
use lapin::message::Delivery;
use tokio::sync::watch;
use tokio::time::Instant;

use super::link::{BrokerLink, Deliveries};
use crate::Error;

type Sender = mpsc::UnboundedSender<Result<Delivery, lapin::Error>>;

struct Consumer {
    tag: String,
    queue: String,
    tx: Sender,
}

#[derive(Default)]
struct State {
    next_channel: u64,
    open_channels: HashSet<u64>,
    /// Consuming now.
    live: Vec<Consumer>,
    /// Cancelled, their streams still open until [`ScriptedLink::end_cancelled`] (only
    /// while `holding_cancelled`; otherwise a cancelled consumer's stream ends at once).
    cancelled: Vec<Consumer>,
    holding_cancelled: bool,
    /// When each channel was opened.
    opens: Vec<Instant>,
    /// Every consumer fails as soon as it starts (a channel error on its stream).
    failing_consumers: bool,
}

/// The scripted broker. Its connections are numbered; 0 means the broker is away.
pub(crate) struct ScriptedLink {
    state: Mutex<State>,
    connection: watch::Sender<u64>,
    /// How many consumer streams the loop has read to their end.
    ends_read: Arc<AtomicUsize>,
    /// How many times the loop asked for a connection.
    connection_asked: AtomicUsize,
    /// How many channels were opened (a watch, so that a test can wait for a count
    /// without a timer: a loop that spins never lets the paused clock move).
    opened: watch::Sender<usize>,
}

/// A channel of the scripted broker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ScriptedChannel(u64);

fn lost(what: &str) -> lapin::Error {
    std::io::Error::new(std::io::ErrorKind::ConnectionAborted, what.to_owned()).into()
}

impl ScriptedLink {
    /// A broker that is up (`up`) or away until [`ScriptedLink::reconnect`].
    pub(crate) fn new(up: bool) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State::default()),
            connection: watch::channel(u64::from(up)).0,
            ends_read: Arc::new(AtomicUsize::new(0)),
            connection_asked: AtomicUsize::new(0),
            opened: watch::channel(0).0,
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    /// The connection drops: every channel closes and every consumer's stream ends with
    /// an error.
    pub(crate) fn lose_connection(&self) {
        self.connection.send_replace(0);
        let mut s = self.state();
        s.open_channels.clear();
        let mut gone: Vec<Consumer> = s.live.drain(..).collect();
        gone.append(&mut s.cancelled);
        for c in gone {
            let _ = c.tx.unbounded_send(Err(lost("connection lost")));
        }
    }

    /// A new connection is up.
    pub(crate) fn reconnect(&self) {
        self.connection
            .send_modify(|n| *n = n.wrapping_add(1).max(1));
    }

    pub(crate) fn is_up(&self) -> bool {
        *self.connection.borrow() != 0
    }

    /// From now on, a cancelled consumer's stream stays open until
    /// [`ScriptedLink::end_cancelled`].
    pub(crate) fn hold_cancelled_streams(&self) {
        self.state().holding_cancelled = true;
    }

    /// From now on, every consumer fails as soon as it starts.
    pub(crate) fn fail_consumers(&self) {
        self.state().failing_consumers = true;
    }

    /// How many consumers are consuming `queue` now.
    pub(crate) fn live(&self, queue: &str) -> usize {
        self.state()
            .live
            .iter()
            .filter(|c| c.queue == queue)
            .count()
    }

    /// Ends the streams of the consumers cancelled so far; returns how many.
    pub(crate) fn end_cancelled(&self) -> usize {
        let ended: Vec<Consumer> = self.state().cancelled.drain(..).collect();
        ended.len()
    }

    /// How many consumer streams the loop has read to their end.
    pub(crate) fn ends_read(&self) -> usize {
        self.ends_read.load(Ordering::SeqCst)
    }

    /// Delivers `delivery` to the one consumer of `queue`.
    pub(crate) fn deliver(&self, queue: &str, delivery: Delivery) {
        let s = self.state();
        let mut consumers = s.live.iter().filter(|c| c.queue == queue);
        let consumer = consumers.next().expect("a consumer of the queue");
        consumer.tx.unbounded_send(Ok(delivery)).unwrap();
    }

    /// How many times the loop asked for a connection.
    pub(crate) fn connection_asked(&self) -> usize {
        self.connection_asked.load(Ordering::SeqCst)
    }

    /// Waits until `n` channels were opened.
    pub(crate) async fn opened(&self, n: usize) {
        let _ = self.opened.subscribe().wait_for(|o| *o >= n).await;
    }

    /// When each channel was opened.
    pub(crate) fn opens(&self) -> Vec<Instant> {
        self.state().opens.clone()
    }
}

#[async_trait]
impl BrokerLink for ScriptedLink {
    type Connection = u64;
    type Channel = ScriptedChannel;

    async fn connection(&self) -> Option<u64> {
        self.connection_asked.fetch_add(1, Ordering::SeqCst);
        let mut rx = self.connection.subscribe();
        rx.wait_for(|n| *n != 0).await.ok().map(|n| *n)
    }

    fn connection_up(&self, conn: &u64) -> bool {
        *self.connection.borrow() == *conn
    }

    async fn open(&self, conn: &u64, _prefetch: u16) -> Result<ScriptedChannel, Error> {
        // A broker answers later than at once: let the other tasks run.
        tokio::task::yield_now().await;
        if !self.connection_up(conn) {
            return Err(Error::Broker {
                message: "opening a channel failed".into(),
                source: Some(lost("connection lost")),
            });
        }
        let mut s = self.state();
        s.next_channel += 1;
        let id = s.next_channel;
        s.open_channels.insert(id);
        s.opens.push(Instant::now());
        self.opened.send_replace(s.opens.len());
        Ok(ScriptedChannel(id))
    }

    fn channel_up(&self, channel: &ScriptedChannel) -> bool {
        self.state().open_channels.contains(&channel.0)
    }

    async fn consume(
        &self,
        channel: &ScriptedChannel,
        queue: &str,
        tag: &str,
    ) -> Result<Deliveries, lapin::Error> {
        tokio::task::yield_now().await;
        if !self.channel_up(channel) {
            return Err(lost("channel closed"));
        }
        let (tx, rx) = mpsc::unbounded();
        let mut s = self.state();
        if s.failing_consumers {
            let _ = tx.unbounded_send(Err(lost("consumer failed")));
        } else {
            s.live.push(Consumer {
                tag: tag.to_owned(),
                queue: queue.to_owned(),
                tx,
            });
        }
        let ends_read = self.ends_read.clone();
        let counted_end = stream::poll_fn(move |_| {
            ends_read.fetch_add(1, Ordering::SeqCst);
            Poll::Ready(None)
        });
        Ok(rx.chain(counted_end).boxed())
    }

    async fn cancel(&self, _channel: &ScriptedChannel, tag: &str) -> Result<(), lapin::Error> {
        tokio::task::yield_now().await;
        let mut s = self.state();
        if let Some(i) = s.live.iter().position(|c| c.tag == tag) {
            let c = s.live.swap_remove(i);
            if s.holding_cancelled {
                s.cancelled.push(c);
            }
        }
        Ok(())
    }

    async fn close(&self, channel: &ScriptedChannel, _within: Duration) {
        self.state().open_channels.remove(&channel.0);
    }
}
