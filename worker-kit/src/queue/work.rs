//! One work message in, one decision out ([`Worked`]): decode the envelope, run the
//! handler, and say whether the message is acked, retried or parked (at once for a
//! permanent error). No AMQP here, so the in-process test client (`worker_kit::testing`)
//! runs exactly what the queue and event workers run.

use std::time::Duration;

use tracing::{error, warn};

use crate::handler::budget::{DecodeBudget, Refusal};
use crate::handler::extract::{Incoming, Meta};
use crate::handler::offload::{Decoded, Undecoded};
use crate::handler::routes::BoundHandler;
use crate::handler::{Outcome, offload};
use crate::wire::envelope::Limits;
use crate::wire::reply_error::ErrorReply;

/// What becomes of a work message (or an event) once its handler ran, or was refused: the
/// decision the queue and event workers carry out, and what the in-process test client
/// (`worker_kit::testing::TestClient`, feature `testing`) reports.
///
/// The worker then stores the copy the decision asks for; the log span and the metrics
/// say whether that worked (a copy that cannot be stored leaves the original in its
/// queue).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Worked {
    /// The handler succeeded: the message is acked.
    Acked,
    /// The handler failed (or the body could not be decoded for now): a copy with this
    /// `x-retry-count` is queued again and the original acked.
    Retried {
        /// The retry count of the copy.
        retry_count: u32,
    },
    /// The message goes to the parking queue with this error (refused, undecodable,
    /// payload does not fit, a permanent error, or retries exhausted) and the original is
    /// acked.
    Parked(ErrorReply),
}

/// How a work message is decoded and run: the body's limits and the process's memory for
/// decoded bodies, the retries and the handler's time limit.
#[derive(Debug, Clone)]
pub(crate) struct WorkSettings {
    pub(crate) limits: Limits,
    pub(crate) budget: DecodeBudget,
    pub(crate) max_retries: u32,
    pub(crate) handler_timeout: Duration,
}

/// Works the message `body` that arrived with `meta` on `meta.route`.
pub(crate) async fn work(
    body: &[u8],
    meta: Meta,
    handler: &BoundHandler,
    settings: &WorkSettings,
) -> Worked {
    let max_retries = settings.max_retries;
    let retry_count = meta.retry_count;
    if meta.redelivered {
        // The broker hands a message out again only when an earlier delivery was never
        // settled: the process crashed or was stopped while handling it, or a drain aborted
        // it. That attempt failed. Running the handler again without storing the count
        // would let a message that crashes the process loop forever, so the count goes up
        // first, on a copy (or the message is parked).
        if retry_count < max_retries {
            warn!(
                attempt = retry_count + 1,
                max_retries,
                "message redelivered after an unfinished attempt; counting it as failed"
            );
            return Worked::Retried {
                retry_count: retry_count + 1,
            };
        }
        error!(
            retries = retry_count,
            "message redelivered after an unfinished attempt and retries are exhausted; parking it"
        );
        let e = ErrorReply::new(
            "Redelivered",
            "an attempt never finished (the process stopped or crashed while handling the message) and no retries are left",
        );
        crate::observe::error_type::note(&e.error_type);
        return Worked::Parked(e);
    }
    let next = decide(body, meta, handler, settings).await;
    match &next {
        Worked::Parked(e) => crate::observe::error_type::note(&e.error_type),
        Worked::Retried { .. } | Worked::Acked => {}
    }
    next
}

/// What [`work`] decides for a message that was not redelivered.
async fn decide(
    body: &[u8],
    meta: Meta,
    handler: &BoundHandler,
    settings: &WorkSettings,
) -> Worked {
    let (max_retries, handler_timeout) = (settings.max_retries, settings.handler_timeout);
    let retry_count = meta.retry_count;
    // Whom the route admits is decided before the body is decoded.
    if let Err(e) = handler.admit(&meta.caller) {
        log_rejected(&e);
        return Worked::Parked(e);
    }
    // The body waits for its decoded size's worth of the budget as long as the handler
    // could have run.
    let until = tokio::time::Instant::now() + handler_timeout;
    match offload::decode_request(body, &settings.limits, &settings.budget, Some(until)).await {
        Err(Undecoded::Invalid(e)) => {
            error!(error = %e, "undecodable work message; parking it");
            Worked::Parked(e.to_reply())
        }
        Err(Undecoded::Budget(r @ Refusal::TooCostly { .. })) => {
            error!(error = %r, "work message too costly to decode; parking it");
            Worked::Parked(ErrorReply::bad_request(r.to_string()))
        }
        Err(Undecoded::Budget(r @ Refusal::Exhausted { .. })) => {
            // The handler never ran: the copy keeps its retry count, and the message comes
            // back after the route's wait, when other bodies have given their memory back.
            warn!(error = %r, attempt = retry_count, "work message not decoded for now; queueing it again without counting an attempt");
            Worked::Retried { retry_count }
        }
        Ok(Decoded {
            request: req,
            lease,
        }) => {
            let msg = Incoming {
                route: meta.route.clone(),
                data: req.data,
                meta,
            };
            // Nested calls made by the handler end with its time limit at the latest.
            let run = crate::wire::deadline::scope(
                Some(crate::wire::deadline::Deadline::after(handler_timeout)),
                offload::prepare(handler, msg).await,
            );
            let outcome = tokio::time::timeout(handler_timeout, run)
                .await
                .unwrap_or_else(|_| {
                    Outcome::Failed(ErrorReply::timeout(format!(
                        "the handler ran longer than its limit of {} ms (HANDLER_TIMEOUT_MS)",
                        handler_timeout.as_millis()
                    )))
                });
            // The body's memory is given back once the handler is done with it.
            drop(lease);
            match outcome {
                Outcome::Ok(_) => Worked::Acked,
                // The payload will not fit on a second try either.
                Outcome::Rejected(e) => {
                    log_rejected(&e);
                    Worked::Parked(e)
                }
                // Trying again cannot help: no retry spent, no wait.
                Outcome::Failed(e) if e.is_permanent() => {
                    error!(error_type = %e.error_type, error_message = e.message.as_str(), trace = ?e.trace, retries = retry_count, "handler failed with a permanent error; parking the message without retrying");
                    Worked::Parked(e)
                }
                Outcome::Failed(e) if retry_count < max_retries => {
                    crate::observe::error_type::note(&e.error_type);
                    error!(error_type = %e.error_type, error_message = e.message.as_str(), trace = ?e.trace, attempt = retry_count + 1, max_retries, "handler failed; retrying");
                    Worked::Retried {
                        retry_count: retry_count + 1,
                    }
                }
                Outcome::Failed(e) => {
                    error!(error_type = %e.error_type, error_message = e.message.as_str(), trace = ?e.trace, retries = retry_count, "handler failed and retries are exhausted; parking the message");
                    Worked::Parked(e)
                }
            }
        }
    }
}

pub(crate) fn log_rejected(e: &ErrorReply) {
    error!(error_type = %e.error_type, error_message = e.message.as_str(), "work message rejected; parking it");
}
