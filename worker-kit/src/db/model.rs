//! `Model<T>`: the built-in queries over a table's [`Record`] type.

use std::marker::PhantomData;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use tokio_postgres::types::ToSql;

use super::executor::Executor;
use super::record::{Changes, FromRow, Insert, Record};
use super::sql::{column_list, placeholders, quote_ident};
use super::{Client, DbError};

/// Largest page [`Model::read_many`] returns, whatever is asked.
pub const MAX_PAGE: u32 = 1000;

/// A page size from a request: `default` when absent, refused (never clamped) outside 1 to
/// [`MAX_PAGE`], so a caller learns its mistake instead of getting a page of another size
/// than it asked for.
///
/// # Errors
///
/// [`DbError::Invalid`] (a `ValidationError` reply) naming `limit` and the range.
pub fn page_limit(requested: Option<u32>, default: u32) -> Result<u32, DbError> {
    match requested {
        None => Ok(default.clamp(1, MAX_PAGE)),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(n) => Err(DbError::Invalid(format!(
            "limit must be 1 to {MAX_PAGE}, got {n}"
        ))),
    }
}

/// Which page to read: the rows after `after` (an id; `None` for the first page), at most
/// `limit` of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageRequest<Id> {
    /// The `last_reference` of the previous page.
    pub after: Option<Id>,
    /// Rows per page (capped at 1000).
    pub limit: u32,
}

impl<Id> PageRequest<Id> {
    /// The first page of `limit` rows.
    pub fn first(limit: u32) -> Self {
        Self { after: None, limit }
    }

    /// The page after `after`.
    pub fn after(after: Id, limit: u32) -> Self {
        Self {
            after: Some(after),
            limit,
        }
    }
}

/// One page of rows in id order, and the reference to ask for the next one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page<T, Id> {
    /// The rows.
    pub items: Vec<T>,
    /// The id of the last row when more rows follow (pass it as `after`); `None` on the
    /// last page.
    pub last_reference: Option<Id>,
}

/// Built-in CRUD over `T`'s table, run on `E` (a [`Client`] by default, or a transaction
/// via [`Model::with`]). All queries are parameterized and prepared once per connection.
pub struct Model<T, E = Client> {
    executor: E,
    sql: Arc<Statements>,
    _row: PhantomData<fn() -> T>,
}

/// A model's SQL, built once per table instead of once per call (the text was rebuilt
/// with `format!` on every statement), and shared by the models [`Model::with`] makes.
struct Statements {
    /// The column list every statement returns.
    select: String,
    read_by_id: String,
    delete_by_id: String,
    /// `INSERT`s by the column list they set (an [`Insert`]'s columns are a static slice,
    /// so its address names it); few per table.
    inserts: RwLock<Vec<(usize, Arc<str>)>>,
}

impl Statements {
    fn new<T: Record>() -> Self {
        let select = column_list(T::COLUMNS);
        let (table, id) = (quote_ident(T::TABLE), quote_ident(T::ID));
        Self {
            read_by_id: format!("SELECT {select} FROM {table} WHERE {id} = $1"),
            delete_by_id: format!("DELETE FROM {table} WHERE {id} = $1 RETURNING {select}"),
            select,
            inserts: RwLock::new(Vec::new()),
        }
    }

    /// The `INSERT … RETURNING` of `columns`, built on first use.
    fn insert<T: Record>(&self, columns: &'static [&'static str]) -> Arc<str> {
        let key = columns.as_ptr() as usize;
        let found = |list: &[(usize, Arc<str>)]| {
            list.iter()
                .find(|(k, _)| *k == key)
                .map(|(_, sql)| sql.clone())
        };
        if let Some(sql) = self.inserts.read().ok().and_then(|l| found(&l)) {
            return sql;
        }
        let sql: Arc<str> = format!(
            "INSERT INTO {} ({}) VALUES ({}) RETURNING {}",
            quote_ident(T::TABLE),
            column_list(columns),
            placeholders(1, columns.len()),
            self.select
        )
        .into();
        if let Ok(mut list) = self.inserts.write()
            && found(&list).is_none()
        {
            list.push((key, sql.clone()));
        }
        sql
    }
}

impl<T, E: Clone> Clone for Model<T, E> {
    fn clone(&self) -> Self {
        Self {
            executor: self.executor.clone(),
            sql: self.sql.clone(),
            _row: PhantomData,
        }
    }
}

impl<T, E> std::fmt::Debug for Model<T, E>
where
    T: Record,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("table", &T::TABLE)
            .finish_non_exhaustive()
    }
}

fn what<T: Record>(id: &T::Id) -> String {
    format!("{} {:?}", T::TABLE, id)
}

impl<T: Record, E: Executor> Model<T, E> {
    /// A model over `T`'s table, running on `executor`.
    pub fn new(executor: E) -> Self {
        Self {
            sql: Arc::new(Statements::new::<T>()),
            executor,
            _row: PhantomData,
        }
    }

    /// The same model on another executor, e.g. a transaction: `items.with(tx)`.
    pub fn with<E2: Executor>(&self, executor: E2) -> Model<T, E2> {
        Model {
            executor,
            sql: self.sql.clone(),
            _row: PhantomData,
        }
    }

    /// The executor this model runs on.
    pub fn executor(&self) -> &E {
        &self.executor
    }

    fn table(&self) -> String {
        quote_ident(T::TABLE)
    }

    fn one(row: &tokio_postgres::Row) -> Result<T, DbError> {
        Ok(T::from_row(row)?)
    }

    /// `INSERT … RETURNING` the new row.
    ///
    /// # Errors
    ///
    /// `Conflict` (with the constraint) on a unique violation, `Invalid` on a CHECK or
    /// NOT NULL violation, `Unavailable` when the database is down.
    pub async fn create_one<N: Insert>(&self, new: &N) -> Result<T, DbError> {
        let sql = self.sql.insert::<T>(new.columns());
        let rows = self.executor.query_rows(&sql, &new.values()).await?;
        rows.first()
            .map(Self::one)
            .unwrap_or_else(|| Err(DbError::not_found(format!("{} (inserted row)", T::TABLE))))
    }

    /// Creates the row unless one with the same value in `key_column` (a unique column,
    /// e.g. a client-supplied idempotency key) exists; either way returns the row and
    /// whether this call created it. Safe under concurrent duplicates: exactly one creates.
    ///
    /// # Errors
    ///
    /// As [`Model::create_one`]; `Invalid` when `new` does not set `key_column`.
    pub async fn create_one_idempotent<N: Insert>(
        &self,
        new: &N,
        key_column: &str,
    ) -> Result<(T, bool), DbError> {
        let columns = new.columns();
        let values = new.values();
        let Some(key_index) = columns.iter().position(|c| *c == key_column) else {
            return Err(DbError::Invalid(format!(
                "the new row does not set the key column {key_column}"
            )));
        };
        let sql = format!(
            "INSERT INTO {} ({}) VALUES ({}) ON CONFLICT ({}) DO NOTHING RETURNING {}",
            self.table(),
            column_list(columns),
            placeholders(1, columns.len()),
            quote_ident(key_column),
            self.sql.select
        );
        if let Some(row) = self.executor.query_opt_row(&sql, &values).await? {
            return Ok((Self::one(&row)?, true));
        }
        // Someone else created it first (or concurrently: ON CONFLICT waited for their
        // commit, so the row is visible to this new statement).
        let sql = format!(
            "SELECT {} FROM {} WHERE {} = $1",
            self.sql.select,
            self.table(),
            quote_ident(key_column)
        );
        match self
            .executor
            .query_opt_row(&sql, &[values[key_index]])
            .await?
        {
            Some(row) => Ok((Self::one(&row)?, false)),
            None => Err(DbError::not_found(format!(
                "{} with that {key_column} (it was deleted concurrently)",
                T::TABLE
            ))),
        }
    }

    /// The row with id `id`.
    ///
    /// # Errors
    ///
    /// `NotFound`, `Unavailable`.
    pub async fn read_one_by_id(&self, id: &T::Id) -> Result<T, DbError> {
        match self
            .executor
            .query_opt_row(&self.sql.read_by_id, &[id])
            .await?
        {
            Some(row) => Self::one(&row),
            None => Err(DbError::not_found(what::<T>(id))),
        }
    }

    /// A page of rows in id order (keyset pagination: no OFFSET, stable under inserts).
    ///
    /// # Errors
    ///
    /// `Unavailable`.
    pub async fn read_many(&self, page: PageRequest<T::Id>) -> Result<Page<T, T::Id>, DbError> {
        let limit = i64::from(page.limit.clamp(1, MAX_PAGE));
        // One row more than asked tells whether another page follows.
        let fetch = limit + 1;
        let rows = match &page.after {
            Some(after) => {
                let sql = format!(
                    "SELECT {} FROM {} WHERE {id} > $1 ORDER BY {id} LIMIT $2",
                    self.sql.select,
                    self.table(),
                    id = quote_ident(T::ID)
                );
                self.executor.query_rows(&sql, &[after, &fetch]).await?
            }
            None => {
                let sql = format!(
                    "SELECT {} FROM {} ORDER BY {} LIMIT $1",
                    self.sql.select,
                    self.table(),
                    quote_ident(T::ID)
                );
                self.executor.query_rows(&sql, &[&fetch]).await?
            }
        };
        let more = rows.len() as i64 > limit;
        let items = rows
            .iter()
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .map(Self::one)
            .collect::<Result<Vec<T>, _>>()?;
        let last_reference = if more {
            items.last().map(|t| t.id().clone())
        } else {
            None
        };
        Ok(Page {
            items,
            last_reference,
        })
    }

    /// Sets only the fields `changes` gives; returns the updated row.
    ///
    /// # Errors
    ///
    /// `EmptyUpdate` when `changes` sets nothing, `NotFound`, `Conflict`, `Invalid`,
    /// `Unavailable`.
    pub async fn update_one_by_id<C: Changes>(
        &self,
        id: &T::Id,
        changes: &C,
    ) -> Result<T, DbError> {
        let set = changes.changes();
        if set.is_empty() {
            return Err(DbError::EmptyUpdate);
        }
        let assignments = set
            .iter()
            .enumerate()
            .map(|(i, (col, _))| format!("{} = ${}", quote_ident(col), i + 1))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "UPDATE {} SET {assignments} WHERE {} = ${} RETURNING {}",
            self.table(),
            quote_ident(T::ID),
            set.len() + 1,
            self.sql.select
        );
        let mut params: Vec<&(dyn ToSql + Sync)> = set.iter().map(|(_, v)| *v).collect();
        params.push(id);
        match self.executor.query_opt_row(&sql, &params).await? {
            Some(row) => Self::one(&row),
            None => Err(DbError::not_found(what::<T>(id))),
        }
    }

    /// Deletes the row with id `id`; returns it.
    ///
    /// # Errors
    ///
    /// `NotFound`, `Conflict` (a foreign key still points at it), `Unavailable`.
    pub async fn delete_one_by_id(&self, id: &T::Id) -> Result<T, DbError> {
        match self
            .executor
            .query_opt_row(&self.sql.delete_by_id, &[id])
            .await?
        {
            Some(row) => Self::one(&row),
            None => Err(DbError::not_found(what::<T>(id))),
        }
    }
}

/// Runs `sql` and maps every row (used by the code `#[queries]` generates).
///
/// # Errors
///
/// The query's error, or a row that does not map.
pub async fn fetch_all<R: FromRow, E: Executor>(
    executor: &E,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<R>, DbError> {
    let rows = executor.query_rows(sql, params).await?;
    rows.iter()
        .map(|r| R::from_row(r).map_err(DbError::from))
        .collect()
}

/// Runs `sql` and maps its one row, `NotFound` (naming `query`) when there is none.
///
/// # Errors
///
/// As [`fetch_all`], plus `NotFound`.
pub async fn fetch_one<R: FromRow, E: Executor>(
    executor: &E,
    query: &str,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<R, DbError> {
    match executor.query_opt_row(sql, params).await? {
        Some(row) => Ok(R::from_row(&row)?),
        None => Err(DbError::not_found(format!("result of {query}"))),
    }
}

/// Runs `sql` and maps its row, if any.
///
/// # Errors
///
/// As [`fetch_all`].
pub async fn fetch_optional<R: FromRow, E: Executor>(
    executor: &E,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Option<R>, DbError> {
    match executor.query_opt_row(sql, params).await? {
        Some(row) => Ok(Some(R::from_row(&row)?)),
        None => Ok(None),
    }
}
