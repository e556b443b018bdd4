//! Work queues: [`QueueWorker`] works messages off durable queues with retries that wait
//! in the broker ([`RetryDelay`]) and a parking queue; [`QueuePublisher`] publishes
//! persistent messages and waits for the broker's confirm, or schedules them for later
//! ([`QueuePublisher::send_at`], [`Schedule`] in a transaction), stored in PostgreSQL until
//! the [`ScheduledRelay`](crate::outbox::ScheduledRelay) publishes them. A route's queue is classic or quorum ([`QueueType`]).

mod declare;
mod processor;
mod publisher;
mod retry_delay;
pub(crate) mod scheduled;
pub(crate) mod work;

pub(crate) use declare::classic;
pub use declare::{DELIVERY_LIMIT, QueueType, parking_queue};
pub use processor::{HEADERS_DROPPED_HEADER, Queue, QueueWorker, TaskRoute};
pub(crate) use processor::{Overrides, QueueProcessor};
pub use publisher::{PublishError, QueuePublisher, ScheduleError};
pub use retry_delay::{RetryDelay, delay_queue};
pub use scheduled::{
    SCHEDULED_NOTIFY_CHANNEL, SCHEDULED_SQL, Schedule, cancel as cancel_scheduled,
};
pub use work::Worked;
