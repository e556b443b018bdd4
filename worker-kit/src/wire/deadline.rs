//! Request deadlines: the absolute `x-deadline` header (epoch milliseconds, or an AMQP
//! timestamp in seconds) and the relative budget `x-timeout-ms` beside it (protocol v2), so
//! that a server can cut work short and nested calls inherit what is left of the caller's
//! budget.
//!
//! The two are read together ([`budget`]) because the absolute one alone trusts the caller's
//! clock: a caller a minute behind sends deadlines that have "passed" on arrival, and one an
//! hour ahead gives itself an hour.

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The header that carries the absolute deadline.
pub const HEADER: &str = "x-deadline";

/// The header that carries the call's budget in milliseconds when it was published (v2).
pub const TIMEOUT_HEADER: &str = "x-timeout-ms";

/// How far `x-deadline` may lie beyond `now + x-timeout-ms` before the clocks are taken to
/// disagree (`DEADLINE_MAX_SKEW_MS`'s default).
pub const DEFAULT_MAX_SKEW: Duration = Duration::from_secs(5);

/// The largest `expiration` RabbitMQ accepts, in milliseconds (2³²−1): a larger one is a
/// `PRECONDITION_FAILED` that closes the publishing channel (protocol v3).
pub const MAX_EXPIRATION_MS: u64 = 4_294_967_295;

/// The `expiration` to publish for a message nobody waits for after `left`: at least 1 ms
/// (0 means "deliver now or drop" to RabbitMQ, which would drop it even for a waiting
/// caller), at most `limit` and never above [`MAX_EXPIRATION_MS`].
pub fn expiration_ms(left: Duration, limit: Duration) -> u64 {
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    ms(left).min(ms(limit)).clamp(1, MAX_EXPIRATION_MS)
}

/// [`budget`] bounded by `limit` (the handler's time limit, `HANDLER_TIMEOUT_MS`): whatever
/// `x-deadline` or `x-timeout-ms` claim, a request never gets more time than its handler may
/// run, so nothing derived from it (a reply's `expiration`, a nested call's budget) can
/// exceed what the broker accepts (protocol v3).
pub fn bounded_budget(
    deadline: Option<SystemTime>,
    timeout: Option<Duration>,
    now: SystemTime,
    max_skew: Duration,
    limit: Duration,
) -> Option<Duration> {
    budget(deadline, timeout, now, max_skew).map(|b| b.min(limit))
}

/// The time a server gives a request, from what it carried: `min(x-deadline − now,
/// x-timeout-ms)`, or `x-timeout-ms` alone when the deadline has passed or lies more than
/// `max_skew` beyond it (the caller's clock disagrees with ours; time spent queued is
/// already bounded by the request's `expiration`). `None` when the request carried neither.
///
/// `now` is passed in so that a skewed clock can be tested.
pub fn budget(
    deadline: Option<SystemTime>,
    timeout: Option<Duration>,
    now: SystemTime,
    max_skew: Duration,
) -> Option<Duration> {
    match (deadline, timeout) {
        (None, None) => None,
        (None, Some(t)) => Some(t),
        (Some(d), None) => Some(d.duration_since(now).unwrap_or(Duration::ZERO)),
        (Some(d), Some(t)) => match d.duration_since(now) {
            Ok(left) if left <= t.saturating_add(max_skew) => Some(left.min(t)),
            // Passed on arrival, or too far ahead: the caller's clock is off.
            _ => Some(t),
        },
    }
}

tokio::task_local! {
    static CURRENT: Deadline;
}

/// The deadline of the request whose handler is running on this task, if it has one.
///
/// [`RpcClient`](crate::rpc::RpcClient) calls made inside a handler use it by themselves.
/// A task the handler spawns does not inherit it: pass it on explicitly there
/// ([`CallOptions::deadline`](crate::rpc::CallOptions::deadline)).
pub fn current() -> Option<Deadline> {
    CURRENT.try_with(|d| *d).ok()
}

/// Runs `fut` with `deadline` as the [`current`] one (or as it is, without a deadline).
pub(crate) async fn scope<F: Future>(deadline: Option<Deadline>, fut: F) -> F::Output {
    match deadline {
        Some(d) => CURRENT.scope(d, fut).await,
        None => fut.await,
    }
}

/// A point in wall-clock time after which nobody waits for the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deadline(SystemTime);

impl Deadline {
    /// The deadline `timeout` from now.
    pub fn after(timeout: Duration) -> Self {
        Self(SystemTime::now() + timeout)
    }

    /// The deadline encoded as milliseconds since the Unix epoch.
    pub fn from_epoch_millis(ms: u64) -> Self {
        Self(UNIX_EPOCH + Duration::from_millis(ms))
    }

    /// `at` as a deadline.
    pub fn at(at: SystemTime) -> Self {
        Self(at)
    }

    /// Milliseconds since the Unix epoch (the header's encoding).
    pub fn epoch_millis(self) -> u64 {
        self.0
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    /// Time left; zero once passed.
    pub fn remaining(self) -> Duration {
        self.0
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
    }

    /// Whether the deadline has passed.
    pub fn is_past(self) -> bool {
        self.remaining().is_zero()
    }

    /// The earlier of `self` and `other`.
    #[must_use]
    pub fn min(self, other: Self) -> Self {
        std::cmp::min(self, other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SKEW: Duration = DEFAULT_MAX_SKEW;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// The server's clock in these tests: a fixed instant, not the system's.
    fn server_now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    #[test]
    fn budget_is_the_smaller_reading_when_clocks_agree() {
        let now = server_now();
        assert_eq!(
            budget(Some(now + ms(800)), Some(ms(1000)), now, SKEW),
            Some(ms(800))
        );
        assert_eq!(
            budget(Some(now + ms(1200)), Some(ms(1000)), now, SKEW),
            Some(ms(1000))
        );
    }

    #[test]
    fn a_caller_clock_behind_ours_does_not_make_us_give_up_at_once() {
        let now = server_now();
        // The caller's clock is 60 s behind: its deadline "passed" 59 s ago.
        let callers_deadline = now - Duration::from_secs(60) + ms(1000);
        assert_eq!(
            budget(Some(callers_deadline), Some(ms(1000)), now, SKEW),
            Some(ms(1000))
        );
    }

    #[test]
    fn a_caller_clock_ahead_of_ours_cannot_extend_the_budget() {
        let now = server_now();
        let callers_deadline = now + Duration::from_secs(3600) + ms(1000);
        assert_eq!(
            budget(Some(callers_deadline), Some(ms(1000)), now, SKEW),
            Some(ms(1000))
        );
        // Within the allowed skew the absolute reading still counts, capped by the budget.
        assert_eq!(
            budget(Some(now + ms(5_900)), Some(ms(1000)), now, SKEW),
            Some(ms(1000))
        );
    }

    #[test]
    fn one_reading_alone_is_used_as_it_is() {
        let now = server_now();
        assert_eq!(budget(None, None, now, SKEW), None);
        assert_eq!(budget(None, Some(ms(5)), now, SKEW), Some(ms(5)));
        assert_eq!(budget(Some(now + ms(5)), None, now, SKEW), Some(ms(5)));
        // A v1 caller's deadline that passed: nothing left.
        assert_eq!(
            budget(Some(now - ms(5)), None, now, SKEW),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn far_future_readings_are_bounded_by_the_handler_limit() {
        let now = server_now();
        let limit = Duration::from_secs(60);
        // The year 2100, and 5·10⁹ ms: both beyond what RabbitMQ takes as an expiration.
        let year_2100 = UNIX_EPOCH + ms(4_102_444_800_000);
        assert_eq!(
            bounded_budget(Some(year_2100), None, now, SKEW, limit),
            Some(limit)
        );
        assert_eq!(
            bounded_budget(None, Some(ms(5_000_000_000)), now, SKEW, limit),
            Some(limit)
        );
        assert_eq!(
            bounded_budget(Some(now + ms(800)), Some(ms(1000)), now, SKEW, limit),
            Some(ms(800))
        );
        assert_eq!(bounded_budget(None, None, now, SKEW, limit), None);
    }

    #[test]
    fn expirations_stay_within_what_the_broker_accepts() {
        let day = Duration::from_secs(86_400);
        assert_eq!(expiration_ms(Duration::ZERO, day), 1);
        assert_eq!(expiration_ms(ms(1500), day), 1500);
        assert_eq!(expiration_ms(ms(1500), ms(1000)), 1000);
        assert_eq!(
            expiration_ms(Duration::MAX, Duration::MAX),
            MAX_EXPIRATION_MS
        );
        assert_eq!(
            expiration_ms(ms(5_000_000_000), ms(5_000_000_000)),
            MAX_EXPIRATION_MS
        );
    }

    #[tokio::test]
    async fn current_is_set_only_inside_the_scope() {
        assert_eq!(current(), None);
        let d = Deadline::after(Duration::from_secs(1));
        assert_eq!(scope(Some(d), async { current() }).await, Some(d));
        assert_eq!(scope(None, async { current() }).await, None);
        assert_eq!(current(), None);
    }

    #[test]
    fn epoch_millis_round_trip() {
        let d = Deadline::from_epoch_millis(1_700_000_000_123);
        assert_eq!(d.epoch_millis(), 1_700_000_000_123);
        assert!(d.is_past());
    }

    #[test]
    fn future_deadline_has_time_left() {
        let d = Deadline::after(Duration::from_secs(60));
        assert!(!d.is_past());
        assert!(d.remaining() > Duration::from_secs(50));
        assert_eq!(
            d.min(Deadline::from_epoch_millis(0)),
            Deadline::from_epoch_millis(0)
        );
    }
}
