//! The broker side: the process's supervised connections ([`Broker`]: one that publishes,
//! one for consumers that only acknowledge) to one node or to any node of a cluster
//! (`endpoints`), over TLS for `amqps://` URLs (`tls`), the confirmed publish the kit uses
//! for copies and work messages, and the consume loop every worker runs.

pub mod broker;
pub(crate) mod consume;
pub(crate) mod endpoints;
pub(crate) mod publish;
pub mod tls;

pub use broker::Broker;
pub use tls::AmqpTls;
