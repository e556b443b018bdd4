//! Work queues: [`QueueWorker`] works messages off durable queues with retries and a
//! parking queue; [`QueuePublisher`] publishes persistent messages and waits for the
//! broker's confirm. A route's queue is classic or quorum ([`QueueType`]).

mod declare;
mod processor;
mod publisher;
pub(crate) mod work;

pub(crate) use declare::classic;
pub use declare::{DELIVERY_LIMIT, QueueType, parking_queue};
pub(crate) use processor::QueueProcessor;
pub use processor::{HEADERS_DROPPED_HEADER, Queue, QueueWorker, TaskRoute};
pub use publisher::{PublishError, QueuePublisher};
