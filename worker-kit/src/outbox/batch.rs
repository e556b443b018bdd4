//! How one relay batch went: what the outbox relay and the scheduled relay each report
//! after a transaction, and decide their next look from.

use std::time::Duration;

/// How a batch went (one transaction under the relay's advisory lock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Batch {
    /// As many rows as a batch holds were published: more may be waiting, so the next
    /// batch starts at once.
    Full,
    /// Fewer: everything pending (or due) was published.
    Drained {
        /// How many rows were published, none when nothing was pending.
        published: usize,
        /// How long until the next pending row is due; `None` when none is pending, or
        /// when rows are due as soon as they commit (outbox events).
        next_due: Option<Duration>,
    },
    /// Another replica holds the lock and publishes.
    Standby {
        /// As in [`Batch::Drained`]: when the next row is due, if known.
        next_due: Option<Duration>,
    },
}
