//! Work queues: [`QueueWorker`] works messages off durable queues with retries and a
//! parking queue; [`QueuePublisher`] publishes persistent messages and waits for the
//! broker's confirm.

mod processor;
mod publisher;

pub use processor::{Queue, QueueWorker, parking_queue};
pub use publisher::{PublishError, QueuePublisher};
