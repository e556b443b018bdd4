//! Log setup: `tracing` to stderr, pretty or JSON, filtered by `RUST_LOG`.
//!
//! Text a caller sent (error messages quoting a payload, paths naming its map keys, queue
//! names) is logged as a quoted, escaped string value, never as the line's own message: in
//! pretty mode a raw newline would forge a log line, and in JSON mode a field named
//! `message` would be written next to the event's own `message` key.

use std::io::IsTerminal;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{Config, LogFormat};

/// The default filter: `info`, lapin's own chatter at `warn`, and lapin's report of a
/// returned message (which dumps the message's bytes) off: the kit logs returns itself, in
/// one line with the route, reply code and text.
const DEFAULT_FILTER: &str = "info,lapin=warn,amq_protocol=warn,lapin::returned_messages=error";

/// Installs the global subscriber (once; later calls do nothing). `RUST_LOG` filters, with
/// `info` as the default and lapin's own chatter at `warn`. Pretty logs are coloured only
/// when stderr is a terminal and `NO_COLOR` is not set.
pub fn init(config: &Config) {
    let ansi = colour(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let _ = subscriber(config, filter(), std::io::stderr, ansi).try_init();
}

/// As [`init`], and every span also goes to OpenTelemetry through `provider` (feature
/// `otel`; [`observe::trace::install`](crate::observe::trace::install) makes the service's).
#[cfg(feature = "otel")]
pub fn init_with_traces(config: &Config, provider: &opentelemetry_sdk::trace::SdkTracerProvider) {
    let ansi = colour(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    // Built from the registry, not `fmt()`: the trace layer has a per-layer filter, which
    // only the registry supports. `RUST_LOG` stays a global filter, as in [`init`].
    let traced = tracing_subscriber::registry()
        .with(crate::observe::trace::layer(provider))
        .with(filter())
        .with(AnsweredQuestions);
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let _ = match config.log_format {
        LogFormat::Pretty => traced.with(logs.with_target(false)).try_init(),
        LogFormat::Json => traced
            .with(logs.json().flatten_event(true).with_current_span(true))
            .try_init(),
    };
}

/// Colour codes only on a terminal, and never when `NO_COLOR` is set to anything
/// (<https://no-color.org>): in a file or a pipe they are noise.
fn colour(terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    terminal && no_color.is_none_or(std::ffi::OsStr::is_empty)
}

/// `RUST_LOG`, or the default; lapin's returned-message dump stays off unless `RUST_LOG`
/// names it.
fn filter() -> EnvFilter {
    match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => {
            let f = EnvFilter::new(&spec);
            if spec.contains("returned_messages") {
                f
            } else {
                f.add_directive(
                    "lapin::returned_messages=error"
                        .parse()
                        .expect("a valid directive"),
                )
            }
        }
        _ => EnvFilter::new(DEFAULT_FILTER),
    }
}

/// The subscriber `init` installs, writing to `writer`.
fn subscriber<W>(
    config: &Config,
    filter: EnvFilter,
    writer: W,
    ansi: bool,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi);
    match config.log_format {
        LogFormat::Pretty => Box::new(builder.with_target(false).finish().with(AnsweredQuestions)),
        LogFormat::Json => Box::new(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .finish()
                .with(AnsweredQuestions),
        ),
    }
}

/// Drops lapin's ERROR line for the broker's "no such queue" answer to a passive
/// `queue.declare` (reply code 404 on class 50, method 10). The kit asks that question on
/// purpose when a route's queue may not exist yet (`RPC_QUEUE_DURABLE=auto` looks before it
/// declares), so "no" is an answer, not a fault to page anyone for: the kit then declares
/// the queue itself. Every other channel close still logs at ERROR.
struct AnsweredQuestions;

impl<S: Subscriber> Layer<S> for AnsweredQuestions {
    fn event_enabled(&self, event: &Event<'_>, _: Context<'_, S>) -> bool {
        !is_missing_queue_answer(event)
    }
}

/// Whether `event` is lapin's report of a channel closed with 404 on `queue.declare`.
fn is_missing_queue_answer(event: &Event<'_>) -> bool {
    let meta = event.metadata();
    if *meta.level() != Level::ERROR || meta.target() != "lapin::channel" {
        return false;
    }
    #[derive(Default)]
    struct Close {
        message: String,
        method: String,
    }
    impl Visit for Close {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            match field.name() {
                "message" => self.message = format!("{value:?}"),
                "method" => self.method = format!("{value:?}"),
                _ => {}
            }
        }
    }
    let mut close = Close::default();
    event.record(&mut close);
    close.message == "Channel closed"
        && close.method.starts_with("Close {")
        && close.method.contains("reply_code: 404,")
        && close.method.contains("class_id: 50, method_id: 10 }")
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::ErrorReply;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn logged(format: LogFormat, f: impl FnOnce()) -> String {
        let buf = Buffer::default();
        let config = Config {
            log_format: format,
            ..Config::default()
        };
        let writer = buf.clone();
        let sub = subscriber(
            &config,
            EnvFilter::new("info"),
            move || writer.clone(),
            false,
        );
        tracing::subscriber::with_default(sub, f);
        String::from_utf8(buf.0.lock().unwrap().clone()).unwrap()
    }

    /// A payload whose map key holds a newline and a forged log line.
    fn forged() -> ErrorReply {
        crate::handler::extract::parse_payload::<std::collections::HashMap<String, u8>>(
            r#"{"a\n2026-01-01T00:00:00Z  INFO forged: all is well": "x"}"#,
        )
        .unwrap_err()
    }

    /// lapin's report of a channel the broker closed, as lapin logs it.
    fn lapin_channel_closed(reply_code: u16, class_id: u16, method_id: u16) {
        let method = lapin::protocol::channel::Close {
            reply_code,
            reply_text: "NOT_FOUND - no queue 'q' in vhost '/'".into(),
            class_id,
            method_id,
        };
        tracing::error!(target: "lapin::channel", channel = %1, ?method, error = "x", "Channel closed");
    }

    #[test]
    fn the_answer_to_a_passive_declare_of_a_missing_queue_is_not_an_error() {
        for format in [LogFormat::Pretty, LogFormat::Json] {
            let out = logged(format, || lapin_channel_closed(404, 50, 10));
            assert_eq!(out, "", "{format:?}");
        }
    }

    #[test]
    fn other_channel_closes_still_log_at_error() {
        let out = logged(LogFormat::Json, || {
            lapin_channel_closed(406, 50, 10); // PRECONDITION_FAILED on queue.declare
            lapin_channel_closed(404, 40, 10); // NOT_FOUND on exchange.declare
            lapin_channel_closed(404, 60, 40); // NOT_FOUND on basic.publish
        });
        assert_eq!(out.lines().count(), 3, "{out}");
        assert!(
            out.lines().all(|l| l.contains(r#""level":"ERROR""#)),
            "{out}"
        );
    }

    #[test]
    fn caller_text_cannot_forge_a_pretty_line() {
        let out = logged(LogFormat::Pretty, || {
            crate::rpc::answer::log_failure(&forged());
            crate::queue::work::log_rejected(&forged());
        });
        assert_eq!(out.lines().count(), 2, "{out}");
        assert!(!out.contains("\n2026-01-01"), "{out}");
    }

    #[test]
    fn json_lines_have_one_message_key() {
        let out = logged(LogFormat::Json, || {
            crate::rpc::answer::log_failure(&ErrorReply::not_found("no such item"));
            crate::queue::work::log_rejected(&forged());
        });
        assert_eq!(out.lines().count(), 2, "{out}");
        for line in out.lines() {
            assert_eq!(line.matches("\"message\":").count(), 1, "{line}");
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert!(v["error_message"].is_string(), "{line}");
        }
    }

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        use std::ffi::OsStr;
        assert!(colour(true, None));
        assert!(colour(true, Some(OsStr::new(""))));
        assert!(!colour(true, Some(OsStr::new("1"))));
        assert!(!colour(false, None));
    }

    #[test]
    fn no_colour_codes_when_not_asked() {
        let out = logged(LogFormat::Pretty, || {
            tracing::warn!(route = "r", "plain");
        });
        assert!(!out.contains('\u{1b}'), "{out:?}");
    }
}
