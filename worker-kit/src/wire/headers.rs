//! Bounds on what the kit copies from a message it received into one it publishes.
//!
//! RabbitMQ sends a message's properties in one frame, and a frame larger than the
//! negotiated `frame_max` (131,072 bytes by default) is a protocol error that closes the
//! whole connection — every worker and client of the process with it. The kit adds to what it
//! received (parking headers, reply properties), so a caller could make the kit's own publish
//! too big: every value the kit copies or quotes is therefore bounded here, and the encoded
//! properties of each publish are measured first. A message the broker delivered may itself be
//! a few bytes over (RabbitMQ measures the frame's payload, not the frame): such a delivery is
//! refused before any handler (`oversized_properties`).

use lapin::BasicProperties;
use lapin::types::AMQPValue;

use crate::wire::reply_error::ErrorReply;

/// RabbitMQ's default `frame_max`, which the kit assumes (a broker configured lower is not
/// supported).
pub const FRAME_MAX: usize = 131_072;

/// Largest encoded properties (flags included) that fit one frame: the frame's 8 bytes of
/// framing and the content header's 12 bytes before its properties (class, weight, body
/// size) come off first.
pub const MAX_PROPERTIES_BYTES: usize = FRAME_MAX - 8 - 12;

/// Most bytes of an error message the kit puts in a header (`x-error-message`).
pub const MAX_ERROR_MESSAGE_BYTES: usize = 1024;

/// Most bytes of a `tracestate` echoed into a reply (the W3C limit for the whole list).
pub const MAX_TRACESTATE_BYTES: usize = 512;

/// Most members of a `tracestate` list (W3C: a longer list is discarded whole).
pub const MAX_TRACESTATE_MEMBERS: usize = 32;

/// Headers RabbitMQ routes by ("sender-selected distribution"): a message carrying `CC` or
/// `BCC` also goes to the queues they name. A copy the kit publishes under its own `user_id`
/// (a retry, a parked message, a replay) must go only where the kit sends it, so these never
/// travel from the message received into a copy.
pub const ROUTING_HEADERS: [&str; 2] = ["CC", "BCC"];

/// `headers` without the [`ROUTING_HEADERS`].
pub fn without_routing_headers(
    mut headers: std::collections::BTreeMap<lapin::types::ShortString, AMQPValue>,
) -> std::collections::BTreeMap<lapin::types::ShortString, AMQPValue> {
    for name in ROUTING_HEADERS {
        headers.remove(name);
    }
    headers
}

/// W3C's threshold for the members a too-long `tracestate` loses first.
#[cfg_attr(not(feature = "otel"), allow(dead_code))]
const LARGE_TRACESTATE_MEMBER: usize = 128;

/// `value` bounded as W3C Trace Context bounds a `tracestate` (opentelemetry does not):
/// `None` past [`MAX_TRACESTATE_MEMBERS`] members; past [`MAX_TRACESTATE_BYTES`], members
/// longer than 128 characters are dropped first, then members from the end, until it fits.
/// A caller's `tracestate` is copied into every nested call, so an unbounded one would make
/// the kit's own publishes too large for a frame (issue 25.8).
// Only the OpenTelemetry propagation (the `otel` feature) reads and writes trace state.
#[cfg_attr(not(feature = "otel"), allow(dead_code))]
pub(crate) fn bounded_tracestate(value: &str) -> Option<std::borrow::Cow<'_, str>> {
    let members = || value.split(',').map(str::trim).filter(|m| !m.is_empty());
    if members().count() > MAX_TRACESTATE_MEMBERS {
        return None;
    }
    if value.len() <= MAX_TRACESTATE_BYTES {
        return Some(std::borrow::Cow::Borrowed(value));
    }
    let mut kept = String::new();
    for m in members().filter(|m| m.len() <= LARGE_TRACESTATE_MEMBER) {
        let extra = m.len() + usize::from(!kept.is_empty());
        if kept.len() + extra > MAX_TRACESTATE_BYTES {
            break;
        }
        if !kept.is_empty() {
            kept.push(',');
        }
        kept.push_str(m);
    }
    (!kept.is_empty()).then_some(std::borrow::Cow::Owned(kept))
}

/// `text` cut to at most `max` bytes on a character boundary, marked with `…` when cut.
pub(crate) fn capped(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    const MARK: &str = "…";
    let mut end = max.saturating_sub(MARK.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{MARK}", &text[..end])
}

/// Whether `v` is a W3C `traceparent` of this version's length: `vv-<32 hex>-<16 hex>-<2 hex>`,
/// lowercase, version not `ff`, trace and parent ids not all zeros (55 bytes).
pub(crate) fn is_traceparent(v: &AMQPValue) -> bool {
    text_of(v).is_some_and(|s| s.len() == 55 && traceparent_fields(s).is_some())
}

/// The trace id, parent span id and flags of a `traceparent`, as W3C Trace Context reads
/// it: `version-traceid-spanid-flags`, lowercase hex ids that are not all zeros, version `ff`
/// invalid, later versions possibly followed by `-` and more.
pub(crate) fn traceparent_fields(value: &str) -> Option<(u128, u64, u8)> {
    let b = value.trim().as_bytes();
    if b.len() < 55 || b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
        return None;
    }
    let version = hex_u8(&b[0..2])?;
    let rest = &b[55..];
    let rest_ok = match version {
        0xff => false,
        // Version 00 is exactly four parts; a trailing `-` leaves no fifth.
        0 => rest.is_empty() || rest == b"-",
        _ => rest.is_empty() || rest[0] == b'-',
    };
    if !rest_ok {
        return None;
    }
    let trace_id = u128::from_str_radix(lower_hex(&b[3..35])?, 16).ok()?;
    let span_id = u64::from_str_radix(lower_hex(&b[36..52])?, 16).ok()?;
    let flags = hex_u8(&b[53..55])?;
    (trace_id != 0 && span_id != 0).then_some((trace_id, span_id, flags))
}

/// `digits` as text when every one is a lowercase hex digit.
fn lower_hex(digits: &[u8]) -> Option<&str> {
    digits
        .iter()
        .all(|d| matches!(d, b'0'..=b'9' | b'a'..=b'f'))
        .then(|| std::str::from_utf8(digits).ok())
        .flatten()
}

fn hex_u8(two: &[u8]) -> Option<u8> {
    u8::from_str_radix(lower_hex(two)?, 16).ok()
}

/// Whether `v` is a `tracestate` within W3C's bounds, to echo as it is.
pub(crate) fn is_tracestate(v: &AMQPValue) -> bool {
    text_of(v).is_some_and(|s| {
        s.len() <= MAX_TRACESTATE_BYTES && s.split(',').count() <= MAX_TRACESTATE_MEMBERS
    })
}

pub(crate) fn text_of(v: &AMQPValue) -> Option<&str> {
    match v {
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok(),
        AMQPValue::ShortString(s) => Some(s.as_str()),
        _ => None,
    }
}

/// The size of `props` as the content header frame carries them.
pub(crate) fn encoded_size(props: &BasicProperties) -> usize {
    // Serializing into a Vec cannot fail for lack of room; an error would mean a value
    // that cannot be encoded at all, which must not be published either.
    cookie_factory::gen_simple(lapin::protocol::basic::gen_properties(props), Vec::new())
        .map_or(usize::MAX, |v| v.len())
}

/// Whether `props` fit one frame.
pub(crate) fn fits_frame(props: &BasicProperties) -> bool {
    encoded_size(props) <= MAX_PROPERTIES_BYTES
}

/// The refusal of a delivery whose properties do not fit one frame of [`FRAME_MAX`], `None`
/// for one that fits. RabbitMQ checks a publisher's frame payload, not the whole frame,
/// against `frame_max`, so it accepts content headers up to 8 bytes over and delivers them
/// as they came (more once dead-lettering adds `x-death`); the kit's lapin reads them
/// (vendor/lapin/PATCHES.md) and the kit refuses them here, before any handler: nothing the
/// kit publishes from such a message could carry its headers, and a handler that passed
/// them on would fail the same way (issue 25.1).
pub(crate) fn oversized_properties(props: &BasicProperties) -> Option<ErrorReply> {
    let size = encoded_size(props);
    (size > MAX_PROPERTIES_BYTES).then(|| {
        ErrorReply::bad_request(format!(
            "the message's properties and headers are {size} bytes encoded, more than one frame of {FRAME_MAX} bytes (frame_max) carries ({MAX_PROPERTIES_BYTES}); it was not handled: send smaller headers"
        ))
    })
}

/// `props` made to fit one frame before the kit publishes them: as they are when they fit,
/// else without the trace headers (the only part of a kit-made publish that comes from a
/// peer); `Err` with the encoded size when even that does not fit. Publishing them anyway
/// would close the connection (issue 25.8).
pub(crate) fn within_frame(props: BasicProperties) -> Result<BasicProperties, usize> {
    if fits_frame(&props) {
        return Ok(props);
    }
    let mut without_trace = match props.headers().as_ref() {
        Some(h) if h.contains_key("traceparent") || h.contains_key("tracestate") => {
            h.inner().clone()
        }
        _ => return Err(encoded_size(&props)),
    };
    without_trace.remove("traceparent");
    without_trace.remove("tracestate");
    let kept = lapin::types::FieldTable::from(without_trace);
    tracing::warn!(
        "the trace headers would make the message too large for one frame; it goes without them"
    );
    let props = props.with_headers(kept);
    if fits_frame(&props) {
        Ok(props)
    } else {
        Err(encoded_size(&props))
    }
}

#[cfg(test)]
mod tests {
    use lapin::types::FieldTable;

    use super::*;

    #[test]
    fn properties_over_one_frame_are_refused_naming_the_bound() {
        let with_pad = |n: usize| {
            let mut h = FieldTable::default();
            h.insert("x-pad".into(), AMQPValue::LongString("p".repeat(n).into()));
            BasicProperties::default().with_headers(h)
        };
        // Flags (2), table length (4), entry: key (1 + 5), type (1), length (4).
        let fits = with_pad(MAX_PROPERTIES_BYTES - 17);
        assert_eq!(encoded_size(&fits), MAX_PROPERTIES_BYTES);
        assert!(oversized_properties(&fits).is_none());
        let over = with_pad(MAX_PROPERTIES_BYTES - 16);
        let e = oversized_properties(&over).expect("refused");
        assert_eq!(e.error_type, "BadRequest");
        assert!(e.message.contains("131053 bytes"), "{}", e.message);
    }

    #[test]
    fn capped_cuts_on_a_character_boundary() {
        assert_eq!(capped("short", 10), "short");
        let long = "é".repeat(1000);
        let c = capped(&long, 1024);
        assert!(c.len() <= 1024, "{}", c.len());
        assert!(c.ends_with('…'));
        assert_eq!(capped(&"a".repeat(2000), 1024).len(), 1024);
    }

    #[test]
    fn traceparent_must_be_w3c() {
        let ok = |s: &str| is_traceparent(&AMQPValue::LongString(s.into()));
        assert!(ok(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        ));
        assert!(!ok(
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"
        ));
        assert!(!ok(
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        ));
        assert!(!ok(
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01"
        ));
        assert!(!ok(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"
        ));
        assert!(!ok(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-"
        ));
        assert!(!ok(&"0".repeat(55)));
        assert!(!is_traceparent(&AMQPValue::LongLongInt(1)));
    }

    #[test]
    fn tracestate_is_bounded() {
        assert!(is_tracestate(&AMQPValue::LongString("a=b".into())));
        assert!(!is_tracestate(&AMQPValue::LongString(
            "a".repeat(513).into()
        )));
    }

    #[test]
    fn tracestate_is_bounded_as_w3c_says() {
        assert_eq!(bounded_tracestate("a=1,b=2").as_deref(), Some("a=1,b=2"));
        let members: Vec<String> = (0..33).map(|i| format!("k{i}=v")).collect();
        assert_eq!(bounded_tracestate(&members.join(",")), None, "33 members");
        assert!(!is_tracestate(&AMQPValue::LongString(
            members.join(",").into()
        )));
        assert!(bounded_tracestate(&members[..32].join(",")).is_some());
        // Too long: the large member goes first, then members from the end.
        let large = format!("big={}", "x".repeat(200));
        let mid: Vec<String> = (0..10)
            .map(|i| format!("m{i}={}", "y".repeat(40)))
            .collect();
        let value = format!("{large},{}", mid.join(","));
        let bounded = bounded_tracestate(&value).unwrap();
        assert!(bounded.len() <= MAX_TRACESTATE_BYTES, "{}", bounded.len());
        assert!(bounded.starts_with("m0="), "{bounded}");
        assert!(!bounded.contains("big="));
        assert!(bounded.split(',').all(|m| mid.iter().any(|k| k == m)));
        // One member of 130 KB, as in the issue: nothing of it is kept.
        assert_eq!(
            bounded_tracestate(&format!("k={}", "v".repeat(130_000))),
            None
        );
    }

    #[test]
    fn within_frame_drops_trace_headers_first() {
        let mut h = FieldTable::default();
        h.insert("x-deadline".into(), AMQPValue::LongLongInt(1));
        h.insert(
            "tracestate".into(),
            AMQPValue::LongString("v".repeat(FRAME_MAX).into()),
        );
        let props = within_frame(BasicProperties::default().with_headers(h)).unwrap();
        let kept = props.headers().as_ref().unwrap().inner();
        assert!(kept.contains_key("x-deadline"));
        assert!(!kept.contains_key("tracestate"));
        let mut h = FieldTable::default();
        h.insert(
            "x-other".into(),
            AMQPValue::LongString("v".repeat(FRAME_MAX).into()),
        );
        let size = within_frame(BasicProperties::default().with_headers(h)).unwrap_err();
        assert!(size > MAX_PROPERTIES_BYTES);
        let small = BasicProperties::default().with_correlation_id("c".into());
        assert_eq!(within_frame(small.clone()).unwrap(), small);
    }

    #[test]
    fn encoded_size_counts_the_headers() {
        let bare = encoded_size(&BasicProperties::default());
        assert_eq!(bare, 2, "just the property flags");
        let mut h = FieldTable::default();
        h.insert("k".into(), AMQPValue::LongString("v".repeat(100).into()));
        let props = BasicProperties::default().with_headers(h);
        // flags + table length + key (1 + 1) + type + string length + 100.
        assert_eq!(encoded_size(&props), 2 + 4 + 2 + 1 + 4 + 100);
        assert!(fits_frame(&props));
        let mut h = FieldTable::default();
        h.insert(
            "k".into(),
            AMQPValue::LongString("v".repeat(FRAME_MAX).into()),
        );
        assert!(!fits_frame(&BasicProperties::default().with_headers(h)));
    }
}
