//! The broker side: the process's supervised connections ([`Broker`]: one that publishes,
//! one for consumers that only acknowledge) to one node or to any node of a cluster
//! (`endpoints`), over TLS for `amqps://` URLs (`tls`), and the confirmed publish the kit uses
//! for copies and work messages, what the broker's consumer timeout means for consumers
//! (`consumer_timeout`), and the confirm-mode channel every publisher of the kit opens
//! (`confirm`). The consume loop that drives workers over these connections is
//! [`worker`](crate::worker)'s.

pub mod broker;
pub(crate) mod confirm;
pub(crate) mod consumer_timeout;
pub(crate) mod endpoints;
pub(crate) mod publish;
pub(crate) mod refusal;
pub mod tls;

pub use broker::Broker;
pub use tls::AmqpTls;
