//! Request deadlines carried in the `x-deadline` header (epoch milliseconds), so that a
//! server can cut work short and nested calls inherit what is left of the caller's budget.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The header that carries the deadline.
pub const HEADER: &str = "x-deadline";

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
