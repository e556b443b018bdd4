//! The broker's delivery acknowledgement timeout (RabbitMQ's `consumer_timeout`): a delivery
//! left unacknowledged longer makes the broker close the whole channel with
//! `PRECONDITION_FAILED - delivery acknowledgement on channel N timed out`, and every
//! unacknowledged delivery of that channel goes back to its queue (on a quorum queue each
//! return counts towards the delivery limit, so handlers that always outlast the timeout park
//! their messages without the kit ever retrying them).
//!
//! RabbitMQ 3.x reports the timeout nowhere a client can read it: it is a node setting
//! (`consumer_timeout` in rabbitmq.conf, 30 minutes by default), not in the connection's
//! server properties nor in a queue's arguments; the per-queue (`x-consumer-timeout`,
//! policy `consumer-timeout`) and per-consumer variants exist only from 3.12. So the
//! deployment states it (`BROKER_CONSUMER_TIMEOUT_MS`) and the kit checks its handler limit
//! against that when a worker starts, and tells the timeout apart from the other ways a
//! consumer ends when it happens.

use std::time::Duration;

use super::refusal::amqp_code;

/// AMQP's reply code for a precondition that failed: what RabbitMQ closes the channel with.
const PRECONDITION_FAILED: u16 = 406;

/// Why a consumer's stream of deliveries stopped, as the logs tell it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ConsumerLoss {
    /// The broker closed the channel because a delivery stayed unacknowledged past its
    /// consumer timeout (in milliseconds, when the broker said).
    AckTimeout {
        /// The timeout the broker used.
        timeout_ms: Option<u64>,
    },
    /// The channel or connection failed for another reason.
    ChannelFailed,
}

impl ConsumerLoss {
    /// How the broker's close of a channel, `code` and `text`, reads.
    pub(crate) fn of_close(code: u16, text: &str) -> Self {
        if code == PRECONDITION_FAILED
            && text.contains("delivery acknowledgement")
            && text.contains("timed out")
        {
            return Self::AckTimeout {
                timeout_ms: timeout_used(text),
            };
        }
        Self::ChannelFailed
    }

    /// How the error a consumer's stream ended with reads.
    pub(crate) fn of_error(e: &lapin::Error) -> Self {
        match (amqp_code(e), e.kind()) {
            (Some(code), lapin::ErrorKind::ProtocolError(amqp)) => {
                Self::of_close(code, amqp.get_message().as_str())
            }
            _ => Self::ChannelFailed,
        }
    }
}

/// The `Timeout value used: N ms` of RabbitMQ's close text.
fn timeout_used(text: &str) -> Option<u64> {
    let rest = text.split("Timeout value used:").nth(1)?;
    rest.trim_start()
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// What a worker says at start when its deliveries may stay unacknowledged as long as the
/// broker's consumer timeout (`None` when they cannot, or the broker has none).
///
/// A delivery is unacknowledged from the moment the broker sends it: it may first wait in
/// the worker's buffer for a free handler slot behind the deliveries of the worker's other
/// routes (each consumer has `prefetch` of them, the worker runs `prefetch` handlers at
/// once), then run for the handler limit. So with `routes` routes the longest is
/// `routes × handler_timeout`.
pub(crate) fn check(
    worker_routes: &[String],
    handler_timeout: Duration,
    consumer_timeout: Duration,
) -> Option<String> {
    if consumer_timeout.is_zero() || worker_routes.is_empty() {
        return None;
    }
    let routes = u32::try_from(worker_routes.len()).unwrap_or(u32::MAX);
    let longest = handler_timeout.saturating_mul(routes);
    if longest < consumer_timeout {
        return None;
    }
    Some(format!(
        "routes {}: a delivery may stay unacknowledged for up to {} ms ({} route(s) × the handler limit of {} ms), not less than the broker's consumer timeout of {} ms (BROKER_CONSUMER_TIMEOUT_MS); a handler that runs that long makes the broker close the channel (PRECONDITION_FAILED, delivery acknowledgement timed out) and redeliver every message in flight on it, which on a quorum route counts towards the delivery limit. Raise consumer_timeout in rabbitmq.conf on every node (or, on RabbitMQ 3.12 and later, a consumer-timeout policy for these queues) above {} ms and set BROKER_CONSUMER_TIMEOUT_MS to match, or lower HANDLER_TIMEOUT_MS (or the worker's handler_timeout), or split the routes over workers",
        worker_routes.join(", "),
        longest.as_millis(),
        routes,
        handler_timeout.as_millis(),
        consumer_timeout.as_millis(),
        longest.as_millis(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The close texts RabbitMQ 3.10 sends (`rabbit_channel`, reply code 406), as clients
    /// report them.
    const ACK_TIMEOUT: &str = "PRECONDITION_FAILED - delivery acknowledgement on channel 1 timed out. Timeout value used: 1800000 ms. This timeout value can be configured, see consumers doc guide to learn more";
    const ACK_TIMEOUT_SHORT: &str = "PRECONDITION_FAILED - delivery acknowledgement on channel 2 timed out. Timeout value used: 10000 ms.";

    #[test]
    fn an_ack_timeout_is_told_apart_from_other_closes() {
        assert_eq!(
            ConsumerLoss::of_close(406, ACK_TIMEOUT),
            ConsumerLoss::AckTimeout {
                timeout_ms: Some(1_800_000)
            }
        );
        assert_eq!(
            ConsumerLoss::of_close(406, ACK_TIMEOUT_SHORT),
            ConsumerLoss::AckTimeout {
                timeout_ms: Some(10_000)
            }
        );
        for (code, text) in [
            (
                406,
                "PRECONDITION_FAILED - user_id property set to 'x' but authenticated user was 'y'",
            ),
            (
                406,
                "PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue 'q' in vhost '/'",
            ),
            (404, "NOT_FOUND - no queue 'q' in vhost '/'"),
            (
                320,
                "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'",
            ),
        ] {
            assert_eq!(
                ConsumerLoss::of_close(code, text),
                ConsumerLoss::ChannelFailed,
                "{text}"
            );
        }
    }

    #[test]
    fn the_error_a_consumer_stream_ends_with_is_read() {
        use lapin::protocol::{AMQPError, AMQPErrorKind, AMQPSoftError};
        let closed = lapin::Error::from(lapin::ErrorKind::ProtocolError(AMQPError::new(
            AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED),
            ACK_TIMEOUT.into(),
        )));
        assert!(matches!(
            ConsumerLoss::of_error(&closed),
            ConsumerLoss::AckTimeout { .. }
        ));
        let lost = lapin::Error::from(lapin::ErrorKind::InvalidConnectionState(
            lapin::ConnectionState::Closed,
        ));
        assert_eq!(ConsumerLoss::of_error(&lost), ConsumerLoss::ChannelFailed);
    }

    #[test]
    fn the_handler_limit_is_checked_against_the_consumer_timeout() {
        let one = vec!["jobs".to_owned()];
        let minute = Duration::from_secs(60);
        let half_hour = Duration::from_secs(1800);
        assert_eq!(check(&one, minute, half_hour), None);
        assert_eq!(check(&one, minute, Duration::ZERO), None, "no timeout");
        let warning = check(&one, half_hour, half_hour).expect("as long as the timeout");
        assert!(
            warning.contains("consumer_timeout in rabbitmq.conf")
                && warning.contains("HANDLER_TIMEOUT_MS")
                && warning.contains("BROKER_CONSUMER_TIMEOUT_MS")
                && warning.contains("jobs"),
            "{warning}"
        );
        // Deliveries of 30 routes may wait behind each other for the handler slots.
        let many: Vec<String> = (0..30).map(|i| format!("r{i}")).collect();
        assert!(check(&many, minute, half_hour).is_some());
        assert!(check(&many[..29], minute, half_hour).is_none());
    }
}
