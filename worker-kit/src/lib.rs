//! worker-kit: RPC and work-queue workers over RabbitMQ, with PostgreSQL clients,
//! driven by one Runner on one Tokio runtime.

pub mod database;
pub mod error;
pub mod reply_error;

pub use database::Database;
pub use error::Error;
pub use reply_error::{ErrorReply, IntoErrorReply};
