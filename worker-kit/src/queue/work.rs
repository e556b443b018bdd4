//! One work message in, one decision out: decode the envelope, run the handler, and say
//! whether the message is acked, retried or parked (at once for a permanent error). No AMQP here, so the in-process test
//! client (`worker_kit::testing`) runs exactly what the queue worker runs.

use std::time::Duration;

use tracing::{error, warn};

use crate::handler::extract::{Incoming, Meta};
use crate::handler::routes::BoundHandler;
use crate::handler::{Outcome, offload};
use crate::wire::envelope::Limits;
use crate::wire::reply_error::ErrorReply;

/// What happens to a message after its handler ran.
#[derive(Debug)]
pub(crate) enum Next {
    /// Done: ack it.
    Ack,
    /// Store a copy with this retry count, then ack the original.
    Retry(u32),
    /// Store a copy in the parking queue with this error, then ack the original.
    Park(ErrorReply),
}

/// Works the message `body` that arrived with `meta` on `meta.route`, its handler
/// limited to `handler_timeout`.
pub(crate) async fn work(
    body: &[u8],
    meta: Meta,
    handler: &BoundHandler,
    limits: &Limits,
    max_retries: u32,
    handler_timeout: Duration,
) -> Next {
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
            return Next::Retry(retry_count + 1);
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
        return Next::Park(e);
    }
    let next = decide(body, meta, handler, limits, max_retries, handler_timeout).await;
    match &next {
        Next::Park(e) => crate::observe::error_type::note(&e.error_type),
        Next::Retry(_) | Next::Ack => {}
    }
    next
}

/// What [`work`] decides for a message that was not redelivered.
async fn decide(
    body: &[u8],
    meta: Meta,
    handler: &BoundHandler,
    limits: &Limits,
    max_retries: u32,
    handler_timeout: Duration,
) -> Next {
    let retry_count = meta.retry_count;
    match offload::decode_request(body, limits).await {
        Err(e) => {
            error!(error = %e, "undecodable work message; parking it");
            Next::Park(e.to_reply())
        }
        Ok(req) => {
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
            match outcome {
                Outcome::Ok(_) => Next::Ack,
                // The payload will not fit on a second try either.
                Outcome::Rejected(e) => {
                    log_rejected(&e);
                    Next::Park(e)
                }
                // Trying again cannot help: no retry spent, no wait.
                Outcome::Failed(e) if e.is_permanent() => {
                    error!(error_type = %e.error_type, error_message = e.message.as_str(), trace = ?e.trace, retries = retry_count, "handler failed with a permanent error; parking the message without retrying");
                    Next::Park(e)
                }
                Outcome::Failed(e) if retry_count < max_retries => {
                    crate::observe::error_type::note(&e.error_type);
                    error!(error_type = %e.error_type, error_message = e.message.as_str(), trace = ?e.trace, attempt = retry_count + 1, max_retries, "handler failed; retrying");
                    Next::Retry(retry_count + 1)
                }
                Outcome::Failed(e) => {
                    error!(error_type = %e.error_type, error_message = e.message.as_str(), trace = ?e.trace, retries = retry_count, "handler failed and retries are exhausted; parking the message");
                    Next::Park(e)
                }
            }
        }
    }
}

pub(crate) fn log_rejected(e: &ErrorReply) {
    error!(error_type = %e.error_type, error_message = e.message.as_str(), "work message rejected; parking it");
}
