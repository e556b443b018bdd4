//! The settings that take one of a few words, and the callers' allow lists.

/// Whether internals (error source chains) may reach callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Error replies carry the error's source chain in `trace`.
    Development,
    /// Error replies never carry internals.
    Production,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable, coloured when writing to a terminal.
    Pretty,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Which workers stop consuming while a registered database does not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PausePolicy {
    /// Keep consuming; handlers answer `Unavailable` (RPC) or retry and park (queues).
    Off,
    /// Work-queue workers pause (messages wait in their durable queues instead of burning
    /// through retries); RPC workers keep answering `Unavailable` quickly.
    Queue,
    /// Every worker pauses.
    All,
}

/// Which shape an RPC worker declares a missing route queue in (`RPC_QUEUE_DURABLE`).
///
/// An existing queue is consumed as it is, whoever declared it, whatever this says: a Rust
/// and a Python worker can then share a queue. See docs/protocol.md, "Queues and routing".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RpcQueueDurable {
    /// The seed's shape (transient); durable when the broker refuses transient
    /// non-exclusive queues (RabbitMQ 4.3 by default), with a warning.
    Auto,
    /// Always the seed's transient shape; a broker that refuses it stops the worker.
    False,
    /// Always durable (the messages stay transient).
    True,
}

/// Which broker users an event subscription admits events from (`EVENT_PUBLISHERS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventPublishers {
    /// The user named by the event's first segment (`example.item.created` from `example`),
    /// unless `ROUTE_ALLOW` lists others for the subscribed name.
    Owner,
    /// Every user: for deployments where all services share one broker user, which then
    /// cannot tell one publisher from another anyway.
    Any,
}

/// The type of a work-queue route's queue (and of its parking queue).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueueType {
    /// A classic durable queue without arguments: exactly what the Python seed declares,
    /// and the right choice on a single broker node.
    #[default]
    Classic,
    /// A quorum queue: replicated over the cluster's nodes (Raft), survives the loss of a
    /// minority of them. The broker's own delivery limit is set above the kit's retry count
    /// as a safety net, and what it catches is dead-lettered (at least once) to the route's
    /// parking queue.
    Quorum,
}

impl QueueType {
    /// The value `QUEUE_TYPE` takes for this type.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Classic => "classic",
            Self::Quorum => "quorum",
        }
    }
}

/// What a route without an allow list does with a message that has no `user_id`
/// (`RPC_ANONYMOUS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Anonymous {
    /// Admit it: the default, so Python seed peers (which send no `user_id`) keep working
    /// in a mixed fleet.
    #[default]
    Allow,
    /// Refuse it with `Forbidden`.
    Deny,
}

/// The callers a route admits: broker user names, where `*` matches any run of characters
/// (`billing-*`). An empty list admits nobody. A list never admits a message without
/// `user_id`: anyone can leave it out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    patterns: Vec<String>,
}

impl AllowList {
    /// A list of caller patterns.
    pub fn new<I, T>(callers: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        Self {
            patterns: callers.into_iter().map(Into::into).collect(),
        }
    }

    /// The patterns, as given.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }
}
