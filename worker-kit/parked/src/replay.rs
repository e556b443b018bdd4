//! `parked replay ROUTE --all | --id ID…`: parked messages back to their route.
//!
//! One message at a time: fetch it from the parking queue (unacknowledged), publish its
//! replay to the route and wait for the broker's confirm, and only then acknowledge the
//! parked one. Interrupted anywhere (killed, connection lost), the fetched message goes
//! back to the parking queue: nothing is lost, and the one message whose replay was
//! confirmed but whose acknowledgement never reached the broker is both replayed and
//! still parked — at most one duplicate, which the route's handlers (idempotent, as every
//! at-least-once consumer must be) absorb.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicPublishOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Confirmation};
use worker_kit::RETRY_COUNT_HEADER;
use worker_kit::access::ORIGINAL_USER_HEADER;

use crate::browse;
use crate::parked_message::{
    ERROR_MESSAGE_HEADER, ERROR_TYPE_HEADER, ORIGINAL_ROUTE_HEADER, REPLAYED_AT_HEADER,
    REPLAYED_BY_HEADER, id_of,
};
use crate::session::Session;

/// Which parked messages to replay.
pub(crate) enum Pick {
    /// Every message parked when the replay starts.
    All,
    /// The messages with these ids.
    Ids(Vec<String>),
}

/// Headers that describe the parking, or the broker's dead-lettering, of a message: a
/// replay is a fresh attempt, so they go.
const PARKING_HEADERS: &[&str] = &[
    ERROR_TYPE_HEADER,
    ERROR_MESSAGE_HEADER,
    ORIGINAL_ROUTE_HEADER,
    "x-death",
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-last-death-exchange",
    "x-last-death-queue",
    "x-last-death-reason",
    "x-delivery-count",
    "x-acquired-count",
];

pub(crate) async fn run(session: &Session, pick: Pick, rate: Option<u32>, scan: u32) -> Result<()> {
    let parked = session.depth().await?;
    let from = session.channel().await?;
    let to = session.confirm_channel().await?;
    let result = replay(session, &from, &to, &pick, rate, scan, parked).await;
    // What was fetched and not replayed (other ids, a failure) goes back.
    browse::hand_back(from).await;
    let _ = to.close(200, "replayed".into()).await;
    let replayed = result?;
    match pick {
        Pick::All => println!(
            "replayed {replayed} of the {parked} messages parked in {} to {}",
            session.queue, session.route
        ),
        Pick::Ids(_) => println!("replayed {replayed} messages to {}", session.route),
    }
    Ok(())
}

/// Replays what `pick` names; the count replayed.
async fn replay(
    session: &Session,
    from: &Channel,
    to: &Channel,
    pick: &Pick,
    rate: Option<u32>,
    scan: u32,
    parked: u32,
) -> Result<usize> {
    let mut missing: BTreeSet<&str> = match pick {
        Pick::All => BTreeSet::new(),
        Pick::Ids(ids) => ids.iter().map(String::as_str).collect(),
    };
    // Messages parked again while this runs (their handler still fails) join the back of
    // the queue; stopping at the count seen at the start keeps them for the next run.
    let budget = match pick {
        Pick::All => parked,
        Pick::Ids(_) => parked.min(scan),
    };
    let pace = rate.map(|n| Duration::from_secs(1) / n);
    let started = tokio::time::Instant::now();
    let mut replayed = 0usize;
    for _ in 0..budget {
        let Some(delivery) = browse::next(session, from).await? else {
            break;
        };
        let id = id_of(&delivery.properties, &delivery.data);
        if let Pick::Ids(ids) = pick {
            if !ids.contains(&id) {
                // Left unacknowledged: it goes back, in its place, when `from` closes.
                continue;
            }
            missing.remove(id.as_str());
        }
        if let Some(pace) = pace {
            let due = started + pace * u32::try_from(replayed).unwrap_or(u32::MAX);
            tokio::time::sleep_until(due).await;
        }
        publish(session, to, &delivery).await?;
        delivery
            .acker
            .ack(BasicAckOptions::default())
            .await
            .map_err(|e| anyhow!("acknowledging parked message {id} after its replay failed ({e}); it was replayed and is still parked: remove it with care"))?;
        println!("replayed {id}");
        replayed += 1;
    }
    if !missing.is_empty() {
        let names: Vec<&str> = missing.into_iter().collect();
        bail!(
            "replayed {replayed}; not found among the first {budget} messages parked in {}: {} (ids as `parked list` shows them; --scan looks further)",
            session.queue,
            names.join(", ")
        );
    }
    Ok(replayed)
}

/// Publishes the replay of `parked` to the route (mandatory, persistent) and waits for the
/// broker's confirm.
async fn publish(session: &Session, to: &Channel, parked: &Delivery) -> Result<()> {
    let id = id_of(&parked.properties, &parked.data);
    let props = replay_properties(&parked.properties, session.user(), chrono::Utc::now());
    let confirm = to
        .basic_publish(
            ShortString::from(""),
            session.route.as_str().into(),
            BasicPublishOptions {
                mandatory: true,
                ..BasicPublishOptions::default()
            },
            &parked.data,
            props,
        )
        .await
        .map_err(|e| session.explain(&e, "publishing a replay"))?
        .await
        .map_err(|e| session.explain(&e, "publishing a replay"))?;
    match confirm {
        Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
        Confirmation::Ack(Some(_)) | Confirmation::Nack(Some(_)) => bail!(
            "route `{}` has no queue, so the broker returned the replay of {id}: start the route's service (it declares the queue) and replay again; {id} is still parked",
            session.route
        ),
        Confirmation::Nack(None) => bail!(
            "the broker refused the replay of {id} (a full queue with x-overflow reject-publish, or a resource alarm); {id} is still parked: try again later"
        ),
    }
}

/// The properties of the replay of a parked message with `parked`, published by broker
/// user `user` at `now`: the original's (trace headers, ids, encoding, timestamp),
/// persistent, without the parking headers, with `x-retry-count` 0 and who replayed it
/// when; its `user_id` is `user`, which the broker checks.
///
/// Authorization: a kit consumer believes `x-original-user-id` only on a message from its
/// own broker user. Replayed by the service's own user, the message is authorized and shown
/// to its handler as its original sender; replayed by anyone else, as that user (whom the
/// route's allow list must then admit).
pub(crate) fn replay_properties(
    parked: &BasicProperties,
    user: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> BasicProperties {
    // A routing header would send the replay to more queues than the route, as this user.
    let mut headers = worker_kit::wire::headers::without_routing_headers(
        parked.headers().clone().unwrap_or_default().inner().clone(),
    );
    let kit_copy = headers.contains_key(ERROR_TYPE_HEADER);
    for name in PARKING_HEADERS {
        headers.remove(*name);
    }
    // A message the broker dead-lettered itself still carries its sender's user_id, which
    // the replay's user_id replaces: the sender travels on as the kit's copies carry it.
    if let Some(sender) = parked.user_id().as_ref().filter(|_| !kit_copy)
        && !headers.contains_key(ORIGINAL_USER_HEADER)
    {
        headers.insert(
            ORIGINAL_USER_HEADER.into(),
            AMQPValue::LongString(sender.as_str().into()),
        );
    }
    headers.insert(RETRY_COUNT_HEADER.into(), AMQPValue::LongLongInt(0));
    headers.insert(
        REPLAYED_BY_HEADER.into(),
        AMQPValue::LongString(user.into()),
    );
    headers.insert(
        REPLAYED_AT_HEADER.into(),
        AMQPValue::LongString(
            now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                .into(),
        ),
    );
    let mut props = BasicProperties::default()
        .with_headers(FieldTable::from(headers))
        .with_delivery_mode(2)
        .with_user_id(user.into());
    if let Some(v) = parked.content_type() {
        props = props.with_content_type(v.clone());
    }
    if let Some(v) = parked.content_encoding() {
        props = props.with_content_encoding(v.clone());
    }
    if let Some(v) = parked.priority() {
        props = props.with_priority(*v);
    }
    if let Some(v) = parked.correlation_id() {
        props = props.with_correlation_id(v.clone());
    }
    if let Some(v) = parked.reply_to() {
        props = props.with_reply_to(v.clone());
    }
    if let Some(v) = parked.message_id() {
        props = props.with_message_id(v.clone());
    }
    if let Some(v) = parked.timestamp() {
        props = props.with_timestamp(*v);
    }
    if let Some(v) = parked.kind() {
        props = props.with_type(v.clone());
    }
    if let Some(v) = parked.app_id() {
        props = props.with_app_id(v.clone());
    }
    props
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header<'a>(p: &'a BasicProperties, name: &str) -> Option<&'a AMQPValue> {
        p.headers().as_ref()?.inner().get(name)
    }

    #[test]
    fn a_replay_is_a_fresh_attempt_that_says_who_replayed_it() {
        let mut h = FieldTable::default();
        for (k, v) in [
            (ERROR_TYPE_HEADER, "Broken"),
            (ERROR_MESSAGE_HEADER, "it broke"),
            (ORIGINAL_ROUTE_HEADER, "r"),
            (ORIGINAL_USER_HEADER, "greeter"),
            (
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
        ] {
            h.insert(k.into(), AMQPValue::LongString(v.into()));
        }
        h.insert(RETRY_COUNT_HEADER.into(), AMQPValue::LongLongInt(3));
        let parked = BasicProperties::default()
            .with_headers(h)
            .with_user_id("example".into())
            .with_message_id("m-1".into())
            .with_content_encoding("gzip".into())
            .with_expiration("1000".into());
        let at = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let replay = replay_properties(&parked, "ops", at);
        assert_eq!(
            header(&replay, RETRY_COUNT_HEADER),
            Some(&AMQPValue::LongLongInt(0))
        );
        assert_eq!(
            header(&replay, REPLAYED_BY_HEADER),
            Some(&AMQPValue::LongString("ops".into()))
        );
        assert_eq!(
            header(&replay, REPLAYED_AT_HEADER),
            Some(&AMQPValue::LongString("2023-11-14T22:13:20.000Z".into()))
        );
        assert!(
            header(&replay, "traceparent").is_some(),
            "trace context kept"
        );
        assert_eq!(
            header(&replay, ORIGINAL_USER_HEADER),
            Some(&AMQPValue::LongString("greeter".into()))
        );
        for gone in [
            ERROR_TYPE_HEADER,
            ERROR_MESSAGE_HEADER,
            ORIGINAL_ROUTE_HEADER,
        ] {
            assert!(header(&replay, gone).is_none(), "{gone}");
        }
        assert_eq!(
            replay.user_id().as_ref().map(ShortString::as_str),
            Some("ops")
        );
        assert_eq!(replay.expiration(), &None);
        assert_eq!(replay.delivery_mode(), &Some(2));
        assert_eq!(replay.message_id(), parked.message_id());
        assert_eq!(replay.content_encoding(), parked.content_encoding());
    }

    #[test]
    fn the_sender_of_a_message_the_broker_dead_lettered_travels_on() {
        let parked = BasicProperties::default().with_user_id("billing".into());
        let replay = replay_properties(&parked, "example", chrono::Utc::now());
        assert_eq!(
            header(&replay, ORIGINAL_USER_HEADER),
            Some(&AMQPValue::LongString("billing".into()))
        );
    }
}
