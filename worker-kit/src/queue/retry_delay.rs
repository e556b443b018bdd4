//! How long a failed work message waits before its next attempt, and where it waits.
//!
//! The wait is spent in the broker, not in the process: a retry copy is published to a
//! delay queue `<route>.retry.<ms>` whose queue TTL (`x-message-ttl`) is the wait and whose
//! dead-letter target is the route (default exchange, routing key = route). A restart
//! loses nothing and holds no memory, and the copy that comes back is an ordinary message
//! (no `expiration`, its `x-retry-count` kept) for any worker of the route, Python ones
//! included.
//!
//! One queue per wait, not one queue with a TTL per message: RabbitMQ expires messages
//! only at the head of a queue, so a long per-message TTL would hold back every shorter
//! one queued behind it. With one TTL per queue, queue order is expiry order.
//!
//! Jitter is a choice among a few such queues: each retry waits its nominal delay or 7/8
//! or 6/8 of it, picked at random, so a burst of failures (a dependency down for every
//! message at once) comes back in three waves instead of one. Finer jitter would cost a
//! queue per value.

use std::time::Duration;

use rand::Rng;

use crate::config::MAX_TTL_MS;

/// The delay queue of `route` whose messages wait `ms` milliseconds.
pub fn delay_queue(route: &str, ms: u64) -> String {
    format!("{route}.retry.{ms}")
}

/// The jitter buckets: eighths of the nominal delay a retry may wait.
const BUCKETS: [u64; 3] = [8, 7, 6];

/// When a route's failed messages are tried again: the first retry after `first`, each
/// next one after twice the previous wait, never more than `max`, each shortened by
/// jitter (up to a quarter). `first` zero retries at once, without delay queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryDelay {
    first: Duration,
    max: Duration,
}

impl RetryDelay {
    /// Retries at once (`QUEUE_RETRY_DELAY_MS=0`).
    pub const IMMEDIATE: Self = Self {
        first: Duration::ZERO,
        max: Duration::ZERO,
    };

    /// The first retry after `first`, doubling up to `max` (a `max` below `first` is
    /// refused when the worker starts).
    pub fn new(first: Duration, max: Duration) -> Self {
        Self { first, max }
    }

    /// The first wait.
    pub fn first(&self) -> Duration {
        self.first
    }

    /// The longest wait.
    pub fn max(&self) -> Duration {
        self.max
    }

    /// Whether retries wait at all.
    pub fn is_immediate(&self) -> bool {
        self.first.is_zero()
    }

    /// The wait before retry `retry` (1 for the first) without jitter, in milliseconds.
    fn nominal_ms(&self, retry: u32) -> u64 {
        let first = millis(self.first);
        let max = millis(self.max).max(first);
        let doublings = retry.saturating_sub(1).min(63);
        first
            .checked_mul(1u64 << doublings)
            .map_or(max, |ms| ms.min(max))
    }

    /// The waits retry `retry` may get, longest first, in milliseconds (no duplicates;
    /// empty when retries are immediate).
    pub fn choices_ms(&self, retry: u32) -> Vec<u64> {
        if self.is_immediate() {
            return Vec::new();
        }
        let nominal = self.nominal_ms(retry);
        let mut out: Vec<u64> = BUCKETS.iter().map(|k| (nominal * k / 8).max(1)).collect();
        out.dedup();
        out
    }

    /// The wait of retry `retry`, jitter chosen: `None` when retries are immediate.
    pub(crate) fn pick_ms(&self, retry: u32) -> Option<u64> {
        let choices = self.choices_ms(retry);
        if choices.is_empty() {
            return None;
        }
        Some(choices[rand::rng().random_range(0..choices.len())])
    }

    /// Every delay queue `route` may use with `max_retries` retries (for operators and
    /// tests: what to look at, what to delete with the route).
    pub fn queues(&self, route: &str, max_retries: u32) -> Vec<String> {
        let mut ms: Vec<u64> = (1..=max_retries).flat_map(|n| self.choices_ms(n)).collect();
        ms.sort_unstable();
        ms.dedup();
        ms.into_iter().map(|ms| delay_queue(route, ms)).collect()
    }

    /// Why this delay cannot be used, if it cannot.
    pub(crate) fn check(&self, route: &str) -> Result<(), String> {
        if !self.is_immediate() && self.max < self.first {
            return Err(format!(
                "route `{route}`: the longest retry delay ({} ms) is below the first ({} ms); raise QUEUE_RETRY_MAX_DELAY_MS (or the max of QueueWorker::retry_delay) to at least the first",
                self.max.as_millis(),
                self.first.as_millis()
            ));
        }
        if millis(self.max) > MAX_TTL_MS {
            return Err(format!(
                "route `{route}`: a retry delay of {} ms is above the broker's largest TTL ({MAX_TTL_MS} ms); use less",
                self.max.as_millis()
            ));
        }
        Ok(())
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The retry delay of each route: the settings' one, or the route's own.
#[derive(Debug, Clone)]
pub(crate) struct Delays {
    default: RetryDelay,
    routes: Vec<(String, RetryDelay)>,
}

impl Delays {
    /// `QUEUE_RETRY_DELAY_MS` and `QUEUE_RETRY_MAX_DELAY_MS` for every route.
    pub(crate) fn from_config(config: &crate::config::Config) -> Self {
        Self {
            default: RetryDelay::new(config.retry_delay, config.retry_max_delay),
            routes: Vec::new(),
        }
    }

    /// With `routes`' own delays.
    pub(crate) fn with_routes(mut self, routes: Vec<(String, RetryDelay)>) -> Self {
        self.routes = routes;
        self
    }

    pub(crate) fn for_route(&self, route: &str) -> RetryDelay {
        self.routes
            .iter()
            .find(|(r, _)| r == route)
            .map_or(self.default, |(_, d)| *d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn doubles_up_to_the_max() {
        let d = RetryDelay::new(ms(200), ms(1000));
        let nominal: Vec<u64> = (1..=5).map(|n| d.nominal_ms(n)).collect();
        assert_eq!(nominal, vec![200, 400, 800, 1000, 1000]);
        assert_eq!(
            RetryDelay::new(ms(1000), ms(u64::MAX)).nominal_ms(200),
            u64::MAX,
            "no overflow past 64 doublings"
        );
    }

    #[test]
    fn jitter_only_shortens_the_wait() {
        let d = RetryDelay::new(ms(200), ms(60_000));
        assert_eq!(d.choices_ms(1), vec![200, 175, 150]);
        assert_eq!(d.choices_ms(3), vec![800, 700, 600]);
        for _ in 0..50 {
            assert!(d.choices_ms(2).contains(&d.pick_ms(2).unwrap()));
        }
        assert_eq!(RetryDelay::new(ms(1), ms(1)).choices_ms(1), vec![1]);
    }

    #[test]
    fn immediate_uses_no_delay_queue() {
        assert_eq!(RetryDelay::IMMEDIATE.pick_ms(1), None);
        assert!(RetryDelay::IMMEDIATE.queues("r", 3).is_empty());
    }

    #[test]
    fn queues_of_a_route() {
        let d = RetryDelay::new(ms(100), ms(200));
        assert_eq!(
            d.queues("r", 3),
            vec![
                "r.retry.75",
                "r.retry.87",
                "r.retry.100",
                "r.retry.150",
                "r.retry.175",
                "r.retry.200"
            ]
        );
    }

    #[test]
    fn a_max_below_the_first_is_refused() {
        let e = RetryDelay::new(ms(5000), ms(1000)).check("r").unwrap_err();
        assert!(e.contains("QUEUE_RETRY_MAX_DELAY_MS"), "{e}");
        assert!(RetryDelay::IMMEDIATE.check("r").is_ok());
        assert!(
            RetryDelay::new(ms(1), ms(MAX_TTL_MS + 1))
                .check("r")
                .is_err()
        );
    }
}
