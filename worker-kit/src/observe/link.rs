//! Which of the process's broker connections something happened on: a metric label and
//! the traces' `server.address`. The broker produces it; observe defines it so as to
//! need nothing of the broker.

/// Which of the process's two broker connections a handle is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Link {
    /// The connection that publishes (and consumes RPC requests, whose replies go out on the
    /// channel they came in on).
    Main,
    /// The consume-only connection of work-queue and event workers (`Broker::consuming`).
    Consume,
}

impl Link {
    /// The connection's metric label.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Link::Main => "main",
            Link::Consume => "consume",
        }
    }
}
