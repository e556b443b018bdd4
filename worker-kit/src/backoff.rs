//! The kit's one backoff: exponential with jitter, from 100 ms to 2 s, for everything
//! that waits before trying again: the broker (connecting, reopening a consuming session,
//! giving a message back whose copy could not be stored), the database (the first
//! connect), a relay's batch that did not go out, the relay's `LISTEN` connection and the
//! RPC client's reply consumer. It imports nothing of the kit, so every layer can use it.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// The delays between attempts: 100 ms, doubling, at most 2 s (plus jitter), unbounded
/// in number.
pub(crate) fn backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(2))
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
}

/// A pause that grows with each failure in a row and starts over after a success: the
/// [`backoff`] step of the current run of failures, for a loop that cannot keep one
/// iterator (the failures happen in different tasks).
#[derive(Debug, Default)]
pub(crate) struct Pauses {
    failures: AtomicU32,
}

impl Pauses {
    /// Counts one more failure and returns how long to pause before trying again.
    pub(crate) fn next(&self) -> Duration {
        let n = self.failures.fetch_add(1, Ordering::Relaxed);
        // Past a few doublings every step is the maximum; the cap keeps `nth` short.
        let step = usize::try_from(n.min(8)).unwrap_or(8);
        backoff()
            .build()
            .nth(step)
            .unwrap_or(Duration::from_secs(2))
    }

    /// A success: the next failure pauses the shortest time again.
    pub(crate) fn reset(&self) {
        self.failures.store(0, Ordering::Relaxed);
    }

    /// How many failures in a row were counted.
    pub(crate) fn failures(&self) -> u32 {
        self.failures.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_grow_are_bounded_and_start_over_after_a_success() {
        let pauses = Pauses::default();
        let first = pauses.next();
        for _ in 0..20 {
            let d = pauses.next();
            // The jitter adds at most one more step.
            assert!(d <= Duration::from_secs(4), "bounded: {d:?}");
        }
        assert!(
            pauses.next() >= Duration::from_secs(2),
            "grown to the maximum"
        );
        assert!(
            first < Duration::from_millis(250),
            "starts short: {first:?}"
        );
        pauses.reset();
        assert_eq!(pauses.failures(), 0);
        assert!(pauses.next() < Duration::from_millis(250), "short again");
    }
}
