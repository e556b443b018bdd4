//! One request in, one reply body out: decode the envelope, run the handler within the
//! caller's deadline, encode the reply. No AMQP here, so the in-process test client
//! (`worker_kit::testing`) runs exactly what the RPC worker runs per request.

use tracing::{error, warn};

use crate::handler::budget::{DecodeBudget, Refusal};
use crate::handler::extract::{Incoming, Meta};
use crate::handler::offload::{Decoded, Undecoded};
use crate::handler::routes::BoundHandler;
use crate::handler::{Outcome, offload};
use crate::observe::disposition::Disposition;
use crate::wire::deadline::{self, Deadline};
use crate::wire::envelope::{self, Encoding, Limits};
use crate::wire::reply_error::ErrorReply;

/// The reply to one request, ready to publish.
#[derive(Debug)]
pub(crate) struct Answer {
    /// How the request was settled (the log span's `outcome`).
    pub(crate) disposition: Disposition,
    /// The reply's AMQP `type` property: `result`, or `error` when the request never
    /// reached the handler (as the Python seed marks them).
    pub(crate) amqp_type: &'static str,
    /// The request's encoding, which the reply uses too.
    pub(crate) encoding: Encoding,
    /// The encoded reply envelope.
    pub(crate) body: Vec<u8>,
}

/// Settings of the answering side.
#[derive(Debug, Clone)]
pub(crate) struct AnswerSettings {
    pub(crate) limits: Limits,
    /// The process's memory for decoded bodies (`DECODE_BUDGET_BYTES`).
    pub(crate) budget: DecodeBudget,
    /// Development mode: error replies carry their trace.
    pub(crate) development: bool,
    /// The limit of a request that carries no deadline (Python callers send none).
    pub(crate) handler_timeout: std::time::Duration,
}

/// Why a request shaped or typed like a reply is refused: answering it would let a caller
/// bounce one server's replies into another's routes.
const REPLY_NOT_REQUEST: &str = "a reply is not a request: the body has a top-level `success` key or the AMQP type is `result` or `error`";

/// The request in `body`, decoded once the caller is admitted and the budget holds its
/// price (waiting for it until the caller's deadline, or the handler's limit); else the
/// outcome it is answered with, without running the handler.
async fn admit_and_decode(
    body: &[u8],
    request_type: Option<&str>,
    meta: &Meta,
    handler: &BoundHandler,
    settings: &AnswerSettings,
) -> Result<Decoded, Outcome> {
    if matches!(request_type, Some("result" | "error")) {
        return Err(Outcome::Rejected(ErrorReply::bad_request(
            REPLY_NOT_REQUEST,
        )));
    }
    handler.admit(&meta.caller).map_err(Outcome::Rejected)?;
    let wait = meta
        .deadline
        .map_or(settings.handler_timeout, |d| d.remaining());
    let until = tokio::time::Instant::now() + wait;
    match offload::decode_request(body, &settings.limits, &settings.budget, Some(until)).await {
        Ok(d) if d.request.reply_shaped => Err(Outcome::Rejected(ErrorReply::bad_request(
            REPLY_NOT_REQUEST,
        ))),
        Ok(d) => Ok(d),
        Err(Undecoded::Invalid(e)) => {
            warn!(error = %e, "undecodable request");
            Err(Outcome::Rejected(e.to_reply()))
        }
        Err(Undecoded::Budget(r @ Refusal::TooCostly { .. })) => {
            warn!(error = %r, "request refused: too costly to decode");
            Err(Outcome::Rejected(ErrorReply::bad_request(r.to_string())))
        }
        Err(Undecoded::Budget(r @ Refusal::Exhausted { .. })) => {
            warn!(error = %r, "request not decoded: the decode budget stayed exhausted until its deadline");
            Err(Outcome::Rejected(ErrorReply::unavailable(r.to_string())))
        }
    }
}

/// Answers the request `body` that arrived with `meta` on `meta.route`; `request_type` is
/// its AMQP `type` property.
pub(crate) async fn answer(
    body: &[u8],
    request_type: Option<&str>,
    meta: Meta,
    handler: &BoundHandler,
    settings: &AnswerSettings,
) -> Answer {
    let decoded = admit_and_decode(body, request_type, &meta, handler, settings).await;
    let (encoding, outcome) = match decoded {
        Err(outcome) => (Encoding::detect(body), outcome),
        Ok(Decoded {
            request: req,
            lease,
        }) => {
            tracing::debug!(body = req.data.get(), "request");
            let deadline = meta.deadline;
            let msg = Incoming {
                route: meta.route.clone(),
                data: req.data,
                meta,
            };
            // Nested calls made by the handler inherit the deadline (task-local): the
            // caller's, or else the end of the handler's own time limit, so that no nested
            // call outlives the handler that waits for it.
            let inherited =
                Some(deadline.unwrap_or_else(|| Deadline::after(settings.handler_timeout)));
            let run = deadline::scope(inherited, offload::prepare(handler, msg).await);
            let outcome = match deadline {
                Some(d) if d.is_past() => Outcome::Failed(ErrorReply::timeout(
                    "the caller's deadline passed before the request was handled",
                )),
                Some(d) => match tokio::time::timeout(d.remaining(), run).await {
                    Ok(o) => o,
                    Err(_) => Outcome::Failed(ErrorReply::timeout(
                        "the caller's deadline passed while the request was handled",
                    )),
                },
                None => match tokio::time::timeout(settings.handler_timeout, run).await {
                    Ok(o) => o,
                    Err(_) => Outcome::Failed(ErrorReply::timeout(format!(
                        "the handler ran longer than its limit of {} ms (HANDLER_TIMEOUT_MS)",
                        settings.handler_timeout.as_millis()
                    ))),
                },
            };
            // The body's memory is given back once the handler is done with it.
            drop(lease);
            (req.encoding, outcome)
        }
    };
    let (disposition, amqp_type, body) = match &outcome {
        Outcome::Ok(json) => (
            Disposition::Ok,
            "result",
            envelope::encode_success(json, encoding),
        ),
        Outcome::Failed(e) => {
            log_failure(e);
            (
                Disposition::Error,
                "result",
                envelope::encode_error(e, settings.development, encoding),
            )
        }
        Outcome::Rejected(e) => {
            crate::observe::error_type::note(&e.error_type);
            warn!(error_type = %e.error_type, error_message = e.message.as_str(), "request rejected");
            (
                Disposition::Rejected,
                "error",
                envelope::encode_error(e, settings.development, encoding),
            )
        }
    };
    let (disposition, body) = bounded(disposition, body, encoding, settings.limits);
    Answer {
        disposition,
        amqp_type,
        encoding,
        body,
    }
}

/// `body`, or a small `Internal` error in its place when it is larger than
/// `MAX_MESSAGE_BYTES` (an echo, a list of large stored rows): the broker closes the
/// channel of a publish above its `max_message_size`, which is the channel the request
/// came on, so the request would come back and fail the same way forever. A refused reply
/// costs one reply (protocol v3).
fn bounded(
    disposition: Disposition,
    body: Vec<u8>,
    encoding: Encoding,
    limits: Limits,
) -> (Disposition, Vec<u8>) {
    if body.len() <= limits.max_message_bytes {
        return (disposition, body);
    }
    let e = ErrorReply::new(
        "Internal",
        format!(
            "the reply was {} bytes, more than MAX_MESSAGE_BYTES ({}), the largest message the broker and callers accept; it was not sent: return less (bound or page the result)",
            body.len(),
            limits.max_message_bytes
        ),
    );
    log_failure(&e);
    (
        Disposition::Error,
        envelope::encode_error(&e, false, encoding),
    )
}

pub(crate) fn log_failure(e: &ErrorReply) {
    crate::observe::error_type::note(&e.error_type);
    if e.error_type == "Internal" {
        error!(error_type = %e.error_type, error_message = e.message.as_str(), trace = ?e.trace, "handler failed");
    } else {
        warn!(error_type = %e.error_type, error_message = e.message.as_str(), "handler returned an error");
    }
}
