//! Where queries run: a pooled [`Client`](super::Client) or a transaction ([`Tx`]).

use std::future::Future;

use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::DbError;

/// Something that runs parameterized statements: a [`Client`](super::Client) (a pooled
/// connection per call) or a [`Tx`] (one connection, inside a transaction). Statements
/// are prepared once per connection and cached.
pub trait Executor: Send + Sync {
    /// Runs a query and returns its rows.
    fn query_rows(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Vec<Row>, DbError>> + Send;

    /// Runs a query that returns at most one row.
    fn query_opt_row(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Option<Row>, DbError>> + Send;

    /// Runs a statement and returns the number of rows it affected.
    fn execute(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<u64, DbError>> + Send;
}

impl<E: Executor> Executor for &E {
    fn query_rows(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Vec<Row>, DbError>> + Send {
        (**self).query_rows(sql, params)
    }

    fn query_opt_row(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Option<Row>, DbError>> + Send {
        (**self).query_opt_row(sql, params)
    }

    fn execute(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<u64, DbError>> + Send {
        (**self).execute(sql, params)
    }
}

/// One pooled connection held for several statements (no transaction): take it with
/// [`Client::connection`](super::Client::connection) and run models on it with
/// `model.with(&conn)`, saving a pool checkout per statement.
impl Executor for deadpool_postgres::Object {
    async fn query_rows(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, DbError> {
        let stmt = self.prepare_cached(sql).await?;
        Ok(self.query(&stmt, params).await?)
    }

    async fn query_opt_row(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, DbError> {
        let stmt = self.prepare_cached(sql).await?;
        Ok(self.query_opt(&stmt, params).await?)
    }

    async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, DbError> {
        let stmt = self.prepare_cached(sql).await?;
        // The client's own `execute`, not this trait's.
        Ok(tokio_postgres::Client::execute(self, &stmt, params).await?)
    }
}

/// An open transaction; see [`Client::transaction`](super::Client::transaction). It
/// commits when the closure returns `Ok` and rolls back on `Err` — and, if the closure
/// panics or its future is dropped, when it is dropped.
pub struct Tx<'c> {
    pub(super) inner: deadpool_postgres::Transaction<'c>,
}

impl std::fmt::Debug for Tx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tx")
    }
}

impl Executor for Tx<'_> {
    async fn query_rows(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, DbError> {
        let stmt = self.inner.prepare_cached(sql).await?;
        Ok(self.inner.query(&stmt, params).await?)
    }

    async fn query_opt_row(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, DbError> {
        let stmt = self.inner.prepare_cached(sql).await?;
        Ok(self.inner.query_opt(&stmt, params).await?)
    }

    async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, DbError> {
        let stmt = self.inner.prepare_cached(sql).await?;
        Ok(self.inner.execute(&stmt, params).await?)
    }
}
