//! PostgreSQL: pooled clients per DSN kind, typed models with built-in CRUD, SQL-file
//! queries, transactions and idempotent create.
//!
//! Every query is parameterized and every identifier quoted. Connections come from a
//! deadpool pool (concurrent handlers never share one connection), statements are
//! prepared once per connection and cached, and a pool that lost its server recovers by
//! itself when the server comes back.
//!
//! ```no_run
//! use worker_kit::db::{Changes, Client, DbConfig, DbError, Insert, Model, PageRequest, Record};
//!
//! #[derive(Debug, Record)]
//! #[record(table = "items")]
//! struct Item {
//!     id: i64,
//!     name: String,
//!     price_cents: i64,
//! }
//!
//! #[derive(Insert)]
//! struct NewItem {
//!     name: String,
//!     price_cents: i64,
//! }
//!
//! #[derive(Default, Changes)]
//! struct ItemChanges {
//!     name: Option<String>,
//!     price_cents: Option<i64>,
//! }
//!
//! # async fn demo() -> Result<(), DbError> {
//! let db = Client::new("main", &DbConfig::from_env("main", "example").unwrap())?;
//! let items: Model<Item> = Model::new(db.clone());
//! let ada = items.create_one(&NewItem { name: "Ada".into(), price_cents: 100 }).await?;
//! let same = items.read_one_by_id(&ada.id).await?;
//! let page = items.read_many(PageRequest::first(100)).await?;
//! let cheaper = items
//!     .update_one_by_id(&ada.id, &ItemChanges { price_cents: Some(90), ..Default::default() })
//!     .await?;
//! db.transaction(|tx| Box::pin(async move {
//!     let items = Model::<Item, _>::new(tx);
//!     items.delete_one_by_id(&cheaper.id).await?;
//!     Ok::<_, DbError>(())
//! }))
//! .await?;
//! # let _ = (same, page); Ok(()) }
//! ```

mod client;
mod config;
mod error;
mod executor;
mod lifecycle;
mod model;
pub(crate) mod notify;
mod record;
mod sql;

pub use client::{Client, TxFuture};
pub use config::DbConfig;
pub use error::DbError;
pub use executor::{Executor, Tx};
pub use lifecycle::{Database, PoolStats};
pub use model::{MAX_PAGE, Model, Page, PageRequest, page_limit};
pub use record::{Changes, FromRow, Insert, Record};
pub use sql::quote_ident;
pub use worker_kit_macros::{Changes, FromRow, Insert, Record, queries};

/// Re-exports the generated code needs.
#[doc(hidden)]
pub mod __private {
    pub use super::model::{fetch_all, fetch_one, fetch_optional};
    pub use tokio_postgres::Error as PgError;
    pub use tokio_postgres::Row;
    pub use tokio_postgres::types::ToSql;
}
