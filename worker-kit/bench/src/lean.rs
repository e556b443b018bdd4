//! The ceiling: hand-written lapin peers without envelope, gzip or confirms, and with the
//! least ack work the protocol allows; and the same peers keeping the protocol's
//! broker-side guarantees ([`Guarantees::Protocol`]), to tell what those cost from what
//! the kit costs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, anyhow};
use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use tokio::sync::{Notify, oneshot};
use worker_kit::wire::deadline::{self, Deadline};

/// The same prefetch the kit's workers use by default (`AMQP_PREFETCH`).
pub(crate) const PREFETCH: u16 = 16;

/// How long a lean call waits for its reply (the kit's default RPC timeout).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// What the lean peers promise beyond plain AMQP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Guarantees {
    /// Nothing: requests unconfirmed and without a deadline, replies unconfirmed.
    Bare,
    /// The broker-side guarantees docs/protocol.md (v2) asks of every peer, hand-written:
    /// requests `mandatory` on a confirm-mode channel (a call to a missing route fails at
    /// once), with `expiration`, an `x-deadline` and an `x-timeout-ms` header; the route
    /// queue declared with the RPC dead-letter argument; each reply transient, expiring
    /// with the request's deadline, with `timestamp` and `type`, published on the
    /// request's channel without a confirm, then the request acked. No envelope, no gzip:
    /// what is left between this and the kit is the kit's own work.
    Protocol,
}

impl Guarantees {
    fn confirms(self) -> bool {
        self == Self::Protocol
    }
}

pub(crate) async fn connect(url: &str, name: &str) -> anyhow::Result<Connection> {
    Connection::connect(
        url,
        ConnectionProperties::default().with_connection_name(name.into()),
    )
    .await
    .with_context(|| format!("connecting to {}", worker_kit::redact::url(url)))
}

/// Deletes `queues` on a fresh channel of `conn` (cleanup; errors only logged).
pub(crate) async fn delete_queues(conn: &Connection, queues: &[&str]) {
    let Ok(ch) = conn.create_channel().await else {
        return;
    };
    for q in queues {
        if let Err(e) = ch
            .queue_delete((*q).into(), QueueDeleteOptions::default())
            .await
        {
            eprintln!("bench: could not delete queue {q}: {e}");
        }
    }
    let _ = ch.close(200, "done".into()).await;
}

/// A channel consuming `queue` (prefetch `prefetch`) as consumer `tag`, with the RPC queue
/// arguments under [`Guarantees::Protocol`]. Never in confirm mode: replies go out
/// unconfirmed (protocol v2), the ack after them on the same channel.
pub(crate) async fn consume(
    conn: &Connection,
    queue: &str,
    tag: &str,
    prefetch: u16,
    guarantees: Guarantees,
) -> anyhow::Result<(Channel, lapin::Consumer)> {
    let ch = conn.create_channel().await?;
    ch.basic_qos(prefetch, BasicQosOptions::default()).await?;
    let mut args = FieldTable::default();
    if guarantees.confirms() {
        args.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(worker_kit::rpc::RPC_DLX.into()),
        );
    }
    ch.queue_declare(queue.into(), QueueDeclareOptions::default(), args)
        .await?;
    let consumer = ch
        .basic_consume(
            queue.into(),
            tag.into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok((ch, consumer))
}

/// Sends `body` to the request's `reply_to` (if any) with its correlation id, then acks
/// the request on the same channel (AMQP keeps their order). Under
/// [`Guarantees::Protocol`] the reply keeps v2's reply rules that the broker sees:
/// transient, `expiration` set to what is left of the request's `x-deadline`, `timestamp`
/// and AMQP `type`. Fails when the channel does or, on a confirm-mode channel, the broker
/// refuses the reply.
pub(crate) async fn reply_and_ack(
    ch: &Channel,
    d: &Delivery,
    body: &[u8],
    guarantees: Guarantees,
) -> anyhow::Result<()> {
    if let Some(reply_to) = d.properties.reply_to().clone() {
        let mut props = BasicProperties::default();
        if let Some(c) = d.properties.correlation_id().clone() {
            props = props.with_correlation_id(c);
        }
        if guarantees == Guarantees::Protocol {
            props = props
                .with_delivery_mode(1)
                .with_timestamp(now_secs())
                .with_type("result".into());
            if let Some(left) = deadline_left(d) {
                props = props.with_expiration(left.to_string().as_str().into());
            }
        }
        let confirm = ch
            .basic_publish(
                "".into(),
                reply_to,
                BasicPublishOptions::default(),
                body,
                props,
            )
            .await?;
        // Resolves at once on a channel without confirms.
        anyhow::ensure!(
            !matches!(confirm.await?, lapin::Confirmation::Nack(_)),
            "broker refused the reply"
        );
    }
    d.acker.ack(BasicAckOptions::default()).await?;
    Ok(())
}

/// Seconds since the epoch, for the reply's `timestamp`.
fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Milliseconds left (at least 1) to the request's `x-deadline`, sent as epoch
/// milliseconds by the lean client and the kit's.
fn deadline_left(d: &Delivery) -> Option<u128> {
    let headers = d.properties.headers().as_ref()?;
    let AMQPValue::LongLongInt(ms) = headers.inner().get(deadline::HEADER)? else {
        return None;
    };
    let at = Deadline::from_epoch_millis(u64::try_from(*ms).ok()?);
    Some(at.remaining().as_millis().max(1))
}

/// The ceiling's server: replies with the request's own bytes, each delivery in a task of
/// its own. Replying inline in the consume loop is less work per message but does one
/// message at a time: 6,600 against 10,600 calls/s at 64 in flight on the 2-core machine
/// measured, with the same sequential latency.
pub(crate) async fn echo_server(
    conn: &Connection,
    queue: &str,
    guarantees: Guarantees,
) -> anyhow::Result<()> {
    let (ch, mut consumer) = consume(conn, queue, "lean-echo", PREFETCH, guarantees).await?;
    tokio::spawn(async move {
        while let Some(Ok(d)) = consumer.next().await {
            let ch = ch.clone();
            tokio::spawn(async move {
                let _ = reply_and_ack(&ch, &d, &d.data, guarantees).await;
            });
        }
    });
    Ok(())
}

/// A client multiplexing calls over one reply queue, as lean as it gets: a counter for
/// correlation ids and a map of waiters.
#[derive(Clone)]
pub(crate) struct EchoClient {
    channel: Channel,
    reply_to: lapin::types::ShortString,
    pending: Arc<Mutex<HashMap<u64, oneshot::Sender<Vec<u8>>>>>,
    next: Arc<AtomicU64>,
    guarantees: Guarantees,
}

impl EchoClient {
    /// Under [`Guarantees::Protocol`], requests go out `mandatory` on a confirm-mode
    /// channel with `expiration`, `x-deadline` and `x-timeout-ms`, and each call waits for
    /// its confirm.
    pub(crate) async fn new(conn: &Connection, guarantees: Guarantees) -> anyhow::Result<Self> {
        let channel = conn.create_channel().await?;
        if guarantees.confirms() {
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await?;
        }
        // Replies to an exclusive queue consumed on a second channel: faster than direct
        // reply-to, which makes requests and replies share one channel (about 13,000-14,000
        // against 16,700-17,400 calls/s at 64 in flight on the 2-core machine measured).
        let reply_channel = conn.create_channel().await?;
        let queue = reply_channel
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        let reply_to = queue.name().clone();
        // The consumer keeps its channel open.
        let mut replies = reply_channel
            .basic_consume(
                reply_to.clone(),
                "lean-client".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        let pending: Arc<Mutex<HashMap<u64, oneshot::Sender<Vec<u8>>>>> = Arc::default();
        let p = pending.clone();
        tokio::spawn(async move {
            while let Some(Ok(d)) = replies.next().await {
                let id = d
                    .properties
                    .correlation_id()
                    .as_ref()
                    .and_then(|c| c.as_str().parse::<u64>().ok());
                let waiter = id.and_then(|id| p.lock().ok()?.remove(&id));
                if let Some(tx) = waiter {
                    let _ = tx.send(d.data);
                }
            }
        });
        Ok(Self {
            channel,
            reply_to,
            pending,
            next: Arc::new(AtomicU64::new(1)),
            guarantees,
        })
    }

    pub(crate) async fn call(&self, route: &str, body: &[u8]) -> anyhow::Result<Vec<u8>> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .map_err(|_| anyhow!("pending map poisoned"))?
            .insert(id, tx);
        let confirmed = self.guarantees.confirms();
        let mut props = BasicProperties::default()
            .with_reply_to(self.reply_to.clone())
            .with_correlation_id(id.to_string().as_str().into());
        if confirmed {
            let epoch_ms = Deadline::after(CALL_TIMEOUT).epoch_millis();
            let mut headers = FieldTable::default();
            headers.insert(
                deadline::HEADER.into(),
                AMQPValue::LongLongInt(i64::try_from(epoch_ms).unwrap_or(i64::MAX)),
            );
            headers.insert(
                deadline::TIMEOUT_HEADER.into(),
                AMQPValue::LongLongInt(i64::try_from(CALL_TIMEOUT.as_millis()).unwrap_or(i64::MAX)),
            );
            props = props
                .with_expiration(CALL_TIMEOUT.as_millis().to_string().as_str().into())
                .with_headers(headers);
        }
        let confirm = self
            .channel
            .basic_publish(
                "".into(),
                route.into(),
                BasicPublishOptions {
                    mandatory: confirmed,
                    ..BasicPublishOptions::default()
                },
                body,
                props,
            )
            .await?;
        if confirmed {
            anyhow::ensure!(
                confirm.await? == lapin::Confirmation::Ack(None),
                "request not routed"
            );
        }
        let reply = tokio::time::timeout(CALL_TIMEOUT, rx).await;
        if reply.is_err()
            && let Ok(mut p) = self.pending.lock()
        {
            p.remove(&id);
        }
        reply
            .map_err(|_| anyhow!("no reply within {CALL_TIMEOUT:?}"))?
            .map_err(|_| anyhow!("reply consumer ended"))
    }
}

/// How the one-way baseline publishes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Durability {
    /// Durable queue, persistent messages, publisher confirms: what a work queue promises.
    Persistent,
    /// Transient messages without confirms: the raw ceiling.
    Transient,
}

/// Publishes `n` messages of `body` to a fresh queue while a consumer acks each one;
/// returns the publish latencies (confirm round trips, or the send for transient) and
/// resolves when the consumer has acked all `n`.
pub(crate) async fn one_way(
    url: &str,
    queue: &str,
    n: usize,
    in_flight: usize,
    body: &[u8],
    durability: Durability,
    limit: Duration,
) -> anyhow::Result<crate::measure::Run> {
    let pub_conn = connect(url, "bench lean publisher").await?;
    let con_conn = connect(url, "bench lean consumer").await?;
    let durable = matches!(durability, Durability::Persistent);
    let con = con_conn.create_channel().await?;
    con.basic_qos(PREFETCH, BasicQosOptions::default()).await?;
    con.queue_declare(
        queue.into(),
        QueueDeclareOptions {
            durable,
            ..QueueDeclareOptions::default()
        },
        FieldTable::default(),
    )
    .await?;
    let mut consumer = con
        .basic_consume(
            queue.into(),
            "lean-consumer".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let done = Arc::new(Notify::new());
    let seen = Arc::new(AtomicUsize::new(0));
    let (d2, s2) = (done.clone(), seen.clone());
    tokio::spawn(async move {
        // Each ack in a task of its own, as the echo server replies: awaiting every ack in
        // the consume loop does one message at a time (7,700 against 10,500 msg/s,
        // persistent with confirms, on the 2-core machine measured).
        while let Some(Ok(d)) = consumer.next().await {
            let (d2, s2) = (d2.clone(), s2.clone());
            tokio::spawn(async move {
                if d.acker.ack(BasicAckOptions::default()).await.is_ok()
                    && s2.fetch_add(1, Ordering::Relaxed) + 1 == n
                {
                    d2.notify_one();
                }
            });
        }
    });
    let ch = pub_conn.create_channel().await?;
    if durable {
        ch.confirm_select(ConfirmSelectOptions::default()).await?;
    }
    let started = std::time::Instant::now();
    let finished = done.notified();
    let ch = &ch;
    let publish = crate::measure::drive(n, in_flight, limit, |_| async move {
        let props = BasicProperties::default().with_delivery_mode(if durable { 2 } else { 1 });
        let confirm = ch
            .basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions::default(),
                body,
                props,
            )
            .await?;
        if durable {
            confirm.await?;
        }
        Ok(())
    })
    .await;
    let result = match publish {
        Ok(run) => {
            let waited = tokio::time::timeout(limit, finished).await;
            match waited {
                Ok(()) => Ok(crate::measure::Run {
                    latencies: run.latencies,
                    elapsed: started.elapsed(),
                }),
                Err(_) => Err(anyhow!(
                    "consumer saw {} of {n} messages within {limit:?}",
                    seen.load(Ordering::Relaxed)
                )),
            }
        }
        Err(e) => Err(e),
    };
    delete_queues(&pub_conn, &[queue]).await;
    let _ = pub_conn.close(200, "done".into()).await;
    let _ = con_conn.close(200, "done".into()).await;
    result
}
