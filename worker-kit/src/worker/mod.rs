//! Workers: how a service's routes are built into a worker ([`Worker`]), how a worker runs
//! (the consume loop every kind shares: channel setup, consuming, recovering from a lost
//! connection or a cancelled consumer, draining on shutdown), and what passes between the
//! [`Runner`](crate::runner::Runner) and the workers it drives ([`WorkerContext`],
//! [`Runnable`]), and a service's own background tasks, which the Runner drives as it does
//! workers.
//!
//! The consume loop lives here, not in [`amqp`](crate::amqp): it drives workers, whose
//! kinds ([`rpc`](mod@crate::rpc), [`queue`](crate::queue), [`events`](crate::events)) build
//! on this module; the broker connection below it knows nothing of them.
//!
//! The loop reaches the broker through a small trait (`link::BrokerLink`, lapin's in
//! production) and each kind's own work through another (`processor::Processor`), so that
//! its tests can script the broker's side under Tokio's paused clock.

mod builder;
pub(crate) mod consume;
mod handoff;
mod link;
#[cfg(test)]
mod loop_tests;
mod processor;
#[cfg(test)]
mod scripted;
mod task;

pub use builder::Worker;
pub(crate) use handoff::sealed;
pub use handoff::{Runnable, WorkerContext, WorkerKind};
pub(crate) use task::Task;
