//! W3C trace context in AMQP headers (`traceparent`, `tracestate`), read and written on
//! every delivery and publish while traces are on.
//!
//! `opentelemetry_sdk`'s `TraceContextPropagator` does the same through `format!`, a `Vec`
//! of the header's parts and a `tracestate` parse even when there is none: about 1 µs a
//! message each way on this project's benchmark machine, a tenth of what tracing may cost
//! at all when nothing is sampled. The format is fixed-width, so this reads and writes it
//! directly; the tests check it against the SDK's propagator.
//!
//! Two deliberate differences from the SDK: a version-00 `traceparent` with flags beyond
//! `sampled` (Python's SDK writes `03`, W3C level 2's `random` bit) is read, keeping the
//! sampled bit, where the SDK refuses it and so restarts every such caller's trace; and an
//! empty `tracestate` is not written (W3C: vendors should not send an empty one).

use std::str::FromStr;

use lapin::types::{AMQPValue, FieldTable};
use opentelemetry::Context;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};

use crate::wire::headers::{bounded_tracestate, text_of, traceparent_fields};

const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";

/// The context `headers` carry (a remote parent), or an empty one when they carry none
/// or a malformed one.
pub(crate) fn extract(headers: Option<&FieldTable>) -> Context {
    let Some(headers) = headers.map(FieldTable::inner) else {
        return Context::new();
    };
    let Some((trace_id, span_id, flags)) =
        headers.get(TRACEPARENT).and_then(text_of).and_then(parse)
    else {
        return Context::new();
    };
    // Bounded as W3C bounds it before it is parsed: it is copied into every nested call.
    let state = headers
        .get(TRACESTATE)
        .and_then(text_of)
        .filter(|s| !s.trim().is_empty())
        .and_then(bounded_tracestate)
        .map(|s| TraceState::from_str(&s).unwrap_or_default())
        .unwrap_or_default();
    Context::new().with_remote_span_context(SpanContext::new(trace_id, span_id, flags, true, state))
}

/// Writes the span context of `cx` into `headers`; nothing when it has none.
pub(crate) fn inject(cx: &Context, headers: &mut FieldTable) {
    let span = cx.span();
    let sc = span.span_context();
    if !sc.is_valid() {
        return;
    }
    headers.insert(TRACEPARENT.into(), AMQPValue::LongString(format(sc).into()));
    let state = sc.trace_state().header();
    // Bounded again: a trace state made in the process is not bounded by the SDK either.
    if let Some(state) = bounded_tracestate(&state).filter(|s| !s.is_empty()) {
        headers.insert(
            TRACESTATE.into(),
            AMQPValue::LongString(state.into_owned().into()),
        );
    }
}

/// `00-{trace id}-{span id}-{flags}`, flags cut to `sampled`.
fn format(sc: &SpanContext) -> String {
    let mut out = String::with_capacity(55);
    out.push_str("00-");
    push_hex(&mut out, &sc.trace_id().to_bytes());
    out.push('-');
    push_hex(&mut out, &sc.span_id().to_bytes());
    out.push_str(if sc.is_sampled() { "-01" } else { "-00" });
    out
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
}

/// The trace id, parent span id and flags (`sampled` only) of a `traceparent`
/// ([`traceparent_fields`]).
fn parse(value: &str) -> Option<(TraceId, SpanId, TraceFlags)> {
    let (trace_id, span_id, flags) = traceparent_fields(value)?;
    Some((
        TraceId::from(trace_id),
        SpanId::from(span_id),
        TraceFlags::new(flags) & TraceFlags::SAMPLED,
    ))
}

#[cfg(test)]
mod tests {
    use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
    use opentelemetry_sdk::propagation::TraceContextPropagator;

    use super::*;

    fn headers(traceparent: &str, tracestate: Option<&str>) -> FieldTable {
        let mut h = FieldTable::default();
        h.insert(
            TRACEPARENT.into(),
            AMQPValue::LongString(traceparent.into()),
        );
        if let Some(s) = tracestate {
            h.insert(TRACESTATE.into(), AMQPValue::LongString(s.into()));
        }
        h
    }

    struct Map<'a>(&'a FieldTable);

    impl Extractor for Map<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.inner().get(key).and_then(text_of)
        }
        fn keys(&self) -> Vec<&str> {
            self.0.inner().keys().map(|k| k.as_str()).collect()
        }
    }

    impl Injector for Map<'_> {
        fn set(&mut self, _: &str, _: String) {}
    }

    fn sdk(h: &FieldTable) -> Option<SpanContext> {
        let cx = TraceContextPropagator::new().extract(&Map(h));
        let sc = cx.span().span_context().clone();
        sc.is_valid().then_some(sc)
    }

    fn ours(h: &FieldTable) -> Option<SpanContext> {
        let cx = extract(Some(h));
        let sc = cx.span().span_context().clone();
        sc.is_valid().then_some(sc)
    }

    /// The W3C test vectors the SDK's propagator is tested with, valid and invalid, read
    /// the same way.
    #[test]
    fn reads_what_the_sdk_reads() {
        let cases = [
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "02-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "02-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09",
            "02-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-08",
            "02-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-XYZxsf09",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-",
            " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 ",
            "0000-00000000000000000000000000000000-0000000000000000-01",
            "00-ab00000000000000000000000000000000-cd00000000000000-01",
            "00-ab000000000000000000000000000000-cd0000000000000000-01",
            "00-ab000000000000000000000000000000-cd00000000000000-0100",
            "qw-00000000000000000000000000000000-0000000000000000-01",
            "00-qw000000000000000000000000000000-cd00000000000000-01",
            "00-ab000000000000000000000000000000-qw00000000000000-01",
            "00-ab000000000000000000000000000000-cd00000000000000-qw",
            "A0-00000000000000000000000000000000-0000000000000000-01",
            "00-AB000000000000000000000000000000-cd00000000000000-01",
            "00-ab000000000000000000000000000000-CD00000000000000-01",
            "00-00000000000000000000000000000000-cd00000000000000-01",
            "00-ab000000000000000000000000000000-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "",
        ];
        for tp in cases {
            for state in [None, Some("foo=bar,baz=qux"), Some("")] {
                let h = headers(tp, state);
                assert_eq!(
                    ours(&h),
                    sdk(&h),
                    "traceparent {tp:?}, tracestate {state:?}"
                );
            }
        }
    }

    /// Flags beyond `sampled` (W3C level 2, what Python's SDK writes): the trace is
    /// continued with the sampled bit, where the SDK would start a new one.
    #[test]
    fn flags_beyond_sampled_are_read_as_sampled_or_not() {
        let id = "00-3be713a5b0cea810f74ee7408bd3edd2-2334db5efd03a3d0";
        for (flags, sampled) in [("03", true), ("02", false), ("ff", true), ("fe", false)] {
            let h = headers(&format!("{id}-{flags}"), None);
            let sc = ours(&h).unwrap_or_else(|| panic!("flags {flags} read"));
            assert!(sc.is_remote());
            assert_eq!(sc.is_sampled(), sampled, "flags {flags}");
            assert_eq!(
                sc.trace_id().to_string(),
                "3be713a5b0cea810f74ee7408bd3edd2"
            );
            assert_eq!(sc.span_id().to_string(), "2334db5efd03a3d0");
        }
    }

    /// What is written is what the SDK's propagator writes, and reads back the same.
    #[test]
    fn writes_what_the_sdk_writes() {
        for (flags, state) in [
            (TraceFlags::SAMPLED, TraceState::default()),
            (TraceFlags::default(), TraceState::default()),
            (
                TraceFlags::SAMPLED,
                TraceState::from_str("vendor=value").unwrap(),
            ),
        ] {
            let sc = SpanContext::new(
                TraceId::from(0x0af7_6519_16cd_43dd_8448_eb21_1c80_319c),
                SpanId::from(0x00f0_67aa_0ba9_02b7),
                flags,
                false,
                state.clone(),
            );
            let cx = Context::new().with_remote_span_context(sc.clone());
            let mut ours = FieldTable::default();
            inject(&cx, &mut ours);
            let mut sdk = std::collections::HashMap::new();
            TraceContextPropagator::new().inject_context(&cx, &mut sdk);
            assert_eq!(
                ours.inner().get(TRACEPARENT).and_then(text_of),
                sdk.get(TRACEPARENT).map(String::as_str)
            );
            let state_written = ours.inner().get(TRACESTATE).and_then(text_of);
            if state.header().is_empty() {
                assert_eq!(state_written, None, "no empty tracestate");
            } else {
                assert_eq!(state_written, sdk.get(TRACESTATE).map(String::as_str));
            }
            let back = extract(Some(&ours));
            let back = back.span().span_context().clone();
            assert_eq!(
                (back.trace_id(), back.span_id(), back.trace_flags()),
                (sc.trace_id(), sc.span_id(), sc.trace_flags())
            );
            assert_eq!(back.trace_state().header(), state.header());
        }
    }

    #[test]
    fn nothing_is_written_without_a_span_context() {
        let mut h = FieldTable::default();
        inject(&Context::new(), &mut h);
        assert!(h.inner().is_empty());
    }
}
