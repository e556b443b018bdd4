//! What became of a delivery, as the workers report it and the metrics and logs label it.
//! Defined here, below the workers that produce it, so that observe needs nothing of them.

/// How a delivery was settled: the `outcome` field of its log span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Disposition {
    /// The handler succeeded: replied (RPC) or acked (work queue).
    Ok,
    /// RPC: the handler returned an error, which was replied.
    Error,
    /// RPC: the request never reached the handler (undecodable, wrong payload); an error
    /// was replied.
    Rejected,
    /// Work queue: a copy with a higher retry count was stored, the original acked.
    Retried,
    /// Work queue: a copy was stored in the parking queue, the original acked.
    Parked,
    /// Work queue: the copy could not be stored, so the original went back to its queue.
    Requeued,
}

impl Disposition {
    /// How many dispositions there are ([`Disposition::index`] is below it).
    pub(crate) const COUNT: usize = 6;

    /// A number per disposition, from 0 to [`Disposition::COUNT`] - 1.
    pub(crate) fn index(self) -> usize {
        self as usize
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Error => "error",
            Self::Rejected => "rejected",
            Self::Retried => "retried",
            Self::Parked => "parked",
            Self::Requeued => "requeued",
        }
    }
}
