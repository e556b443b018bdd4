//! Extractors: what a handler's arguments can be.
//!
//! A handler is an `async fn` whose every argument implements [`FromMessage`]: the typed
//! payload ([`Payload`]), the worker's shared state ([`State`]) and the message's metadata
//! ([`Meta`]). Extraction happens before the handler runs; a payload that does not fit its
//! type becomes a `ValidationError` reply that names the offending field.

use crate::wire::headers::{MAX_ERROR_MESSAGE_BYTES, capped};
use std::sync::Arc;

use lapin::types::{AMQPValue, FieldTable};
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use crate::access::Caller;
use crate::wire::deadline::Deadline;
use crate::wire::reply_error::ErrorReply;

/// One message as handlers see it, before extraction.
#[derive(Debug)]
pub struct Incoming {
    pub(crate) route: Arc<str>,
    pub(crate) data: Box<RawValue>,
    pub(crate) meta: Meta,
}

impl Incoming {
    /// Builds a message by hand: for calling a handler in a unit test without a broker.
    ///
    /// # Errors
    ///
    /// When `data` cannot be serialized to JSON.
    pub fn for_test(route: &str, data: &impl serde::Serialize) -> Result<Self, serde_json::Error> {
        let raw = serde_json::value::to_raw_value(data)?;
        let route: Arc<str> = Arc::from(route);
        Ok(Self {
            meta: Meta {
                route: route.clone(),
                ..Meta::default()
            },
            route,
            data: raw,
        })
    }

    /// The route the message arrived on.
    pub fn route(&self) -> &str {
        &self.route
    }

    /// The message's metadata.
    pub fn meta(&self) -> &Meta {
        &self.meta
    }
}

/// Something a handler argument can be built from: the message and the worker's state.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a handler argument",
    label = "not an extractor",
    note = "handler arguments must be extractors: `Payload<T>` (T: serde::Deserialize), `State<S>` (S = the worker's state type), `Meta`, or a type implementing `FromMessage<S>`"
)]
pub trait FromMessage<S>: Sized {
    /// Builds the argument.
    ///
    /// # Errors
    ///
    /// The error reply sent instead of running the handler.
    fn from_message(msg: &Incoming, state: &S) -> Result<Self, ErrorReply>;
}

/// The message's `data`, deserialized into `T`.
///
/// A value that does not fit `T` is answered with a `ValidationError` naming the path of
/// the field (`items[2].price: invalid type: string "x", expected f64`) before the
/// handler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Payload<T>(pub T);

impl<T: DeserializeOwned, S> FromMessage<S> for Payload<T> {
    fn from_message(msg: &Incoming, _state: &S) -> Result<Self, ErrorReply> {
        parse_payload(msg.data.get()).map(Payload)
    }
}

/// Deserializes payload JSON, naming the failing field.
pub(crate) fn parse_payload<T: DeserializeOwned>(json: &str) -> Result<T, ErrorReply> {
    let mut de = serde_json::Deserializer::from_str(json);
    let parsed = serde_path_to_error::deserialize(&mut de);
    if parsed.is_err() && json.trim() == "null" {
        // No payload stands for "all defaults" when the type has nothing but optional
        // fields (a request without arguments); a type with required fields still
        // reports what is missing.
        if let Ok(v) = serde_json::from_str::<T>("{}") {
            return Ok(v);
        }
    }
    parsed.map_err(|e| {
        // Both quote the caller's input (map keys, values), which may be of any size.
        let path = capped(&e.path().to_string(), MAX_ERROR_MESSAGE_BYTES);
        let inner = e.into_inner();
        let message = if path == "." {
            format!("invalid payload: {inner}")
        } else {
            format!("invalid payload at `{path}`: {inner}")
        };
        ErrorReply::validation(capped(&message, MAX_ERROR_MESSAGE_BYTES))
            .with_args(vec![serde_json::Value::String(path)])
    })
}

/// The worker's shared state (database clients, RPC clients, settings), cloned per message.
///
/// Keep it cheap to clone: wrap large things in `Arc`.
#[derive(Debug, Clone, Copy, Default)]
pub struct State<S>(pub S);

impl<S: Clone> FromMessage<S> for State<S> {
    fn from_message(_msg: &Incoming, state: &S) -> Result<Self, ErrorReply> {
        Ok(State(state.clone()))
    }
}

/// A message's metadata.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Meta {
    /// The route (queue) the message arrived on.
    pub route: Arc<str>,
    /// The caller's `correlation_id`.
    pub correlation_id: Option<String>,
    /// The caller's `reply_to` (RPC).
    pub reply_to: Option<String>,
    /// The message's AMQP headers.
    pub headers: FieldTable,
    /// Whether the broker delivered this message before (a previous attempt did not ack it).
    pub redelivered: bool,
    /// How often the kit has retried this work-queue message after a handler error.
    pub retry_count: u32,
    /// When the caller stops waiting (`x-deadline`), if it said.
    pub deadline: Option<Deadline>,
    /// The AMQP `message_id` (an event's unique id).
    pub message_id: Option<String>,
    /// The AMQP `type` (an event's name).
    pub message_type: Option<String>,
    /// The AMQP `timestamp`, in seconds since the epoch (an event's commit time).
    pub timestamp: Option<u64>,
    /// Who sent the message, as the broker vouches for it (its `user_id`; for a retried
    /// work message, the sender of the first attempt). The route's allow list has been
    /// checked against it before the handler runs.
    pub caller: Caller,
}

impl Meta {
    /// A header's value as a string, if present and textual.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        match self.headers.inner().get(name)? {
            AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok(),
            AMQPValue::ShortString(s) => Some(s.as_str()),
            _ => None,
        }
    }

    /// The W3C `traceparent` header, when the caller sent one.
    pub fn traceparent(&self) -> Option<&str> {
        self.header_str("traceparent")
    }
}

impl<S> FromMessage<S> for Meta {
    fn from_message(msg: &Incoming, _state: &S) -> Result<Self, ErrorReply> {
        Ok(msg.meta.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Order {
        id: u32,
        lines: Vec<Line>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Line {
        sku: String,
        qty: u32,
    }

    #[test]
    fn payload_fits() {
        let msg = Incoming::for_test(
            "o",
            &serde_json::json!({"id": 1, "lines": [{"sku": "a", "qty": 2}]}),
        )
        .unwrap();
        let Payload(order) = Payload::<Order>::from_message(&msg, &()).unwrap();
        assert_eq!(order.lines[0].qty, 2);
    }

    #[test]
    fn a_missing_payload_is_the_defaults_when_every_field_is_optional() {
        #[derive(Deserialize, Debug, PartialEq)]
        struct AllOptional {
            #[serde(default)]
            limit: Option<u32>,
        }
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct Required {
            id: i64,
        }
        assert_eq!(
            parse_payload::<AllOptional>("null").unwrap(),
            AllOptional { limit: None }
        );
        let e = parse_payload::<Required>("null").unwrap_err();
        assert_eq!(e.error_type, "ValidationError");
        assert_eq!(parse_payload::<Option<u8>>("null").unwrap(), None);
    }

    #[test]
    fn validation_error_names_the_field() {
        let msg = Incoming::for_test(
            "o",
            &serde_json::json!({"id": 1, "lines": [{"sku": "a", "qty": 2}, {"sku": "b", "qty": "many"}]}),
        )
        .unwrap();
        let err = Payload::<Order>::from_message(&msg, &()).unwrap_err();
        assert_eq!(err.error_type, "ValidationError");
        assert!(
            err.message
                .starts_with("invalid payload at `lines[1].qty`: invalid type: string \"many\""),
            "{}",
            err.message
        );
        assert_eq!(err.args, vec![serde_json::json!("lines[1].qty")]);
    }

    #[test]
    fn missing_field_is_named() {
        let msg = Incoming::for_test("o", &serde_json::json!({"lines": []})).unwrap();
        let err = Payload::<Order>::from_message(&msg, &()).unwrap_err();
        assert!(
            err.message.contains("missing field `id`"),
            "{}",
            err.message
        );
    }

    #[test]
    fn wrong_top_level_type() {
        let msg = Incoming::for_test("o", &serde_json::json!("just a string")).unwrap();
        let err = Payload::<Order>::from_message(&msg, &()).unwrap_err();
        assert!(
            err.message
                .starts_with("invalid payload: invalid type: string"),
            "{}",
            err.message
        );
    }
}
