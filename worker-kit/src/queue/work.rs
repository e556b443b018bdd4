//! One work message in, one decision out: decode the envelope, run the handler, and say
//! whether the message is acked, retried or parked. No AMQP here, so the in-process test
//! client (`worker_kit::testing`) runs exactly what the queue worker runs.

use tracing::error;

use crate::handler::Outcome;
use crate::handler::extract::{Incoming, Meta};
use crate::handler::routes::BoundHandler;
use crate::wire::envelope::{self, Limits};
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

/// Works the message `body` that arrived with `meta` on `meta.route`.
pub(crate) async fn work(
    body: &[u8],
    meta: Meta,
    handler: &BoundHandler,
    limits: &Limits,
    max_retries: u32,
) -> Next {
    let retry_count = meta.retry_count;
    match envelope::decode_request(body, limits) {
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
            match handler(msg).await {
                Outcome::Ok(_) => Next::Ack,
                // The payload will not fit on a second try either.
                Outcome::Rejected(e) => {
                    log_rejected(&e);
                    Next::Park(e)
                }
                Outcome::Failed(e) if retry_count < max_retries => {
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
