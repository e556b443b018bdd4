//! Work queues: [`QueueWorker`] works messages off durable queues with retries and a
//! parking queue; [`QueuePublisher`] publishes persistent messages and waits for the
//! broker's confirm.

mod publisher;
mod worker;

pub use publisher::{PublishError, QueuePublisher};
pub use worker::{Queue, QueueWorker, parking_queue};
