//! What `list` shows of one parked message, and the id commands name it by.

use lapin::BasicProperties;
use lapin::message::Delivery;
use serde::Serialize;
use sha2::{Digest, Sha256};
use worker_kit::RETRY_COUNT_HEADER;
use worker_kit::access::ORIGINAL_USER_HEADER;

use crate::headers;

/// Header naming why the kit parked a message.
pub(crate) const ERROR_TYPE_HEADER: &str = "x-error-type";
/// Header with the error's message (at most 1 KiB).
pub(crate) const ERROR_MESSAGE_HEADER: &str = "x-error-message";
/// Header naming the route a parked message came from.
pub(crate) const ORIGINAL_ROUTE_HEADER: &str = "x-original-route";
/// Header a replayed message carries: the broker user that replayed it.
pub(crate) const REPLAYED_BY_HEADER: &str = "x-replayed-by";
/// Header a replayed message carries: when it was replayed (RFC 3339, UTC).
pub(crate) const REPLAYED_AT_HEADER: &str = "x-replayed-at";

/// One parked message, as listed.
#[derive(Debug, Serialize)]
pub(crate) struct Summary {
    /// `message_id`, or `sha256:…` derived from the message when it has none.
    pub(crate) id: String,
    /// Why it was parked (`x-error-type`; for a message the broker dead-lettered itself,
    /// `dead-lettered: <reason>`).
    pub(crate) error_type: Option<String>,
    /// The error's message (`x-error-message`).
    pub(crate) error_message: Option<String>,
    /// How often it was retried before it was parked (`x-retry-count`).
    pub(crate) retry_count: Option<u64>,
    /// The broker user that sent the original; `None` when it was sent without `user_id`.
    pub(crate) original_sender: Option<String>,
    /// When the original was published (its `timestamp`, RFC 3339), which retry and
    /// parked copies keep.
    pub(crate) published_at: Option<String>,
    /// Seconds since then.
    pub(crate) age_seconds: Option<u64>,
    /// Who replayed it before, when it was parked again after a replay.
    pub(crate) replayed_by: Option<String>,
    /// How often the broker handed it out and got it back (`x-delivery-count`, quorum
    /// queues only): every `list` or `show` adds one on RabbitMQ before 4.3.
    pub(crate) delivery_count: Option<u64>,
}

impl Summary {
    /// `delivery` as listed at `now` (seconds since the epoch).
    pub(crate) fn of(delivery: &Delivery, now: u64) -> Self {
        let props = &delivery.properties;
        let h = props.headers().as_ref();
        let error_type = headers::text(h, ERROR_TYPE_HEADER)
            .or_else(|| headers::death_reason(h).map(|r| format!("dead-lettered: {r}")));
        let published = props.timestamp().filter(|t| *t > 0);
        Self {
            id: id_of(props, &delivery.data),
            error_type,
            error_message: headers::text(h, ERROR_MESSAGE_HEADER),
            retry_count: headers::number(h, RETRY_COUNT_HEADER),
            original_sender: original_sender(props),
            published_at: published.and_then(|t| {
                chrono::DateTime::from_timestamp(i64::try_from(t).ok()?, 0)
                    .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            }),
            age_seconds: published.map(|t| now.saturating_sub(t)),
            replayed_by: headers::text(h, REPLAYED_BY_HEADER),
            delivery_count: headers::number(h, "x-delivery-count"),
        }
    }
}

/// The id a parked message is named by: its `message_id`, or, without one, `sha256:` and
/// the first 16 hex digits of a digest of what stays the same while it is parked (body,
/// timestamp, correlation id, error type), so that `list` and `replay --id` agree. Two
/// parked messages alike in all of these share an id, and `replay --id` replays both.
pub(crate) fn id_of(props: &BasicProperties, body: &[u8]) -> String {
    if let Some(id) = props
        .message_id()
        .as_ref()
        .filter(|id| !id.as_str().is_empty())
    {
        return id.as_str().to_owned();
    }
    let mut digest = Sha256::new();
    digest.update(body);
    digest.update(props.timestamp().unwrap_or(0).to_be_bytes());
    let correlation = props
        .correlation_id()
        .as_ref()
        .map(|c| c.as_str().to_owned());
    digest.update(correlation.unwrap_or_default().as_bytes());
    digest.update([0]);
    let error_type = headers::text(props.headers().as_ref(), ERROR_TYPE_HEADER);
    digest.update(error_type.unwrap_or_default().as_bytes());
    let hex: String = digest.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

/// Who sent the original: the kit's copies name the sender in `x-original-user-id` (and
/// carry none for an anonymous one); a message the broker dead-lettered itself still has
/// its sender's `user_id`.
fn original_sender(props: &BasicProperties) -> Option<String> {
    let h = props.headers().as_ref();
    if let Some(user) = headers::text(h, ORIGINAL_USER_HEADER) {
        return Some(user);
    }
    if headers::text(h, ERROR_TYPE_HEADER).is_some() {
        return None;
    }
    props.user_id().as_ref().map(|u| u.as_str().to_owned())
}

/// `seconds` the way a person reads an age: `45s`, `12m`, `3h05m`, `2d04h`.
pub(crate) fn age(seconds: u64) -> String {
    match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        s => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use lapin::types::{AMQPValue, FieldTable};

    use super::*;

    fn parked(headers: &[(&str, &str)]) -> BasicProperties {
        let mut t = FieldTable::default();
        for (k, v) in headers {
            t.insert((*k).into(), AMQPValue::LongString((*v).into()));
        }
        BasicProperties::default()
            .with_headers(t)
            .with_timestamp(1_700_000_000)
            .with_user_id("example".into())
    }

    #[test]
    fn the_message_id_names_a_message_and_a_digest_stands_in_for_a_missing_one() {
        let with_id = parked(&[]).with_message_id("m-1".into());
        assert_eq!(id_of(&with_id, b"x"), "m-1");
        let without = parked(&[(ERROR_TYPE_HEADER, "Broken")]);
        let id = id_of(&without, b"body");
        assert!(id.starts_with("sha256:") && id.len() == 7 + 16, "{id}");
        assert_eq!(id, id_of(&without, b"body"), "stable");
        assert_ne!(id, id_of(&without, b"other body"));
    }

    #[test]
    fn the_sender_of_a_kit_copy_is_its_original_user_header() {
        let from_greeter = parked(&[
            (ERROR_TYPE_HEADER, "Broken"),
            (ORIGINAL_USER_HEADER, "greeter"),
        ]);
        assert_eq!(original_sender(&from_greeter).as_deref(), Some("greeter"));
        let anonymous = parked(&[(ERROR_TYPE_HEADER, "Broken")]);
        assert_eq!(
            original_sender(&anonymous),
            None,
            "the copy's user_id is the service's own"
        );
        let dead_lettered = parked(&[]);
        assert_eq!(original_sender(&dead_lettered).as_deref(), Some("example"));
    }

    #[test]
    fn ages_read_like_ages() {
        assert_eq!(age(5), "5s");
        assert_eq!(age(600), "10m");
        assert_eq!(age(3 * 3600 + 5 * 60), "3h05m");
        assert_eq!(age(2 * 86_400 + 4 * 3600), "2d04h");
    }
}
