//! Reading a parking queue without taking anything from it.
//!
//! AMQP 0-9-1 has no "peek" for classic and quorum queues. A reader fetches messages with
//! `basic.get` and does not acknowledge them: the broker keeps each one, hidden from other
//! readers, until the fetching channel closes, and then hands all of them back. What that
//! costs:
//!
//! - **Order**: a classic queue puts returned messages back where they were; a quorum
//!   queue serves returned messages before the rest, in the order they were fetched. Either
//!   way the parking queue's order is what it was.
//! - **Redelivered**: every message fetched is marked redelivered. Nothing consumes a
//!   parking queue, and a replay publishes a new message, so nobody acts on the flag.
//! - **Quorum delivery count**: a quorum queue adds one to a returned message's
//!   `x-delivery-count`. The kit declares parking queues without a delivery limit, and
//!   RabbitMQ 3.x sets none; RabbitMQ 4.0 to 4.2 apply a default limit of 20 and count
//!   these returns towards it, and a message past the limit of a queue without a
//!   dead-letter target is dropped. `list` warns when a count gets near it; on those
//!   versions set a policy with `delivery-limit: -1` on the parking queues.
//! - **Concurrency**: while a command holds fetched messages, another reader does not see
//!   them (two `list`s at once show each other's messages as missing).

use anyhow::Result;
use lapin::Channel;
use lapin::message::Delivery;
use lapin::options::BasicGetOptions;

use crate::session::Session;

/// Fetches the next message of the parking queue on `channel` without acknowledging it:
/// it stays the broker's until acknowledged or until `channel` closes. `None` when the
/// queue has no more.
pub(crate) async fn next(session: &Session, channel: &Channel) -> Result<Option<Delivery>> {
    let got = channel
        .basic_get(
            session.queue.as_str().into(),
            BasicGetOptions { no_ack: false },
        )
        .await
        .map_err(|e| session.explain(&e, "reading the parking queue"))?;
    Ok(got.map(|m| m.delivery))
}

/// Closes `channel`: every message fetched on it and not acknowledged goes back to the
/// parking queue.
pub(crate) async fn hand_back(channel: Channel) {
    let _ = channel.close(200, "read".into()).await;
}
