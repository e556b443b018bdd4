//! What a server may put in a reply, and where it may send it. A request's properties come
//! from whoever could publish to the route, so nothing in them is taken as it is: the
//! reply goes only to a reply queue, is never persistent, expires with the caller's
//! deadline, and echoes only bounded, well-formed trace headers.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use lapin::BasicProperties;
use lapin::types::{FieldTable, ShortString};

use crate::access::pattern::glob;
use crate::wire::deadline::{self, Deadline, MAX_EXPIRATION_MS};
use crate::wire::delivery;
use crate::wire::envelope::Encoding;
use crate::wire::headers::{fits_frame, is_traceparent, is_tracestate};

/// Reply queues every server accepts: server-named queues (what a caller gets when it
/// declares a queue without a name, as the kit's client, aio-pika and the Python seed do)
/// and RabbitMQ's direct reply-to pseudo-queue.
const BUILT_IN: [&str; 2] = ["amq.gen-*", "amq.rabbitmq.reply-to*"];

/// Which `reply_to` values a server publishes to.
#[derive(Debug, Clone)]
pub(crate) struct ReplyTo {
    /// `RPC_REPLY_TO` patterns, added to the built-in ones.
    patterns: Vec<String>,
    /// Queues this process consumes or parks into: a reply there would be taken for a
    /// request (or a work message) and run under the server's identity.
    served: Arc<HashSet<String>>,
}

impl ReplyTo {
    pub(crate) fn new(patterns: Vec<String>, served: Arc<HashSet<String>>) -> Self {
        Self { patterns, served }
    }

    /// Whether a reply may be published to `queue`.
    pub(crate) fn allows(&self, queue: &str) -> bool {
        !self.served.contains(queue)
            && BUILT_IN
                .iter()
                .copied()
                .chain(self.patterns.iter().map(String::as_str))
                .any(|p| glob(p, queue))
    }
}

/// The reply's properties: transient, expiring with the caller's deadline, from the
/// server's own broker user `user_id`, with the request's correlation id and, when
/// well-formed, its trace headers.
pub(crate) fn properties(
    request: &BasicProperties,
    deadline: Option<Deadline>,
    amqp_type: &'static str,
    encoding: Encoding,
    user_id: &ShortString,
) -> BasicProperties {
    let mut props = BasicProperties::default()
        .with_user_id(user_id.clone())
        .with_delivery_mode(1)
        .with_timestamp(delivery::now_timestamp())
        .with_type(ShortString::from(amqp_type));
    if let Some(c) = request.correlation_id() {
        props = props.with_correlation_id(c.clone());
    }
    if let Some(ce) = encoding.content_encoding() {
        props = props.with_content_encoding(ce.into());
    }
    if let Some(d) = deadline {
        // A reply nobody waits for any more must not sit in a queue. The deadline is
        // bounded by the handler limit when read; bounded again here because an
        // expiration above 2³²−1 ms closes the channel the request came on.
        let ms = deadline::expiration_ms(d.remaining(), Duration::from_millis(MAX_EXPIRATION_MS));
        props = props.with_expiration(ms.to_string().as_str().into());
    }
    let mut trace = FieldTable::default();
    if let Some(h) = request.headers()
        && let Some(tp) = h.inner().get("traceparent").filter(|v| is_traceparent(v))
    {
        trace.insert("traceparent".into(), tp.clone());
        if let Some(ts) = h.inner().get("tracestate").filter(|v| is_tracestate(v)) {
            trace.insert("tracestate".into(), ts.clone());
        }
    }
    if !trace.inner().is_empty() {
        let with_trace = props.clone().with_headers(trace);
        // Bounded above, so this holds; checked anyway, as for every copy the kit makes.
        if fits_frame(&with_trace) {
            props = with_trace;
        }
    }
    props
}

#[cfg(test)]
mod tests {
    use lapin::types::AMQPValue;

    use super::*;

    #[test]
    fn only_reply_queues_and_never_served_ones() {
        let served: HashSet<String> = ["orders.get", "amq.gen-mine", "replies.orders.get"]
            .map(String::from)
            .into();
        let r = ReplyTo::new(vec!["replies.*".into()], Arc::new(served));
        assert!(r.allows("amq.gen-Xy_12"));
        assert!(r.allows("amq.rabbitmq.reply-to"));
        assert!(r.allows("amq.rabbitmq.reply-to.g1h2AA5yZXBseUAx"));
        assert!(r.allows("replies.caller-1"));
        assert!(!r.allows("orders.get"), "a served route");
        assert!(
            !r.allows("amq.gen-mine"),
            "served, even when shaped like a reply queue"
        );
        assert!(
            !r.allows("replies.orders.get"),
            "served, even when a pattern matches"
        );
        assert!(!r.allows("billing.invoices"), "some other service's queue");
        assert!(!r.allows(""));
    }

    /// Every property a reply carries is bounded, so the largest possible reply header fits
    /// one frame: a reply can never close the channel its request came on for its size.
    #[test]
    fn the_largest_reply_properties_fit_one_frame() {
        let members: Vec<String> = (0..32).map(|i| format!("k{i:02}=vvvvvvvvvv")).collect();
        let tracestate = members.join(",");
        assert!(tracestate.len() <= 512);
        let mut h = FieldTable::default();
        h.insert(
            "traceparent".into(),
            AMQPValue::LongString("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
        );
        h.insert(
            "tracestate".into(),
            AMQPValue::LongString(tracestate.into()),
        );
        let longest = "c".repeat(255);
        let request = BasicProperties::default()
            .with_headers(h)
            .with_correlation_id(longest.as_str().into());
        let deadline = Deadline::after(std::time::Duration::from_secs(60));
        let p = properties(
            &request,
            Some(deadline),
            "result",
            Encoding::Gzip,
            &longest.as_str().into(),
        );
        assert!(p.headers().is_some(), "the trace headers are echoed");
        assert!(fits_frame(&p));
    }

    #[test]
    fn reply_properties_bound_what_is_copied() {
        let mut h = FieldTable::default();
        h.insert(
            "traceparent".into(),
            AMQPValue::LongString("x".repeat(100_000).into()),
        );
        h.insert("tracestate".into(), AMQPValue::LongString("a=b".into()));
        h.insert("x-other".into(), AMQPValue::LongString("y".into()));
        let request = BasicProperties::default()
            .with_headers(h)
            .with_delivery_mode(2)
            .with_correlation_id("c1".into());
        let p = properties(&request, None, "result", Encoding::Gzip, &"svc".into());
        assert_eq!(p.delivery_mode(), &Some(1));
        assert!(
            p.headers().is_none(),
            "no trace headers without a valid traceparent"
        );
        assert!(p.expiration().is_none());
        assert_eq!(p.correlation_id().as_ref().unwrap().as_str(), "c1");

        let deadline = Deadline::after(std::time::Duration::from_secs(5));
        let p = properties(
            &request,
            Some(deadline),
            "error",
            Encoding::Plain,
            &"svc".into(),
        );
        let ms: u64 = p.expiration().as_ref().unwrap().as_str().parse().unwrap();
        assert!((1..=5000).contains(&ms), "{ms}");
        let past = Deadline::from_epoch_millis(1);
        let p = properties(
            &request,
            Some(past),
            "error",
            Encoding::Plain,
            &"svc".into(),
        );
        assert_eq!(p.expiration().as_ref().unwrap().as_str(), "1");
    }
}
