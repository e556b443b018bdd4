//! The process's budget of memory for decoded bodies in flight (`DECODE_BUDGET_BYTES`).
//!
//! Every body is priced before it is decoded ([`crate::wire::cost`]) and decoded only once
//! its price is reserved here (a large gzip body, priced as it is inflated, pays for each
//! piece of its text before keeping it: [`Lease::try_grow`], which never waits); the
//! reservation ([`Lease`]) is held until the handler is done with the body. A body the budget cannot cover now waits, holding nothing but its
//! received bytes, until other bodies are done or its time is up (the caller's deadline,
//! or the handler's limit): a delivery that waits keeps its prefetch slot, so the broker
//! holds the rest back, which is the backpressure a bomb should meet, and a caller gets its
//! answer late rather than an error to retry with the same bomb. Waiting takes no order:
//! whichever body fits when memory is freed goes first, so small bodies are not stuck
//! behind a large one.
//!
//! Two exceptions keep the budget from refusing what it must not:
//! - a body priced at most [`SMALL_COST`] never waits (it is still counted): ordinary
//!   calls get through while bombs hold the budget. At most `AMQP_PREFETCH` handlers run at
//!   once per worker, so these add at most that many times [`SMALL_COST`] to the budget;
//! - a body priced above the whole budget can never be decoded and is refused at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;
use tokio::time::Instant;

/// Bodies priced at most this are admitted at once, whatever the budget holds: a request
/// of up to about 16 KiB of JSON text.
pub(crate) const SMALL_COST: usize = 64 * 1024;

/// Memory for decoded bodies, shared by every worker of a process.
#[derive(Debug, Clone)]
pub(crate) struct DecodeBudget {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    limit: usize,
    used: AtomicUsize,
    freed: Notify,
}

/// Why a body's price was not reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The price is above the whole budget: the body can never be decoded.
    TooCostly {
        /// The body's price.
        cost: usize,
        /// `DECODE_BUDGET_BYTES`.
        limit: usize,
    },
    /// The budget did not free enough before the body's time was up.
    Exhausted {
        /// The body's price.
        cost: usize,
        /// `DECODE_BUDGET_BYTES`.
        limit: usize,
    },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Self::TooCostly { cost, limit } => write!(
                f,
                "decoding this body would take about {cost} bytes of memory (its text and the values in it), more than DECODE_BUDGET_BYTES ({limit}) allows for all bodies in flight: send less, or fewer values (an array of small numbers is priced at about 34 times its text), or raise DECODE_BUDGET_BYTES together with the process's memory"
            ),
            Self::Exhausted { cost, limit } => write!(
                f,
                "the server is decoding other large bodies: this one (about {cost} bytes of memory to decode) waited for DECODE_BUDGET_BYTES ({limit}) until its time was up; retry later"
            ),
        }
    }
}

impl DecodeBudget {
    /// A budget of `limit` bytes.
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                limit,
                used: AtomicUsize::new(0),
                freed: Notify::new(),
            }),
        }
    }

    /// `DECODE_BUDGET_BYTES`.
    pub(crate) fn limit(&self) -> usize {
        self.inner.limit
    }

    /// Bytes reserved now.
    pub(crate) fn in_use(&self) -> usize {
        self.inner.used.load(Ordering::Acquire)
    }

    /// Reserves `cost` bytes, waiting for them until `until` (for ever without it).
    ///
    /// # Errors
    ///
    /// [`Refusal::TooCostly`] at once when `cost` is above the whole budget,
    /// [`Refusal::Exhausted`] when `until` passes first.
    pub(crate) async fn reserve(
        &self,
        cost: usize,
        until: Option<Instant>,
    ) -> Result<Lease, Refusal> {
        let limit = self.inner.limit;
        if cost <= SMALL_COST {
            self.inner.used.fetch_add(cost, Ordering::AcqRel);
            return Ok(self.lease(cost));
        }
        if cost > limit {
            return Err(Refusal::TooCostly { cost, limit });
        }
        loop {
            // Registered before trying, so that a release between the try and the wait
            // is not missed.
            let freed = self.inner.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if self.try_take(cost) {
                return Ok(self.lease(cost));
            }
            match until {
                None => freed.await,
                Some(at) => {
                    if tokio::time::timeout_at(at, freed).await.is_err() {
                        return Err(Refusal::Exhausted { cost, limit });
                    }
                }
            }
        }
    }

    /// A lease of nothing yet, for a body priced as it is decoded: it grows with
    /// [`Lease::try_grow`] before each piece is held, and never waits.
    pub(crate) fn growing(&self) -> Lease {
        self.lease(0)
    }

    fn try_take(&self, cost: usize) -> bool {
        let limit = self.inner.limit;
        self.inner
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                (used.saturating_add(cost) <= limit).then_some(used + cost)
            })
            .is_ok()
    }

    fn lease(&self, cost: usize) -> Lease {
        Lease {
            inner: self.inner.clone(),
            cost,
        }
    }
}

impl crate::observe::decode_budget::BudgetSource for DecodeBudget {
    fn in_use(&self) -> usize {
        DecodeBudget::in_use(self)
    }

    fn limit(&self) -> usize {
        DecodeBudget::limit(self)
    }
}

/// A reservation of the budget, given back when dropped.
#[derive(Debug)]
#[must_use = "the reservation is given back when dropped: hold it until the body is no longer needed"]
pub(crate) struct Lease {
    inner: Arc<Inner>,
    cost: usize,
}

impl Lease {
    /// Makes the reservation `cost` bytes if the budget holds them now (a price of at most
    /// [`SMALL_COST`] always, as [`DecodeBudget::reserve`] admits it); `false`, leaving
    /// the reservation as it was, otherwise.
    pub(crate) fn try_grow(&mut self, cost: usize) -> bool {
        let Some(more) = cost.checked_sub(self.cost) else {
            return true;
        };
        let used = &self.inner.used;
        let limit = self.inner.limit;
        let taken = used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                let after = now.saturating_add(more);
                (cost <= SMALL_COST || after <= limit).then_some(after)
            })
            .is_ok();
        if taken {
            self.cost = cost;
        }
        taken
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.inner.used.fetch_sub(self.cost, Ordering::AcqRel);
        self.inner.freed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const MIB: usize = 1024 * 1024;

    #[tokio::test]
    async fn a_body_waits_until_memory_is_freed() {
        let budget = DecodeBudget::new(10 * MIB);
        let first = budget.reserve(6 * MIB, None).await.unwrap();
        let waiting = {
            let budget = budget.clone();
            tokio::spawn(async move { budget.reserve(6 * MIB, None).await.map(|_| ()) })
        };
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        assert_eq!(budget.in_use(), 6 * MIB);
        drop(first);
        waiting.await.unwrap().unwrap();
        assert_eq!(budget.in_use(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_ends_with_the_bodys_time() {
        let budget = DecodeBudget::new(10 * MIB);
        let _held = budget.reserve(6 * MIB, None).await.unwrap();
        let until = Instant::now() + Duration::from_millis(50);
        let e = budget.reserve(6 * MIB, Some(until)).await.unwrap_err();
        assert_eq!(
            e,
            Refusal::Exhausted {
                cost: 6 * MIB,
                limit: 10 * MIB
            }
        );
        assert!(e.to_string().contains("retry later"), "{e}");
    }

    #[tokio::test]
    async fn a_growing_lease_takes_only_what_is_free_now() {
        let budget = DecodeBudget::new(MIB);
        let mut lease = budget.growing();
        assert!(lease.try_grow(MIB / 2));
        assert!(lease.try_grow(3 * MIB / 4));
        assert_eq!(budget.in_use(), 3 * MIB / 4);
        let _other = budget.reserve(MIB / 4, None).await.unwrap();
        assert!(!lease.try_grow(MIB / 2 + MIB / 4 + 1), "past the budget");
        assert_eq!(budget.in_use(), MIB);
        // Small prices are taken however full the budget is, as reserve takes them.
        let mut small = budget.growing();
        assert!(small.try_grow(SMALL_COST));
        assert_eq!(budget.in_use(), MIB + SMALL_COST);
        drop((lease, small));
        assert_eq!(budget.in_use(), MIB / 4);
    }

    #[tokio::test]
    async fn small_bodies_never_wait_and_huge_ones_are_refused_at_once() {
        let budget = DecodeBudget::new(MIB);
        let _full = budget.reserve(MIB, None).await.unwrap();
        let small = budget.reserve(SMALL_COST, Some(Instant::now())).await;
        assert!(small.is_ok(), "admitted although the budget is full");
        assert_eq!(budget.in_use(), MIB + SMALL_COST);
        let e = budget.reserve(2 * MIB, None).await.unwrap_err();
        assert!(matches!(e, Refusal::TooCostly { .. }));
        assert!(e.to_string().contains("DECODE_BUDGET_BYTES"), "{e}");
    }
}
